//! # led-merging-mask: LED-Merging's Elect and Disjoint steps
//!
//! Where it sits: Locate → **Elect → Disjoint** → Merge. Given per-element importance scores
//! of the base and of each fine-tuned model (from Locate), this crate selects each tensor's
//! top-r sets in O(n), combines them by an election pattern, removes weights elected by more
//! than one task, and applies the masked task vectors. Semantics: docs/how-led-works.md, sections 2–4
//! and §7, implemented as written. No libtorch.
//!
//! Two mask representations, each where it wins (see `docs/PERFORMANCE.md`):
//! - [`DenseMask`]: `u64` words, one bit per element: built straight from a threshold scan,
//!   combined word by word, applied to weights. The hot path.
//! - [`Mask`]: a roaring bitmap: compact storage at any density, set algebra with operators
//!   (`&`, `|`, `-`, `!`), portable serialization, Jaccard counts without materialising.
//!
//! The spec's worked example (§5):
//!
//! ```
//! use led_merging_mask::{LedTask, Pattern, led_tensor};
//! let (ft_a, base_a) = ([9., 8., 7., 7., 5., 4., 3., 2., 1., 0.], [8., 9., 1., 7., 7., 6., 0., 0., 0., 0.]);
//! let (ft_b, base_b) = ([0., 1., 7., 9., 8., 2., 6., 5., 5., 3.], [0., 0., 9., 8., 1., 2., 7., 6., 5., 5.]);
//! let base = [0.0f32; 10];
//! let ones = [1.0f32; 10]; // τ = θ_i − θ_b = 1 everywhere
//! let task = |base_scores, model_scores, ratio, lambda| LedTask {
//!     model: &ones, base_scores, model_scores, ratio, lambda, pattern: Pattern::BothHigh,
//!     priority: false,
//! };
//! let tasks = [task(&base_a, &ft_a, 0.3, 1.0), task(&base_b, &ft_b, 0.5, 0.5)];
//! let mut merged = [0.0f32; 10];
//! let stats = led_tensor("w", &base, &tasks, true, &mut merged)?;
//! assert_eq!(merged, [1., 1., 0.5, 0., 0., 0., 0.5, 0.5, 0.5, 0.]);
//! assert_eq!((stats.tasks[0].elected, stats.tasks[0].kept), (3, 2)); // E_A = {0,1,3}, m_A = {0,1}
//! assert_eq!(stats.overlap, 1); // element 3
//! # Ok::<(), led_merging_mask::Error>(())
//! ```

mod apply;
mod dense;
mod disjoint;
mod elect;
mod error;
mod jaccard;
mod led;
mod mask;
mod threshold;

pub use apply::{TaskUpdate, apply_masks};
pub use bitvec;
pub use dense::DenseMask;
pub use disjoint::{disjoint, overlap};
pub use elect::{Election, Pattern, elect, elect_at, lowest_first, top_set};
pub use error::{Error, Result};
pub use jaccard::{
    JaccardTable, Overlap, TensorKind, classify, jaccard_from_counts, overlap_counts,
};
pub use led::{
    LedTask, TaskStats, TaskThresholds, TensorStats, add_energies, led_masks, led_masks_at,
    led_tensor, led_tensor_at, task_thresholds,
};
pub use mask::{MAX_MASK_LEN, Mask};
pub use threshold::{StreamingThreshold, Threshold, select_threshold, top_k};
