//! `breadcrumbs` / `breadcrumbs_ties`: drop the smallest and the largest task-vector entries
//! (Davari & Belilovsky 2024), then sum or elect signs.

use super::generalized::{Family, Sparsify, merge};
use super::{
    DENSITY, GAMMA, INT8_MASK, LAMBDA, MergeMethod, NORMALIZE, ParamSpec, TensorJob, TensorNote,
    WEIGHT,
};
use crate::error::Result;

const MODEL: &[ParamSpec] = &[WEIGHT, DENSITY, GAMMA];
const GLOBAL: &[ParamSpec] = &[LAMBDA, NORMALIZE, INT8_MASK];

/// Model Breadcrumbs, summed.
#[derive(Debug, Clone, Copy)]
pub struct Breadcrumbs;

impl MergeMethod for Breadcrumbs {
    fn name(&self) -> &'static str {
        "breadcrumbs"
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
            name: "breadcrumbs",
            sparsify: Sparsify::Outliers,
            consensus: false,
            default_normalize: false,
        };
        merge(family, job, out)
    }
}

/// Model Breadcrumbs with TIES sign election.
#[derive(Debug, Clone, Copy)]
pub struct BreadcrumbsTies;

impl MergeMethod for BreadcrumbsTies {
    fn name(&self) -> &'static str {
        "breadcrumbs_ties"
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
            name: "breadcrumbs_ties",
            sparsify: Sparsify::Outliers,
            consensus: true,
            default_normalize: false,
        };
        merge(family, job, out)
    }
}
