//! `della` / `della_linear` (Deep et al. 2024): magnitude-rank-based random drop per row, then
//! sign election or a sum.

use super::generalized::{Family, Sparsify};
use super::{DENSITY, EPSILON, INT8_MASK, LAMBDA, NORMALIZE, RESCALE, WEIGHT};

/// DELLA with TIES sign election.
pub const DELLA: Family = Family {
    name: "della",
    sparsify: Sparsify::RankSampling,
    consensus: true,
    default_normalize: true,
    model_params: &[WEIGHT, DENSITY, EPSILON],
    global_params: &[LAMBDA, NORMALIZE, RESCALE, INT8_MASK],
};

/// DELLA summed.
pub const DELLA_LINEAR: Family = Family {
    name: "della_linear",
    consensus: false,
    default_normalize: false,
    ..DELLA
};
