//! `model_stock` (Jang et al. 2024): interpolate between the base and the models' mean by a
//! ratio derived from the angle between task vectors.

use super::method::{Chunking, MergeMethod, TensorJob, TensorNote, TensorSetup, TensorStream};
use super::params::{ParamSpec, boolean};
use super::stream::Sums;
use crate::error::{Error, Result};

/// Model Stock.
#[derive(Debug, Clone, Copy)]
pub struct ModelStock;

const FILTER_WISE: ParamSpec = ParamSpec::new("filter_wise", boolean).or_flag(false);

/// Add the task vectors' squared norms (one per model) and pairwise dot products (i < j, in
/// order) over elements `span` to `acc`, in f64.
fn sums(job: &TensorJob<'_>, base: &[f32], span: std::ops::Range<usize>, acc: &mut Vec<f64>) {
    let n = job.models.len();
    acc.resize(n + n * (n - 1) / 2, 0.0);
    // The usual counts of models with the sums in registers (the same additions, in order).
    match n {
        2 => return sums_of::<2>(job, base, span, acc),
        3 => return sums_of::<3>(job, base, span, acc),
        4 => return sums_of::<4>(job, base, span, acc),
        _ => {}
    }
    let mut delta = vec![0.0f64; n];
    for j in span {
        for (d, m) in delta.iter_mut().zip(&job.models) {
            *d = f64::from(m.values[j] - base[j]);
        }
        let (norms, dots) = acc.split_at_mut(n);
        let mut pair = dots.iter_mut();
        for (a, da) in delta.iter().enumerate() {
            norms[a] += da * da;
            for db in &delta[a + 1..] {
                *pair.next().expect("one sum per pair") += da * db;
            }
        }
    }
}

/// [`sums`] for `N` models.
fn sums_of<const N: usize>(
    job: &TensorJob<'_>,
    base: &[f32],
    span: std::ops::Range<usize>,
    acc: &mut [f64],
) {
    let models: [&[f32]; N] = std::array::from_fn(|a| &job.models[a].values[span.clone()]);
    let base = &base[span];
    let (norms_acc, dots_acc) = acc.split_at_mut(N);
    let mut norms: [f64; N] = std::array::from_fn(|a| norms_acc[a]);
    // dots[a][b] for a < b, in `acc`'s pair order.
    let mut dots = [[0f64; N]; N];
    let pairs = || (0..N).flat_map(|a| (a + 1..N).map(move |b| (a, b)));
    pairs()
        .zip(&*dots_acc)
        .for_each(|((a, b), &v)| dots[a][b] = v);
    for (j, &b0) in base.iter().enumerate() {
        let delta: [f64; N] = std::array::from_fn(|a| f64::from(models[a][j] - b0));
        for a in 0..N {
            norms[a] += delta[a] * delta[a];
            for b in a + 1..N {
                dots[a][b] += delta[a] * delta[b];
            }
        }
    }
    norms_acc.copy_from_slice(&norms);
    pairs()
        .zip(dots_acc)
        .for_each(|((a, b), v)| *v = dots[a][b]);
}

/// The interpolation ratio t = N·cos / (1 + (N − 1)·cos), cos the task vectors' mean pairwise
/// cosine, from [`sums`].
fn ratio(job: &TensorJob<'_>, acc: &[f64]) -> Result<f32> {
    let n = job.models.len();
    let (norms, dots) = acc.split_at(n);
    let mut pair = dots.iter();
    let mut sum = 0.0;
    for a in 0..n {
        for b in a + 1..n {
            let dot = pair.next().expect("one sum per pair");
            sum += (dot / (norms[a].sqrt() * norms[b].sqrt()).max(1e-6)).clamp(-1.0, 1.0);
        }
    }
    let c = sum / (n * (n - 1) / 2) as f64;
    let denom = 1.0 + (n as f64 - 1.0) * c;
    if denom.abs() < 1e-6 {
        return Err(Error::op(
            job.name,
            "model_stock",
            format!("1 + (N − 1)·cos = {denom:e}: the interpolation ratio is undefined"),
        ));
    }
    Ok((n as f64 * c / denom) as f32)
}

impl MergeMethod for ModelStock {
    fn name(&self) -> &'static str {
        "model_stock"
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[FILTER_WISE]
    }
    fn check_model_count(&self, n: usize) -> Result<(), String> {
        if n < 2 {
            Err(format!("needs at least 2 models besides the base, got {n}"))
        } else {
            Ok(())
        }
    }
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        Chunking::StreamedIfLarge
    }
    fn stream(&self, _t: &TensorSetup<'_>) -> Result<Box<dyn TensorStream>> {
        Ok(Box::new(Sums::new(accumulate)))
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let base = job.base("model_stock")?;
        let n = job.models.len();
        if n < 2 {
            return Err(Error::op(
                job.name,
                "model_stock",
                format!("needs at least 2 models holding this tensor, got {n}"),
            ));
        }
        let row = if filter_wise(job) {
            job.shape.last().copied().unwrap_or(base.len()).max(1)
        } else {
            base.len().max(1)
        };
        let whole = match job.streamed::<Vec<f64>>() {
            Some(s) if !filter_wise(job) => Some(ratio(job, s)?),
            _ => None,
        };
        let mut acc = Vec::new();
        for (r, out_row) in out.chunks_mut(row).enumerate() {
            let span = r * row..r * row + out_row.len();
            let t = match whole {
                Some(t) => t,
                None => {
                    acc.clear();
                    sums(job, base, span.clone(), &mut acc);
                    ratio(job, &acc)?
                }
            };
            for (k, o) in out_row.iter_mut().enumerate() {
                let j = span.start + k;
                let mean = job.models.iter().map(|m| m.values[j]).sum::<f32>() / n as f32;
                *o = t * mean + (1.0 - t) * base[j];
            }
        }
        Ok(Vec::new())
    }
}

/// Whether the ratio is taken per row of the last dimension.
fn filter_wise(job: &TensorJob<'_>) -> bool {
    job.global.flag(&FILTER_WISE) && job.shape.len() > 1
}

/// The sums of [`sums`] over the whole job (none filter-wise: rows are whole in every part).
fn accumulate(job: &TensorJob<'_>, acc: &mut Vec<f64>) -> Result<()> {
    let base = job.base("model_stock")?;
    // Filter-wise ratios are per row, and rows are whole in every part.
    if job.models.len() >= 2 && !filter_wise(job) {
        sums(job, base, 0..base.len(), acc);
    }
    Ok(())
}
