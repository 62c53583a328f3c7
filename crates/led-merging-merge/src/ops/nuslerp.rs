//! `nuslerp` (mergekit's NuSLERP): spherical interpolation of two models (or of their task
//! vectors when there is a base) at t = w₁ / (w₀ + w₁), over the whole flattened tensor
//! (`nuslerp_flatten`, the default), over rows of the last dimension, or over columns
//! (`nuslerp_row_wise`: vectors along the first dimension).

use super::method::{MergeMethod, TensorJob, TensorNote};
use super::params::{ParamSpec, WEIGHT, boolean};
use crate::error::{Error, Result};

/// NuSLERP.
#[derive(Debug, Clone, Copy)]
pub struct NuSlerp;

const ROW_WISE: ParamSpec = ParamSpec::new("nuslerp_row_wise", boolean).or_flag(false);
const FLATTEN: ParamSpec = ParamSpec::new("nuslerp_flatten", boolean).or_flag(true);

impl MergeMethod for NuSlerp {
    fn name(&self) -> &'static str {
        "nuslerp"
    }
    fn needs_base(&self) -> bool {
        false
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[WEIGHT]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[ROW_WISE, FLATTEN]
    }
    fn check_model_count(&self, n: usize) -> Result<(), String> {
        if n == 2 {
            Ok(())
        } else {
            Err(format!(
                "needs exactly two models besides the base, got {n}"
            ))
        }
    }
    // Chunking::Whole (the default): the vectors' norms span the tensor (or its columns).
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let [m0, m1] = job.models.as_slice() else {
            return Err(Error::op(
                job.name,
                "nuslerp",
                "needs both models to hold this tensor",
            ));
        };
        let (w0, w1) = (
            job.model_number(m0, WEIGHT.name, "nuslerp")?,
            job.model_number(m1, WEIGHT.name, "nuslerp")?,
        );
        let total = w0 + w1;
        let t = if total.abs() < 1e-6 { 0.5 } else { w1 / total } as f32;
        let (v0, v1): (Vec<f32>, Vec<f32>) = match job.base {
            Some(_) => (job.delta(0).collect(), job.delta(1).collect()),
            None => (m0.values.to_vec(), m1.values.to_vec()),
        };
        let n = v0.len();
        // Which vector element j belongs to: the whole tensor, its row, or its column.
        let flatten = job.global.flag(&FLATTEN);
        let row_wise = job.global.flag(&ROW_WISE) && job.shape.len() > 1;
        let last = job.shape.last().copied().unwrap_or(n).max(1);
        let inner = n / job.shape.first().copied().unwrap_or(1).max(1);
        let (groups, group): (usize, Box<dyn Fn(usize) -> usize>) = if flatten {
            (1, Box::new(|_| 0))
        } else if row_wise {
            (inner.max(1), Box::new(move |j| j % inner.max(1)))
        } else {
            (n.div_ceil(last), Box::new(move |j| j / last))
        };
        // ‖v0‖², ‖v1‖² and v0·v1 per vector, in f64.
        let mut sums = vec![[0.0f64; 3]; groups];
        for (j, (&a, &b)) in v0.iter().zip(&v1).enumerate() {
            let s = &mut sums[group(j)];
            let (a, b) = (f64::from(a), f64::from(b));
            s[0] += a * a;
            s[1] += b * b;
            s[2] += a * b;
        }
        // Per vector: (sin((1 − t)θ), sin(tθ), sin θ), or None where the two are colinear.
        let coefficients: Vec<Option<[f32; 3]>> = sums
            .iter()
            .map(|&[aa, bb, ab]| {
                let norm = |x: f64| (x.sqrt() as f32).max(1e-7);
                let cos = ((ab as f32) / (norm(aa) * norm(bb))).clamp(-1.0, 1.0);
                if 1.0 - cos * cos <= 1e-16 {
                    return None;
                }
                let theta = cos.acos();
                Some([((1.0 - t) * theta).sin(), (t * theta).sin(), theta.sin()])
            })
            .collect();
        let base = job.base;
        for (j, o) in out.iter_mut().enumerate() {
            let (a, b) = (v0[j], v1[j]);
            let mixed = match coefficients[group(j)] {
                Some([s0, s1, st]) => (s0 * a + s1 * b) / st,
                None => (1.0 - t) * a + t * b,
            };
            *o = match base {
                Some(base) => base[j] + mixed,
                None => mixed,
            };
        }
        Ok(Vec::new())
    }
}
