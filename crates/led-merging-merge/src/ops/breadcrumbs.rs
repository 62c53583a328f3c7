//! `breadcrumbs` / `breadcrumbs_ties` (Davari & Belilovsky 2024): drop the smallest and the
//! largest task-vector entries, then sum or elect signs. A tensor merged in parts gets each
//! model's two cuts of |δ| ranks from a stream over its parts, and, part by part in index
//! order, its share of the ties at each cut.

use super::generalized::{Family, Sparsifier};
use super::method::{TensorJob, TensorSetup, TensorStream};
use super::params::{DENSITY, GAMMA, INT8_MASK, LAMBDA, NORMALIZE, WEIGHT};
use super::stream::{PerModel, Selections};
use crate::error::Result;
use crate::sparsify::{Passes, count_ties, select_in_memory};
use led_merging_mask::top_k;

/// Model Breadcrumbs, summed.
pub const BREADCRUMBS: Family = Family {
    name: "breadcrumbs",
    sparsify: &Outliers,
    consensus: false,
    default_normalize: false,
    model_params: &[WEIGHT, DENSITY, GAMMA],
    global_params: &[LAMBDA, NORMALIZE, INT8_MASK],
};

/// Model Breadcrumbs with TIES sign election.
pub const BREADCRUMBS_TIES: Family = Family {
    name: "breadcrumbs_ties",
    consensus: true,
    ..BREADCRUMBS
};

/// Drop both magnitude tails of each task vector.
#[derive(Debug)]
pub(crate) struct Outliers;

fn cuts(p: &super::params::Params) -> (f64, f64) {
    (p.value(&DENSITY), p.value(&GAMMA))
}

impl Sparsifier for Outliers {
    fn chunking(&self, _t: &TensorSetup<'_>) -> super::method::Chunking {
        super::method::Chunking::Streamed
    }
    fn stream(&self, t: &TensorSetup<'_>, method: &'static str) -> Result<Box<dyn TensorStream>> {
        let selects = t
            .models
            .iter()
            .map(|p| {
                let (density, gamma) = cuts(p);
                BandSelect::new(t.name, t.numel(), density, gamma).map(Some)
            })
            .collect::<Result<_>>()?;
        Ok(Box::new(Selections::new(
            selects,
            BandSelect::finish,
            |budget: &mut BandBudget, part, j| budget.part(part.delta(j)),
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
        match PerModel::<Band>::of(job, j) {
            Some(band) => keep_band(delta, &band),
            None => {
                let (density, gamma) = cuts(job.models[j].params);
                magnitude_band(job.name, delta, density, gamma).map_err(|e| e.in_weights(method))?
            }
        }
        Ok(None)
    }
}

// Kernels of this method (docs/merge-operators.md).

/// Breadcrumbs' cuts for `n` elements: (n_bot, n_top) with n_top = floor(γ n), n_bot = n −
/// floor(ρ n) − n_top, a negative n_bot moved into n_top.
fn band_cuts(n: usize, density: f64, gamma: f64) -> (usize, usize) {
    let target = top_k(density, n);
    let n_top = top_k(gamma, n);
    match n.checked_sub(target + n_top) {
        Some(n_bot) => (n_bot, n_top),
        None => (0, n - target),
    }
}

/// Breadcrumbs: keep ranks [n_bot, n − n_top) of |δ| ascending, ties by index ([`band_cuts`]),
/// in O(n): both cuts radix-selected ([`BandSelect`]), as when a tensor is merged in parts.
pub(crate) fn magnitude_band(
    tensor: &str,
    delta: &mut [f32],
    density: f64,
    gamma: f64,
) -> crate::error::Result<()> {
    if delta.is_empty() {
        return Ok(());
    }
    let mags: Vec<f32> = delta.iter().map(|x| x.abs()).collect();
    let select = select_in_memory(BandSelect::new(tensor, delta.len(), density, gamma)?, &mags)?;
    let band = select.finish().part(mags.iter().copied());
    keep_band(delta, &band);
    Ok(())
}

/// Breadcrumbs by sorting: rank |δ| ascending (ties by index); keep ranks [n_bot, n − n_top)
/// ([`band_cuts`]). The reference [`magnitude_band`] is tested against.
#[cfg(test)]
pub(crate) fn magnitude_outliers(delta: &mut [f32], density: f64, gamma: f64) {
    let n = delta.len();
    let (n_bot, n_top) = band_cuts(n, density, gamma);
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by(|&a, &b| {
        delta[a as usize]
            .abs()
            .total_cmp(&delta[b as usize].abs())
            .then(a.cmp(&b))
    });
    let mut keep = vec![false; n];
    for &i in &order[n_bot..n - n_top] {
        keep[i as usize] = true;
    }
    delta.iter_mut().zip(keep).for_each(|(x, k)| {
        if !k {
            *x = 0.0;
        }
    });
}

/// Breadcrumbs' kept band of magnitude ranks over a whole tensor, as one part of it sees it:
/// an element is kept when it passes both cuts. Ties at a cut are ordered by index, as the
/// whole path orders them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Band {
    /// `(v, d)`: drop |δ| < v, and the first `d` elements of this part with |δ| = v.
    pub lower: Option<(f32, usize)>,
    /// `(v, c)`: drop |δ| > v, and every element of this part with |δ| = v after the first `c`.
    pub upper: Option<(f32, usize)>,
}

/// Zero the elements of one part outside its [`Band`].
pub(crate) fn keep_band(delta: &mut [f32], band: &Band) {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let (mut at_lower, mut at_upper) = (0, 0);
    for x in delta.iter_mut() {
        let a = x.abs();
        let above_lower = match band.lower {
            None => true,
            Some((v, drop)) => match a.total_cmp(&v) {
                Greater => true,
                Equal => {
                    at_lower += 1;
                    at_lower > drop
                }
                Less => false,
            },
        };
        let below_upper = match band.upper {
            None => true,
            Some((v, keep)) => match a.total_cmp(&v) {
                Less => true,
                Equal => {
                    at_upper += 1;
                    at_upper <= keep
                }
                Greater => false,
            },
        };
        if !(above_lower && below_upper) {
            *x = 0.0;
        }
    }
}

/// Breadcrumbs' band over a whole tensor's |δ|, selected in streaming passes over its parts:
/// the value at each cut and how many elements equal to it fall outside.
pub(crate) struct BandSelect {
    len: usize,
    /// The n − n_bot largest (the lower cut's value is the smallest kept), if n_bot > 0.
    lower: Option<(led_merging_mask::StreamingThreshold, usize)>,
    /// The n_top largest (the upper cut's value is the smallest dropped), if n_top > 0.
    upper: Option<(led_merging_mask::StreamingThreshold, usize)>,
}

impl Passes for BandSelect {
    fn needs_pass(&self) -> bool {
        [&self.lower, &self.upper]
            .into_iter()
            .flatten()
            .any(|(s, _)| s.needs_pass())
    }
    fn feed(&mut self, mags: &[f32]) -> crate::error::Result<()> {
        for s in self.selects() {
            s.feed(mags)?;
        }
        Ok(())
    }
    fn end_pass(&mut self) -> crate::error::Result<()> {
        for s in self.selects() {
            s.end_pass()?;
        }
        Ok(())
    }
}

impl BandSelect {
    /// Start selecting the band of `len` magnitudes of tensor `tensor`.
    pub(crate) fn new(
        tensor: &str,
        len: usize,
        density: f64,
        gamma: f64,
    ) -> crate::error::Result<Self> {
        let (n_bot, n_top) = band_cuts(len, density, gamma);
        let select = |k: usize| led_merging_mask::StreamingThreshold::with_k(tensor, len, k);
        Ok(BandSelect {
            len,
            lower: (n_bot > 0)
                .then(|| select(len - n_bot).map(|s| (s, len - n_bot)))
                .transpose()?,
            upper: (n_top > 0)
                .then(|| select(n_top).map(|s| (s, n_top)))
                .transpose()?,
        })
    }

    fn selects(&mut self) -> impl Iterator<Item = &mut led_merging_mask::StreamingThreshold> {
        [&mut self.lower, &mut self.upper]
            .into_iter()
            .flatten()
            .map(|(s, _)| s)
            .filter(|s| led_merging_mask::StreamingThreshold::needs_pass(s))
    }

    /// The band, to be handed out part by part in index order.
    pub(crate) fn finish(self) -> BandBudget {
        let len = self.len;
        // (value, elements equal to it, those among them ranked above the cut: k − greater).
        let cut = |(s, k): (led_merging_mask::StreamingThreshold, usize)| {
            let (th, greater) = s.finish_with_greater();
            let v = th.value.unwrap_or(f32::INFINITY);
            // Magnitudes are ≥ 0: at v = 0 every element not above it equals it.
            let equal = if v > 0.0 {
                th.members - greater
            } else {
                len - greater
            };
            (v, equal, k - greater)
        };
        BandBudget {
            // The lowest-index ties at the lower cut fall below it.
            lower: self
                .lower
                .map(cut)
                .map(|(v, equal, above)| (v, equal - above)),
            // The lowest-index ties at the upper cut stay below it.
            upper: self
                .upper
                .map(cut)
                .map(|(v, equal, above)| (v, equal - above)),
        }
    }
}

/// A selected [`BandSelect`]: each cut's value and how many of the ties at it are still to be
/// dropped (lower) or kept (upper), handed out part by part.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BandBudget {
    lower: Option<(f32, usize)>,
    upper: Option<(f32, usize)>,
}

impl BandBudget {
    /// The band of the next part, whose |δ| are `mags` (parts in index order).
    pub(crate) fn part(&mut self, mags: impl Iterator<Item = f32> + Clone) -> Band {
        let share = |cut: &mut Option<(f32, usize)>| {
            cut.as_mut().map(|(v, left)| {
                let here = count_ties(mags.clone(), *v).min(*left);
                *left -= here;
                (*v, here)
            })
        };
        Band {
            lower: share(&mut self.lower),
            upper: share(&mut self.upper),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breadcrumbs_drops_both_tails() {
        // By sorting and by selecting, the same.
        let both = |d: Vec<f32>, density: f64, gamma: f64| {
            let mut sorted = d.clone();
            magnitude_outliers(&mut sorted, density, gamma);
            let mut selected = d;
            magnitude_band("w", &mut selected, density, gamma).unwrap();
            assert_eq!(sorted, selected);
            sorted
        };
        // n = 10, ρ = 0.5, γ = 0.1: n_top = 1, n_bot = 10 − 5 − 1 = 4: keep ranks 4..9.
        let d = both((1..=10).map(|x| x as f32).collect(), 0.5, 0.1);
        assert_eq!(d, [0., 0., 0., 0., 5., 6., 7., 8., 9., 0.]);
        // γ = 0 keeps the top (mergekit zeroes everything here).
        let d = both((1..=10).map(|x| -(x as f32)).collect(), 0.3, 0.0);
        assert_eq!(d, [0., 0., 0., 0., 0., 0., 0., -8., -9., -10.]);
        // ρ + γ > 1: n_bot would be −1, moved into n_top.
        let d = both((1..=10).map(|x| x as f32).collect(), 0.95, 0.2);
        // target 9, n_top 2 → n_bot −1 → n_top 1, n_bot 0: keep ranks 0..9.
        assert_eq!(d, [1., 2., 3., 4., 5., 6., 7., 8., 9., 0.]);
        // ρ = 0: nothing kept; an empty tensor stays empty.
        assert_eq!(both(vec![3., -1., 2.], 0.0, 0.0), [0.0; 3]);
        assert!(both(Vec::new(), 0.5, 0.1).is_empty());
        // NaN: an error naming the tensor, not a silent result.
        let e = magnitude_band("w", &mut [1.0, f32::NAN], 0.5, 0.0).unwrap_err();
        assert!(e.to_string().contains("\"w\""), "{e}");
    }

    /// Breadcrumbs in parts: both cuts selected over the parts, ties handed out part by part.
    fn band_in_parts(delta: &[f32], part: usize, density: f64, gamma: f64) -> Vec<f32> {
        let mut select = BandSelect::new("w", delta.len(), density, gamma).unwrap();
        while select.needs_pass() {
            for p in delta.chunks(part) {
                let mags: Vec<f32> = p.iter().map(|x| x.abs()).collect();
                select.feed(&mags).unwrap();
            }
            select.end_pass().unwrap();
        }
        let mut budget = select.finish();
        let mut out = Vec::new();
        for p in delta.chunks(part) {
            let band = budget.part(p.iter().copied());
            let mut p = p.to_vec();
            keep_band(&mut p, &band);
            out.extend(p);
        }
        out
    }

    #[test]
    fn breadcrumbs_in_parts_keeps_what_the_whole_tensor_keeps() {
        // Ties at both cuts, split across parts: n = 12, ρ = 0.5, γ = 0.25: n_top = 3, n_bot
        // = 3: keep ascending ranks 3..9. |δ| sorted: 1 1 1 1 | 2 2 2 2 2 2 | 3 3 (by index).
        let d = [1., -2., 1., 2., 3., -1., 2., 2., 1., 3., 2., -2.];
        let mut whole = d.to_vec();
        magnitude_outliers(&mut whole, 0.5, 0.25);
        // Ranks 0..3 are the 1s at 0, 2, 5; rank 3 is the 1 at 8 (kept); ranks 4..9 the 2s at
        // 1, 3, 6, 7, 10 (kept), and the 2 at 11 with rank 9 is dropped, as are both 3s.
        assert_eq!(whole, [0., -2., 0., 2., 0., 0., 2., 2., 1., 0., 2., 0.]);
        for part in 1..=d.len() {
            assert_eq!(band_in_parts(&d, part, 0.5, 0.25), whole, "parts of {part}");
        }
    }

    proptest::proptest! {
        #[test]
        fn breadcrumbs_in_parts_equals_whole(
            d in proptest::collection::vec(-4i8..=4, 1..200),
            part in 1usize..50,
            density in 0.0f64..=1.0,
            gamma in 0.0f64..=0.5,
        ) {
            // Few distinct magnitudes: many ties at every cut, zeros included.
            let d: Vec<f32> = d.iter().map(|&x| f32::from(x) * 0.5).collect();
            let mut whole = d.clone();
            magnitude_outliers(&mut whole, density, gamma);
            let parts = band_in_parts(&d, part, density, gamma);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&parts), bits(&whole));
            let mut selected = d.clone();
            magnitude_band("w", &mut selected, density, gamma).unwrap();
            proptest::prop_assert_eq!(bits(&selected), bits(&whole));
        }
    }
}
