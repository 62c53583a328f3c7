//! # led-merging-merge: merge operators and the streaming merge engine
//!
//! Where it sits: Locate → Elect → Disjoint → **Merge**. This crate runs LED-Merging (with
//! `led-merging-mask` doing Elect and Disjoint per tensor) and the classic baselines (`linear`,
//! `task_arithmetic`, `ties`, `dare_linear`, `dare_ties`, `breadcrumbs`, `breadcrumbs_ties`,
//! `della`, `della_linear`, `model_stock`, `slerp`, `nearswap`, `sce`, `nuslerp`, `multislerp`, `arcee_fusion`, `karcher`, `passthrough`, `ram`, `ramplus_tl`, mergekit's `slices` and tokenizers) from mergekit-style YAML, over sharded
//! Hugging Face checkpoints, one tensor at a time: memory is bounded by the largest tensor times
//! the number of inputs (times the threads), never by model size. No libtorch.
//!
//! ```no_run
//! use led_merging_merge::{Detail, MergeConfig, MergePlan, RunOptions, run};
//! let plan = MergePlan::new(MergeConfig::from_file("merge.yaml")?)?; // checks everything first
//! print!("{}", plan.describe(Detail::Summary, &RunOptions::default()));
//! let report = run(&plan, "merged", &RunOptions::default())?;
//! println!("wrote {} shard(s)", report.written.shards.len());
//! # Ok::<(), led_merging_merge::Error>(())
//! ```

pub mod analyze;
mod config;
mod engine;
mod error;
mod inputs;
mod led_merge;
mod multi;
pub mod ops;
mod options;
mod parts;
mod plan;
mod rng;
mod score_files;
mod slices;
mod sparsify;
mod vocab;

pub use config::{
    Conditional, Location, MergeConfig, ModelEntry, Parameters, Scalar, ScorePaths, Setting, Slice,
    SliceSource, TokenEmbedding, TokenKind, TokenSource, TokenizerConfig,
};
pub use engine::{MergeReport, Reports, run, survey};
pub use error::{Error, Result};
pub use led_merge::{
    KEPT_ENERGY_WARNING, LedMerge, Scores, Task, kept_energy_warnings, led_election,
};
#[cfg(feature = "attribution")]
pub use led_merge::{LocatedScores, resolve_locations};
pub use multi::{MultiMerge, Step};
pub use options::{BLOCK_ELEMENTS, DEFAULT_CHUNK_ELEMENTS, RunOptions, default_max_memory};
pub use plan::{Action, Detail, Input, MergePlan, Resolution, ScoreFiles, TensorPlan};
pub use vocab::VocabPlan;
