//! mergekit's "generalized task arithmetic" family: sparsify each task vector, weight it,
//! optionally elect signs (TIES), sum, normalise, scale by λ, add to the base. A member is
//! data: its [`Sparsifier`] (in the member's own file: `ties.rs`, `dare.rs`, `breadcrumbs.rs`,
//! `della.rs`, with any stream it needs over a tensor merged in parts), whether it elects signs,
//! its parameters.

use super::method::{Chunking, MergeMethod, TensorJob, TensorNote, TensorSetup, TensorStream};
use super::params::{LAMBDA, NORMALIZE, ParamSpec, Params, WEIGHT};
use crate::config::Scalar;
use crate::error::{Error, Result};
use crate::sparsify::Rescale;
use rayon::prelude::*;

/// How each task vector of a family member is sparsified.
pub trait Sparsifier: Send + Sync + std::fmt::Debug {
    /// How a tensor may be merged in parts (default: element by element).
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        Chunking::Elementwise
    }
    /// [`Chunking::Streamed`] only: the stream over tensor `t` for method `method`.
    fn stream(&self, t: &TensorSetup<'_>, method: &'static str) -> Result<Box<dyn TensorStream>> {
        Err(Error::op(
            t.name,
            method,
            "no stream for this sparsification",
        ))
    }
    /// Check one tensor's per-model parameters: returns why they are invalid.
    fn check(&self, _models: &[Params]) -> Result<(), String> {
        Ok(())
    }
    /// Sparsify model `j`'s task vector `delta` (on `job`'s elements) in place; returns a
    /// warning for the report, if any.
    fn apply(
        &self,
        job: &TensorJob<'_>,
        j: usize,
        delta: &mut [f32],
        method: &'static str,
    ) -> Result<Option<String>>;
}

/// No sparsification (task arithmetic).
#[derive(Debug)]
pub(crate) struct KeepAll;

impl Sparsifier for KeepAll {
    fn apply(&self, _: &TensorJob<'_>, _: usize, _: &mut [f32], _: &str) -> Result<Option<String>> {
        Ok(None)
    }
}

/// One member of the family: everything that distinguishes it is data.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub(crate) name: &'static str,
    pub(crate) sparsify: &'static dyn Sparsifier,
    pub(crate) consensus: bool,
    pub(crate) default_normalize: bool,
    pub(crate) model_params: &'static [ParamSpec],
    pub(crate) global_params: &'static [ParamSpec],
}

impl MergeMethod for Family {
    fn name(&self) -> &'static str {
        self.name
    }
    fn check_tensor(&self, _global: &Params, models: &[Params]) -> Result<(), String> {
        self.sparsify.check(models)
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        self.model_params
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        self.global_params
    }
    fn chunking(&self, t: &TensorSetup<'_>) -> Chunking {
        // Sign election and the weighted sum are per element; sparsification may not be.
        self.sparsify.chunking(t)
    }
    fn stream(&self, t: &TensorSetup<'_>) -> Result<Box<dyn TensorStream>> {
        self.sparsify.stream(t, self.name)
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        merge(*self, job, out)
    }
}

/// How kept entries are rescaled after a random drop (`rescale`; mergekit's default: L1).
pub(crate) fn rescale_from(global: &Params) -> Rescale {
    match global.get("rescale") {
        Some(Scalar::Bool(false)) => Rescale::None,
        Some(Scalar::Text(_)) => Rescale::InverseDensity,
        _ => Rescale::L1,
    }
}

/// Run `family` on one tensor.
pub(crate) fn merge(
    family: Family,
    job: &TensorJob<'_>,
    out: &mut [f32],
) -> Result<Vec<TensorNote>> {
    let base = job.base(family.name)?;
    let mut notes = Vec::new();
    let mut deltas = Vec::with_capacity(job.models.len());
    let mut weights = Vec::with_capacity(job.models.len());
    for (j, m) in job.models.iter().enumerate() {
        let weight = job.model_number(m, WEIGHT.name, family.name)? as f32;
        let mut delta: Vec<f32> = job.delta(j).collect();
        if let Some(w) = family.sparsify.apply(job, j, &mut delta, family.name)? {
            notes.push(TensorNote::Warning(w));
        }
        delta.iter_mut().for_each(|x| *x *= weight);
        deltas.push(delta);
        weights.push(weight);
    }
    let normalize = job
        .global
        .flag(&NORMALIZE.or_flag(family.default_normalize));
    let lambda = job.global.value(&LAMBDA) as f32;
    if family.consensus {
        let mut sum = vec![0f32; base.len()];
        let mut div = vec![0f32; base.len()];
        sign_consensus(&deltas, &weights, &mut sum, &mut div);
        for (((o, &b), s), d) in out.iter_mut().zip(base).zip(sum).zip(div) {
            let d = if d == 0.0 { 1.0 } else { d };
            let mixed = if normalize { s / d } else { s };
            *o = b + lambda * mixed;
        }
    } else {
        let total: f32 = weights.iter().sum();
        let divisor = if total.abs() < 1e-8 { 1.0 } else { total };
        // Σ_i δ_i per element, model after model into the first task vector (f32's `Sum`
        // starts at −0.0, and −0.0 + δ_0 = δ_0: the same bits as an element-by-element sum).
        // No model: the base (b + λ·(−0.0) = b).
        let Some((sum, rest)) = deltas.split_first_mut() else {
            out.copy_from_slice(base);
            return Ok(notes);
        };
        for d in rest.iter() {
            sum.iter_mut().zip(d).for_each(|(s, x)| *s += x);
        }
        for ((o, &b), &s) in out.iter_mut().zip(base).zip(sum.iter()) {
            let mixed = if normalize { s / divisor } else { s };
            *o = b + lambda * mixed;
        }
    }
    Ok(notes)
}

// Kernels of this method (docs/merge-operators.md).

/// TIES sign election over weighted, sparsified deltas: s = +1 where Σ u_i ≥ 0, else −1;
/// returns per element Σ over agreeing models of (u_i, w_i): the masked sum and its divisor.
pub(crate) fn sign_consensus(
    deltas: &[Vec<f32>],
    weights: &[f32],
    out_sum: &mut [f32],
    out_div: &mut [f32],
) {
    // Spans of elements, each summed model after model in plain loops (the compiler vectorises
    // them); per element the additions are in model order, as an element-by-element sum.
    const SPAN: usize = 1 << 14;
    out_sum
        .par_chunks_mut(SPAN)
        .zip(out_div.par_chunks_mut(SPAN))
        .enumerate()
        .for_each(|(c, (sum, div))| {
            let span = c * SPAN..c * SPAN + sum.len();
            // The elected sign: of Σ u_i (f32's `Sum` starts at −0.0; the sign test is the same).
            sum.fill(-0.0);
            for d in deltas {
                sum.iter_mut()
                    .zip(&d[span.clone()])
                    .for_each(|(t, u)| *t += u);
            }
            // The elected sign as ±1: u agrees when u · sign > 0 (pruned entries, u = 0, never).
            let mut sign = [0f32; SPAN];
            let n = sum.len();
            let sign = &mut sign[..n];
            sign.iter_mut()
                .zip(&*sum)
                .for_each(|(e, &t)| *e = if t >= 0.0 { 1.0 } else { -1.0 });
            sum.fill(0.0);
            div.fill(0.0);
            for (d, &wt) in deltas.iter().zip(weights) {
                let d = &d[span.clone()];
                for i in 0..n {
                    // Adding +0.0 instead of skipping keeps the bits (the sums start at +0.0
                    // and never become −0.0) and lets the loop vectorise.
                    let agree = d[i] * sign[i] > 0.0;
                    sum[i] += if agree { d[i] } else { 0.0 };
                    div[i] += if agree { wt } else { 0.0 };
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_counts_zero_as_positive_and_skips_pruned() {
        let deltas = vec![vec![1.0, -1.0, 0.0, 2.0], vec![-1.0, -2.0, 0.0, 0.0]];
        let mut sum = [0.0; 4];
        let mut div = [0.0; 4];
        sign_consensus(&deltas, &[1.0, 3.0], &mut sum, &mut div);
        // Element 0: total 0 → sign +1: only model 0 agrees.
        assert_eq!(sum, [1.0, -3.0, 0.0, 2.0]);
        assert_eq!(div, [1.0, 4.0, 0.0, 1.0]);
    }
}
