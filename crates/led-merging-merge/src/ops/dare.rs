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
use crate::rng::BLOCK;
use crate::rng::StreamKey;
use crate::sparsify::Rescale;
use rand::RngExt;
use rayon::prelude::*;

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
    fn needs_pass(&self) -> bool {
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
    fn end_pass(&mut self) -> Result<()> {
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

// Kernels of this method (docs/merge-operators.md).

/// Multiply `kept` so its L1 norm equals `original_l1`, unless either norm is below 1e-7.
pub(crate) fn rescale_l1(kept: &mut [f32], original_l1: f64) {
    if let Some(s) = l1_factor(original_l1, l1_norm(0.0, kept)) {
        kept.iter_mut().for_each(|x| *x *= s);
    }
}

/// DARE: keep each element with probability `density` (Bernoulli), then rescale.
pub(crate) fn random_drop(delta: &mut [f32], density: f64, rescale: Rescale, key: StreamKey<'_>) {
    if density >= 1.0 {
        return;
    }
    let original_l1 = l1_norm(0.0, delta);
    drop_part(delta, 0, density, key);
    match rescale {
        Rescale::None => {}
        Rescale::L1 => rescale_l1(delta, original_l1),
        Rescale::InverseDensity => scale_inverse_density(delta, density),
    }
}

/// Σ|x| in f64, continuing from `acc`, in index order (so parts summed one after the other give
/// the whole tensor's value bit for bit).
pub(crate) fn l1_norm(acc: f64, values: &[f32]) -> f64 {
    values.iter().fold(acc, |a, x| a + f64::from(x.abs()))
}

/// The L1 rescale factor of [`rescale_l1`]: `None` when either norm is below 1e-7.
pub(crate) fn l1_factor(original_l1: f64, kept_l1: f64) -> Option<f32> {
    (original_l1 >= 1e-7 && kept_l1 >= 1e-7).then(|| (original_l1 / kept_l1) as f32)
}

/// Multiply by 1/ρ (nothing for ρ = 0).
pub(crate) fn scale_inverse_density(delta: &mut [f32], density: f64) {
    if density > 0.0 {
        let s = (1.0 / density) as f32;
        delta.iter_mut().for_each(|x| *x *= s);
    }
}

/// DARE's Bernoulli drop on the elements `offset..offset + delta.len()` of a tensor: each block
/// of `BLOCK` elements has its own random stream, so a part drops exactly what the whole
/// tensor's drop does there.
pub(crate) fn drop_part(delta: &mut [f32], offset: usize, density: f64, key: StreamKey<'_>) {
    // Each element draws one u64 u (the next two words of its block's stream, low word first)
    // and is dropped when `random::<f64>() ≥ ρ`, i.e. (u >> 11) · 2^-53 ≥ ρ. Decided here on
    // integers, exactly: u ≥ ⌈ρ · 2^53⌉ · 2^11 (ρ < 1), compared as two 32-bit words so that the
    // loop over words drawn in bulk vectorises.
    let cut = ((density * (1u64 << 53) as f64).ceil() as u64) << 11;
    let (cut_hi, cut_lo) = ((cut >> 32) as u32, cut as u32);
    let drop = |chunk: &mut [f32], block: usize, skip: usize| {
        let mut rng = key.block(block);
        rng.set_word_pos(2 * skip as u128);
        let mut words = [0u32; 2048];
        for part in chunk.chunks_mut(words.len() / 2) {
            let words = &mut words[..2 * part.len()];
            rng.fill(words);
            for (i, x) in part.iter_mut().enumerate() {
                let (lo, hi) = (words[2 * i], words[2 * i + 1]);
                let dropped = (hi > cut_hi) | ((hi == cut_hi) & (lo >= cut_lo));
                *x = if dropped { 0.0 } else { *x };
            }
        }
    };
    // The part's first, partial block; then whole blocks in parallel.
    let within = offset % BLOCK;
    let head = if within == 0 {
        0
    } else {
        (BLOCK - within).min(delta.len())
    };
    let (first, rest) = delta.split_at_mut(head);
    if !first.is_empty() {
        drop(first, offset / BLOCK, within);
    }
    let start = (offset + head) / BLOCK;
    rest.par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(b, chunk)| drop(chunk, start + b, 0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_in_parts_drops_what_the_whole_tensor_drops() {
        let key = StreamKey {
            seed: 9,
            tensor: "model.embed_tokens.weight",
            model: 1,
        };
        let n = 3 * BLOCK + 1234;
        let delta: Vec<f32> = (0..n).map(|i| (i % 97) as f32 - 48.0).collect();
        let mut whole = delta.clone();
        random_drop(&mut whole, 0.3, Rescale::L1, key);
        let dropped = whole.iter().filter(|x| **x == 0.0).count();
        assert!(dropped > n / 2 && dropped < n * 8 / 10, "{dropped}");
        // Parts that start inside blocks, span block boundaries, and one that is a whole block.
        let cuts = [
            0,
            1000,
            BLOCK - 1,
            BLOCK,
            2 * BLOCK + 17,
            3 * BLOCK + 1000,
            n,
        ];
        let mut parts = delta.clone();
        let (mut original, mut kept) = (0.0, 0.0);
        for w in cuts.windows(2) {
            let part = &mut parts[w[0]..w[1]];
            original = l1_norm(original, part);
            drop_part(part, w[0], 0.3, key);
            kept = l1_norm(kept, part);
        }
        let s = l1_factor(original, kept).unwrap();
        parts.iter_mut().for_each(|x| *x *= s);
        assert_eq!(
            parts.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            whole.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn random_drop_is_deterministic_and_keeps_about_rho() {
        let orig: Vec<f32> = (0..200_000)
            .map(|i| ((i % 97) as f32 - 48.0) * 0.01)
            .collect();
        let run = || {
            let mut d = orig.clone();
            random_drop(
                &mut d,
                0.3,
                Rescale::L1,
                StreamKey {
                    seed: 7,
                    tensor: "w",
                    model: 1,
                },
            );
            d
        };
        let a = run();
        assert_eq!(a, run());
        let kept = a
            .iter()
            .zip(&orig)
            .filter(|(x, o)| **x != 0.0 && **o != 0.0)
            .count() as f64;
        let nonzero = orig.iter().filter(|o| **o != 0.0).count() as f64;
        assert!((kept / nonzero - 0.3).abs() < 0.01, "{}", kept / nonzero);
        let l1 = |v: &[f32]| v.iter().map(|x| f64::from(x.abs())).sum::<f64>();
        assert!((l1(&a) / l1(&orig) - 1.0).abs() < 1e-4);
        let mut other = orig.clone();
        random_drop(
            &mut other,
            0.3,
            Rescale::L1,
            StreamKey {
                seed: 8,
                tensor: "w",
                model: 1,
            },
        );
        assert_ne!(other, a);
    }
}
