//! Sparsification rules shared by the methods (docs/merge-operators.md), each zeroing the
//! dropped elements of a task vector in place.

use rand::RngExt;
use rayon::prelude::*;

use crate::rng::{BLOCK, StreamKey};
use led_merging_mask::top_k;

/// Keep exactly the k = floor(ρ n) largest |δ| (ties at the k-th value broken by lower flat
/// index), zero the rest, in O(n): the k-th largest radix-selected as when a tensor is merged in
/// parts. Returns k; an error if some |δ| is not finite.
pub(crate) fn magnitude_top_k(
    tensor: &str,
    delta: &mut [f32],
    density: f64,
) -> crate::Result<usize> {
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

/// The k-th largest of `values` (k ≥ 1) and how many elements equal to it belong to the top k:
/// what [`keep_above`] keeps, ties by lowest index.
pub(crate) fn top_k_cut(tensor: &str, values: &[f32], k: usize) -> crate::Result<(f32, usize)> {
    let select = led_merging_mask::StreamingThreshold::with_k(tensor, values.len(), k)?;
    let (th, greater) = select_in_memory(select, values)?.finish_with_greater();
    Ok((th.value.unwrap_or(f32::INFINITY), k - greater))
}

/// Keep the elements with |δ| > `t` and the first `ties` with |δ| = `t`; zero the rest.
pub(crate) fn keep_above(delta: &mut [f32], t: f32, mut ties: usize) {
    // |δ| and t are finite and non-negative (or t = +∞), where `<` and `==` are the total order:
    // first every element below t zeroed (a select, not a conditional store, so that the loop
    // vectorises), then the ties.
    delta
        .iter_mut()
        .for_each(|x| *x = if x.abs() < t { 0.0 } else { *x });
    // The ties beyond the budget, from the element where it runs out (found a block at a time).
    const BLOCK: usize = 4096;
    let equal = |x: &f32| x.abs() == t;
    let mut cut = delta.len();
    for (b, block) in delta.chunks(BLOCK).enumerate() {
        let here = block.iter().filter(|x| equal(x)).count();
        if here > ties {
            let within = block.iter().enumerate().filter(|(_, x)| equal(x)).nth(ties);
            let within = within.map_or(block.len(), |(i, _)| i);
            cut = b * BLOCK + within;
            break;
        }
        ties -= here;
    }
    delta[cut..]
        .iter_mut()
        .for_each(|x| *x = if equal(x) { 0.0 } else { *x });
}

/// How many elements have |δ| = `t` (the ties a part holds).
pub(crate) fn count_ties(delta: impl Iterator<Item = f32>, t: f32) -> usize {
    delta.filter(|x| x.abs().total_cmp(&t).is_eq()).count()
}

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
) -> crate::Result<()> {
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

/// A selection fed a tensor's values part by part, in index order, pass after pass.
pub(crate) trait Passes {
    /// Whether another pass over every part is needed.
    fn needs_pass(&self) -> bool;
    /// Feed the next part of the current pass.
    fn feed(&mut self, part: &[f32]) -> crate::Result<()>;
    /// End the current pass.
    fn end_pass(&mut self) -> crate::Result<()>;
}

/// Feed a streaming selection every part of a tensor, read as `read(rows)` and in index order,
/// pass after pass until it has its answer; the selection is returned to be finished.
pub(crate) fn select_over_parts<S: Passes>(
    mut select: S,
    parts: &[std::ops::Range<usize>],
    read: impl Fn(std::ops::Range<usize>) -> crate::Result<Vec<f32>>,
) -> crate::Result<S> {
    while select.needs_pass() {
        for rows in parts {
            select.feed(&read(rows.clone())?)?;
        }
        select.end_pass()?;
    }
    Ok(select)
}

/// [`select_over_parts`] for values held whole: every pass over `values` at once.
pub(crate) fn select_in_memory<S: Passes>(mut select: S, values: &[f32]) -> crate::Result<S> {
    while select.needs_pass() {
        select.feed(values)?;
        select.end_pass()?;
    }
    Ok(select)
}

impl Passes for led_merging_mask::StreamingThreshold {
    fn needs_pass(&self) -> bool {
        led_merging_mask::StreamingThreshold::needs_pass(self)
    }
    fn feed(&mut self, part: &[f32]) -> crate::Result<()> {
        Ok(led_merging_mask::StreamingThreshold::feed(self, part)?)
    }
    fn end_pass(&mut self) -> crate::Result<()> {
        Ok(led_merging_mask::StreamingThreshold::end_pass(self)?)
    }
}

impl Passes for BandSelect {
    fn needs_pass(&self) -> bool {
        [&self.lower, &self.upper]
            .into_iter()
            .flatten()
            .any(|(s, _)| s.needs_pass())
    }
    fn feed(&mut self, mags: &[f32]) -> crate::Result<()> {
        for s in self.selects() {
            s.feed(mags)?;
        }
        Ok(())
    }
    fn end_pass(&mut self) -> crate::Result<()> {
        for s in self.selects() {
            s.end_pass()?;
        }
        Ok(())
    }
}

impl BandSelect {
    /// Start selecting the band of `len` magnitudes of tensor `tensor`.
    pub(crate) fn new(tensor: &str, len: usize, density: f64, gamma: f64) -> crate::Result<Self> {
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

/// How a randomly sparsified tensor is rescaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rescale {
    /// No rescale.
    None,
    /// Multiply so the kept tensor's L1 norm equals the original's (mergekit's rule).
    L1,
    /// Multiply by 1/ρ (the DARE paper's rule).
    InverseDensity,
}

/// Multiply `kept` so its L1 norm equals `original_l1`, unless either norm is below 1e-7.
fn rescale_l1(kept: &mut [f32], original_l1: f64) {
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
