//! `breadcrumbs` / `breadcrumbs_ties` (Davari & Belilovsky 2024): drop the smallest and the
//! largest task-vector entries, then sum or elect signs. A tensor merged in parts gets each
//! model's two cuts of |δ| ranks from a stream over its parts, and, part by part in index
//! order, its share of the ties at each cut.

use super::generalized::{Family, Sparsifier};
use super::method::{TensorJob, TensorSetup, TensorStream};
use super::params::{DENSITY, GAMMA, INT8_MASK, LAMBDA, NORMALIZE, WEIGHT};
use super::stream::{PerModel, Selections};
use crate::error::Result;
use crate::sparsify::{Band, BandBudget, BandSelect, keep_band, magnitude_band};

/// Model Breadcrumbs, summed.
pub const BREADCRUMBS: Family = Family {
    name: "breadcrumbs",
    sparsify: &Outliers,
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

/// Drop both magnitude tails of each task vector.
#[derive(Debug)]
pub(crate) struct Outliers;

fn cuts(p: &super::params::Params) -> (f64, f64) {
    (p.value(&DENSITY), p.value(&GAMMA))
}

impl Sparsifier for Outliers {
    fn chunking(&self, _t: &TensorSetup<'_>) -> super::method::Chunking {
        super::method::Chunking::Streamed
    }
    fn stream(&self, t: &TensorSetup<'_>, method: &'static str) -> Result<Box<dyn TensorStream>> {
        let selects = t
            .models
            .iter()
            .map(|p| {
                let (density, gamma) = cuts(p);
                BandSelect::new(t.name, t.numel(), density, gamma).map(Some)
            })
            .collect::<Result<_>>()?;
        Ok(Box::new(Selections::new(
            selects,
            BandSelect::finish,
            |budget: &mut BandBudget, part, j| budget.part(part.delta(j)),
            method,
        )))
    }
    fn apply(
        &self,
        job: &TensorJob<'_>,
        j: usize,
        delta: &mut [f32],
        method: &'static str,
    ) -> Result<Option<String>> {
        match PerModel::<Band>::of(job, j) {
            Some(band) => keep_band(delta, &band),
            None => {
                let (density, gamma) = cuts(job.models[j].params);
                magnitude_band(job.name, delta, density, gamma).map_err(|e| e.in_weights(method))?
            }
        }
        Ok(None)
    }
}
