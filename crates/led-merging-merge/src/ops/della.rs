//! `della` / `della_linear` (Deep et al. 2024): magnitude-rank-based random drop per row, then
//! sign election or a sum. Rows are whole in every part and each row has its own random stream,
//! so a part drops what the whole tensor drops there; the L1 rescale over a tensor merged in
//! parts comes from DARE's [`L1Stream`](super::dare::L1Stream).

use super::dare::{L1Stream, density, key, l1_factor_of, needs_l1};
use super::dare::{l1_norm, rescale_l1};
use super::generalized::{Family, Sparsifier, rescale_from};
use super::method::{Chunking, TensorJob, TensorSetup, TensorStream};
use super::params::{DENSITY, EPSILON, INT8_MASK, LAMBDA, NORMALIZE, Params, RESCALE, WEIGHT};
use crate::error::{Error, Result};
use crate::rng::StreamKey;
use crate::sparsify::Rescale;
use rand::RngExt;
use rayon::prelude::*;

/// DELLA with TIES sign election.
pub const DELLA: Family = Family {
    name: "della",
    sparsify: &RankSampling,
    consensus: true,
    default_normalize: true,
    model_params: &[WEIGHT, DENSITY, EPSILON],
    global_params: &[LAMBDA, NORMALIZE, RESCALE, INT8_MASK],
};

/// DELLA summed.
pub const DELLA_LINEAR: Family = Family {
    name: "della_linear",
    consensus: false,
    default_normalize: false,
    ..DELLA
};

/// DELLA's rank-based drop within rows of the last dimension.
#[derive(Debug)]
pub(crate) struct RankSampling;

/// The keep probabilities (density ± epsilon) must lie inside (0, 1).
fn bounds(model: usize, p: &Params) -> Result<(f64, f64), String> {
    let density = p.value(&DENSITY);
    let eps = p.value(&EPSILON);
    if density - eps > 0.0 && density + eps < 1.0 {
        Ok((density, eps))
    } else {
        Err(format!(
            "model {model}: needs 0 < density − epsilon and density + epsilon < 1 (density {density}, epsilon {eps})"
        ))
    }
}

/// Rows of `job`'s elements: a 1-D tensor is one row.
fn row_len(job: &TensorJob<'_>, len: usize) -> usize {
    if job.shape.len() <= 1 {
        len
    } else {
        job.shape.last().copied().unwrap_or(1)
    }
}

/// Model `j`'s drop on a part: its rows' streams.
fn drop_rows(job: &TensorJob<'_>, j: usize, delta: &mut [f32]) {
    let row = row_len(job, delta.len()).max(1);
    let eps = job.models[j].params.value(&EPSILON);
    rank_sample_rows(
        delta,
        row,
        job.offset / row,
        density(job, j),
        eps,
        key(job, j),
    );
}

impl Sparsifier for RankSampling {
    fn check(&self, models: &[Params]) -> Result<(), String> {
        for (k, p) in models.iter().enumerate() {
            bounds(k, p)?;
        }
        Ok(())
    }
    fn chunking(&self, t: &TensorSetup<'_>) -> Chunking {
        if t.shape.len() < 2 {
            // A 1-D tensor is one row.
            Chunking::Whole
        } else if needs_l1(t) {
            Chunking::StreamedIfLarge
        } else {
            Chunking::Elementwise
        }
    }
    fn stream(&self, t: &TensorSetup<'_>, _method: &'static str) -> Result<Box<dyn TensorStream>> {
        Ok(Box::new(L1Stream::new(t, drop_rows)))
    }
    fn apply(
        &self,
        job: &TensorJob<'_>,
        j: usize,
        delta: &mut [f32],
        method: &'static str,
    ) -> Result<Option<String>> {
        let m = &job.models[j];
        let (density, eps) =
            bounds(m.index, m.params).map_err(|why| Error::op(job.name, method, why))?;
        match (l1_factor_of(job, j), job.offset) {
            (None, 0) => {
                let row = row_len(job, delta.len());
                rank_sampling(
                    delta,
                    row,
                    density,
                    eps,
                    rescale_from(job.global),
                    key(job, j),
                )
            }
            // A part of a tensor: its rows' drops, then the whole tensor's L1 factor when the
            // stream gave one.
            (factor, _) => {
                drop_rows(job, j, delta);
                if let Some(s) = factor {
                    delta.iter_mut().for_each(|x| *x *= s);
                }
            }
        }
        Ok(None)
    }
}

// Kernels of this method (docs/merge-operators.md).

/// DELLA: within each row, rank |δ| ascending, min-max normalise ranks to r ∈ [0, 1], keep
/// with probability p = (ρ − ε) + 2ε r, then L1-rescale the whole tensor.
pub(crate) fn rank_sampling(
    delta: &mut [f32],
    row_len: usize,
    density: f64,
    epsilon: f64,
    rescale: Rescale,
    key: StreamKey<'_>,
) {
    let original_l1 = l1_norm(0.0, delta);
    rank_sample_rows(delta, row_len, 0, density, epsilon, key);
    if rescale == Rescale::L1 {
        rescale_l1(delta, original_l1);
    }
}

/// DELLA's per-row drop (no rescale) on whole rows of `row_len` elements, the first being row
/// `first_row` of the tensor: one random stream per row, so a part drops exactly what the whole
/// tensor's drop does there.
pub(crate) fn rank_sample_rows(
    delta: &mut [f32],
    row_len: usize,
    first_row: usize,
    density: f64,
    epsilon: f64,
    key: StreamKey<'_>,
) {
    let row_len = row_len.max(1);
    // Rows are independent and can be processed in parallel.
    delta
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(local, values)| {
            let row = first_row + local;
            let n = values.len();
            // Ranks of |δ| ascending, ties by index, min-max normalised. Zeros come first, in
            // index order; the others sort as one u64 each, |δ|'s bits (ordered as the values,
            // |δ| > 0) above the index: distinct keys, so an unstable sort gives the order.
            let normalised = |r: usize| {
                if n > 1 {
                    r as f64 / (n - 1) as f64
                } else {
                    1.0
                }
            };
            let mut rank = vec![0f64; n];
            let mut zeros = 0;
            let mut order = Vec::new();
            for (i, x) in values.iter().enumerate() {
                match x.abs().to_bits() {
                    0 => {
                        rank[i] = normalised(zeros);
                        zeros += 1;
                    }
                    bits => order.push(u64::from(bits) << 32 | i as u64),
                }
            }
            order.sort_unstable();
            for (r, &k) in order.iter().enumerate() {
                rank[(k & 0xFFFF_FFFF) as usize] = normalised(zeros + r);
            }
            // One `random::<f64>()` per element, in index order: (u >> 11) · 2^-53 of the
            // next u64 of the row's stream (drawn in bulk).
            let mut rng = key.block(row);
            let mut draws = [0u64; 512];
            for (values, rank) in values.chunks_mut(draws.len()).zip(rank.chunks(draws.len())) {
                let draws = &mut draws[..values.len()];
                rng.fill(draws);
                for ((x, &r), &u) in values.iter_mut().zip(rank).zip(&*draws) {
                    let p = (density - epsilon) + 2.0 * epsilon * r;
                    let draw = (u >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                    *x = if draw >= p { 0.0 } else { *x };
                }
            }
        });
}
