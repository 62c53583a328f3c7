//! Planning a merge: open every input, check names, shapes and dtypes, and decide per tensor
//! what to do, failing before anything is written (listing every offending tensor).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytesize::ByteSize;
use led_merging_io::{Checkpoint, Dtype, TensorInfo};

use crate::config::{MergeConfig, ModelEntry, Parameters};
use crate::error::{Error, Result};
use crate::inputs::same_path;
pub use crate::inputs::{Action, Input, ScoreFiles, TensorPlan};
use crate::ops::check_parameters;
use crate::ops::method as method_of;
use crate::ops::{MergeMethod, Params, TensorSetup, method, methods};
use crate::options::RunOptions;
use crate::parts::Layout;
use crate::slices::{Placement, Stack};
use crate::vocab::VocabPlan;
pub use led_merging_io::is_vocab_tensor;

/// A checked, ready-to-run merge.
pub struct MergePlan {
    /// The config.
    pub config: MergeConfig,
    /// Where the config came from.
    pub config_path: PathBuf,
    /// The method.
    pub method: Box<dyn MergeMethod>,
    /// The base (every method but `linear` without `base_model`).
    pub base: Option<Input>,
    /// The models merged, base excluded, in config order.
    pub models: Vec<Input>,
    /// Output tensors, sorted by name.
    pub tensors: Vec<TensorPlan>,
    /// Where config and tokenizer files come from.
    pub donor: PathBuf,
    /// Warnings found while planning.
    pub warnings: Vec<String>,
    /// Score files checked against the weights (or path) of the model they are paired with.
    pub scores_checked: usize,
    /// The output's stacks of numbered layers (the decoder's `model.layers.`, a vision
    /// tower's, ...) and their layer counts: gradients are interpolated over each.
    pub layers: BTreeMap<String, usize>,
    /// With `slices`: the output's layers, slice by slice (gradients run over each slice).
    pub stack: Option<Stack>,
    /// The output tokenizer's chat template (`chat_template`), resolved.
    pub chat_template: Option<String>,
    /// With `tokenizer_source` or the `tokenizer` block: the output vocabulary, and where
    /// each input's embedding and head rows for it are.
    pub vocab: Option<VocabPlan>,
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

/// The chat templates a config may name, as mergekit's (the formats, written for led).
const NAMED_TEMPLATES: [(&str, &str); 5] = [
    ("alpaca", include_str!("chat_templates/alpaca.jinja")),
    ("chatml", include_str!("chat_templates/chatml.jinja")),
    ("exaone", include_str!("chat_templates/exaone.jinja")),
    ("llama3", include_str!("chat_templates/llama3.jinja")),
    ("mistral", include_str!("chat_templates/mistral.jinja")),
];

/// mergekit's `chat_template` (read from `path`): `auto`, the template most of `inputs` have
/// (the first of them among equals; `None` when none has one), the name of one of
/// [`NAMED_TEMPLATES`] (`chatml`, ...), or a Jinja template.
fn chat_template(path: &Path, given: &str, inputs: &[&Path]) -> Result<Option<String>> {
    if given == "auto" {
        let found: Vec<String> = inputs
            .iter()
            .filter_map(|p| led_merging_io::chat_template_of(p))
            .collect();
        let count = |t: &String| found.iter().filter(|x| *x == t).count();
        // The first of the most common: `max_by_key` keeps the last maximum, so go in reverse.
        return Ok(found.iter().rev().max_by_key(|t| count(t)).cloned());
    }
    if given.len() < 256 && !given.contains('\n') && !given.contains('{') {
        return match NAMED_TEMPLATES.iter().find(|(name, _)| *name == given) {
            Some((_, template)) => Ok(Some((*template).to_owned())),
            None => Err(config_err(
                path,
                "chat_template",
                format!(
                    "{given:?} is not a template led knows ({}): give `auto` (the models' own template), one of those, or the Jinja template itself",
                    NAMED_TEMPLATES.map(|(n, _)| n).join(", ")
                ),
            )),
        };
    }
    if given.len() < 20 || !given.contains('{') {
        return Err(config_err(
            path,
            "chat_template",
            "not a Jinja template (expected `auto` or a template with `{%`/`{{`)",
        ));
    }
    Ok(Some(given.to_owned()))
}

fn parse_dtype(path: &Path, key: &str, text: &str) -> Result<Dtype> {
    match Dtype::parse(text) {
        Some(d) if d.writable_from_f32() => Ok(d),
        _ => Err(config_err(
            path,
            key,
            format!("{text:?} is not an output dtype (bfloat16, float16, float32, float64)"),
        )),
    }
}

/// `given` (the config's parameters at `key` of the file `path`) without the ones `method`
/// does not take (`here`) but another method does (`takes`): each dropped with a warning in
/// `ignored`, as mergekit ignores them. A name no method takes stays, for
/// [`check_parameters`] to refuse as a typo.
fn without_ignored(
    (path, key): (&Path, &str),
    given: &Parameters,
    here: &[crate::ops::ParamSpec],
    method: &dyn MergeMethod,
    takes: impl Fn(&dyn MergeMethod, &str) -> bool,
    ignored: &mut Vec<String>,
) -> Parameters {
    let mut kept = given.clone();
    kept.retain(|name, _| {
        let known_here = here.iter().any(|p| p.name == name);
        let known_elsewhere = methods()
            .iter()
            .filter_map(|m| method_of(m))
            .any(|m| takes(&*m, name));
        if !known_here && known_elsewhere {
            ignored.push(format!(
                "{}: {key}.{name} is ignored by {}",
                path.display(),
                method.name()
            ));
        }
        known_here || !known_elsewhere
    });
    kept
}

/// Where a tensor sits: its gradient position and, with `slices`, its slice.
struct Position<'a> {
    name: &'a str,
    t: f64,
    slice: Option<&'a Parameters>,
}

impl<'a> Position<'a> {
    fn new(stack: Option<&'a Stack>, name: &'a str, layers: &BTreeMap<String, usize>) -> Self {
        match stack {
            Some(s) => Position {
                name,
                t: s.t(name),
                slice: Some(&s.slice_of(name).parameters),
            },
            None => Position {
                name,
                t: crate::config::layer_t(name, layers),
                slice: None,
            },
        }
    }

    /// `params` resolved here (filters by name, gradients at `t`).
    fn resolve(&self, params: &Parameters) -> Params {
        Params(
            params
                .iter()
                .filter_map(|(k, s)| s.resolve(self.name, self.t).map(|v| (k.clone(), v)))
                .collect(),
        )
    }

    /// The top-level parameters here, under the slice's own (mergekit's precedence: a source's
    /// parameters, then its slice's, then the top level's).
    fn global(&self, config: &MergeConfig) -> Params {
        let mut p = self.resolve(&config.parameters);
        if let Some(slice) = self.slice {
            p.0.extend(self.resolve(slice).0);
        }
        p
    }
}

/// `own` (a model's parameters for one tensor) completed with `global`'s values of the
/// method's per-model parameters it does not set.
fn with_defaults(method: &dyn MergeMethod, mut own: Params, global: &Params) -> Params {
    for spec in method.model_params() {
        if !own.0.contains_key(spec.name)
            && let Some(v) = global.get(spec.name)
        {
            own.0.insert(spec.name.to_owned(), v.clone());
        }
    }
    own
}

/// Where to resolve parameters from: the method, the config, the inputs and where tensors sit.
struct Resolver<'a> {
    method: &'a dyn MergeMethod,
    config: &'a MergeConfig,
    models: &'a [Input],
    stack: Option<&'a Stack>,
    layers: &'a BTreeMap<String, usize>,
}

impl Resolver<'_> {
    /// Tensor `name`'s global parameters and those of each model of `inputs` (its own,
    /// completed by the global ones: mergekit's precedence).
    fn tensor(&self, name: &str, inputs: &[usize]) -> (Params, Vec<Params>) {
        let at = Position::new(self.stack, name, self.layers);
        let global = at.global(self.config);
        let models = inputs
            .iter()
            .map(|&k| with_defaults(self.method, at.resolve(&self.models[k].parameters), &global))
            .collect();
        (global, models)
    }
}

/// A tensor's resolved parameters, as its method sees them.
pub(crate) struct TensorParams {
    /// Per model holding the tensor, in order.
    pub models: Vec<Params>,
    /// The global ones.
    pub global: Params,
    /// Whether every model holding it has scores for it.
    pub scored: bool,
}

impl TensorParams {
    /// What the method sees of tensor `t` before reading it.
    pub(crate) fn setup<'a>(&'a self, t: &'a TensorPlan) -> TensorSetup<'a> {
        TensorSetup {
            name: &t.name,
            shape: &t.shape,
            global: &self.global,
            models: &self.models,
            scored: self.scored,
        }
    }
}

impl MergePlan {
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

    /// Check `config` (read from `config_path`) and open its inputs.
    pub fn new(config: MergeConfig, config_path: &Path) -> Result<Self> {
        let method = method(&config.merge_method).ok_or_else(|| {
            config_err(
                config_path,
                "merge_method",
                format!(
                    "unknown method {:?} (implemented: {})",
                    config.merge_method,
                    methods().join(", ")
                ),
            )
        })?;
        Self::with_method(config, config_path, method)
    }

    /// Plan a merge with a method of your own (an implementation of [`MergeMethod`]) instead
    /// of a built-in one: the config's `merge_method` must be the method's name, and its
    /// parameters are checked against what the method declares, as for built-in methods.
    pub fn with_method(
        config: MergeConfig,
        config_path: &Path,
        method: Box<dyn MergeMethod>,
    ) -> Result<Self> {
        let path = config_path;
        if config.merge_method != method.name() {
            return Err(config_err(
                path,
                "merge_method",
                format!(
                    "is {:?} but the method given is {:?}",
                    config.merge_method,
                    method.name()
                ),
            ));
        }
        // Top-level `parameters` also give defaults for the per-model ones (as in mergekit).
        let mut top_level: Vec<_> = method.global_params().to_vec();
        top_level.extend(
            method
                .model_params()
                .iter()
                .filter(|p| !method.global_params().iter().any(|g| g.name == p.name))
                .cloned(),
        );
        // A top-level parameter this method ignores but another one uses (`r` given to `ram`).
        let mut ignored = Vec::new();
        let given = without_ignored(
            (path, "parameters"),
            &config.parameters,
            &top_level,
            &*method,
            |m, name| {
                m.global_params()
                    .iter()
                    .chain(m.model_params())
                    .any(|p| p.name == name)
            },
            &mut ignored,
        );
        let mut errors = Vec::new();
        if let Err(e) = check_parameters(path, "parameters", &given, &top_level, method.name()) {
            errors.push(e);
        }
        for required in method.global_params().iter().filter(|p| p.required) {
            let required = required.name;
            if !config.parameters.contains_key(required) {
                errors.push(config_err(
                    path,
                    format!("parameters.{required}"),
                    format!("required by {}", method.name()),
                ));
            }
        }
        if method.needs_base() && config.base_model.is_none() {
            errors.push(config_err(
                path,
                "base_model",
                format!("required by {}", method.name()),
            ));
        }
        let base_path = config.base_model.clone();
        // `slices` become sources, each a model entry placed in the output's layers.
        let lowered = if config.slices.is_empty() {
            None
        } else {
            if method.needs_scores() {
                return Err(config_err(
                    path,
                    "slices",
                    format!("{} merges whole models: use `models`", method.name()),
                ));
            }
            Some(crate::slices::lower(&config, path, method.needs_base())?)
        };
        let entries: Vec<(String, ModelEntry, Option<Placement>)> = match &lowered {
            Some(l) => l
                .sources
                .iter()
                .map(|s| (s.label.clone(), s.entry.clone(), Some(s.placement)))
                .collect(),
            None => config
                .models
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("models[{i}]"), e.clone(), None))
                .collect(),
        };
        if entries.is_empty() {
            return Err(config_err(
                path,
                "models",
                "no models to merge: give `models` (or mergekit's `slices`)",
            ));
        }
        let mut model_entries = Vec::new();
        // Per-model parameters this method ignores but another one uses (`density` given to
        // `linear`).
        for (i, (label, entry, placement)) in entries.into_iter().enumerate() {
            let is_base = method.needs_base()
                && base_path
                    .as_deref()
                    .is_some_and(|b| same_path(b, &entry.model));
            if is_base {
                continue;
            }
            let at = label.as_str();
            let own = without_ignored(
                (path, &format!("{at}.parameters")),
                &entry.parameters,
                method.model_params(),
                &*method,
                |m, name| m.model_params().iter().any(|p| p.name == name),
                &mut ignored,
            );
            // Every entry is checked: the config's problems are reported together.
            let checked = (|| -> Result<()> {
                check_parameters(
                    path,
                    &format!("{at}.parameters"),
                    &own,
                    method.model_params(),
                    method.name(),
                )?;
                for required in method.model_params().iter().filter(|p| p.required) {
                    let required = required.name;
                    if !entry.parameters.contains_key(required)
                        && !config.parameters.contains_key(required)
                    {
                        return Err(config_err(
                            path,
                            format!("{at}.parameters.{required}"),
                            format!("required by {}", method.name()),
                        ));
                    }
                }
                if method.needs_scores() {
                    if entry.location.is_some() && entry.scores.is_none() {
                        return Err(Error::Unsupported(format!(
                            "{}: {at}.location: computing scores needs the Locate step (libtorch): run `led merge` from a build with the `attribution` feature (`make build`), or compute score checkpoints with `led locate` and give them as `scores: {{model: ..., base: ...}}`",
                            path.display()
                        )));
                    }
                    if entry.scores.is_none() {
                        return Err(config_err(
                            path,
                            at,
                            "led needs `scores: {model: PATH, base: PATH}` (or `location:`)",
                        ));
                    }
                } else if entry.scores.is_some() || entry.location.is_some() {
                    return Err(config_err(
                        path,
                        format!("{at}.scores"),
                        format!(
                            "only `merge_method: led` uses scores, not {}",
                            method.name()
                        ),
                    ));
                }
                Ok(())
            })();
            match checked {
                Ok(()) => model_entries.push((i, label, entry, placement)),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => {
                return Err(Error::Problems {
                    problems: errors.iter().map(ToString::to_string).collect(),
                });
            }
        }
        match &lowered {
            // With `slices`, a method's model count is per slice.
            Some(l) => {
                for (i, n) in l.models_per_slice().into_iter().enumerate() {
                    method.check_model_count(n).map_err(|r| {
                        config_err(
                            path,
                            format!("slices[{i}].sources"),
                            format!("{}: {r}", method.name()),
                        )
                    })?;
                }
            }
            None => method
                .check_model_count(model_entries.len())
                .map_err(|r| config_err(path, "models", format!("{}: {r}", method.name())))?,
        }

        let out_dtype = match (&config.out_dtype, &config.dtype) {
            (Some(t), _) => Some(parse_dtype(path, "out_dtype", t)?),
            (None, Some(t)) => Some(parse_dtype(path, "dtype", t)?),
            _ => None,
        };

        // A path that does not exist names its key, and where a relative one was looked for.
        let open = |key: String, p: &Path| -> Result<Checkpoint> {
            Checkpoint::open(p).map_err(|e| match e {
                led_merging_io::Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
                    let text = p.to_string_lossy();
                    let hint = if text.contains('+') {
                        " (`model+lora`, an adapter applied before merging, is not supported: \
                         merge the adapter into the model first, e.g. with peft's \
                         merge_and_unload, and give that directory)"
                            .to_owned()
                    } else if p.is_relative()
                        && !text.starts_with('.')
                        && text.matches('/').count() == 1
                    {
                        format!(
                            " (led reads local directories, not Hugging Face Hub ids: download it first, e.g. `huggingface-cli download {text} --local-dir models/{}`)",
                            text.rsplit('/').next().unwrap_or(&text)
                        )
                    } else if p.is_relative() {
                        format!(
                            " (relative paths in a config resolve from the current directory, {}, not from the config's folder)",
                            std::env::current_dir()
                                .map(|d| d.display().to_string())
                                .unwrap_or_else(|_| "?".into())
                        )
                    } else {
                        String::new()
                    };
                    config_err(path, key, format!("{}: {error}{hint}", p.display()))
                }
                e => e.into(),
            })
        };
        let base_input = |p: &Path| -> Result<Input> {
            Ok(Input {
                index: None,
                path: p.to_owned(),
                ckpt: open("base_model".into(), p)?,
                scores: None,
                parameters: Parameters::new(),
                label: "base_model".into(),
                view: None,
            })
        };
        let mut base = base_path.as_deref().map(base_input).transpose()?;
        let mut models = Vec::with_capacity(model_entries.len());
        // Per model, where its layers land in the output (with `slices`).
        let mut placements: Vec<Vec<Placement>> = Vec::with_capacity(model_entries.len());
        for (i, at, entry, placement) in model_entries {
            let scores = match &entry.scores {
                Some(s) => Some(ScoreFiles {
                    model: open(format!("{at}.scores.model"), &s.model)?,
                    base: open(format!("{at}.scores.base"), &s.base)?,
                }),
                None => None,
            };
            models.push(Input {
                index: Some(i),
                path: entry.model.clone(),
                ckpt: open(format!("{at}.model"), &entry.model)?,
                scores,
                parameters: entry.parameters.clone(),
                label: at,
                view: None,
            });
            placements.push(placement.into_iter().collect());
        }
        if method.base_is_input()
            && let Some(b) = &base_path
            && !models.iter().any(|m| same_path(b, &m.path))
        {
            // Last, as mergekit orders its inputs.
            models.push(base_input(b)?);
            placements.push(lowered.as_ref().map_or_else(Vec::new, |l| l.base.clone()));
        }
        // With `slices`, an input sees only its layers placed in the output, renamed.
        if let Some(l) = &lowered {
            let mut problems = Vec::new();
            let with_base = base.iter_mut().map(|b| (b, l.base.as_slice()));
            for (input, at) in
                with_base.chain(models.iter_mut().zip(placements.iter().map(Vec::as_slice)))
            {
                match crate::slices::view(&input.ckpt, &input.path, &input.label, at) {
                    Ok(v) => input.view = Some(v),
                    Err(why) => problems.push(why),
                }
            }
            if !problems.is_empty() {
                return Err(config_err(path, "slices", problems.join("; ")));
            }
        }
        let stack = lowered.map(|l| l.stack);

        let reference = base.as_ref().unwrap_or(&models[0]);
        let reference_tensors = match &stack {
            // Every output tensor, as its first holder has it.
            Some(_) => {
                let mut all = BTreeMap::new();
                for input in base.iter().chain(&models) {
                    for (name, info) in input.tensors() {
                        all.entry(name).or_insert(info);
                    }
                }
                all
            }
            None => reference.tensors().into_iter().collect(),
        };
        let mut warnings = Vec::new();
        let all: Vec<&Input> = base.iter().chain(&models).collect();
        let vocab = VocabPlan::new(&config, base_path.as_deref(), &all, &mut warnings)
            .map_err(|(key, reason)| config_err(path, key, reason))?;
        if vocab.is_some() && method.needs_scores() {
            return Err(config_err(
                path,
                "tokenizer_source",
                format!(
                    "{} scores every model's own embedding rows: merge with the base's vocabulary (no `tokenizer_source`)",
                    method.name()
                ),
            ));
        }
        let (mut tensors, found, mut problems) = plan_tensors(
            &reference_tensors,
            &reference.path,
            &models,
            out_dtype,
            vocab.is_some(),
        );
        warnings.extend(found);
        if let Some(v) = &vocab {
            for t in tensors.iter_mut().filter(|t| is_vocab_tensor(&t.name)) {
                t.shape[0] = v.rows;
            }
        }
        warnings.extend(ignored);
        let mut scores_checked = 0;
        if method.needs_scores() {
            let found =
                crate::score_files::check(base.as_ref(), &models, &tensors, &config.parameters)?;
            problems.extend(found.problems);
            warnings.extend(found.warnings);
            scores_checked = found.checked;
        }
        let mut layers = BTreeMap::new();
        for t in &tensors {
            if let Some((stack, l)) = led_merging_io::stack_layer(&t.name) {
                let count = layers.entry(stack.to_owned()).or_insert(0);
                *count = (*count).max(l + 1);
            }
        }
        // The method's own checks of every tensor's resolved parameters (DELLA's density ±
        // epsilon, ...): what the merge would refuse, the plan refuses, once per problem.
        let mut refused = std::collections::BTreeSet::new();
        let resolver = Resolver {
            method: &*method,
            config: &config,
            models: &models,
            stack: stack.as_ref(),
            layers: &layers,
        };
        for t in tensors.iter().filter(|t| t.action == Action::Merge) {
            let (global, params) = resolver.tensor(&t.name, &t.inputs);
            if let Err(why) = method.check_tensor(&global, &params) {
                // Indices in the message are the tensor's inputs; name the config's entries.
                if refused.insert(why.clone()) {
                    problems.push(format!("tensor {:?}: {}: {why}", t.name, method.name()));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::Incompatible { problems });
        }
        let donor = reference.path.clone();
        let chat_template = match config.chat_template.as_deref() {
            None => None,
            Some(given) => {
                let inputs: Vec<&Path> = base
                    .iter()
                    .chain(&models)
                    .map(|m| m.path.as_path())
                    .collect();
                let chosen = chat_template(path, given, &inputs)?;
                if chosen.is_none() {
                    warnings.push("chat_template: auto: no model has a chat template; the output keeps its tokenizer's".into());
                }
                chosen
            }
        };
        let config_path = config_path.to_path_buf();
        Ok(MergePlan {
            config,
            config_path,
            method,
            base,
            models,
            tensors,
            donor,
            warnings,
            scores_checked,
            layers,
            stack,
            chat_template,
            vocab,
        })
    }

    /// Bytes of tensor data the output will hold.
    pub fn output_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.numel() as u64 * t.dtype.size() as u64)
            .sum()
    }

    /// The plan as text (`--dry-run`): inputs, a summary of what happens to the tensors,
    /// warnings and the checks done; with `per_tensor`, one line per tensor (dtype, shape, how).
    pub fn describe(&self, per_tensor: bool, options: &RunOptions) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "method: {}", self.method.name());
        if let Some(b) = &self.base {
            let _ = writeln!(s, "base:   {}", b.path.display());
        }
        if let Some(stack) = &self.stack {
            let _ = writeln!(
                s,
                "layers: {} from {} slice(s): {}",
                stack.layers(),
                stack.slices.len(),
                stack
                    .slices
                    .iter()
                    .map(|x| format!("{}..{}", x.start, x.start + x.len))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for m in &self.models {
            let _ = writeln!(s, "model:  {} ({})", m.path.display(), m.label);
        }
        if let Some(v) = &self.vocab {
            let _ = writeln!(s, "{}", v.describe());
        }
        let width = self.tensors.iter().map(|t| t.name.len()).max().unwrap_or(4);
        let (mut merged, mut in_parts, mut copied) = (0, 0, 0);
        // The largest part a thread holds outside the budget's parts (a tensor merged whole).
        let mut largest_whole = 0;
        for t in &self.tensors {
            let what = match t.action {
                Action::Merge => {
                    merged += 1;
                    let layout = self.layout(t, options);
                    let row = crate::parts::rows_of(&t.shape).1;
                    if !layout.parallel {
                        let longest = layout.parts.iter().map(|r| r.len() * row).max();
                        largest_whole = largest_whole.max(longest.unwrap_or(0));
                    }
                    // Blocks of an element-by-element method are an execution detail.
                    let how = match layout.parts.len() {
                        n if n > 1 && !layout.parallel => {
                            in_parts += 1;
                            format!(", in {n} parts")
                        }
                        _ => String::new(),
                    };
                    format!("{} of {} model(s){how}", self.method.name(), t.inputs.len())
                }
                Action::Copy => {
                    copied += 1;
                    "copy (not a float tensor)".into()
                }
            };
            if per_tensor {
                let _ = writeln!(
                    s,
                    "  {:width$}  {:5}  {:16}  {what}",
                    t.name,
                    t.dtype.as_safetensors(),
                    format!("{:?}", t.shape)
                );
            }
        }
        let _ = writeln!(
            s,
            "tensors: {merged} merged by {} ({in_parts} of them in parts), {copied} copied{}",
            self.method.name(),
            if per_tensor {
                ""
            } else {
                " (one line per tensor with -v)"
            }
        );
        let _ = writeln!(
            s,
            "{}",
            options.describe_memory(self.models.len() + 1, largest_whole)
        );
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        if self.method.needs_scores() {
            let files = 2 * self.models.iter().filter(|m| m.scores.is_some()).count();
            let _ = writeln!(
                s,
                "scores: {} of {files} score file(s) checked against the weights of the model they are paired with; {}",
                self.scores_checked,
                if self.config.parameters.contains_key("missing_scores") {
                    "tensors without scores follow `missing_scores`"
                } else {
                    "every merged tensor has scores"
                }
            );
        }
        let _ = writeln!(
            s,
            "output: {} tensors, {}",
            self.tensors.len(),
            ByteSize(self.output_bytes()).display().si()
        );
        s
    }
}

fn describe(info: &TensorInfo) -> String {
    format!("{} {:?}", info.dtype, info.shape)
}

/// Check every tensor of every input against the reference's (`ref_names`, output name →
/// tensor, from the model at `reference`): the tensors' plans, warnings and every problem found.
fn plan_tensors(
    ref_names: &BTreeMap<&str, &TensorInfo>,
    reference: &Path,
    models: &[Input],
    out_dtype: Option<Dtype>,
    aligned: bool,
) -> (Vec<TensorPlan>, Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for m in models {
        for (name, _) in m.tensors() {
            if !ref_names.contains_key(name) {
                if name == "lm_head.weight" {
                    warnings.push(format!(
                        "{}: lm_head.weight ignored: the base ties it to the embeddings, and the output stays tied",
                        m.path.display()
                    ));
                } else {
                    problems.push(format!(
                        "{}: tensor {name:?} is not in the base {}",
                        m.path.display(),
                        reference.display()
                    ));
                }
            }
        }
    }
    let mut tensors = Vec::with_capacity(ref_names.len());
    for (&name, &info) in ref_names {
        let float = info.dtype.is_float() && info.dtype.readable_as_f32();
        let mut inputs = Vec::new();
        for (k, m) in models.iter().enumerate() {
            let Some(t) = m.get(name) else {
                continue;
            };
            let rows_only = is_vocab_tensor(name)
                && t.shape.len() == info.shape.len()
                && !t.shape.is_empty()
                && t.shape[1..] == info.shape[1..];
            if t.shape != info.shape && !rows_only {
                problems.push(format!(
                    "{}: tensor {name:?} is {} but the base has {}",
                    m.path.display(),
                    describe(t),
                    describe(info)
                ));
                continue;
            }
            if !aligned && t.shape != info.shape && t.shape[0] > info.shape[0] {
                warnings.push(format!(
                    "{}: tensor {name:?}: rows {}..{} beyond the base's vocabulary are dropped",
                    m.path.display(),
                    info.shape[0],
                    t.shape[0]
                ));
            }
            if float != (t.dtype.is_float() && t.dtype.readable_as_f32()) {
                problems.push(format!(
                    "{}: tensor {name:?} is {} but the base's is {}",
                    m.path.display(),
                    t.dtype,
                    info.dtype
                ));
                continue;
            }
            if let Some(ScoreFiles {
                model: ms,
                base: bs,
            }) = &m.scores
            {
                for (ckpt, whose, shape) in [(ms, "model", &t.shape), (bs, "base", &info.shape)] {
                    match ckpt.get(name) {
                        Some(s) if &s.shape != shape => problems.push(format!(
                            "{}: scores for tensor {name:?} have shape {:?} but the {whose} tensor has {:?}",
                            ckpt.path().display(),
                            s.shape,
                            shape
                        )),
                        Some(s) if !s.dtype.readable_as_f32() => {
                            problems.push(format!("{}: scores for tensor {name:?} are {}", ckpt.path().display(), s.dtype))
                        }
                        _ => {}
                    }
                }
            }
            inputs.push(k);
        }
        let (dtype, action) = if float {
            (out_dtype.unwrap_or(info.dtype), Action::Merge)
        } else {
            (info.dtype, Action::Copy)
        };
        tensors.push(TensorPlan {
            name: name.to_owned(),
            shape: info.shape.clone(),
            dtype,
            action,
            inputs,
        });
    }
    (tensors, warnings, problems)
}
