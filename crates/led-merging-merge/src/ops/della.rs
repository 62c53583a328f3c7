//! `della` / `della_linear` (Deep et al. 2024): magnitude-rank-based random drop per row, then
//! sign election or a sum. Rows are whole in every part and each row has its own random stream,
//! so a part drops what the whole tensor drops there; the L1 rescale over a tensor merged in
//! parts comes from DARE's [`L1Stream`](super::dare::L1Stream).

use super::dare::{L1Stream, density, key, l1_factor_of, needs_l1};
use super::generalized::{Family, Sparsifier, rescale_from};
use super::method::{Chunking, TensorJob, TensorSetup, TensorStream};
use super::params::{DENSITY, EPSILON, INT8_MASK, LAMBDA, NORMALIZE, Params, RESCALE, WEIGHT};
use crate::error::{Error, Result};
use crate::sparsify::{rank_sample_rows, rank_sampling};

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
