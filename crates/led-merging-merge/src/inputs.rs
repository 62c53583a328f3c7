//! What a plan is made of: the opened inputs (models and their score files) and what happens
//! to each output tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use led_merging_io::{Checkpoint, Dtype, TensorInfo};

use crate::config::Parameters;

/// An opened input model.
#[derive(Debug)]
pub struct Input {
    /// Position in the config's `models` list (`None` for a base not listed there).
    pub index: Option<usize>,
    /// Path as given in the config.
    pub path: PathBuf,
    /// The opened checkpoint.
    pub ckpt: Checkpoint,
    /// LED: this model's score files.
    pub scores: Option<ScoreFiles>,
    /// Per-model parameters.
    pub parameters: Parameters,
    /// How errors name it: `models[2]`, `base_model`, `slices[1].sources[0]`.
    pub label: String,
    /// With `slices`: the tensors it gives, output name → its name in the checkpoint
    /// (`None`: every tensor, under its own name).
    pub view: Option<BTreeMap<String, String>>,
}

impl Input {
    /// The name in the checkpoint of output tensor `name`.
    pub fn source<'a>(&'a self, name: &'a str) -> &'a str {
        match &self.view {
            Some(v) => v.get(name).map_or(name, String::as_str),
            None => name,
        }
    }

    /// Output tensor `name` as this input holds it, if it does.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        match &self.view {
            Some(v) => self.ckpt.get(v.get(name)?),
            None => self.ckpt.get(name),
        }
    }

    /// The output tensors it holds: (output name, the tensor).
    pub fn tensors(&self) -> Vec<(&str, &TensorInfo)> {
        match &self.view {
            Some(v) => v
                .iter()
                .filter_map(|(out, src)| Some((out.as_str(), self.ckpt.get(src)?)))
                .collect(),
            None => self
                .ckpt
                .tensors()
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
        }
    }
}

/// A task's two score checkpoints (LED).
#[derive(Debug)]
pub struct ScoreFiles {
    /// The fine-tuned model's scores on the task's data.
    pub model: Checkpoint,
    /// The base's scores on the same data.
    pub base: Checkpoint,
}

impl ScoreFiles {
    /// Whether both files hold scores for `tensor`.
    pub fn cover(&self, tensor: &str) -> bool {
        self.model.contains(tensor) && self.base.contains(tensor)
    }
}

/// What happens to one output tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the merge method.
    Merge,
    /// Copy the reference tensor's bytes unchanged (non-float tensors).
    Copy,
}

/// The plan for one output tensor.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    /// Name.
    pub name: String,
    /// Output shape (the reference's).
    pub shape: Vec<usize>,
    /// Output dtype.
    pub dtype: Dtype,
    /// What to do.
    pub action: Action,
    /// Indices into [`MergePlan::models`](crate::plan::MergePlan::models) of the models holding this tensor.
    pub inputs: Vec<usize>,
}

impl TensorPlan {
    /// Elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Whether `a` and `b` name the same model (the same path, or the same file once resolved).
pub(crate) fn same_path(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}
