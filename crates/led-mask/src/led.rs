//! Elect, Disjoint and Merge for one tensor, with the statistics a report needs.

use crate::apply::{TaskUpdate, apply_masks};
use crate::dense::DenseMask;
use crate::disjoint::overlap;
use crate::elect::{Pattern, elect};
use crate::error::{Error, Result};
use crate::threshold::Threshold;

/// One task's inputs for one tensor.
#[derive(Debug, Clone, Copy)]
pub struct LedTask<'a> {
    /// Fine-tuned weights θ_i.
    pub model: &'a [f32],
    /// Scores of the base on this task's dataset.
    pub base_scores: &'a [f32],
    /// Scores of θ_i on this task's dataset.
    pub model_scores: &'a [f32],
    /// Mask ratio r_i ∈ (0, 1].
    pub ratio: f64,
    /// Scale λ_i.
    pub lambda: f32,
    /// Election pattern p_i.
    pub pattern: Pattern,
}

/// Per-task statistics of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStats {
    /// The base's threshold (k, t, true member count).
    pub base: Threshold,
    /// The fine-tuned model's threshold.
    pub model: Threshold,
    /// |E_i|.
    pub elected: usize,
    /// |E_i| − |m_i|: removed by disjoint.
    pub removed: usize,
    /// |m_i|.
    pub kept: usize,
}

/// Statistics of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorStats {
    /// Elements.
    pub len: usize,
    /// Elements elected by two or more tasks (removed when disjoint is on).
    pub overlap: usize,
    /// Per task, in the order given.
    pub tasks: Vec<TaskStats>,
}

/// The final masks m_i of one tensor (E_i, disjoint unless `disjoint` is false) and their
/// statistics. `len` is the tensor's element count; every score slice must have it.
pub fn led_masks(
    tensor: &str,
    len: usize,
    tasks: &[LedTask<'_>],
    use_disjoint: bool,
) -> Result<(Vec<DenseMask>, TensorStats)> {
    let mut elections = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        if t.base_scores.len() != len {
            return Err(Error::LengthMismatch {
                tensor: tensor.into(),
                what: format!("task {i}'s base scores"),
                expected: len,
                got: t.base_scores.len(),
            });
        }
        elections.push(elect(
            tensor,
            t.base_scores,
            t.model_scores,
            t.ratio,
            t.pattern,
        )?);
    }
    // Keep the thresholds for the report and move the elected masks out: no copies.
    let mut thresholds = Vec::with_capacity(elections.len());
    let mut masks = Vec::with_capacity(elections.len());
    for e in elections {
        thresholds.push((e.base, e.model, e.elected.count()));
        masks.push(e.elected);
    }
    let shared = overlap(&masks);
    if use_disjoint {
        masks.iter_mut().for_each(|m| m.and_not_assign(&shared));
    }
    let stats = TensorStats {
        len,
        overlap: shared.count(),
        tasks: thresholds
            .into_iter()
            .zip(&masks)
            .map(|((base, model, elected), m)| {
                let kept = m.count();
                TaskStats {
                    base,
                    model,
                    elected,
                    removed: elected - kept,
                    kept,
                }
            })
            .collect(),
    };
    Ok((masks, stats))
}

/// LED-Merging for one tensor: θ = θ_b + Σ λ_i (m_i ⊙ τ_i) into `out`.
pub fn led_tensor(
    tensor: &str,
    base: &[f32],
    tasks: &[LedTask<'_>],
    use_disjoint: bool,
    out: &mut [f32],
) -> Result<TensorStats> {
    let (masks, stats) = led_masks(tensor, base.len(), tasks, use_disjoint)?;
    let updates: Vec<TaskUpdate<'_>> = tasks
        .iter()
        .zip(&masks)
        .map(|(t, mask)| TaskUpdate {
            model: t.model,
            lambda: t.lambda,
            mask,
        })
        .collect();
    apply_masks(tensor, base, &updates, out)?;
    Ok(stats)
}
