//! `task_arithmetic` (Ilharco et al. 2023): θ = θ_0 + λ Σ w_i δ_i (÷ Σ w_i with `normalize`).

use super::generalized::{Family, KeepAll};
use super::params::{INT8_MASK, LAMBDA, NORMALIZE, WEIGHT};

/// Task arithmetic.
pub const TASK_ARITHMETIC: Family = Family {
    name: "task_arithmetic",
    sparsify: &KeepAll,
    consensus: false,
    default_normalize: false,
    model_params: &[WEIGHT],
    global_params: &[LAMBDA, NORMALIZE, INT8_MASK],
};
