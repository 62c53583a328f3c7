//! Score files checked against the models they are paired with, before anything is merged
//! (docs/merging.md, "Score files are checked"): a wrong file is an error, never a quiet merge.
//!
//! - Each file records the model it was computed on (the weights' fingerprint, else its path):
//!   it must be the model (or, for `base:`, the base) it is paired with.
//! - One file serves one role: the same file for two tasks, or for a model and its base, is an
//!   error. The one exception: a base score file may serve several tasks when it records the
//!   same data (content hash) and scorer as each of their model scores.
//! - A task's model and base scores come from the same data and scorer.
//! - Every tensor the method merges has scores in both files of every task, unless the config
//!   opts in with `missing_scores: base` (or `task_arithmetic`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use led_merging_io::{
    Checkpoint, ScoreMetadata, meta::WEIGHTS_FINGERPRINT_OPTION, weights_fingerprint,
};

use crate::config::{Parameters, Scalar};

/// The name `led locate --scorer random` records (`led.scores.scorer`): its scores read no data.
const RANDOM_SCORER: &str = "random";
use crate::error::Result;
use crate::inputs::{Action, Input, ScoreFiles, TensorPlan};

/// Problems (each an error) and warnings about the score files of `models`.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Score files checked against their models' weights or paths.
    pub checked: usize,
}

/// Where an input sits in the config, for messages.
fn role_of(m: &Input) -> String {
    format!("models[{}]", m.index.unwrap_or(0))
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Check every score file of `models` (paired with `base`) for a merge of `tensors`.
pub(crate) fn check(
    base: Option<&Input>,
    models: &[Input],
    tensors: &[TensorPlan],
    global: &Parameters,
) -> Result<Findings> {
    let mut f = Findings::default();
    // Fingerprints of every input, computed once: the base first, then the models.
    let mut inputs: Vec<(String, &Input)> = Vec::new();
    if let Some(b) = base {
        inputs.push(("the base".to_owned(), b));
    }
    inputs.extend(models.iter().map(|m| (role_of(m), m)));
    let mut prints = Vec::with_capacity(inputs.len());
    for (_, input) in &inputs {
        prints.push(weights_fingerprint(&input.ckpt)?);
    }
    let print_of = |input: &Input| {
        inputs
            .iter()
            .position(|(_, i)| std::ptr::eq(*i, input))
            .map(|k| prints[k].as_str())
    };
    let mut roles: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    // Base score files shown to come from the same data and scorer as a task's model scores,
    // with how many tasks they were shown for.
    let mut same_data: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for m in models {
        let Some(ScoreFiles {
            model: ms,
            base: bs,
        }) = &m.scores
        else {
            continue;
        };
        let at = role_of(m);
        let mut records = Vec::new();
        for (ckpt, slot, paired, paired_name) in [
            (ms, "model", Some(m), at.clone()),
            (bs, "base", base, "the base".to_owned()),
        ] {
            let role = format!("{at}.scores.{slot}");
            roles
                .entry(canonical(ckpt.path()))
                .or_default()
                .push(role.clone());
            let Ok(record) = ScoreMetadata::from_map(ckpt.path(), ckpt.metadata()) else {
                f.warnings.push(format!(
                    "{}: {role} has no led.scores metadata: which model it was computed on is not checked",
                    ckpt.path().display()
                ));
                records.push(None);
                continue;
            };
            if let Some(paired) = paired {
                if let Some(problem) = wrong_model(
                    ckpt,
                    &role,
                    &record,
                    paired,
                    &paired_name,
                    print_of(paired),
                    &inputs,
                    &prints,
                ) {
                    f.problems.push(problem);
                } else {
                    f.checked += 1;
                }
            }
            records.push(Some(record));
        }
        if let [Some(a), Some(b)] = &records[..] {
            // The random scorer reads no data: its scores are the same whatever a task's data.
            let data_free = a.scorer == RANDOM_SCORER;
            if (data_free || !a.dataset_sha256.is_empty())
                && a.dataset_sha256 == b.dataset_sha256
                && !a.scorer.is_empty()
                && a.scorer == b.scorer
            {
                *same_data.entry(canonical(bs.path())).or_default() += 1;
            }
            for (what, x, y) in [
                ("data", &a.dataset_sha256, &b.dataset_sha256),
                ("scorer", &a.scorer, &b.scorer),
            ] {
                if !x.is_empty() && !y.is_empty() && x != y {
                    f.problems.push(format!(
                        "{at}.scores: the model's and the base's scores must come from the same {what}: {} ({}) vs {} ({})",
                        ms.path().display(),
                        if what == "data" { &a.dataset } else { x },
                        bs.path().display(),
                        if what == "data" { &b.dataset } else { y },
                    ));
                }
            }
        }
    }
    for (path, used) in &roles {
        if used.len() < 2 {
            continue;
        }
        let all_base = used.iter().all(|r| r.ends_with(".scores.base"));
        if all_base && same_data.get(path) == Some(&used.len()) {
            // One base, scored once on the data every one of these tasks was scored on.
            continue;
        }
        f.problems.push(format!(
            "{}: the same score file serves {}: {}",
            path.display(),
            used.join(" and "),
            if all_base {
                "a base score file serves several tasks only when it records the same data \
                 (content hash) and scorer as each task's model scores (or the random scorer, \
                 which reads no data)"
            } else {
                "each task's model and base need their own scores"
            }
        ));
    }
    missing(models, tensors, global, &mut f);
    Ok(f)
}

/// The problem with a score file computed on another model than `paired`, if any.
#[allow(clippy::too_many_arguments)]
fn wrong_model(
    ckpt: &Checkpoint,
    role: &str,
    record: &ScoreMetadata,
    paired: &Input,
    paired_name: &str,
    paired_print: Option<&str>,
    inputs: &[(String, &Input)],
    prints: &[String],
) -> Option<String> {
    let here = ckpt.path().display();
    if let Some(recorded) = record.options.get(WEIGHTS_FINGERPRINT_OPTION) {
        if Some(recorded.as_str()) == paired_print {
            return None;
        }
        let other = prints.iter().position(|p| p == recorded).map(|k| {
            format!(
                " It was computed on {} ({}).",
                inputs[k].0,
                inputs[k].1.path.display()
            )
        });
        return Some(format!(
            "{here}: {role} was computed on {}, not on {paired_name} ({}): the weights differ.{} Pair it with the model it was computed on, or recompute it (`led locate`); a model copied or rewritten since also changes its weights' fingerprint.",
            record.model,
            paired.path.display(),
            other.unwrap_or_default()
        ));
    }
    if record.model.is_empty() || canonical(Path::new(&record.model)) == canonical(&paired.path) {
        return None;
    }
    let other = inputs
        .iter()
        .find(|(_, i)| canonical(&i.path) == canonical(Path::new(&record.model)))
        .map(|(name, _)| format!(" That is {name}."))
        .unwrap_or_default();
    Some(format!(
        "{here}: {role} was computed on {}, not on {paired_name} ({}).{other} Pair it with the model it was computed on, or recompute it (`led locate`).",
        record.model,
        paired.path.display()
    ))
}

/// Tensors merged without scores: an error listing them, or with `missing_scores` one warning.
fn missing(models: &[Input], tensors: &[TensorPlan], global: &Parameters, f: &mut Findings) {
    let fallback = global
        .get("missing_scores")
        .map(|v| match v.resolve("", 0.0) {
            Some(Scalar::Text(t)) => t.clone(),
            _ => "base".to_owned(),
        });
    for (k, m) in models.iter().enumerate() {
        let Some(ScoreFiles {
            model: ms,
            base: bs,
        }) = &m.scores
        else {
            continue;
        };
        for (ckpt, slot) in [(ms, "model"), (bs, "base")] {
            let absent: Vec<&str> = tensors
                .iter()
                .filter(|t| t.action == Action::Merge && t.inputs.contains(&k))
                .filter(|t| !ckpt.contains(&t.name))
                .map(|t| t.name.as_str())
                .collect();
            if absent.is_empty() {
                continue;
            }
            let merged = tensors
                .iter()
                .filter(|t| t.action == Action::Merge && t.inputs.contains(&k))
                .count();
            let what = format!(
                "{}: {}.scores.{slot} has no scores for {} of the {merged} tensors merged ({})",
                ckpt.path().display(),
                role_of(m),
                absent.len(),
                summarize(&absent)
            );
            match &fallback {
                Some(how) => f
                    .warnings
                    .push(format!("{what}: merged as {how} (missing_scores)")),
                None => f.problems.push(format!(
                    "{what}. Compute scores for the whole model (`led locate`), or set `parameters: {{missing_scores: base}}` (or `task_arithmetic`) to merge those tensors without LED"
                )),
            }
        }
    }
}

/// A short description of tensor names: the layers they fall in, their kinds, the first few.
fn summarize(names: &[&str]) -> String {
    let mut layers = std::collections::BTreeSet::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for n in names {
        let mut kind = *n;
        if let Some((l, k)) = led_merging_io::decoder_layer(n)
            && !k.is_empty()
        {
            layers.insert(l);
            kind = k;
        }
        *kinds.entry(kind).or_default() += 1;
    }
    let mut parts = Vec::new();
    if !layers.is_empty() {
        parts.push(format!("layers {}", ranges(&layers)));
    }
    let mut by_count: Vec<_> = kinds.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = by_count
        .iter()
        .take(4)
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect();
    let more = by_count.len().saturating_sub(4);
    parts.push(format!(
        "{}{}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more kind(s)")
        } else {
            String::new()
        }
    ));
    let first: Vec<&str> = names.iter().take(3).copied().collect();
    parts.push(format!("first: {}", first.join(", ")));
    parts.join("; ")
}

/// `0–3, 7, 9–11` from a set of numbers.
fn ranges(set: &std::collections::BTreeSet<usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        out.push(if end == start {
            start.to_string()
        } else {
            format!("{start}–{end}")
        });
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_layers_kinds_and_the_first_tensors() {
        let names = [
            "model.layers.15.mlp.up_proj.weight",
            "model.layers.15.self_attn.q_proj.weight",
            "model.layers.16.mlp.up_proj.weight",
            "model.layers.17.mlp.up_proj.weight",
            "model.layers.29.mlp.up_proj.weight",
            "model.norm.weight",
        ];
        assert_eq!(
            summarize(&names),
            "layers 15–17, 29; mlp.up_proj.weight ×4, model.norm.weight ×1, \
             self_attn.q_proj.weight ×1; first: model.layers.15.mlp.up_proj.weight, \
             model.layers.15.self_attn.q_proj.weight, model.layers.16.mlp.up_proj.weight"
        );
    }
}
