//! `karcher` (mergekit's Karcher mean): the weighted Fréchet mean of the models' directions on
//! the unit hypersphere, found by Riemannian gradient steps (at most `max_iter`, stopping when
//! the step is under `tol`), scaled by the models' mean norm. Every model weighs the same; a
//! `base_model` not listed under `models` is merged as one more model, as mergekit does.

use super::method::{MergeMethod, TensorJob, TensorNote};
use super::params::{ParamSpec, any_number, count};
use crate::error::Result;

/// Karcher mean.
#[derive(Debug, Clone, Copy)]
pub struct Karcher;

const MAX_ITER: ParamSpec = ParamSpec::new("max_iter", count).or(10.0);
const TOL: ParamSpec = ParamSpec::new("tol", any_number).or(1e-5);

/// x · y, summed in f64.
fn dot(x: &[f32], y: &[f32]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

impl MergeMethod for Karcher {
    fn name(&self) -> &'static str {
        "karcher"
    }
    fn needs_base(&self) -> bool {
        false
    }
    fn base_is_input(&self) -> bool {
        true
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[MAX_ITER, TOL]
    }
    // Chunking::Whole (the default): every step's dot products and norms span the tensor.
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let tensors: Vec<&[f32]> = job.models.iter().map(|m| m.values).collect();
        if let [only] = tensors.as_slice() {
            out.copy_from_slice(only);
            return Ok(Vec::new());
        }
        let max_iter = job.global.value(&MAX_ITER) as usize;
        let tol = job.global.value(&TOL);
        let alpha = 1.0 / tensors.len() as f64;
        let norms: Vec<f64> = tensors.iter().map(|t| dot(t, t).sqrt()).collect();
        // Directions of the models whose norm is over `tol`; the others only count in the scale.
        let units: Vec<Vec<f32>> = tensors
            .iter()
            .zip(&norms)
            .filter(|&(_, &n)| n > tol)
            .map(|(t, &n)| t.iter().map(|&v| (f64::from(v) / n) as f32).collect())
            .collect();
        if units.is_empty() {
            out.fill(0.0);
            return Ok(Vec::new());
        }
        let a = 1.0 / units.len() as f64;
        let mut mean = vec![0.0f32; out.len()];
        for u in &units {
            mean.iter_mut()
                .zip(u)
                .for_each(|(m, &v)| *m += (a * f64::from(v)) as f32);
        }
        let mean_norm = dot(&mean, &mean).sqrt();
        if mean_norm < tol {
            mean.copy_from_slice(&units[0]);
        } else {
            mean.iter_mut()
                .for_each(|m| *m = (f64::from(*m) / mean_norm) as f32);
        }
        let mut tangent = vec![0.0f32; out.len()];
        for _ in 0..max_iter {
            tangent.fill(0.0);
            for u in &units {
                let d = dot(&mean, u).clamp(-1.0, 1.0);
                let theta = d.acos();
                if theta < tol {
                    continue;
                }
                let k = a * theta / theta.sin();
                tangent
                    .iter_mut()
                    .zip(u.iter().zip(&mean))
                    .for_each(|(t, (&v, &m))| *t += (k * (f64::from(v) - d * f64::from(m))) as f32);
            }
            let tn = dot(&tangent, &tangent).sqrt();
            if tn < tol {
                break;
            }
            let (c, s) = (tn.cos(), tn.sin() / tn);
            mean.iter_mut()
                .zip(&tangent)
                .for_each(|(m, &t)| *m = (c * f64::from(*m) + s * f64::from(t)) as f32);
            let n = dot(&mean, &mean).sqrt();
            if n > tol {
                mean.iter_mut()
                    .for_each(|m| *m = (f64::from(*m) / n) as f32);
            }
        }
        let scale: f64 = norms.iter().map(|n| alpha * n).sum();
        out.iter_mut()
            .zip(&mean)
            .for_each(|(o, &m)| *o = (scale * f64::from(m)) as f32);
        Ok(Vec::new())
    }
}
