//! `task_arithmetic`: θ = θ_0 + λ Σ w_i δ_i (÷ Σ w_i with `normalize`).

use super::generalized::{Family, Sparsify, merge};
use super::{INT8_MASK, LAMBDA, MergeMethod, NORMALIZE, ParamSpec, TensorJob, TensorNote, WEIGHT};
use crate::error::Result;

/// Task arithmetic (Ilharco et al. 2023).
#[derive(Debug, Clone, Copy)]
pub struct TaskArithmetic;

impl MergeMethod for TaskArithmetic {
    fn name(&self) -> &'static str {
        "task_arithmetic"
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[WEIGHT]
    }
    fn required_model_params(&self) -> &'static [&'static str] {
        &["weight"]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[LAMBDA, NORMALIZE, INT8_MASK]
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let family = Family {
            name: "task_arithmetic",
            sparsify: Sparsify::None,
            consensus: false,
            default_normalize: false,
        };
        merge(family, job, out)
    }
}
