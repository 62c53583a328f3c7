//! mergekit's "generalized task arithmetic" family: sparsify each task vector, weight it,
//! optionally elect signs (TIES), sum, normalise, scale by λ, add to the base. The methods of
//! this family are thin declarations over [`merge`]; DARE's two variants live here too.

use super::{
    Chunking, DENSITY, INT8_MASK, LAMBDA, MergeMethod, NORMALIZE, ParamSpec, Params, RESCALE,
    TensorJob, TensorNote, WEIGHT,
};
use crate::config::Scalar;
use crate::error::Result;
use crate::rng::StreamKey;
use crate::sparsify::{
    Rescale, drop_part, keep_above, keep_band, magnitude_band, magnitude_top_k, random_drop,
    rank_sample_rows, rank_sampling, scale_inverse_density, sign_consensus,
};

/// Breadcrumbs' `gamma` when not given (mergekit's default).
const GAMMA_DEFAULT: f64 = 0.01;

/// How each task vector is sparsified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sparsify {
    /// Keep everything.
    None,
    /// TIES: top-k by magnitude.
    Magnitude,
    /// DARE: Bernoulli drop.
    Random,
    /// Breadcrumbs: drop both magnitude tails.
    Outliers,
    /// DELLA: rank-based Bernoulli drop per row.
    RankSampling,
}

/// One member of the family: everything that distinguishes it is data.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub(crate) name: &'static str,
    pub(crate) sparsify: Sparsify,
    pub(crate) consensus: bool,
    pub(crate) default_normalize: bool,
    pub(crate) model_params: &'static [ParamSpec],
    pub(crate) global_params: &'static [ParamSpec],
}

/// DELLA's default `epsilon`.
const EPSILON_DEFAULT: f64 = 0.15;

/// DELLA's keep probabilities (density ± epsilon) must lie inside (0, 1).
fn rank_sampling_bounds(model: usize, density: f64, eps: f64) -> Result<(), String> {
    if density - eps > 0.0 && density + eps < 1.0 {
        Ok(())
    } else {
        Err(format!(
            "model {model}: needs 0 < density − epsilon and density + epsilon < 1 (density {density}, epsilon {eps})"
        ))
    }
}

impl MergeMethod for Family {
    fn name(&self) -> &'static str {
        self.name
    }
    fn check_tensor(&self, _global: &Params, models: &[Params]) -> Result<(), String> {
        if !matches!(self.sparsify, Sparsify::RankSampling) {
            return Ok(());
        }
        for (k, p) in models.iter().enumerate() {
            rank_sampling_bounds(
                k,
                p.number_or("density", 1.0),
                p.number_or("epsilon", EPSILON_DEFAULT),
            )?;
        }
        Ok(())
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        self.model_params
    }
    fn required_model_params(&self) -> &'static [&'static str] {
        &["weight"]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        self.global_params
    }
    fn chunking(&self, global: &Params, models: &[Params]) -> Chunking {
        // Sign election and the weighted sum are per element; sparsification is not, unless
        // TIES keeps everything.
        let densities: Vec<f64> = models.iter().map(|p| p.number_or("density", 1.0)).collect();
        match self.sparsify {
            Sparsify::None => Chunking::Elementwise,
            Sparsify::Magnitude if densities.iter().all(|&d| d >= 1.0) => Chunking::Elementwise,
            // TIES: an exact top-k per model, streamed by the engine.
            Sparsify::Magnitude if densities.iter().all(|&d| d > 0.0) => {
                Chunking::MagnitudeTopK(densities)
            }
            // DARE: random streams keyed by position, an L1 factor streamed by the engine.
            Sparsify::Random => Chunking::RandomDrop {
                densities,
                l1: rescale_from(global) == Rescale::L1,
                rank_epsilons: None,
            },
            // DELLA: per-row streams, rows whole in every part.
            Sparsify::RankSampling => Chunking::RandomDrop {
                densities,
                l1: rescale_from(global) == Rescale::L1,
                rank_epsilons: Some(
                    models
                        .iter()
                        .map(|p| p.number_or("epsilon", 0.15))
                        .collect(),
                ),
            },
            // Breadcrumbs: both cuts of each model's magnitude ranks, streamed by the engine.
            Sparsify::Outliers => Chunking::MagnitudeBand(
                models
                    .iter()
                    .map(|p| {
                        (
                            p.number_or("density", 1.0),
                            p.number_or("gamma", GAMMA_DEFAULT),
                        )
                    })
                    .collect(),
            ),
            Sparsify::Magnitude => Chunking::Whole,
        }
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        merge(*self, job, out)
    }
}

fn rescale_of(job: &TensorJob<'_>) -> Rescale {
    rescale_from(job.global)
}

fn rescale_from(global: &Params) -> Rescale {
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
    let row_len = job.shape.last().copied().unwrap_or(1);
    for m in &job.models {
        let weight = job.model_number(m, "weight", family.name)? as f32;
        let density = m.params.number_or("density", 1.0);
        let mut delta: Vec<f32> = m.values.iter().zip(base).map(|(x, b)| x - b).collect();
        let key = StreamKey {
            seed: job.seed,
            tensor: job.name,
            model: m.index,
        };
        match family.sparsify {
            Sparsify::None => {}
            Sparsify::Magnitude => {
                let kept = match m.top_k {
                    Some(top) => {
                        keep_above(&mut delta, top.threshold, top.ties);
                        top.k
                    }
                    None => magnitude_top_k(&mut delta, density),
                };
                if kept == 0 && !delta.is_empty() {
                    notes.push(TensorNote::Warning(format!(
                        "model {}: density {density} keeps 0 of its elements",
                        m.index,
                    )));
                }
            }
            Sparsify::Random if density < 1.0 => match (rescale_of(job), m.l1_scale) {
                (Rescale::L1, None) => random_drop(&mut delta, density, Rescale::L1, key),
                // Also a part of a tensor: the drop at this position, then the whole tensor's
                // L1 factor (from the engine) or 1/ρ.
                (rescale, l1_scale) => {
                    drop_part(&mut delta, job.offset, density, key);
                    match rescale {
                        Rescale::L1 => {
                            let s = l1_scale.unwrap_or(1.0);
                            delta.iter_mut().for_each(|x| *x *= s);
                        }
                        Rescale::InverseDensity => scale_inverse_density(&mut delta, density),
                        Rescale::None => {}
                    }
                }
            },
            Sparsify::Random => {}
            Sparsify::Outliers => match m.band {
                Some(band) => keep_band(&mut delta, &band),
                None => magnitude_band(
                    job.name,
                    &mut delta,
                    density,
                    m.params.number_or("gamma", GAMMA_DEFAULT),
                )
                .map_err(|e| e.in_weights(family.name))?,
            },
            Sparsify::RankSampling => {
                let eps = m.params.number_or("epsilon", EPSILON_DEFAULT);
                if let Err(why) = rank_sampling_bounds(m.index, density, eps) {
                    return Err(crate::Error::op(job.name, family.name, why));
                }
                // A 1-D tensor is one row.
                let row = if job.shape.len() <= 1 {
                    delta.len()
                } else {
                    row_len
                };
                match (m.l1_scale, job.offset) {
                    (None, 0) => rank_sampling(&mut delta, row, density, eps, rescale_of(job), key),
                    // A part of a tensor: its rows' drops, then the whole tensor's L1 factor
                    // when the engine streamed one.
                    (l1_scale, offset) => {
                        rank_sample_rows(&mut delta, row, offset / row.max(1), density, eps, key);
                        if let Some(s) = l1_scale {
                            delta.iter_mut().for_each(|x| *x *= s);
                        }
                    }
                }
            }
        }
        delta.iter_mut().for_each(|x| *x *= weight);
        deltas.push(delta);
        weights.push(weight);
    }
    let normalize = job.global.bool_or("normalize", family.default_normalize);
    let lambda = job.global.number_or("lambda", 1.0) as f32;
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
        for (j, (o, &b)) in out.iter_mut().zip(base).enumerate() {
            let s: f32 = deltas.iter().map(|d| d[j]).sum();
            let mixed = if normalize { s / divisor } else { s };
            *o = b + lambda * mixed;
        }
    }
    Ok(notes)
}

const DARE_MODEL: &[ParamSpec] = &[WEIGHT, DENSITY];
const DARE_GLOBAL: &[ParamSpec] = &[LAMBDA, NORMALIZE, RESCALE, INT8_MASK];

/// `dare_linear` (Yu et al. 2024): random drop with rescale, then a weighted sum.
pub const DARE_LINEAR: Family = Family {
    name: "dare_linear",
    sparsify: Sparsify::Random,
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
