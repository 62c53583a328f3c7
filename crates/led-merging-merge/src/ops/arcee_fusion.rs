//! `arcee_fusion` (mergekit's Arcee Fusion): take the other model's values where they matter
//! most: importance = |θ₁ − θ_b| · KL(softmax(θ₁) ‖ softmax(θ_b)) per row of the last dimension;
//! an element moves to θ₁ when its importance reaches median + 1.5 · (q3 − q1) of the tensor's
//! importances. Quantiles are exact over the whole tensor (mergekit samples 10⁶ elements of
//! larger tensors at random: docs/merge-operators.md).

use super::method::{MergeMethod, TensorJob, TensorNote};
use crate::error::{Error, Result};

/// Arcee Fusion.
#[derive(Debug, Clone, Copy)]
pub struct ArceeFusion;

/// softmax(x) + 1e-8, in f32 as PyTorch computes it (max subtracted).
fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|&v| v / sum + 1e-8).collect()
}

impl MergeMethod for ArceeFusion {
    fn name(&self) -> &'static str {
        "arcee_fusion"
    }
    fn check_model_count(&self, n: usize) -> Result<(), String> {
        super::method::exactly_one_model(n)
    }
    // Chunking::Whole (the default): the quantiles span the tensor.
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let base = job.base("arcee_fusion")?;
        let [m] = job.models.as_slice() else {
            out.copy_from_slice(base);
            return Ok(Vec::new());
        };
        let row = job.shape.last().copied().unwrap_or(base.len()).max(1);
        let mut importance = Vec::with_capacity(base.len());
        for (b, v) in base.chunks(row).zip(m.values.chunks(row)) {
            let (p, q) = (softmax(v), softmax(b));
            let kl: f32 = p.iter().zip(&q).map(|(&p, &q)| p * (p / q).ln()).sum();
            importance.extend(v.iter().zip(b).map(|(&x, &y)| (x - y).abs() * kl));
        }
        let mut sorted = importance.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        // PyTorch: index (q · (n − 1)) truncated, q in f32.
        let at = |q: f32| sorted[(q * (n - 1) as f32) as usize];
        let (q1, median, q3) = (at(0.25), at(0.5), at(0.75));
        let threshold = median + 1.5 * (q3 - q1);
        if !threshold.is_finite() {
            return Err(Error::op(
                job.name,
                "arcee_fusion",
                "the importance threshold is not finite",
            ));
        }
        for (((o, &b), &x), &imp) in out.iter_mut().zip(base).zip(m.values).zip(&importance) {
            let mask = if imp >= threshold { 1.0 } else { 0.0 };
            *o = b + (x - b) * mask;
        }
        Ok(Vec::new())
    }
}
