//! `ties` (Yadav et al. 2023): top-k by magnitude per task vector, sign election, disjoint mean.
//! A tensor merged in parts gets each model's exact top-k from a stream over its parts: the
//! k-th largest |δ| and, part by part in index order, how many elements equal to it to keep.

use super::generalized::{Family, Sparsifier};
use super::method::{Chunking, TensorJob, TensorSetup, TensorStream};
use super::params::{DENSITY, INT8_MASK, LAMBDA, NORMALIZE, WEIGHT};
use super::stream::{PerModel, Selections};
use crate::error::Result;
use crate::sparsify::{count_ties, keep_above, top_k_cut};
use led_merging_mask::top_k;
use rayon::prelude::*;

/// TIES-Merging.
pub const TIES: Family = Family {
    name: "ties",
    sparsify: &MagnitudeTopK,
    consensus: true,
    default_normalize: true,
    model_params: &[WEIGHT, DENSITY],
    global_params: &[LAMBDA, NORMALIZE, INT8_MASK],
};

/// Keep each task vector's k = ⌊ρ n⌋ largest |δ|, ties at the cut by lowest index.
#[derive(Debug)]
pub(crate) struct MagnitudeTopK;

/// A tensor's exact top-k by magnitude, as one part of it sees it: keep every element with
/// |δ| > `threshold`, and the first `ties` elements of this part with |δ| = `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TopK {
    /// The k-th largest |δ| of the whole tensor.
    threshold: f32,
    /// Elements equal to the threshold kept in this part (in index order).
    ties: usize,
    /// k of the whole tensor.
    k: usize,
}

fn densities(models: &[super::params::Params]) -> impl Iterator<Item = f64> + '_ {
    models.iter().map(|p| p.value(&DENSITY))
}

impl Sparsifier for MagnitudeTopK {
    fn chunking(&self, t: &TensorSetup<'_>) -> Chunking {
        if densities(t.models).all(|d| d >= 1.0) {
            Chunking::Elementwise
        } else if densities(t.models).all(|d| d > 0.0) {
            Chunking::Streamed
        } else {
            Chunking::Whole
        }
    }
    fn stream(&self, t: &TensorSetup<'_>, method: &'static str) -> Result<Box<dyn TensorStream>> {
        let selects = densities(t.models)
            .map(|d| {
                (d < 1.0)
                    .then(|| led_merging_mask::StreamingThreshold::new(t.name, t.numel(), d))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Box::new(Selections::new(
            selects,
            |s: led_merging_mask::StreamingThreshold| {
                let (th, greater) = s.finish_with_greater();
                // k = 0 keeps nothing: an infinite threshold admits no element.
                (th.value.unwrap_or(f32::INFINITY), th.k - greater, th.k)
            },
            |(threshold, budget, k), part, j| {
                let ties = count_ties(part.delta(j), *threshold).min(*budget);
                *budget -= ties;
                TopK {
                    threshold: *threshold,
                    ties,
                    k: *k,
                }
            },
            method,
        )))
    }
    fn apply(
        &self,
        job: &TensorJob<'_>,
        j: usize,
        delta: &mut [f32],
        method: &'static str,
    ) -> Result<Option<String>> {
        let m = &job.models[j];
        let density = m.params.value(&DENSITY);
        let kept = match PerModel::<TopK>::of(job, j) {
            Some(top) => {
                keep_above(delta, top.threshold, top.ties);
                top.k
            }
            None => magnitude_top_k(job.name, delta, density).map_err(|e| e.in_weights(method))?,
        };
        Ok((kept == 0 && !delta.is_empty()).then(|| {
            format!(
                "model {}: density {density} keeps 0 of its elements",
                m.index
            )
        }))
    }
}

// Kernels of this method (docs/merge-operators.md).

/// Keep exactly the k = floor(ρ n) largest |δ| (ties at the k-th value broken by lower flat
/// index), zero the rest, in O(n): the k-th largest radix-selected as when a tensor is merged in
/// parts. Returns k; an error if some |δ| is not finite.
pub(crate) fn magnitude_top_k(
    tensor: &str,
    delta: &mut [f32],
    density: f64,
) -> crate::error::Result<usize> {
    let n = delta.len();
    if density >= 1.0 {
        return Ok(n);
    }
    let k = top_k(density, n);
    if k == 0 {
        delta.iter_mut().for_each(|x| *x = 0.0);
        return Ok(0);
    }
    let mags: Vec<f32> = delta.par_iter().map(|x| x.abs()).collect();
    let (t, ties) = top_k_cut(tensor, &mags, k)?;
    keep_above(delta, t, ties);
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_exactly_k_and_breaks_ties_by_index() {
        let mut d = vec![1.0, -3.0, 2.0, -2.0, 2.0, 0.5];
        assert_eq!(magnitude_top_k("w", &mut d, 0.5).unwrap(), 3);
        // |−3| and two of the three |2|s: the lower indices 2 and 3.
        assert_eq!(d, [0.0, -3.0, 2.0, -2.0, 0.0, 0.0]);
        let mut d = vec![1.0, 2.0, 3.0];
        assert_eq!(magnitude_top_k("w", &mut d, 0.2).unwrap(), 0);
        assert_eq!(d, [0.0; 3]);
        let mut d = vec![1.0, 2.0];
        assert_eq!(magnitude_top_k("w", &mut d, 1.0).unwrap(), 2);
        assert_eq!(d, [1.0, 2.0]);
    }
}
