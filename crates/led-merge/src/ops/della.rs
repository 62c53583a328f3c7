//! `della` / `della_linear`: magnitude-rank-based random drop per row (Deep et al. 2024), then
//! sign election or a sum.

use super::generalized::{Family, Sparsify, merge};
use super::{
    DENSITY, EPSILON, INT8_MASK, LAMBDA, MergeMethod, NORMALIZE, ParamSpec, RESCALE, TensorJob,
    TensorNote, WEIGHT,
};
use crate::error::Result;

const MODEL: &[ParamSpec] = &[WEIGHT, DENSITY, EPSILON];
const GLOBAL: &[ParamSpec] = &[LAMBDA, NORMALIZE, RESCALE, INT8_MASK];

/// DELLA with TIES sign election.
#[derive(Debug, Clone, Copy)]
pub struct Della;

impl MergeMethod for Della {
    fn name(&self) -> &'static str {
        "della"
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        MODEL
    }
    fn required_model_params(&self) -> &'static [&'static str] {
        &["weight"]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        GLOBAL
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let family = Family {
            name: "della",
            sparsify: Sparsify::RankSampling,
            consensus: true,
            default_normalize: true,
        };
        merge(family, job, out)
    }
}

/// DELLA summed.
#[derive(Debug, Clone, Copy)]
pub struct DellaLinear;

impl MergeMethod for DellaLinear {
    fn name(&self) -> &'static str {
        "della_linear"
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        MODEL
    }
    fn required_model_params(&self) -> &'static [&'static str] {
        &["weight"]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        GLOBAL
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let family = Family {
            name: "della_linear",
            sparsify: Sparsify::RankSampling,
            consensus: false,
            default_normalize: false,
        };
        merge(family, job, out)
    }
}
