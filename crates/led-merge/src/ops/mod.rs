//! Merge operators: one file per method, each working on one tensor at a time (f32 slices in,
//! f32 out), so that a new method is one small file implementing [`MergeMethod`].

use std::collections::BTreeMap;

use crate::config::Scalar;
use crate::error::{Error, Result};

mod breadcrumbs;
mod della;
mod generalized;
mod led;
mod linear;
mod model_stock;
mod slerp;
mod task_arithmetic;
mod ties;

pub use breadcrumbs::{BREADCRUMBS, BREADCRUMBS_TIES};
pub use della::{DELLA, DELLA_LINEAR};
pub use generalized::{DARE_LINEAR, DARE_TIES, Family};
pub use led::Led;
pub use linear::Linear;
pub use model_stock::ModelStock;
pub use slerp::Slerp;
pub use task_arithmetic::TASK_ARITHMETIC;
pub use ties::TIES;

/// A parameter a method accepts, with its validity check.
#[derive(Clone, Copy)]
pub struct ParamSpec {
    /// Name as written in the config.
    pub name: &'static str,
    /// Returns why a value is invalid.
    pub check: fn(&Scalar) -> Result<(), String>,
}

impl std::fmt::Debug for ParamSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn number(v: &Scalar) -> Result<f64, String> {
    match v {
        Scalar::Number(n) if n.is_finite() => Ok(*n),
        other => Err(format!("expected a finite number, got {other}")),
    }
}

/// Any finite number.
pub fn any_number(v: &Scalar) -> Result<(), String> {
    number(v).map(|_| ())
}

/// A number in [0, 1].
pub fn unit(v: &Scalar) -> Result<(), String> {
    let n = number(v)?;
    if (0.0..=1.0).contains(&n) {
        Ok(())
    } else {
        Err(format!("{n} is outside [0, 1]"))
    }
}

/// A ratio in (0, 1].
pub fn ratio(v: &Scalar) -> Result<(), String> {
    let n = number(v)?;
    if n > 0.0 && n <= 1.0 {
        Ok(())
    } else {
        Err(format!("{n} is outside (0, 1]"))
    }
}

/// `true` or `false`.
pub fn boolean(v: &Scalar) -> Result<(), String> {
    match v {
        Scalar::Bool(_) => Ok(()),
        other => Err(format!("expected true or false, got {other}")),
    }
}

/// An election pattern: `"11"`, `"01"`, `"10"` or `"00"`.
pub fn pattern(v: &Scalar) -> Result<(), String> {
    let text = match v {
        Scalar::Text(s) => s.clone(),
        // YAML reads an unquoted 11 or 10 as a number.
        Scalar::Number(n) if [0.0, 1.0, 10.0, 11.0].contains(n) => format!("{:02}", *n as u32),
        other => {
            return Err(format!(
                "expected an election pattern \"11\", \"01\", \"10\" or \"00\", got {other}"
            ));
        }
    };
    text.parse::<led_mask::Pattern>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `true`, `false` or `"inverse_density"`.
pub fn rescale(v: &Scalar) -> Result<(), String> {
    match v {
        Scalar::Bool(_) => Ok(()),
        Scalar::Text(s) if s == "inverse_density" => Ok(()),
        other => Err(format!(
            "expected true, false or \"inverse_density\", got {other}"
        )),
    }
}

/// Parameters of one model (or the global ones) resolved for one tensor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub BTreeMap<String, Scalar>);

impl Params {
    /// A number, if set.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.0.get(name) {
            Some(Scalar::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// A number, or `default`.
    pub fn number_or(&self, name: &str, default: f64) -> f64 {
        self.number(name).unwrap_or(default)
    }

    /// A boolean, or `default`.
    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        match self.0.get(name) {
            Some(Scalar::Bool(b)) => *b,
            _ => default,
        }
    }

    /// The raw value.
    pub fn get(&self, name: &str) -> Option<&Scalar> {
        self.0.get(name)
    }
}

/// One model's tensor as an operator sees it.
#[derive(Debug, Clone, Copy)]
pub struct ModelTensor<'a> {
    /// Position of the model in the config's `models` list.
    pub index: usize,
    /// Its values (vocabulary rows already aligned to the base).
    pub values: &'a [f32],
    /// Its parameters resolved for this tensor.
    pub params: &'a Params,
    /// LED only: (scores of this model, scores of the base), aligned like `values`.
    pub scores: Option<(&'a [f32], &'a [f32])>,
    /// LED only: the (base, model) top-r thresholds of the whole tensor's scores, when `values`
    /// and `scores` are one part of a tensor merged in chunks ([`Chunking::Thresholds`]).
    pub thresholds: Option<(led_mask::Threshold, led_mask::Threshold)>,
    /// TIES only: this model's top-k of |θ_i − θ_b| over the whole tensor, when `values` is one
    /// part of a tensor merged in parts ([`Chunking::MagnitudeTopK`]).
    pub top_k: Option<TopK>,
    /// DARE only: the whole tensor's L1 rescale factor (kept ‖δ‖₁ to original), when `values`
    /// is one part of a tensor merged in parts ([`Chunking::RandomDrop`]).
    pub l1_scale: Option<f32>,
    /// Breadcrumbs only: this model's band of |θ_i − θ_b| ranks over the whole tensor, when
    /// `values` is one part of a tensor merged in parts ([`Chunking::MagnitudeBand`]).
    pub band: Option<Band>,
}

/// Breadcrumbs' kept band of magnitude ranks over a whole tensor, as one part of it sees it:
/// an element is kept when it passes both cuts. Ties at a cut are ordered by index, as the
/// whole path orders them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// `(v, d)`: drop |δ| < v, and the first `d` elements of this part with |δ| = v.
    pub lower: Option<(f32, usize)>,
    /// `(v, c)`: drop |δ| > v, and every element of this part with |δ| = v after the first `c`.
    pub upper: Option<(f32, usize)>,
}

/// A tensor's exact top-k by magnitude, as seen by one part of it: keep every element with
/// |δ| > `threshold`, and the first `ties` elements of this part with |δ| = `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopK {
    /// The k-th largest |δ| of the whole tensor.
    pub threshold: f32,
    /// Elements equal to the threshold kept in this part (in index order).
    pub ties: usize,
    /// k of the whole tensor.
    pub k: usize,
}

/// Whether a tensor too large to hold at once may be merged in parts (consecutive rows).
#[derive(Debug, Clone, PartialEq)]
pub enum Chunking {
    /// Only as a whole: something depends on all elements in a way no pre-pass gives.
    Whole,
    /// Element by element: any part merged alone gives that part of the result.
    Elementwise,
    /// Element by element once each model's (base, model) score thresholds at these ratios
    /// (one per model, in order) are selected over the whole tensor: the engine streams them
    /// and hands them over in [`ModelTensor::thresholds`].
    Thresholds(Vec<f64>),
    /// Element by element once each model's exact top-k of |θ_i − θ_b| at these densities (one
    /// per model; ≥ 1 keeps everything) is known over the whole tensor: the engine streams it
    /// and hands each part its share in [`ModelTensor::top_k`].
    MagnitudeTopK(Vec<f64>),
    /// Element by element given each part's offset (DARE's random streams are keyed by
    /// element position), once each model's L1 rescale factor over the whole tensor is known
    /// when `l1` is set: the engine streams it at these densities (one per model) and hands it
    /// over in [`ModelTensor::l1_scale`].
    RandomDrop {
        /// Per model.
        densities: Vec<f64>,
        /// Whether the L1 rescale is on.
        l1: bool,
        /// `None`: DARE's Bernoulli drop by element. `Some(epsilon per model)`: DELLA's rank
        /// sampling within rows of the last dimension (tensors of two or more dimensions).
        rank_epsilons: Option<Vec<f64>>,
    },
    /// Element by element once each model's band of magnitude ranks (dropping the
    /// `1 − density − gamma` smallest and the `gamma` largest |θ_i − θ_b|; one
    /// `(density, gamma)` per model) is known over the whole tensor: the engine streams both
    /// cuts and hands each part its share in [`ModelTensor::band`].
    MagnitudeBand(Vec<(f64, f64)>),
    /// Element by element once sums over the whole tensor (norms, dot products) are known: the
    /// engine feeds every part, in order, to [`MergeMethod::accumulate`] first, then hands the
    /// sums to each part in [`TensorJob::stats`]. A tensor merged whole comes with `stats:
    /// None`: `merge` then calls `accumulate` on the whole job itself, so both paths sum the
    /// same way and give the same bits (see `slerp` and `model_stock`).
    Statistics,
}

/// Everything an operator gets for one tensor.
#[derive(Debug, Clone)]
pub struct TensorJob<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Shape.
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
    /// [`Chunking::Statistics`] only: the sums [`MergeMethod::accumulate`] gathered over the
    /// whole tensor, when this job is one part of it; `None` for a whole tensor.
    pub stats: Option<&'a [f64]>,
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
}

/// Something a method wants the report to say about one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorNote {
    /// Free text (a warning).
    Warning(String),
    /// LED statistics.
    Led(led_mask::TensorStats),
}

/// A merge method.
pub trait MergeMethod: Send + Sync {
    /// Name in `merge_method`.
    fn name(&self) -> &'static str;
    /// Whether `base_model` is required.
    fn needs_base(&self) -> bool {
        true
    }
    /// Per-model parameters accepted.
    fn model_params(&self) -> &'static [ParamSpec];
    /// Per-model parameters that must be given.
    fn required_model_params(&self) -> &'static [&'static str] {
        &[]
    }
    /// Global parameters accepted.
    fn global_params(&self) -> &'static [ParamSpec];
    /// Global parameters that must be given.
    fn required_global_params(&self) -> &'static [&'static str] {
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
    /// How a tensor with these (global, per-model) parameters may be merged in parts.
    fn chunking(&self, _global: &Params, _models: &[Params]) -> Chunking {
        Chunking::Whole
    }
    /// [`Chunking::Statistics`] only: add this job's elements to the whole tensor's sums in
    /// `acc` (empty before the first part), in index order, so that parts fed one after the
    /// other give the same sums, bit for bit, as the whole tensor fed at once.
    fn accumulate(&self, _job: &TensorJob<'_>, _acc: &mut Vec<f64>) -> Result<()> {
        Ok(())
    }
    /// Scores only ([`MergeMethod::needs_scores`]): rewrite part of tensor `tensor`'s scores,
    /// as read from a score file, into what the election ranks (LED's `neg_prune`). Every read
    /// of scores goes through it, the streamed threshold passes included.
    fn prepare_scores(&self, _tensor: &str, _global: &Params, _scores: &mut [f32]) -> Result<()> {
        Ok(())
    }
    /// Merge one tensor into `out` (same length as the base tensor).
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>>;
}

/// Every method, by name.
pub fn method(name: &str) -> Option<Box<dyn MergeMethod>> {
    Some(match name {
        "led" => Box::new(Led),
        "linear" => Box::new(Linear),
        "task_arithmetic" => Box::new(TASK_ARITHMETIC),
        "ties" => Box::new(TIES),
        "dare_linear" => Box::new(DARE_LINEAR),
        "dare_ties" => Box::new(DARE_TIES),
        "breadcrumbs" => Box::new(BREADCRUMBS),
        "breadcrumbs_ties" => Box::new(BREADCRUMBS_TIES),
        "della" => Box::new(DELLA),
        "della_linear" => Box::new(DELLA_LINEAR),
        "model_stock" => Box::new(ModelStock),
        "slerp" => Box::new(Slerp),
        _ => return None,
    })
}

/// Names of every method.
pub const METHODS: &[&str] = &[
    "led",
    "linear",
    "task_arithmetic",
    "ties",
    "dare_linear",
    "dare_ties",
    "breadcrumbs",
    "breadcrumbs_ties",
    "della",
    "della_linear",
    "model_stock",
    "slerp",
];

pub(crate) const WEIGHT: ParamSpec = ParamSpec {
    name: "weight",
    check: any_number,
};
pub(crate) const DENSITY: ParamSpec = ParamSpec {
    name: "density",
    check: unit,
};
pub(crate) const GAMMA: ParamSpec = ParamSpec {
    name: "gamma",
    check: unit,
};
pub(crate) const EPSILON: ParamSpec = ParamSpec {
    name: "epsilon",
    check: unit,
};
pub(crate) const LAMBDA: ParamSpec = ParamSpec {
    name: "lambda",
    check: any_number,
};
pub(crate) const NORMALIZE: ParamSpec = ParamSpec {
    name: "normalize",
    check: boolean,
};
pub(crate) const RESCALE: ParamSpec = ParamSpec {
    name: "rescale",
    check: rescale,
};
/// mergekit's memory option; meaningless in f32 compute, accepted for compatibility.
pub(crate) const INT8_MASK: ParamSpec = ParamSpec {
    name: "int8_mask",
    check: boolean,
};
