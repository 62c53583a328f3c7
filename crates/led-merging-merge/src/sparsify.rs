//! What several sparsifying methods share (docs/merge-operators.md): the top-k cut and what it
//! keeps, DARE-style rescaling choices, and [`Passes`], the streaming selection over a
//! tensor's parts. A kernel used by one method lives in that method's file under `ops/`.

/// The k-th largest of `values` (k ≥ 1) and how many elements equal to it belong to the top k:
/// what [`keep_above`] keeps, ties by lowest index.
pub(crate) fn top_k_cut(
    tensor: &str,
    values: &[f32],
    k: usize,
) -> crate::error::Result<(f32, usize)> {
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

/// A selection fed a tensor's values part by part, in index order, pass after pass.
pub(crate) trait Passes {
    /// Whether another pass over every part is needed.
    fn needs_pass(&self) -> bool;
    /// Feed the next part of the current pass.
    fn feed(&mut self, part: &[f32]) -> crate::error::Result<()>;
    /// End the current pass.
    fn end_pass(&mut self) -> crate::error::Result<()>;
}

/// Feed a streaming selection every part of a tensor, read as `read(rows)` and in index order,
/// pass after pass until it has its answer; the selection is returned to be finished.
pub(crate) fn select_over_parts<S: Passes>(
    mut select: S,
    parts: &[std::ops::Range<usize>],
    read: impl Fn(std::ops::Range<usize>) -> crate::error::Result<Vec<f32>>,
) -> crate::error::Result<S> {
    while select.needs_pass() {
        for rows in parts {
            select.feed(&read(rows.clone())?)?;
        }
        select.end_pass()?;
    }
    Ok(select)
}

/// [`select_over_parts`] for values held whole: every pass over `values` at once.
pub(crate) fn select_in_memory<S: Passes>(
    mut select: S,
    values: &[f32],
) -> crate::error::Result<S> {
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
    fn feed(&mut self, part: &[f32]) -> crate::error::Result<()> {
        Ok(led_merging_mask::StreamingThreshold::feed(self, part)?)
    }
    fn end_pass(&mut self) -> crate::error::Result<()> {
        Ok(led_merging_mask::StreamingThreshold::end_pass(self)?)
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
