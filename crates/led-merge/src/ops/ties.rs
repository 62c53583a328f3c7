//! `ties` (Yadav et al. 2023): top-k by magnitude per task vector, sign election, disjoint mean.

use super::generalized::{Family, Sparsify};
use super::{DENSITY, INT8_MASK, LAMBDA, NORMALIZE, WEIGHT};

/// TIES-Merging.
pub const TIES: Family = Family {
    name: "ties",
    sparsify: Sparsify::Magnitude,
    consensus: true,
    default_normalize: true,
    model_params: &[WEIGHT, DENSITY],
    global_params: &[LAMBDA, NORMALIZE, INT8_MASK],
};
