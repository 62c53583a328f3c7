//! `slerp`: spherical interpolation between the base (t = 0) and one other model (t = 1).

use super::method::{Chunking, MergeMethod, TensorJob, TensorNote, TensorSetup, TensorStream};
use super::params::{ParamSpec, unit};
use super::stream::Sums;
use crate::error::{Error, Result};

/// Spherical linear interpolation.
#[derive(Debug, Clone, Copy)]
pub struct Slerp;

const T: ParamSpec = ParamSpec::new("t", unit).required();

impl MergeMethod for Slerp {
    fn name(&self) -> &'static str {
        "slerp"
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[T]
    }
    fn check_model_count(&self, n: usize) -> Result<(), String> {
        super::method::exactly_one_model(n)
    }
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        Chunking::StreamedIfLarge
    }
    fn stream(&self, _t: &TensorSetup<'_>) -> Result<Box<dyn TensorStream>> {
        Ok(Box::new(Sums::new(accumulate)))
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let a = job.base("slerp")?;
        let [m] = job.models.as_slice() else {
            // The other model lacks this tensor: keep the base's.
            out.copy_from_slice(a);
            return Ok(Vec::new());
        };
        let b = m.values;
        let t = job
            .global
            .number("t")
            .ok_or_else(|| Error::op(job.name, "slerp", "no `t` for this tensor"))?;
        let mut whole = Vec::new();
        let sums = match job.streamed::<Vec<f64>>() {
            Some(s) => s,
            None => {
                accumulate(job, &mut whole)?;
                &whole
            }
        };
        let &[aa, bb, ab] = sums.as_slice() else {
            return Err(Error::op(job.name, "slerp", "norms missing for this part"));
        };
        // Each vector is normalised unless its norm is (near) zero.
        let scale = |n2: f64| {
            let n = n2.sqrt();
            if n > 1e-8 { 1.0 / n } else { 1.0 }
        };
        let dot = ab * scale(aa) * scale(bb);
        let (wa, wb) = if dot.abs() > 0.9995 {
            (1.0 - t, t)
        } else {
            let omega = dot.acos();
            let s = omega.sin();
            (((1.0 - t) * omega).sin() / s, (t * omega).sin() / s)
        };
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            *o = (wa * f64::from(*x) + wb * f64::from(*y)) as f32;
        }
        Ok(Vec::new())
    }
}

/// ‖a‖², ‖b‖² and a·b, in f64.
fn accumulate(job: &TensorJob<'_>, acc: &mut Vec<f64>) -> Result<()> {
    let a = job.base("slerp")?;
    let [m] = job.models.as_slice() else {
        return Ok(());
    };
    acc.resize(3, 0.0);
    for (x, y) in a.iter().zip(m.values) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        acc[0] += x * x;
        acc[1] += y * y;
        acc[2] += x * y;
    }
    Ok(())
}
