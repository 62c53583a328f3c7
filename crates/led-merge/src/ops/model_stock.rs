//! `model_stock` (Jang et al. 2024): interpolate between the base and the models' mean by a
//! ratio derived from the angle between task vectors.

use super::{MergeMethod, ParamSpec, TensorJob, TensorNote, boolean};
use crate::error::{Error, Result};

/// Model Stock.
#[derive(Debug, Clone, Copy)]
pub struct ModelStock;

const FILTER_WISE: ParamSpec = ParamSpec {
    name: "filter_wise",
    check: boolean,
};

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    (dot / (na * nb).max(1e-6)).clamp(-1.0, 1.0)
}

impl MergeMethod for ModelStock {
    fn name(&self) -> &'static str {
        "model_stock"
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[FILTER_WISE]
    }
    fn check_model_count(&self, n: usize) -> Result<(), String> {
        if n < 2 {
            Err(format!("needs at least 2 models besides the base, got {n}"))
        } else {
            Ok(())
        }
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let base = job.base("model_stock")?;
        let n = job.models.len();
        if n < 2 {
            return Err(Error::op(
                job.name,
                "model_stock",
                format!("needs at least 2 models holding this tensor, got {n}"),
            ));
        }
        let filter_wise = job.global.bool_or("filter_wise", false) && job.shape.len() > 1;
        let row = if filter_wise {
            job.shape.last().copied().unwrap_or(base.len()).max(1)
        } else {
            base.len().max(1)
        };
        for (r, out_row) in out.chunks_mut(row).enumerate() {
            let span = r * row..r * row + out_row.len();
            let deltas: Vec<Vec<f64>> = job
                .models
                .iter()
                .map(|m| {
                    m.values[span.clone()]
                        .iter()
                        .zip(&base[span.clone()])
                        .map(|(x, b)| f64::from(x - b))
                        .collect()
                })
                .collect();
            let mut sum = 0.0;
            let mut pairs = 0usize;
            for i in 0..n {
                for j in i + 1..n {
                    sum += cosine(&deltas[i], &deltas[j]);
                    pairs += 1;
                }
            }
            let c = sum / pairs as f64;
            let denom = 1.0 + (n as f64 - 1.0) * c;
            if denom.abs() < 1e-6 {
                return Err(Error::op(
                    job.name,
                    "model_stock",
                    format!("1 + (N − 1)·cos = {denom:e}: the interpolation ratio is undefined"),
                ));
            }
            let t = (n as f64 * c / denom) as f32;
            for (k, o) in out_row.iter_mut().enumerate() {
                let j = span.start + k;
                let mean = job.models.iter().map(|m| m.values[j]).sum::<f32>() / n as f32;
                *o = t * mean + (1.0 - t) * base[j];
            }
        }
        Ok(Vec::new())
    }
}
