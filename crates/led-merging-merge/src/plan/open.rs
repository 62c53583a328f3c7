//! Stage 2: the inputs opened: the base, each entry's checkpoint and score files, the base as
//! one more input for methods that merge it like any model, and with `slices` each input's
//! view of the layers it gives. A path that does not exist names its config key.

use std::path::Path;

use led_merging_io::Checkpoint;

use super::params::Entries;
use super::{Input, ScoreFiles, config_err};
use crate::config::{MergeConfig, Parameters};
use crate::error::Result;
use crate::inputs::same_path;
use crate::ops::MergeMethod;
use crate::slices::{Placement, Stack};

/// The opened inputs of a plan.
pub(super) struct Opened {
    /// The base (every method but `linear` without `base_model`).
    pub base: Option<Input>,
    /// The models merged, base excluded, in config order.
    pub models: Vec<Input>,
    /// With `slices`: the output's layers, slice by slice.
    pub stack: Option<Stack>,
}

/// Open every input of `entries` (checked from `config`) for `method`.
pub(super) fn inputs(
    config: &MergeConfig,
    method: &dyn MergeMethod,
    entries: Entries,
) -> Result<Opened> {
    let path = config.source();
    let base_path = config.base_model.as_deref();
    let mut base = base_path.map(|b| base_input(path, b)).transpose()?;
    let mut models = Vec::with_capacity(entries.list.len());
    // Per model, where its layers land in the output (with `slices`).
    let mut placements: Vec<Vec<Placement>> = Vec::with_capacity(entries.list.len());
    for e in entries.list {
        let at = e.label;
        let scores = match &e.entry.scores {
            Some(s) => Some(ScoreFiles {
                model: open(path, format!("{at}.scores.model"), &s.model)?,
                base: open(path, format!("{at}.scores.base"), &s.base)?,
            }),
            None => None,
        };
        models.push(Input {
            index: Some(e.index),
            ckpt: open_model(path, format!("{at}.model"), &e.entry.model)?,
            path: e.entry.model,
            scores,
            parameters: e.entry.parameters,
            label: at,
            view: None,
        });
        placements.push(e.placement.into_iter().collect());
    }
    let lowered = entries.lowered;
    if method.base_is_input()
        && let Some(b) = base_path
        && !models.iter().any(|m| same_path(b, &m.path))
    {
        // Last, as mergekit orders its inputs.
        models.push(base_input(path, b)?);
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
    Ok(Opened {
        base,
        models,
        stack: lowered.map(|l| l.stack),
    })
}

/// The base at `p`, opened as an input.
fn base_input(config_path: &Path, p: &Path) -> Result<Input> {
    Ok(Input {
        index: None,
        path: p.to_owned(),
        ckpt: open_model(config_path, "base_model".into(), p)?,
        scores: None,
        parameters: Parameters::new(),
        label: "base_model".into(),
        view: None,
    })
}

/// The checkpoint at `p`, named by the config's key `key`: a path that does not exist names
/// its key, and where a relative one was looked for.
fn open(config_path: &Path, key: String, p: &Path) -> Result<Checkpoint> {
    Checkpoint::open(p).map_err(|e| match e {
        led_merging_io::Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            config_err(
                config_path,
                key,
                format!("{}: {error}{}", p.display(), not_found_hint(p)),
            )
        }
        e @ (led_merging_io::Error::Adapter { .. } | led_merging_io::Error::Pickle { .. }) => {
            config_err(config_path, key, e.to_string())
        }
        e => e.into(),
    })
}

/// The model at `p` ([`open`]), its `config.json` checked against its tensors: an input
/// transformers could not load either is said now, not after the merge.
fn open_model(config_path: &Path, key: String, p: &Path) -> Result<Checkpoint> {
    let ckpt = open(config_path, key.clone(), p)?;
    let shapes: Vec<(&str, &[usize])> = ckpt
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    let problems = led_merging_io::config_problems(ckpt.path(), &shapes)?;
    if !problems.is_empty() {
        return Err(config_err(
            config_path,
            key,
            format!(
                "{}: config.json disagrees with the tensors: {}",
                p.display(),
                problems.join("; ")
            ),
        ));
    }
    Ok(ckpt)
}

/// What a path that does not exist may have meant.
fn not_found_hint(p: &Path) -> String {
    let text = p.to_string_lossy();
    if text.contains('+') {
        " (`MODEL+ADAPTER` applies a LoRA adapter: MODEL must exist and ADAPTER be a \
         directory with an adapter_config.json; docs/models.md)"
            .to_owned()
    } else if p.is_relative() {
        format!(
            " (relative paths in a config resolve from the current directory, {}, not from the config's folder)",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "?".into())
        )
    } else {
        String::new()
    }
}
