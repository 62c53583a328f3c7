//! Elect, Disjoint and Merge for one tensor, with the statistics a report needs.

use crate::apply::{TaskUpdate, apply_masks};
use crate::dense::DenseMask;
use crate::disjoint::overlap;
use crate::elect::{Pattern, elect_at};
use crate::error::{Result, check_len};
use crate::threshold::{Threshold, select_threshold};

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
    /// Safety priority (the authors' variant, docs/how-led-works.md): inside this task's
    /// election E_i (before Disjoint), the merged update is λ_i τ_i alone: E_i is kept whole
    /// and every other task's mask loses it. At most one task of a tensor has it.
    pub priority: bool,
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
    /// ‖τ_i‖² over the tensor (τ_i = θ_i − θ_b; 0 when only scores were read).
    pub energy: f64,
    /// ‖m_i ⊙ τ_i‖²: the part of the task vector's energy the merge keeps.
    pub kept_energy: f64,
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
    let thresholds = task_thresholds(tensor, len, tasks)?;
    led_masks_at(tensor, len, tasks, &thresholds, use_disjoint)
}

/// A task's top-r thresholds over its two whole score tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskThresholds {
    /// Over the base's scores.
    pub base: Threshold,
    /// Over the fine-tuned model's scores.
    pub model: Threshold,
}

/// Each task's thresholds over whole score tensors of length `len`.
pub fn task_thresholds(
    tensor: &str,
    len: usize,
    tasks: &[LedTask<'_>],
) -> Result<Vec<TaskThresholds>> {
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            for (what, got) in [
                ("base scores", t.base_scores.len()),
                ("fine-tuned scores", t.model_scores.len()),
            ] {
                check_len(tensor, || format!("task {i}'s {what}"), len, got)?;
            }
            Ok(TaskThresholds {
                base: select_threshold(tensor, t.base_scores, t.ratio)?,
                model: select_threshold(tensor, t.model_scores, t.ratio)?,
            })
        })
        .collect()
}

/// [`led_masks`] with each task's thresholds given (selected over the whole tensor, e.g. with
/// [`crate::StreamingThreshold`]), so `tasks` may hold any part of the tensor: `len` is that
/// part's length and the statistics count that part (sum them with [`TensorStats::add`]).
pub fn led_masks_at(
    tensor: &str,
    len: usize,
    tasks: &[LedTask<'_>],
    thresholds: &[TaskThresholds],
    use_disjoint: bool,
) -> Result<(Vec<DenseMask>, TensorStats)> {
    check_len(
        tensor,
        || "threshold pairs".into(),
        tasks.len(),
        thresholds.len(),
    )?;
    let mut elected_counts = Vec::with_capacity(tasks.len());
    let mut masks = Vec::with_capacity(tasks.len());
    for (i, (t, &TaskThresholds { base, model })) in tasks.iter().zip(thresholds).enumerate() {
        check_len(
            tensor,
            || format!("task {i}'s base scores"),
            len,
            t.base_scores.len(),
        )?;
        let e = elect_at(
            tensor,
            t.base_scores,
            t.model_scores,
            base,
            model,
            t.pattern,
        )?;
        elected_counts.push(e.elected.count());
        masks.push(e.elected);
    }
    let shared = overlap(&masks);
    let priority = priority_task(tensor, tasks)?.map(|p| (p, masks[p].clone()));
    if use_disjoint {
        masks.iter_mut().for_each(|m| m.and_not_assign(&shared));
    }
    if let Some((p, elected)) = priority {
        for (i, m) in masks.iter_mut().enumerate() {
            if i == p {
                *m = elected.clone();
            } else {
                m.and_not_assign(&elected);
            }
        }
    }
    let stats = TensorStats {
        len,
        overlap: shared.count(),
        tasks: thresholds
            .iter()
            .zip(elected_counts)
            .zip(&masks)
            .map(|((&TaskThresholds { base, model }, elected), m)| {
                let kept = m.count();
                TaskStats {
                    base,
                    model,
                    elected,
                    removed: elected - kept,
                    kept,
                    energy: 0.0,
                    kept_energy: 0.0,
                }
            })
            .collect(),
    };
    Ok((masks, stats))
}

/// The one task with `priority`, if any; two are an error naming the tensor.
fn priority_task(tensor: &str, tasks: &[LedTask<'_>]) -> Result<Option<usize>> {
    let mut with = tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.priority)
        .map(|(i, _)| i);
    let first = with.next();
    if let (Some(first), Some(second)) = (first, with.next()) {
        return Err(crate::Error::TwoPriorities {
            tensor: tensor.to_owned(),
            first,
            second,
        });
    }
    Ok(first)
}

impl TensorStats {
    /// Add the counts of another part of the same tensor (same tasks, same thresholds).
    pub fn add(&mut self, other: &TensorStats) {
        self.len += other.len;
        self.overlap += other.overlap;
        for (a, b) in self.tasks.iter_mut().zip(&other.tasks) {
            a.elected += b.elected;
            a.removed += b.removed;
            a.kept += b.kept;
            a.energy += b.energy;
            a.kept_energy += b.kept_energy;
        }
    }

    /// The counts of several tensors (or parts) added up: elements, overlap and, per task,
    /// elected, removed and kept (thresholds are the first's); `None` for none.
    pub fn sum<'a>(stats: impl IntoIterator<Item = &'a TensorStats>) -> Option<TensorStats> {
        let mut stats = stats.into_iter();
        let mut total = stats.next()?.clone();
        stats.for_each(|s| total.add(s));
        Some(total)
    }
}

/// LED-Merging for one tensor: θ = θ_b + Σ λ_i (m_i ⊙ τ_i) into `out`.
pub fn led_tensor(
    tensor: &str,
    base: &[f32],
    tasks: &[LedTask<'_>],
    use_disjoint: bool,
    out: &mut [f32],
) -> Result<TensorStats> {
    let thresholds = task_thresholds(tensor, base.len(), tasks)?;
    led_tensor_at(tensor, base, tasks, &thresholds, use_disjoint, out)
}

/// [`led_tensor`] with the thresholds given: merges any part of a tensor (see
/// [`led_masks_at`]).
pub fn led_tensor_at(
    tensor: &str,
    base: &[f32],
    tasks: &[LedTask<'_>],
    thresholds: &[TaskThresholds],
    use_disjoint: bool,
    out: &mut [f32],
) -> Result<TensorStats> {
    let (masks, stats) = led_masks_at(tensor, base.len(), tasks, thresholds, use_disjoint)?;
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
    let mut stats = stats;
    add_energies(tensor, &mut stats, base, tasks, &masks)?;
    Ok(stats)
}

/// Elements per parallel task of [`add_energies`] (a whole number of mask words).
const ENERGY_CHUNK: usize = 1 << 16;

/// Add each task's ‖τ_i‖² and ‖m_i ⊙ τ_i‖² over this part (τ_i = θ_i − θ_b, in f64) to
/// `stats`, with `masks` the final masks of [`led_masks_at`]. In parallel over fixed chunks,
/// summed in chunk order: the same sums whatever the thread count.
pub fn add_energies(
    tensor: &str,
    stats: &mut TensorStats,
    base: &[f32],
    tasks: &[LedTask<'_>],
    masks: &[DenseMask],
) -> Result<()> {
    use rayon::prelude::*;
    for (i, (t, m)) in tasks.iter().zip(masks).enumerate() {
        check_len(
            tensor,
            || format!("task {i}'s model"),
            base.len(),
            t.model.len(),
        )?;
        check_len(tensor, || format!("task {i}'s mask"), base.len(), m.len())?;
    }
    for ((s, t), m) in stats.tasks.iter_mut().zip(tasks).zip(masks) {
        let words = m.words();
        let chunks: Vec<(f64, f64)> = t
            .model
            .par_chunks(ENERGY_CHUNK)
            .zip(base.par_chunks(ENERGY_CHUNK))
            .enumerate()
            .map(|(c, (x, b))| {
                let first_word = c * ENERGY_CHUNK / 64;
                let (mut all, mut kept) = (0f64, 0f64);
                let square = |x: f32, b: f32| {
                    let d = f64::from(x) - f64::from(b);
                    d * d
                };
                for (k, (x, b)) in x.chunks(64).zip(b.chunks(64)).enumerate() {
                    // Eight independent sums, so the compiler can vectorise them.
                    let mut lanes = [0f64; 8];
                    for (xs, bs) in x.chunks(8).zip(b.chunks(8)) {
                        for (l, (x, b)) in lanes.iter_mut().zip(xs.iter().zip(bs)) {
                            *l += square(*x, *b);
                        }
                    }
                    all += lanes.iter().sum::<f64>();
                    // The kept elements: the word's set bits.
                    let mut word = words[first_word + k];
                    while word != 0 {
                        let j = word.trailing_zeros() as usize;
                        kept += square(x[j], b[j]);
                        word &= word - 1;
                    }
                }
                (all, kept)
            })
            .collect();
        for (all, kept) in chunks {
            s.energy += all;
            s.kept_energy += kept;
        }
    }
    Ok(())
}
