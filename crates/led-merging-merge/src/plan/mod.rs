//! Planning a merge: open every input, check names, shapes and dtypes, and decide per tensor
//! what to do, failing before anything is written (listing every offending tensor).
//!
//! [`MergePlan::with_method`] runs named stages, a file each:
//! 0. `resolve.rs`: every model reference resolved to a local path (Hub repo ids from the
//!    Hugging Face cache);
//! 1. `params.rs`: the method's parameters and the config's entries checked;
//! 2. `open.rs`: the inputs opened (checkpoints, score files, slice views);
//! 3. `tensors.rs`: every output tensor planned and checked, with
//! 4. `scores.rs`: the score files checked, for methods that take them;
//! 5. `template.rs`: the output's chat template.
//!
//! `describe.rs` turns a plan into the text of `led merge --dry-run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::MergeConfig;
use crate::error::{Error, Result};
pub use crate::inputs::{Action, Input, ScoreFiles, TensorPlan};
use crate::ops::{MergeMethod, Params, method, methods};
use crate::options::RunOptions;
use crate::parts::Layout;
use crate::slices::Stack;
use crate::vocab::VocabPlan;
pub use describe::Detail;
pub(crate) use params::TensorParams;
use params::{Position, Resolver};
pub use resolve::Resolution;

mod describe;
mod open;
mod params;
mod resolve;
mod scores;
mod template;
mod tensors;

/// A checked, ready-to-run merge: every input opened and every tensor planned, nothing read
/// yet. Build it with [`MergePlan::new`], look at it with its accessors or
/// [`MergePlan::describe`], run it with `run`.
pub struct MergePlan {
    pub(crate) config: MergeConfig,
    pub(crate) method: Box<dyn MergeMethod>,
    pub(crate) base: Option<Input>,
    pub(crate) models: Vec<Input>,
    pub(crate) tensors: Vec<TensorPlan>,
    pub(crate) donor: PathBuf,
    pub(crate) warnings: Vec<String>,
    pub(crate) scores_checked: usize,
    pub(crate) layers: BTreeMap<String, usize>,
    pub(crate) stack: Option<Stack>,
    pub(crate) chat_template: Option<String>,
    pub(crate) vocab: Option<VocabPlan>,
    pub(crate) resolutions: Vec<Resolution>,
}

impl std::fmt::Debug for MergePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergePlan")
            .field("method", &self.method.name())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

pub(crate) fn config_err(path: &Path, key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Config {
        path: path.into(),
        key: key.into(),
        reason: reason.into(),
    }
}
impl MergePlan {
    /// The config, as written (model references as given: what the output's provenance
    /// records).
    pub fn config(&self) -> &MergeConfig {
        &self.config
    }

    /// The config's references to Hub repos and the cache snapshots they resolved to.
    pub fn resolutions(&self) -> &[Resolution] {
        &self.resolutions
    }

    /// The method.
    pub fn method(&self) -> &dyn MergeMethod {
        &*self.method
    }

    /// The base (every method but `linear` without `base_model` has one).
    pub fn base(&self) -> Option<&Input> {
        self.base.as_ref()
    }

    /// The models merged, base excluded, in config order.
    pub fn models(&self) -> &[Input] {
        &self.models
    }

    /// Output tensors, sorted by name.
    pub fn tensors(&self) -> &[TensorPlan] {
        &self.tensors
    }

    /// Where config and tokenizer files come from.
    pub fn donor(&self) -> &Path {
        &self.donor
    }

    /// Warnings found while planning.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Score files checked against the weights (or path) of the model they are paired with.
    pub fn scores_checked(&self) -> usize {
        self.scores_checked
    }

    /// The output's stacks of numbered layers (the decoder's `model.layers.`, a vision
    /// tower's, ...) and their layer counts: gradients are interpolated over each.
    pub fn layers(&self) -> &BTreeMap<String, usize> {
        &self.layers
    }

    /// With `slices`: the output's layers, slice by slice (gradients run over each slice).
    pub fn stack(&self) -> Option<&Stack> {
        self.stack.as_ref()
    }

    /// The output tokenizer's chat template (`chat_template`), resolved.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// With `tokenizer_source` or the `tokenizer` block: the output vocabulary, and where
    /// each input's embedding and head rows for it are.
    pub fn vocab(&self) -> Option<&VocabPlan> {
        self.vocab.as_ref()
    }

    /// Model `k`'s parameters for tensor `name`: its own, then the config's top-level
    /// `parameters` for the per-model parameters it does not set (mergekit's precedence).
    pub fn model_params(&self, k: usize, name: &str) -> Params {
        let (_, mut models) = self.resolver().tensor(name, &[k]);
        models.remove(0)
    }

    /// Model `k`'s key among the plan's inputs (the base first, when there is one).
    pub(crate) fn input_key(&self, k: usize) -> usize {
        k + usize::from(self.base.is_some())
    }

    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            method: &*self.method,
            config: &self.config,
            models: &self.models,
            stack: self.stack.as_ref(),
            layers: &self.layers,
        }
    }

    /// Tensor `t`'s parameters, resolved.
    pub(crate) fn tensor_params(&self, t: &TensorPlan) -> TensorParams {
        let (global, models) = self.resolver().tensor(&t.name, &t.inputs);
        TensorParams {
            models,
            global,
            scored: t.inputs.iter().all(|&k| {
                self.models[k]
                    .scores
                    .as_ref()
                    .is_some_and(|s| s.cover(&t.name))
            }),
        }
    }

    /// How tensor `t` is merged with `options`' part size.
    pub(crate) fn layout(&self, t: &TensorPlan, options: &RunOptions) -> Layout {
        let params = self.tensor_params(t);
        Layout::of(&*self.method, &params.setup(t), options)
    }

    /// The config's top-level parameters for tensor `name`.
    pub fn global_params(&self, name: &str) -> Params {
        Position::new(self.stack.as_ref(), name, &self.layers).global(&self.config)
    }

    /// Check `config` (its errors name the file it was read from) and open its inputs.
    pub fn new(config: MergeConfig) -> Result<Self> {
        let method = method(&config.merge_method).ok_or_else(|| {
            config_err(
                config.source(),
                "merge_method",
                format!(
                    "unknown method {:?} (implemented: {})",
                    config.merge_method,
                    methods().join(", ")
                ),
            )
        })?;
        Self::with_method(config, method)
    }

    /// Plan a merge with a method of your own (an implementation of [`MergeMethod`]) instead
    /// of a built-in one: the config's `merge_method` must be the method's name, and its
    /// parameters are checked against what the method declares, as for built-in methods.
    pub fn with_method(config: MergeConfig, method: Box<dyn MergeMethod>) -> Result<Self> {
        if config.merge_method != method.name() {
            return Err(config_err(
                config.source(),
                "merge_method",
                format!(
                    "is {:?} but the method given is {:?}",
                    config.merge_method,
                    method.name()
                ),
            ));
        }
        let (local, resolutions) = resolve::resolve(&config)?;
        let mut entries = params::check(&local, &*method)?;
        let out_dtype = tensors::out_dtype(&local)?;
        let ignored = std::mem::take(&mut entries.ignored);
        let inputs = open::inputs(&local, &*method, entries)?;
        let mut warnings = Vec::new();
        let planned = tensors::plan(&local, &*method, &inputs, out_dtype, ignored, &mut warnings)?;
        let paths: Vec<&Path> = inputs
            .base
            .iter()
            .chain(&inputs.models)
            .map(|m| m.path.as_path())
            .collect();
        let chat_template = template::resolve(
            config.source(),
            config.chat_template.as_deref(),
            &paths,
            &mut warnings,
        )?;
        let open::Opened {
            base,
            models,
            stack,
        } = inputs;
        let donor = base.as_ref().unwrap_or(&models[0]).path.clone();
        Ok(MergePlan {
            config,
            method,
            base,
            models,
            tensors: planned.tensors,
            donor,
            warnings,
            scores_checked: planned.scores_checked,
            layers: planned.layers,
            stack,
            chat_template,
            vocab: planned.vocab,
            resolutions,
        })
    }

    /// Bytes of tensor data the output will hold.
    pub fn output_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.numel() as u64 * t.dtype.size() as u64)
            .sum()
    }
}
