//! Stage 4 (methods that rank weights by score files, [`MergeMethod::needs_scores`]): each
//! entry gives its score files (or a `location:` to compute them), and the files are checked
//! against the models they are paired with (`score_files.rs`) before anything is merged.

use std::path::Path;

use super::{Input, TensorPlan, config_err};
use crate::config::{ModelEntry, Parameters};
use crate::error::{Error, Result};
use crate::ops::MergeMethod;
use crate::score_files::Findings;

/// Entry `at` of the config at `path` gives score files exactly when `method` takes them.
pub(super) fn check_entry(
    path: &Path,
    method: &dyn MergeMethod,
    at: &str,
    entry: &ModelEntry,
) -> Result<()> {
    if !method.needs_scores() {
        if entry.scores.is_some() || entry.location.is_some() {
            return Err(config_err(
                path,
                format!("{at}.scores"),
                format!("{} takes no score files", method.name()),
            ));
        }
        return Ok(());
    }
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
            format!(
                "{} needs `scores: {{model: PATH, base: PATH}}` (or `location:`)",
                method.name()
            ),
        ));
    }
    Ok(())
}

/// The score files of `models` (paired with `base`) checked for a merge of `tensors`; nothing
/// to check for a method that takes none.
pub(super) fn check_files(
    method: &dyn MergeMethod,
    base: Option<&Input>,
    models: &[Input],
    tensors: &[TensorPlan],
    global: &Parameters,
) -> Result<Findings> {
    if !method.needs_scores() {
        return Ok(Findings::default());
    }
    crate::score_files::check(base, models, tensors, global)
}
