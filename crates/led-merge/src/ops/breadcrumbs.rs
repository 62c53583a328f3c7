//! `breadcrumbs` / `breadcrumbs_ties` (Davari & Belilovsky 2024): drop the smallest and the
//! largest task-vector entries, then sum or elect signs.

use super::generalized::{Family, Sparsify};
use super::{DENSITY, GAMMA, INT8_MASK, LAMBDA, NORMALIZE, WEIGHT};

/// Model Breadcrumbs, summed.
pub const BREADCRUMBS: Family = Family {
    name: "breadcrumbs",
    sparsify: Sparsify::Outliers,
    consensus: false,
    default_normalize: false,
    model_params: &[WEIGHT, DENSITY, GAMMA],
    global_params: &[LAMBDA, NORMALIZE, INT8_MASK],
};

/// Model Breadcrumbs with TIES sign election.
pub const BREADCRUMBS_TIES: Family = Family {
    name: "breadcrumbs_ties",
    consensus: true,
    ..BREADCRUMBS
};
