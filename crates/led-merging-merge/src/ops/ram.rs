//! `ram` and `ramplus_tl` (mergekit's Reinforced Agent Merging, arXiv 2601.13572), element by
//! element in f32 as mergekit computes them. With τ_i = θ_i − θ_b and c the number of models
//! with |τ_i| > ε at an element: c = 1 keeps that model's τ (times λ_i for `ramplus_tl`), c > 1
//! takes the mean of the models' τ over ε, c = 0 keeps the base. `ramplus_tl`'s
//! λ_i = 1 + r·clamp(shared_i / max(unique_i, ε), 0, α) counts, over the whole tensor, model i's
//! elements over ε shared with another model and its own alone: a stream over the parts.

use super::method::{Chunking, MergeMethod, TensorJob, TensorNote, TensorSetup, TensorStream};
use super::params::{ParamSpec, any_number};
use super::stream::Sums;
use crate::error::Result;

/// RAM (`plus: false`) or RAM+ tensor-local (`plus: true`).
#[derive(Debug, Clone, Copy)]
pub struct Ram {
    plus: bool,
}

/// `ram`.
pub const RAM: Ram = Ram { plus: false };
/// `ramplus_tl`.
pub const RAMPLUS_TL: Ram = Ram { plus: true };

const EPSILON: ParamSpec = ParamSpec::new("epsilon", any_number).or(1e-5);
const R: ParamSpec = ParamSpec::new("r", any_number).or(0.1);
const ALPHA: ParamSpec = ParamSpec::new("alpha", any_number).or(0.2);

/// ε of `job`.
fn epsilon(job: &TensorJob<'_>) -> f32 {
    job.global.value(&EPSILON) as f32
}

/// Whether model `m`'s τ at element `j` is over ε, for every model, and how many are.
fn over(job: &TensorJob<'_>, base: &[f32], j: usize, eps: f32) -> usize {
    job.models
        .iter()
        .filter(|m| (m.values[j] - base[j]).abs() > eps)
        .count()
}

/// Per model: elements over ε shared with another model (first `n` sums), then alone (next
/// `n`), over the whole job.
fn accumulate(job: &TensorJob<'_>, acc: &mut Vec<f64>) -> Result<()> {
    let n = job.models.len();
    acc.resize(2 * n, 0.0);
    if n == 0 {
        return Ok(());
    }
    let base = job.base("ramplus_tl")?;
    let eps = epsilon(job);
    for j in 0..base.len() {
        let c = over(job, base, j, eps);
        if c == 0 {
            continue;
        }
        for (i, m) in job.models.iter().enumerate() {
            if (m.values[j] - base[j]).abs() > eps {
                acc[if c > 1 { i } else { n + i }] += 1.0;
            }
        }
    }
    Ok(())
}

impl MergeMethod for Ram {
    fn name(&self) -> &'static str {
        if self.plus { "ramplus_tl" } else { "ram" }
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        if self.plus {
            &[R, ALPHA, EPSILON]
        } else {
            &[EPSILON]
        }
    }
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        if self.plus {
            Chunking::StreamedIfLarge
        } else {
            Chunking::Elementwise
        }
    }
    fn stream(&self, _t: &TensorSetup<'_>) -> Result<Box<dyn TensorStream>> {
        Ok(Box::new(Sums::new(accumulate)))
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let base = job.base(self.name())?;
        let n = job.models.len();
        let eps = epsilon(job);
        let lambdas: Vec<f32> = if self.plus {
            let counts = match job.streamed::<Vec<f64>>() {
                Some(s) => s.clone(),
                None => {
                    let mut acc = Vec::new();
                    accumulate(job, &mut acc)?;
                    acc
                }
            };
            let r = job.global.value(&R) as f32;
            let alpha = job.global.value(&ALPHA) as f32;
            (0..n)
                .map(|i| {
                    let rho = counts[i] as f32 / (counts[n + i] as f32).max(eps);
                    1.0 + r * rho.clamp(0.0, alpha)
                })
                .collect()
        } else {
            vec![1.0; n]
        };
        for (j, o) in out.iter_mut().enumerate() {
            let c = over(job, base, j, eps);
            let mut sum = 0.0f32;
            for (m, &lambda) in job.models.iter().zip(&lambdas) {
                let tau = m.values[j] - base[j];
                if tau.abs() > eps {
                    sum += if c == 1 { tau * lambda } else { tau / c as f32 };
                }
            }
            *o = base[j] + sum;
        }
        Ok(Vec::new())
    }
}
