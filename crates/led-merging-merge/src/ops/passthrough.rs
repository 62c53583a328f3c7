//! `passthrough` (mergekit's): each output tensor is its one input's, times the source's
//! `scale` when given. With `slices`, this stacks layers of several models (frankenmerges);
//! with `models`, it copies (and scales) one model.

use super::method::{Chunking, MergeMethod, TensorJob, TensorNote, TensorSetup};
use super::params::{ParamSpec, any_number};
use crate::error::{Error, Result};

/// Passthrough.
#[derive(Debug, Clone, Copy)]
pub struct Passthrough;

const SCALE: ParamSpec = ParamSpec::new("scale", any_number);

impl MergeMethod for Passthrough {
    fn name(&self) -> &'static str {
        "passthrough"
    }
    fn needs_base(&self) -> bool {
        false
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[SCALE]
    }
    fn check_tensor(
        &self,
        _global: &super::params::Params,
        models: &[super::params::Params],
    ) -> Result<(), String> {
        match models.len() {
            1 => Ok(()),
            n => Err(format!(
                "takes one input per tensor, this one has {n}: give one source per slice (or one model)"
            )),
        }
    }
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        Chunking::Elementwise
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let [m] = job.models.as_slice() else {
            return Err(Error::op(
                job.name,
                "passthrough",
                "needs exactly one input",
            ));
        };
        match m.params.number(SCALE.name) {
            Some(s) => {
                let s = s as f32;
                out.iter_mut().zip(m.values).for_each(|(o, &v)| *o = v * s);
            }
            None => out.copy_from_slice(m.values),
        }
        Ok(Vec::new())
    }
}
