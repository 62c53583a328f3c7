//! `dare_linear` / `dare_ties` (Yu et al. 2024): drop each task-vector entry with probability
//! 1 − ρ, rescale the rest, then sum or elect signs. Drops are keyed by element position, so a
//! part drops what the whole tensor drops there; with the L1 rescale (mergekit's default), a
//! tensor merged in parts gets each model's factor from a stream over its parts ([`L1Stream`],
//! shared with DELLA).

use super::generalized::{Family, Sparsifier, rescale_from};
use super::method::{Chunking, Streamed, TensorJob, TensorSetup, TensorStream};
use super::params::{DENSITY, INT8_MASK, LAMBDA, NORMALIZE, Params, RESCALE, WEIGHT};
use super::stream::PerModel;
use crate::error::Result;
use crate::rng::StreamKey;
use crate::sparsify::{Rescale, drop_part, l1_factor, l1_norm, random_drop, scale_inverse_density};

const DARE_MODEL: &[super::params::ParamSpec] = &[WEIGHT, DENSITY];
const DARE_GLOBAL: &[super::params::ParamSpec] = &[LAMBDA, NORMALIZE, RESCALE, INT8_MASK];

/// `dare_linear`: random drop with rescale, then a weighted sum.
pub const DARE_LINEAR: Family = Family {
    name: "dare_linear",
    sparsify: &RandomDrop,
    consensus: false,
    default_normalize: false,
    model_params: DARE_MODEL,
    global_params: DARE_GLOBAL,
};

/// `dare_ties`: random drop with rescale, then TIES sign election.
pub const DARE_TIES: Family = Family {
    name: "dare_ties",
    consensus: true,
    ..DARE_LINEAR
};

/// DARE's Bernoulli drop.
#[derive(Debug)]
pub(crate) struct RandomDrop;

/// Model `j`'s random streams for `job`'s tensor.
pub(crate) fn key<'a>(job: &TensorJob<'a>, j: usize) -> StreamKey<'a> {
    StreamKey {
        seed: job.seed,
        tensor: job.name,
        model: job.models[j].index,
    }
}

/// Model `j`'s density for `job`.
pub(crate) fn density(job: &TensorJob<'_>, j: usize) -> f64 {
    job.models[j].params.value(&DENSITY)
}

/// Model `j`'s whole-tensor L1 rescale factor, when `job` is a part of a tensor streamed by
/// [`L1Stream`] and the model drops something.
pub(crate) fn l1_factor_of(job: &TensorJob<'_>, j: usize) -> Option<f32> {
    PerModel::<f32>::of(job, j)
}

/// Whether the L1 factor over the whole tensor is needed: L1 rescale and some drop.
pub(crate) fn needs_l1(t: &TensorSetup<'_>) -> bool {
    rescale_from(t.global) == Rescale::L1
        && t.models.iter().any(|p: &Params| p.value(&DENSITY) < 1.0)
}

impl Sparsifier for RandomDrop {
    fn chunking(&self, t: &TensorSetup<'_>) -> Chunking {
        if needs_l1(t) {
            Chunking::StreamedIfLarge
        } else {
            Chunking::Elementwise
        }
    }
    fn stream(&self, t: &TensorSetup<'_>, _method: &'static str) -> Result<Box<dyn TensorStream>> {
        Ok(Box::new(L1Stream::new(t, |job, j, delta| {
            drop_part(delta, job.offset, density(job, j), key(job, j))
        })))
    }
    fn apply(
        &self,
        job: &TensorJob<'_>,
        j: usize,
        delta: &mut [f32],
        _method: &'static str,
    ) -> Result<Option<String>> {
        let density = density(job, j);
        if density >= 1.0 {
            return Ok(None);
        }
        match (rescale_from(job.global), l1_factor_of(job, j)) {
            (Rescale::L1, None) => random_drop(delta, density, Rescale::L1, key(job, j)),
            // Also a part of a tensor: the drop at this position, then the whole tensor's L1
            // factor (from the stream) or 1/ρ.
            (rescale, factor) => {
                drop_part(delta, job.offset, density, key(job, j));
                match rescale {
                    Rescale::L1 => {
                        let s = factor.unwrap_or(1.0);
                        delta.iter_mut().for_each(|x| *x *= s);
                    }
                    Rescale::InverseDensity => scale_inverse_density(delta, density),
                    Rescale::None => {}
                }
            }
        }
        Ok(None)
    }
}

/// Drops model `j`'s entries of a part's task vector in place.
pub(crate) type Drop = fn(&TensorJob<'_>, usize, &mut [f32]);

/// Each model's L1 norm of its task vector before and after the drop, summed over the parts
/// in index order (as the whole tensor's path sums them); each part gets the factors.
pub(crate) struct L1Stream {
    /// Per model (`None`: keeps everything): (original, kept) L1 norms so far.
    sums: Vec<Option<(f64, f64)>>,
    drop: Drop,
    done: bool,
}

impl L1Stream {
    /// A stream over tensor `t`, dropping with `drop`.
    pub(crate) fn new(t: &TensorSetup<'_>, drop: Drop) -> Self {
        L1Stream {
            sums: t
                .models
                .iter()
                .map(|p| (p.value(&DENSITY) < 1.0).then_some((0.0, 0.0)))
                .collect(),
            drop,
            done: false,
        }
    }
}

impl TensorStream for L1Stream {
    fn needs_round(&self) -> bool {
        !self.done
    }
    fn feed(&mut self, part: &TensorJob<'_>) -> Result<()> {
        for (j, sums) in self.sums.iter_mut().enumerate() {
            if let Some((original, kept)) = sums {
                let mut delta: Vec<f32> = part.delta(j).collect();
                *original = l1_norm(*original, &delta);
                (self.drop)(part, j, &mut delta);
                *kept = l1_norm(*kept, &delta);
            }
        }
        Ok(())
    }
    fn end_round(&mut self) -> Result<()> {
        self.done = true;
        Ok(())
    }
    fn hand_out(&mut self, _part: &TensorJob<'_>) -> Result<Streamed> {
        let factors = self
            .sums
            .iter()
            .map(|s| s.map(|(original, kept)| l1_factor(original, kept).unwrap_or(1.0)))
            .collect();
        Ok(Box::new(PerModel(factors)))
    }
}
