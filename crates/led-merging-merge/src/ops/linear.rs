//! `linear`: θ = Σ w_i θ_i / Σ w_i (a weighted average; no base needed).

use super::method::{Chunking, MergeMethod, TensorJob, TensorNote, TensorSetup};
use super::params::{NORMALIZE, ParamSpec, WEIGHT};
use crate::error::{Error, Result};

/// Weighted average of the models (Wortsman et al. 2022, model soups).
#[derive(Debug, Clone, Copy)]
pub struct Linear;

/// `linear` divides by the sum of weights unless told not to.
const NORMALIZE_ON: ParamSpec = NORMALIZE.or_flag(true);

impl MergeMethod for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn needs_base(&self) -> bool {
        false
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[WEIGHT]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[NORMALIZE_ON]
    }
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        Chunking::Elementwise
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let weights: Vec<f32> = job
            .models
            .iter()
            .map(|m| job.model_number(m, "weight", "linear").map(|w| w as f32))
            .collect::<Result<_>>()?;
        let total: f32 = weights.iter().sum();
        let normalize = job.global.flag(&NORMALIZE_ON);
        if normalize && total == 0.0 {
            return Err(Error::op(
                job.name,
                "linear",
                "weights sum to 0 with normalize: true",
            ));
        }
        for (j, o) in out.iter_mut().enumerate() {
            let s: f32 = job
                .models
                .iter()
                .zip(&weights)
                .map(|(m, w)| w * m.values[j])
                .sum();
            *o = if normalize { s / total } else { s };
        }
        Ok(Vec::new())
    }
}
