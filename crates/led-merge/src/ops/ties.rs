//! `ties`: top-k by magnitude per task vector, sign election, disjoint mean (Yadav et al. 2023).

use super::generalized::{Family, Sparsify, merge};
use super::{
    DENSITY, INT8_MASK, LAMBDA, MergeMethod, NORMALIZE, ParamSpec, TensorJob, TensorNote, WEIGHT,
};
use crate::error::Result;

/// TIES-Merging.
#[derive(Debug, Clone, Copy)]
pub struct Ties;

impl MergeMethod for Ties {
    fn name(&self) -> &'static str {
        "ties"
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[WEIGHT, DENSITY]
    }
    fn required_model_params(&self) -> &'static [&'static str] {
        &["weight"]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[LAMBDA, NORMALIZE, INT8_MASK]
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let family = Family {
            name: "ties",
            sparsify: Sparsify::Magnitude,
            consensus: true,
            default_normalize: true,
        };
        merge(family, job, out)
    }
}
