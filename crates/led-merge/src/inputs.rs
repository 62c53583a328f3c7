//! What a plan is made of: the opened inputs (models and their score files) and what happens
//! to each output tensor.

use std::path::PathBuf;

use led_io::{Checkpoint, Dtype};

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
    /// Indices into [`MergePlan::models`](crate::MergePlan::models) of the models holding this tensor.
    pub inputs: Vec<usize>,
}

impl TensorPlan {
    /// Elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}
