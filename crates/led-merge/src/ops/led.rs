//! `led`: LED-Merging (docs/how-led-works.md, Elect to Merge): elect each task's weights from
//! the base's and the fine-tuned model's scores, drop weights elected by several tasks, add the
//! masked task vectors. Per model `weight` = λ_i, `density` = r_i, optional `election`; global
//! `election` (default "11"), `disjoint` (default true), `missing_scores` (`base` or
//! `task_arithmetic`), `neg_prune` (default false: the authors' score convention, electing the
//! lowest scores of every tensor but the embedding and lm_head; docs/how-led-works.md).

use led_mask::{LedTask, Pattern, led_masks, led_masks_at, led_tensor, led_tensor_at};

use super::{
    Chunking, MergeMethod, ParamSpec, Params, TensorJob, TensorNote, WEIGHT, boolean, pattern,
    ratio,
};
use crate::config::Scalar;
use crate::error::{Error, Result};

/// LED-Merging.
#[derive(Debug, Clone, Copy)]
pub struct Led;

const DENSITY: ParamSpec = ParamSpec {
    name: "density",
    check: ratio,
};
const ELECTION: ParamSpec = ParamSpec {
    name: "election",
    check: pattern,
};
const DISJOINT: ParamSpec = ParamSpec {
    name: "disjoint",
    check: boolean,
};
const NEG_PRUNE: ParamSpec = ParamSpec {
    name: "neg_prune",
    check: boolean,
};
const MISSING: ParamSpec = ParamSpec {
    name: "missing_scores",
    check: |v| match v {
        Scalar::Text(s) if s == "base" || s == "task_arithmetic" => Ok(()),
        other => Err(format!(
            "expected \"base\" or \"task_arithmetic\", got {other}"
        )),
    },
};

fn pattern_of(v: Option<&Scalar>) -> Pattern {
    match v {
        Some(Scalar::Text(s)) => s.parse().unwrap_or_default(),
        Some(Scalar::Number(n)) => format!("{:02}", *n as u32).parse().unwrap_or_default(),
        _ => Pattern::BothHigh,
    }
}

impl MergeMethod for Led {
    fn name(&self) -> &'static str {
        "led"
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[WEIGHT, DENSITY, ELECTION]
    }
    fn required_model_params(&self) -> &'static [&'static str] {
        &["density"]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[ELECTION, DISJOINT, MISSING, NEG_PRUNE]
    }
    fn needs_scores(&self) -> bool {
        true
    }
    fn chunking(&self, _global: &Params, models: &[Params]) -> Chunking {
        // Validated by the plan: every model has a density.
        Chunking::Thresholds(models.iter().map(|p| p.number_or("density", 1.0)).collect())
    }
    fn prepare_scores(&self, tensor: &str, global: &Params, scores: &mut [f32]) -> Result<()> {
        if elects_lowest(tensor, global) {
            led_mask::lowest_first(tensor, scores)?;
        }
        Ok(())
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let base = job.base("led")?;
        let Some((tasks, disjoint)) = tasks(job)? else {
            // A tensor without scores, allowed by `missing_scores`: merged as the base (default)
            // or by task arithmetic (docs/merging.md, "Score files are checked").
            let fallback = match job.global.get("missing_scores") {
                Some(Scalar::Text(s)) if s == "task_arithmetic" => "task_arithmetic",
                _ => "base",
            };
            out.copy_from_slice(base);
            if fallback == "task_arithmetic" {
                for m in &job.models {
                    let w = m.params.number_or("weight", 1.0) as f32;
                    out.iter_mut()
                        .zip(m.values)
                        .zip(base)
                        .for_each(|((o, x), b)| *o += w * (x - b));
                }
            }
            // The plan refuses tensors without scores unless `missing_scores` opts in, and
            // then warns once for all of them.
            return Ok(Vec::new());
        };
        let given: Option<Vec<_>> = job.models.iter().map(|m| m.thresholds).collect();
        let stats = match given {
            Some(thresholds) => led_tensor_at(job.name, base, &tasks, &thresholds, disjoint, out),
            None => led_tensor(job.name, base, &tasks, disjoint, out),
        }
        .map_err(Error::from)?;
        Ok(vec![TensorNote::Led(stats)])
    }
}

impl Led {
    /// The election alone (masks' statistics, no merge) for `job`, whose weights may be empty:
    /// what [`MergeMethod::merge`] would report, or nothing when the tensor has no scores.
    pub fn election(job: &TensorJob<'_>) -> Result<Vec<TensorNote>> {
        let Some((tasks, disjoint)) = tasks(job)? else {
            return Ok(Vec::new());
        };
        let len = tasks.first().map_or(0, |t| t.base_scores.len());
        let given: Option<Vec<_>> = job.models.iter().map(|m| m.thresholds).collect();
        let (_, stats) = match given {
            Some(thresholds) => led_masks_at(job.name, len, &tasks, &thresholds, disjoint),
            None => led_masks(job.name, len, &tasks, disjoint),
        }
        .map_err(Error::from)?;
        Ok(vec![TensorNote::Led(stats)])
    }
}

/// Whether `neg_prune` applies to `tensor`: the authors' locate scripts negate the scores of
/// Linear and norm weights, not those of the embedding and the output head.
fn elects_lowest(tensor: &str, global: &Params) -> bool {
    global.bool_or("neg_prune", false)
        && !matches!(
            led_mask::classify(tensor).1,
            led_mask::TensorKind::Embed | led_mask::TensorKind::LmHead
        )
}

/// Each model's LED task for `job` and whether disjoint is on; `None` when some model has no
/// scores for this tensor.
fn tasks<'a>(job: &TensorJob<'a>) -> Result<Option<(Vec<LedTask<'a>>, bool)>> {
    if job.models.iter().any(|m| m.scores.is_none()) {
        return Ok(None);
    }
    let global_pattern = pattern_of(job.global.get("election"));
    let tasks = job
        .models
        .iter()
        .map(|m| {
            let (model_scores, base_scores) = m.scores.expect("checked above");
            let density = job.model_number(m, "density", "led")?;
            Ok(LedTask {
                model: m.values,
                base_scores,
                model_scores,
                ratio: density,
                lambda: m.params.number_or("weight", 1.0) as f32,
                pattern: m
                    .params
                    .get("election")
                    .map(|p| pattern_of(Some(p)))
                    .unwrap_or(global_pattern),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Some((tasks, job.global.bool_or("disjoint", true))))
}
