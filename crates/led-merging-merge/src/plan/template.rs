//! Stage 5: the output's chat template (`chat_template`), as mergekit resolves it.

use std::path::Path;

use super::config_err;
use crate::error::Result;

/// The chat templates a config may name, as mergekit's (the formats, written for led).
const NAMED_TEMPLATES: [(&str, &str); 5] = [
    ("alpaca", include_str!("../chat_templates/alpaca.jinja")),
    ("chatml", include_str!("../chat_templates/chatml.jinja")),
    ("exaone", include_str!("../chat_templates/exaone.jinja")),
    ("llama3", include_str!("../chat_templates/llama3.jinja")),
    ("mistral", include_str!("../chat_templates/mistral.jinja")),
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

/// The chat template `config_path`'s `chat_template` (`given`) asks for, over the inputs at
/// `inputs`; a warning in `warnings` when `auto` finds none.
pub(super) fn resolve(
    config_path: &Path,
    given: Option<&str>,
    inputs: &[&Path],
    warnings: &mut Vec<String>,
) -> Result<Option<String>> {
    let Some(given) = given else {
        return Ok(None);
    };
    let chosen = chat_template(config_path, given, inputs)?;
    if chosen.is_none() {
        warnings.push(
            "chat_template: auto: no model has a chat template; the output keeps its tokenizer's"
                .into(),
        );
    }
    Ok(chosen)
}
