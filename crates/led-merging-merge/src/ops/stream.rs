//! Building blocks for [`TensorStream`]s: sums over a whole tensor ([`Sums`]), and one exact
//! selection per model over what each part gives it ([`Selections`]).

use super::method::{Streamed, TensorJob, TensorStream};
use crate::error::Result;
use crate::sparsify::Passes;

/// Adds a job's elements to a tensor's running sums, in index order.
pub type Accumulate = fn(&TensorJob<'_>, &mut Vec<f64>) -> Result<()>;

/// Sums over a whole tensor (norms, dot products): every part fed, in order, to `accumulate`;
/// each part then gets the sums (read them with `job.streamed::<Vec<f64>>()`). A method merging
/// a whole tensor calls the same `accumulate` on the whole job, so both paths sum the same way
/// and give the same bits (see `slerp` and `model_stock`).
pub struct Sums {
    accumulate: Accumulate,
    acc: Vec<f64>,
    done: bool,
}

impl Sums {
    /// A stream summing with `accumulate`.
    pub fn new(accumulate: Accumulate) -> Self {
        Sums {
            accumulate,
            acc: Vec::new(),
            done: false,
        }
    }
}

impl TensorStream for Sums {
    fn needs_pass(&self) -> bool {
        !self.done
    }
    fn feed(&mut self, part: &TensorJob<'_>) -> Result<()> {
        (self.accumulate)(part, &mut self.acc)
    }
    fn end_pass(&mut self) -> Result<()> {
        self.done = true;
        Ok(())
    }
    fn hand_out(&mut self, _part: &TensorJob<'_>) -> Result<Streamed> {
        Ok(Box::new(self.acc.clone()))
    }
}

/// One streaming selection per model (`None`: the model needs none) over the magnitudes
/// |θ_j − θ_b| of each part, pass after pass until all have their answer; then each
/// answer is `finish`ed into a budget from which every part, in index order, takes its `share`
/// (ties at a cut are handed out by lowest index, as the whole tensor's path takes them). Parts
/// read their share with `job.streamed::<PerModel<P>>()`.
pub(crate) struct Selections<S, B, P> {
    /// Per model holding the tensor, in order.
    pub selects: Vec<Option<S>>,
    /// A selection's answer as a budget to share out.
    pub finish: fn(S) -> B,
    /// Model `j`'s share of its budget for a part.
    pub share: fn(&mut B, &TensorJob<'_>, usize) -> P,
    /// The method, to name it in errors.
    pub method: &'static str,
    /// Per model, once selected.
    pub budgets: Vec<Option<B>>,
    /// The magnitudes' buffer.
    pub scratch: Vec<f32>,
}

/// What a part gets from [`Selections`]: per model holding the tensor, its share.
pub(crate) struct PerModel<P>(pub Vec<Option<P>>);

impl<S, B, P> Selections<S, B, P> {
    /// Selections not yet fed (see the fields).
    pub(crate) fn new(
        selects: Vec<Option<S>>,
        finish: fn(S) -> B,
        share: fn(&mut B, &TensorJob<'_>, usize) -> P,
        method: &'static str,
    ) -> Self {
        Selections {
            selects,
            finish,
            share,
            method,
            budgets: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

impl<P: Copy + 'static> PerModel<P> {
    /// Model `j`'s share for `job`, when `job` is a part of a streamed tensor.
    pub(crate) fn of(job: &TensorJob<'_>, j: usize) -> Option<P> {
        job.streamed::<PerModel<P>>().and_then(|p| p.0[j])
    }
}

impl<S: Passes + Send, B: Send, P: Send + Sync + 'static> TensorStream for Selections<S, B, P> {
    fn needs_pass(&self) -> bool {
        self.selects.iter().flatten().any(Passes::needs_pass)
    }
    fn feed(&mut self, part: &TensorJob<'_>) -> Result<()> {
        for (j, s) in self.selects.iter_mut().enumerate() {
            if let Some(s) = s.as_mut().filter(|s| s.needs_pass()) {
                magnitudes(part, j, &mut self.scratch);
                s.feed(&self.scratch)
                    .map_err(|e| e.in_weights(self.method))?;
            }
        }
        Ok(())
    }
    fn end_pass(&mut self) -> Result<()> {
        for s in self.selects.iter_mut().flatten() {
            if s.needs_pass() {
                s.end_pass().map_err(|e| e.in_weights(self.method))?;
            }
        }
        if !self.needs_pass() {
            self.budgets = std::mem::take(&mut self.selects)
                .into_iter()
                .map(|s| s.map(self.finish))
                .collect();
        }
        Ok(())
    }
    fn hand_out(&mut self, part: &TensorJob<'_>) -> Result<Streamed> {
        let share = self.share;
        let shares = self
            .budgets
            .iter_mut()
            .enumerate()
            .map(|(j, b)| b.as_mut().map(|b| share(b, part, j)))
            .collect();
        Ok(Box::new(PerModel::<P>(shares)))
    }
}

/// |θ_j − θ_b| of a part: what magnitude selections rank.
fn magnitudes(job: &TensorJob<'_>, j: usize, out: &mut Vec<f32>) {
    out.clear();
    let base = job.base.unwrap_or(&[]);
    out.extend(
        job.models[j]
            .values
            .iter()
            .zip(base)
            .map(|(v, b)| (v - b).abs()),
    );
}
