//! The method API: what a merge method implements ([`MergeMethod`]) and what it gets for each
//! tensor ([`TensorSetup`] before reading, [`TensorJob`] to merge, [`TensorStream`] for what
//! it computes over a whole tensor merged in parts). Method files import this file and
//! `params.rs`, never `mod.rs`, which only registers them.

use super::params::{ParamSpec, Params};
use crate::error::{Error, Result};

/// One model's tensor as an operator sees it.
#[derive(Debug, Clone, Copy)]
pub struct ModelTensor<'a> {
    /// Position of the model in the config's `models` list.
    pub index: usize,
    /// Its values (vocabulary rows already aligned to the base); empty when only scores are
    /// read (LED's election alone).
    pub values: &'a [f32],
    /// Its parameters resolved for this tensor.
    pub params: &'a Params,
    /// Scores ([`MergeMethod::needs_scores`]), aligned like `values`.
    pub scores: Option<ScorePair<'a>>,
}

/// A task's two score tensors (or parts of them), as the method ranks them.
#[derive(Debug, Clone, Copy)]
pub struct ScorePair<'a> {
    /// The fine-tuned model's scores.
    pub model: &'a [f32],
    /// The base's scores on the same task data.
    pub base: &'a [f32],
}

/// A tensor as a method sees it before any of its values is read: enough to say how it may be
/// merged in parts and to start a [`TensorStream`] over it.
#[derive(Debug, Clone, Copy)]
pub struct TensorSetup<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Its whole shape.
    pub shape: &'a [usize],
    /// Global parameters resolved for this tensor.
    pub global: &'a Params,
    /// Per-model parameters resolved for this tensor, models holding it in order.
    pub models: &'a [Params],
    /// Whether every model holding it has scores for it (methods that need scores).
    pub scored: bool,
}

impl TensorSetup<'_> {
    /// Number of elements of the whole tensor.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Whether a tensor too large to hold at once may be merged in parts (consecutive rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Only as a whole: something depends on all elements in a way no stream gives.
    Whole,
    /// Element by element: any part merged alone gives that part of the result (a part's
    /// position is [`TensorJob::offset`]).
    Elementwise,
    /// Element by element once something over the whole tensor is known (a top-k threshold,
    /// a norm): the engine runs the method's [`MergeMethod::stream`] over every part first, then
    /// hands each part what the stream gives it, in [`TensorJob::streamed`]. Every tensor is
    /// streamed, in cache-sized blocks: for a stream as cheap as a re-read (a selection).
    Streamed,
    /// As [`Chunking::Streamed`], but only for a tensor larger than a part; smaller ones are
    /// merged whole: for a stream that repeats costly work (DARE's random drops) or whose whole
    /// path is one pass anyway (sums).
    StreamedIfLarge,
}

/// What a method computes over a whole tensor before a tensor merged in parts is merged: the
/// engine feeds it every part, in index order, pass after pass while it asks for one (an
/// exact selection usually takes one, at most four), then asks it what each part gets, parts in index order.
/// A method reads what it handed out with [`TensorJob::streamed`]. The vocabulary is the one of
/// every streaming selection in the workspace (`led_merging_mask::StreamingThreshold`, the
/// sparsifiers' `Passes`): `needs_pass`, `feed`, `end_pass`; those feed values, this one whole
/// jobs (every model's part at once).
pub trait TensorStream: Send {
    /// What the parts fed must carry.
    fn reads(&self) -> Reads {
        Reads::Weights
    }
    /// Whether another pass over every part is needed.
    fn needs_pass(&self) -> bool;
    /// Feed the next part of this pass.
    fn feed(&mut self, part: &TensorJob<'_>) -> Result<()>;
    /// End this pass.
    fn end_pass(&mut self) -> Result<()>;
    /// After the last pass: what the next part (parts in index order) gets.
    fn hand_out(&mut self, part: &TensorJob<'_>) -> Result<Streamed>;
}

/// What a [`TensorStream`] hands a part; the method downcasts it to its own type.
pub type Streamed = Box<dyn std::any::Any + Send + Sync>;

/// What a [`TensorStream`] needs in the parts fed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// The base's and models' weights.
    Weights,
    /// Only the score files (LED's thresholds).
    Scores,
}

/// Everything an operator gets for one tensor.
#[derive(Debug, Clone)]
pub struct TensorJob<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Shape (of this part, when the tensor is merged in parts).
    pub shape: &'a [usize],
    /// The base's values (every method but `linear` has one).
    pub base: Option<&'a [f32]>,
    /// The models holding this tensor, base excluded.
    pub models: Vec<ModelTensor<'a>>,
    /// Global parameters resolved for this tensor.
    pub global: &'a Params,
    /// `random_seed`.
    pub seed: u64,
    /// Flat index of this job's first element in the tensor: 0 for a whole tensor, the part's
    /// start when merged in parts (random streams are keyed by element position).
    pub offset: usize,
    /// A streamed tensor's part only: what the method's stream handed this part.
    pub streamed: Option<&'a (dyn std::any::Any + Send + Sync)>,
}

impl TensorJob<'_> {
    /// The base values, or an error for methods that need one.
    pub fn base(&self, method: &'static str) -> Result<&[f32]> {
        self.base
            .ok_or_else(|| Error::op(self.name, method, "needs a base_model"))
    }

    /// A required per-model number.
    pub fn model_number(
        &self,
        m: &ModelTensor<'_>,
        name: &str,
        method: &'static str,
    ) -> Result<f64> {
        m.params.number(name).ok_or_else(|| {
            Error::op(
                self.name,
                method,
                format!("model {} has no `{name}` for this tensor", m.index),
            )
        })
    }

    /// What this part's stream handed it, as the method's type `T`; `None` for a tensor merged
    /// whole.
    pub fn streamed<T: 'static>(&self) -> Option<&T> {
        self.streamed.and_then(|s| s.downcast_ref())
    }

    /// Model `j`'s task vector θ_j − θ_b on this job's elements.
    pub fn delta(&self, j: usize) -> impl Iterator<Item = f32> + Clone + '_ {
        self.models[j]
            .values
            .iter()
            .zip(self.base.unwrap_or(&[]))
            .map(|(v, b)| v - b)
    }
}

/// [`MergeMethod::check_model_count`] of the methods that pair the base with exactly one model
/// (`slerp`, `nearswap`).
pub fn exactly_one_model(n: usize) -> Result<(), String> {
    if n == 1 {
        Ok(())
    } else {
        Err(format!("needs exactly one model besides the base, got {n}"))
    }
}

/// Something a method wants the report to say about one tensor.
#[derive(Debug)]
pub enum TensorNote {
    /// Free text (a warning), reported once per tensor.
    Warning(String),
    /// The method's statistics about the tensor (LED's election counts), summed over the
    /// tensor's parts; read back with `MergeReport::reports`.
    Report(Box<dyn TensorReport>),
}

/// A method's statistics about one tensor (`TensorNote::Report`). A tensor merged in parts
/// gets one per part; the engine sums them with [`TensorReport::absorb`].
pub trait TensorReport: std::any::Any + std::fmt::Debug + Send {
    /// Add `part` (the same tensor's next part, a report of the same type) into `self`.
    fn absorb(&mut self, part: &dyn TensorReport);
    /// `self`, for `downcast` (on `dyn TensorReport`).
    fn as_any(&self) -> &dyn std::any::Any;
}

impl dyn TensorReport {
    /// The report as a `T`, when it is one.
    pub fn downcast<T: TensorReport>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }
}

/// A merge method.
pub trait MergeMethod: Send + Sync {
    /// Name in `merge_method`.
    fn name(&self) -> &'static str;
    /// Whether `base_model` is required.
    fn needs_base(&self) -> bool {
        true
    }
    /// Whether a `base_model` not listed under `models` is merged as one more model, as
    /// mergekit does for the methods that treat the base like any input (karcher).
    fn base_is_input(&self) -> bool {
        false
    }
    /// Per-model parameters accepted (and required, [`ParamSpec::required`]).
    fn model_params(&self) -> &'static [ParamSpec] {
        &[]
    }
    /// Global parameters accepted (and required).
    fn global_params(&self) -> &'static [ParamSpec] {
        &[]
    }
    /// Check the number of (non-base) models; returns why it's wrong.
    fn check_model_count(&self, n: usize) -> Result<(), String> {
        if n == 0 {
            Err("needs at least one model besides the base".into())
        } else {
            Ok(())
        }
    }
    /// Check one tensor's resolved (global, per-model) parameters before anything is merged,
    /// so that the plan (and `--dry-run`) refuses what the merge would: returns why, per model.
    fn check_tensor(&self, _global: &Params, _models: &[Params]) -> Result<(), String> {
        Ok(())
    }
    /// Whether models need score checkpoints (LED).
    fn needs_scores(&self) -> bool {
        false
    }
    /// How tensor `t` may be merged in parts when it is too large to hold at once.
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        Chunking::Whole
    }
    /// [`Chunking::Streamed`] and [`Chunking::StreamedIfLarge`] only: a stream over tensor `t`'s parts, whose results the merge
    /// of each part gets in [`TensorJob::streamed`].
    fn stream(&self, t: &TensorSetup<'_>) -> Result<Box<dyn TensorStream>> {
        Err(Error::op(
            t.name,
            self.name(),
            "the method asks for a stream but has none",
        ))
    }
    /// Scores only ([`MergeMethod::needs_scores`]): rewrite part of tensor `tensor`'s scores,
    /// as read from a score file, into what the election ranks (LED's `neg_prune`). Every read
    /// of scores goes through it, the streamed threshold passes included.
    fn prepare_scores(&self, _tensor: &str, _global: &Params, _scores: &mut [f32]) -> Result<()> {
        Ok(())
    }
    /// Merge one tensor into `out` (same length as the base tensor).
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>>;
    /// The reports [`MergeMethod::merge`] would give for `job`, without merging (LED's election
    /// alone, `led analyze`). By default the method has none to give.
    fn survey(&self, job: &TensorJob<'_>) -> Result<Vec<TensorNote>> {
        Err(Error::op(
            job.name,
            self.name(),
            "the method reports nothing without merging (only methods that take score files do)",
        ))
    }
}
