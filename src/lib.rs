//! # led-merging
//!
//! Merge fine-tuned large language models without the merge destroying their safety.
//! This facade re-exports the workspace's crates:
//!
//! - [`io`] (`led-merging-io`): Hugging Face safetensors checkpoints, sharded reading and writing,
//!   score checkpoints.
//! - [`mask`] (`led-merging-mask`): Elect and Disjoint: top-r thresholds, election patterns, disjoint
//!   masks, applying masked task vectors, Jaccard overlap analysis.
//! - [`merge`] (`led-merging-merge`): the merge operators (LED and the mergekit baselines) and the
//!   streaming engine driven by mergekit-style YAML.
//! - `attribution` (`led-merging-attribution`, feature `attribution`): Locate, through libtorch.
//!
//! Each type has one path: `led_merging::merge::MergePlan`, `led_merging::io::Checkpoint`, ...
//! A whole LED merge in a few lines is [`merge::LedMerge`]; LED-Merging on one tensor, straight
//! from scores:
//!
//! ```
//! use led_merging::mask::{LedTask, Pattern, led_tensor};
//! let base = [0.0f32, 0.0, 0.0, 0.0];
//! let (math, safety) = ([1.0f32, 1.0, 1.0, 1.0], [-1.0f32, -1.0, -1.0, -1.0]);
//! let base_scores = [4.0f32, 3.0, 2.0, 1.0];
//! let (math_scores, safety_scores) = ([4.0f32, 1.0, 3.0, 2.0], [1.0f32, 4.0, 2.0, 3.0]);
//! let tasks = [
//!     LedTask { model: &math, base_scores: &base_scores, model_scores: &math_scores, ratio: 0.5, lambda: 1.0, pattern: Pattern::BothHigh, priority: false },
//!     LedTask { model: &safety, base_scores: &base_scores, model_scores: &safety_scores, ratio: 0.5, lambda: 1.0, pattern: Pattern::BothHigh, priority: false },
//! ];
//! let mut merged = [0.0f32; 4];
//! led_tensor("w", &base, &tasks, true, &mut merged)?;
//! // Math elects {0} (top-2 of both: {0,1} ∩ {0,2}); safety elects {1} ({0,1} ∩ {1,3}).
//! assert_eq!(merged, [1.0, -1.0, 0.0, 0.0]);
//! # Ok::<(), led_merging::mask::Error>(())
//! ```

#[cfg(feature = "attribution")]
pub use led_merging_attribution as attribution;
pub use led_merging_io as io;
pub use led_merging_mask as mask;
pub use led_merging_merge as merge;

// The README's Rust examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
