//! `nearswap` (mergekit's NearSwap, from alchemonaut's QuartetAnemoi): take the other model's
//! value where it is close to the base's, w = clamp(t / max(|θ_b − θ_1|, 1e-6), 0, 1),
//! θ = w·θ_1 + (1 − w)·θ_b, element by element in f32 as mergekit computes it.

use super::method::{Chunking, MergeMethod, TensorJob, TensorNote, TensorSetup};
use super::params::{ParamSpec, any_number};
use crate::error::{Error, Result};

/// NearSwap.
#[derive(Debug, Clone, Copy)]
pub struct NearSwap;

const T: ParamSpec = ParamSpec::new("t", any_number).required();

impl MergeMethod for NearSwap {
    fn name(&self) -> &'static str {
        "nearswap"
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[T]
    }
    fn check_model_count(&self, n: usize) -> Result<(), String> {
        super::method::exactly_one_model(n)
    }
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        Chunking::Elementwise
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let a = job.base(self.name())?;
        let [m] = job.models.as_slice() else {
            // The other model lacks this tensor: keep the base's.
            out.copy_from_slice(a);
            return Ok(Vec::new());
        };
        let t = job
            .global
            .number(T.name)
            .ok_or_else(|| Error::op(job.name, "nearswap", "no `t` for this tensor"))?
            as f32;
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(m.values) {
            let w = (t / (x - y).abs().max(1e-6)).clamp(0.0, 1.0);
            *o = w * y + (1.0 - w) * x;
        }
        Ok(Vec::new())
    }
}
