//! `multislerp` (mergekit's Multi-SLERP): barycentric interpolation on the hypersphere of any
//! number of models (or of their task vectors when there is a base): unit vectors averaged by
//! weight, projected to the tangent space at that mean, interpolated there, mapped back with
//! the exponential map and scaled by the weighted mean norm.

use super::method::{MergeMethod, TensorJob, TensorNote};
use super::params::{ParamSpec, WEIGHT, any_number, boolean};
use crate::error::{Error, Result};

/// Multi-SLERP.
#[derive(Debug, Clone, Copy)]
pub struct MultiSlerp;

const NORMALIZE_WEIGHTS: ParamSpec = ParamSpec::new("normalize_weights", boolean).or_flag(true);
const EPS: ParamSpec = ParamSpec::new("eps", any_number).or(1e-8);

/// ‖x‖ in f64, as f32.
fn norm(x: &[f32]) -> f32 {
    x.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt() as f32
}

impl MergeMethod for MultiSlerp {
    fn name(&self) -> &'static str {
        "multislerp"
    }
    fn needs_base(&self) -> bool {
        false
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[WEIGHT]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[NORMALIZE_WEIGHTS, EPS]
    }
    // Chunking::Whole (the default): norms, the mean direction and the tangent norm each span
    // the whole tensor.
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        if let [m] = job.models.as_slice() {
            out.copy_from_slice(m.values);
            return Ok(Vec::new());
        }
        let eps = job.global.value(&EPS) as f32;
        let mut w: Vec<f32> = job
            .models
            .iter()
            .map(|m| {
                job.model_number(m, WEIGHT.name, "multislerp")
                    .map(|w| w as f32)
            })
            .collect::<Result<_>>()?;
        if job.global.flag(&NORMALIZE_WEIGHTS) {
            let total: f32 = w.iter().sum();
            w.iter_mut().for_each(|x| *x /= total);
        }
        let x: Vec<Vec<f32>> = (0..job.models.len())
            .map(|j| match job.base {
                Some(_) => job.delta(j).collect(),
                None => job.models[j].values.to_vec(),
            })
            .collect();
        let norms: Vec<f32> = x.iter().map(|v| norm(v)).collect();
        let units: Vec<Vec<f32>> = x
            .iter()
            .zip(&norms)
            .map(|(v, &n)| v.iter().map(|&e| e / (n + eps)).collect())
            .collect();
        let weighted_sum = |vs: &[Vec<f32>]| -> Vec<f32> {
            let mut acc = vec![0.0f32; out.len()];
            for (v, &wi) in vs.iter().zip(&w) {
                acc.iter_mut().zip(v).for_each(|(a, &e)| *a += e * wi);
            }
            acc
        };
        let mut mean = weighted_sum(&units);
        let mean_norm = norm(&mean);
        if mean_norm < eps {
            if x.len() != 2 {
                return Err(Error::op(
                    job.name,
                    "multislerp",
                    "the weighted sum of the unit vectors is zero (antipodal models with balancing weights): try other weights",
                ));
            }
            for (j, o) in out.iter_mut().enumerate() {
                *o = x[0][j] * w[0] + x[1][j] * w[1] + job.base.map_or(0.0, |b| b[j]);
            }
            return Ok(Vec::new());
        }
        mean.iter_mut().for_each(|m| *m /= mean_norm);
        let tangents: Vec<Vec<f32>> = units
            .iter()
            .map(|u| {
                let dot = u
                    .iter()
                    .zip(&mean)
                    .map(|(&a, &b)| f64::from(a * b))
                    .sum::<f64>() as f32;
                u.iter().zip(&mean).map(|(&a, &m)| a - dot * m).collect()
            })
            .collect();
        let tangent = weighted_sum(&tangents);
        let tn = norm(&tangent) + eps;
        let (c, s) = (tn.cos(), tn.sin() / tn);
        let avg_norm: f32 = norms.iter().zip(&w).map(|(&n, &wi)| n * wi).sum();
        for (j, o) in out.iter_mut().enumerate() {
            let r = (mean[j] * c + tangent[j] * s) * avg_norm;
            *o = r + job.base.map_or(0.0, |b| b[j]);
        }
        Ok(Vec::new())
    }
}
