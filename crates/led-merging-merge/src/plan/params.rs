//! Stage 1: the method's parameters, top level and per entry, checked against what the method
//! declares (mergekit's precedence: a source's parameters, then its slice's, then the top
//! level's), and how they resolve for each tensor.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Input, TensorPlan, config_err};
use crate::config::{MergeConfig, ModelEntry, Parameters};
use crate::error::{Error, Result};
use crate::inputs::same_path;
use crate::ops::method as method_of;
use crate::ops::{MergeMethod, ParamSpec, Params, TensorSetup, check_parameters, methods};
use crate::slices::{Lowered, Placement, Stack};

/// One model entry of the config (a `models` entry, or a slice's source), checked.
pub(super) struct Entry {
    /// Its position among the entries.
    pub index: usize,
    /// How errors name it: `models[2]`, `slices[1].sources[0]`.
    pub label: String,
    /// The entry.
    pub entry: ModelEntry,
    /// With `slices`: where its layers land in the output.
    pub placement: Option<Placement>,
}

/// The config's entries, checked: the models to open, and `slices` lowered.
pub(super) struct Entries {
    /// The models merged (an entry naming the base excluded), in config order.
    pub list: Vec<Entry>,
    /// With `slices`: the sources and the output's layer stack.
    pub lowered: Option<Lowered>,
    /// Warnings: parameters this method ignores but another one takes.
    pub ignored: Vec<String>,
}

/// Check `config`'s parameters and entries against `method`: every problem found is reported
/// together.
pub(super) fn check(config: &MergeConfig, method: &dyn MergeMethod) -> Result<Entries> {
    let path = config.source();
    let mut ignored = Vec::new();
    let mut errors = top_level(config, method, &mut ignored);
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
        Some(crate::slices::lower(config, path, method.needs_base())?)
    };
    // Per entry: its label, the entry, where its layers land, and its slice's `parameters`.
    let no_parameters = Parameters::new();
    let entries: Vec<(String, ModelEntry, Option<Placement>, &Parameters)> = match &lowered {
        Some(l) => l
            .sources
            .iter()
            .map(|s| {
                (
                    s.label.clone(),
                    s.entry.clone(),
                    Some(s.placement),
                    &config.slices[s.slice].parameters,
                )
            })
            .collect(),
        None => config
            .models
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("models[{i}]"), e.clone(), None, &no_parameters))
            .collect(),
    };
    if entries.is_empty() {
        return Err(config_err(
            path,
            "models",
            "no models to merge: give `models` (or mergekit's `slices`)",
        ));
    }
    let mut list = Vec::new();
    for (index, (label, entry, placement, slice_parameters)) in entries.into_iter().enumerate() {
        let is_base = method.needs_base()
            && config
                .base_model
                .as_deref()
                .is_some_and(|b| same_path(b, &entry.model));
        if is_base {
            continue;
        }
        // Every entry is checked: the config's problems are reported together.
        match check_entry(
            config,
            method,
            (&label, slice_parameters),
            &entry,
            &mut ignored,
        ) {
            Ok(()) => list.push(Entry {
                index,
                label,
                entry,
                placement,
            }),
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
    check_model_count(path, method, lowered.as_ref(), list.len())?;
    Ok(Entries {
        list,
        lowered,
        ignored,
    })
}

/// The top-level `parameters` and `base_model`: the problems found.
fn top_level(
    config: &MergeConfig,
    method: &dyn MergeMethod,
    ignored: &mut Vec<String>,
) -> Vec<Error> {
    let path = config.source();
    // Top-level `parameters` also give defaults for the per-model ones (as in mergekit).
    let mut accepted: Vec<_> = method.global_params().to_vec();
    accepted.extend(
        method
            .model_params()
            .iter()
            .filter(|p| !method.global_params().iter().any(|g| g.name == p.name))
            .copied(),
    );
    // A top-level parameter this method ignores but another one uses (`r` given to `ram`).
    let given = without_ignored(
        (path, "parameters"),
        &config.parameters,
        &accepted,
        method,
        |m, name| {
            m.global_params()
                .iter()
                .chain(m.model_params())
                .any(|p| p.name == name)
        },
        ignored,
    );
    let mut errors = Vec::new();
    if let Err(e) = check_parameters(path, "parameters", &given, &accepted, method.name()) {
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
    errors
}

/// One entry's parameters (per-model parameters this method ignores but another one uses,
/// `density` given to `linear`, go to `ignored`) and score inputs. `at` is how errors name
/// the entry, with its slice's `parameters` (which give a source's missing ones, as mergekit
/// reads them: the source's own, then its slice's, then the top-level ones).
fn check_entry(
    config: &MergeConfig,
    method: &dyn MergeMethod,
    (at, slice_parameters): (&str, &Parameters),
    entry: &ModelEntry,
    ignored: &mut Vec<String>,
) -> Result<()> {
    let path = config.source();
    let own = without_ignored(
        (path, &format!("{at}.parameters")),
        &entry.parameters,
        method.model_params(),
        method,
        |m, name| m.model_params().iter().any(|p| p.name == name),
        ignored,
    );
    check_parameters(
        path,
        &format!("{at}.parameters"),
        &own,
        method.model_params(),
        method.name(),
    )?;
    for required in method.model_params().iter().filter(|p| p.required) {
        let required = required.name;
        if ![&entry.parameters, slice_parameters, &config.parameters]
            .iter()
            .any(|p| p.contains_key(required))
        {
            return Err(config_err(
                path,
                format!("{at}.parameters.{required}"),
                format!("required by {}", method.name()),
            ));
        }
    }
    super::scores::check_entry(path, method, at, entry)
}

/// The method's own check of how many models it merges (per slice, with `slices`).
fn check_model_count(
    path: &Path,
    method: &dyn MergeMethod,
    lowered: Option<&Lowered>,
    models: usize,
) -> Result<()> {
    match lowered {
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
            Ok(())
        }
        None => method
            .check_model_count(models)
            .map_err(|r| config_err(path, "models", format!("{}: {r}", method.name()))),
    }
}

/// `given` (the config's parameters at `key` of the file `path`) without the ones `method`
/// does not take (`here`) but another method does (`takes`): each dropped with a warning in
/// `ignored`, as mergekit ignores them. A name no method takes stays, for
/// [`check_parameters`] to refuse as a typo.
fn without_ignored(
    (path, key): (&Path, &str),
    given: &Parameters,
    here: &[ParamSpec],
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
pub(super) struct Position<'a> {
    name: &'a str,
    t: f64,
    slice: Option<&'a Parameters>,
}

impl<'a> Position<'a> {
    pub(super) fn new(
        stack: Option<&'a Stack>,
        name: &'a str,
        layers: &BTreeMap<String, usize>,
    ) -> Self {
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
    pub(super) fn global(&self, config: &MergeConfig) -> Params {
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
pub(super) struct Resolver<'a> {
    pub method: &'a dyn MergeMethod,
    pub config: &'a MergeConfig,
    pub models: &'a [Input],
    pub stack: Option<&'a Stack>,
    pub layers: &'a BTreeMap<String, usize>,
}

impl Resolver<'_> {
    /// Tensor `name`'s global parameters and those of each model of `inputs` (its own,
    /// completed by the global ones: mergekit's precedence).
    pub(super) fn tensor(&self, name: &str, inputs: &[usize]) -> (Params, Vec<Params>) {
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
