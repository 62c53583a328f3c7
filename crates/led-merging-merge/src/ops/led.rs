//! `led`: LED-Merging (docs/how-led-works.md, Elect to Merge): elect each task's weights from
//! the base's and the fine-tuned model's scores, drop weights elected by several tasks, add the
//! masked task vectors. Per model `weight` = λ_i, `density` = r_i, optional `election`; global
//! `election` (default "11"), `disjoint` (default true), `missing_scores` (`base` or
//! `task_arithmetic`), `neg_prune` (default false: the authors' score convention, electing the
//! lowest scores of every tensor but the embedding and lm_head; docs/how-led-works.md); per
//! model `priority` (default false; one model at most: the authors' safety priority, inside
//! that model's election its task vector alone, docs/how-led-works.md).

use led_merging_mask::{
    LedTask, Pattern, StreamingThreshold, TaskThresholds, TensorStats, add_energies, led_masks,
    led_masks_at, led_tensor, led_tensor_at,
};

use super::method::{
    Chunking, MergeMethod, Reads, Streamed, TensorJob, TensorNote, TensorReport, TensorSetup,
    TensorStream,
};
use super::params::{ParamSpec, Params, WEIGHT, boolean, pattern, ratio};
use crate::config::Scalar;
use crate::error::{Error, Result};

/// LED-Merging.
#[derive(Debug, Clone, Copy)]
pub struct Led;

/// λ_i: LED adds each masked task vector whole unless told otherwise.
const LAMBDA_I: ParamSpec = WEIGHT.or(1.0);
/// r_i, required.
const DENSITY: ParamSpec = ParamSpec::new("density", ratio).required();
const ELECTION: ParamSpec = ParamSpec::new("election", pattern);
const DISJOINT: ParamSpec = ParamSpec::new("disjoint", boolean).or_flag(true);
const NEG_PRUNE: ParamSpec = ParamSpec::new("neg_prune", boolean).or_flag(false);
/// The authors' safety priority: inside this model's election, its task vector alone.
const PRIORITY: ParamSpec = ParamSpec::new("priority", boolean).or_flag(false);
const MISSING: ParamSpec = ParamSpec::new("missing_scores", |v| match v {
    Scalar::Text(s) if s == "base" || s == "task_arithmetic" => Ok(()),
    other => Err(format!(
        "expected \"base\" or \"task_arithmetic\", got {other}"
    )),
});

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
        &[LAMBDA_I, DENSITY, ELECTION, PRIORITY]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[ELECTION, DISJOINT, MISSING, NEG_PRUNE]
    }
    fn needs_scores(&self) -> bool {
        true
    }
    fn check_tensor(&self, _global: &Params, models: &[Params]) -> Result<(), String> {
        let with: Vec<usize> = (0..models.len())
            .filter(|&i| models[i].flag(&PRIORITY))
            .collect();
        match with[..] {
            [first, second, ..] => Err(format!(
                "models[{first}] and models[{second}] both have `priority`: at most one model may"
            )),
            _ => Ok(()),
        }
    }
    fn chunking(&self, t: &TensorSetup<'_>) -> Chunking {
        // Without scores the tensor falls back to a per-element rule (`missing_scores`).
        if t.scored {
            Chunking::Streamed
        } else {
            Chunking::Elementwise
        }
    }
    fn stream(&self, t: &TensorSetup<'_>) -> Result<Box<dyn TensorStream>> {
        let selects = t
            .models
            .iter()
            .map(|p| {
                let ratio = p.number(DENSITY.name).ok_or_else(|| {
                    Error::op(t.name, "led", "a model has no `density` for this tensor")
                })?;
                let select = || StreamingThreshold::new(t.name, t.numel(), ratio);
                Ok([select()?, select()?])
            })
            .collect::<Result<_>>()?;
        Ok(Box::new(ThresholdStream {
            selects,
            done: Vec::new(),
        }))
    }
    fn prepare_scores(&self, tensor: &str, global: &Params, scores: &mut [f32]) -> Result<()> {
        if elects_lowest(tensor, global) {
            led_merging_mask::lowest_first(tensor, scores)?;
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
                    let w = m.params.value(&LAMBDA_I) as f32;
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
        let stats = match job.streamed::<Vec<TaskThresholds>>() {
            Some(thresholds) => led_tensor_at(job.name, base, &tasks, thresholds, disjoint, out),
            None => led_tensor(job.name, base, &tasks, disjoint, out),
        }
        .map_err(Error::from)?;
        Ok(vec![TensorNote::Report(Box::new(stats))])
    }

    /// The election alone (masks' statistics, no merge): what [`MergeMethod::merge`] would
    /// report, or nothing when the tensor has no scores.
    fn survey(&self, job: &TensorJob<'_>) -> Result<Vec<TensorNote>> {
        let Some((tasks, disjoint)) = tasks(job)? else {
            return Ok(Vec::new());
        };
        let len = tasks.first().map_or(0, |t| t.base_scores.len());
        let (masks, mut stats) = match job.streamed::<Vec<TaskThresholds>>() {
            Some(thresholds) => led_masks_at(job.name, len, &tasks, thresholds, disjoint),
            None => led_masks(job.name, len, &tasks, disjoint),
        }
        .map_err(Error::from)?;
        // With the weights read, the task vectors' energy kept, as the merge reports it.
        if let Ok(base) = job.base("led")
            && base.len() == len
        {
            add_energies(job.name, &mut stats, base, &tasks, &masks)?;
        }
        Ok(vec![TensorNote::Report(Box::new(stats))])
    }
}

impl TensorReport for TensorStats {
    fn absorb(&mut self, part: &dyn TensorReport) {
        if let Some(part) = part.downcast::<TensorStats>() {
            self.add(part);
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Whether `neg_prune` applies to `tensor`: the authors' locate scripts negate the scores of
/// Linear and norm weights, not those of the embedding and the output head.
fn elects_lowest(tensor: &str, global: &Params) -> bool {
    global.flag(&NEG_PRUNE)
        && !matches!(
            led_merging_mask::classify(tensor).1,
            led_merging_mask::TensorKind::Embed | led_merging_mask::TensorKind::LmHead
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
            let scores = m.scores.expect("checked above");
            let density = job.model_number(m, DENSITY.name, "led")?;
            Ok(LedTask {
                model: m.values,
                base_scores: scores.base,
                model_scores: scores.model,
                ratio: density,
                lambda: m.params.value(&LAMBDA_I) as f32,
                pattern: m
                    .params
                    .get("election")
                    .map(|p| pattern_of(Some(p)))
                    .unwrap_or(global_pattern),
                priority: m.params.flag(&PRIORITY),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Some((tasks, job.global.flag(&DISJOINT))))
}

/// Each task's top-r thresholds over its two whole score tensors, selected over the parts;
/// every part gets them all.
struct ThresholdStream {
    /// Per task: the selections over the base's and the model's scores.
    selects: Vec<[StreamingThreshold; 2]>,
    done: Vec<TaskThresholds>,
}

impl TensorStream for ThresholdStream {
    fn reads(&self) -> Reads {
        Reads::Scores
    }
    fn needs_pass(&self) -> bool {
        self.selects
            .iter()
            .flatten()
            .any(StreamingThreshold::needs_pass)
    }
    fn feed(&mut self, part: &TensorJob<'_>) -> Result<()> {
        for (select, m) in self.selects.iter_mut().zip(&part.models) {
            let scores = m
                .scores
                .ok_or_else(|| Error::op(part.name, "led", "scores missing from a part"))?;
            for (s, values) in select.iter_mut().zip([scores.base, scores.model]) {
                if s.needs_pass() {
                    s.feed(values)?;
                }
            }
        }
        Ok(())
    }
    fn end_pass(&mut self) -> Result<()> {
        for s in self.selects.iter_mut().flatten() {
            if s.needs_pass() {
                s.end_pass()?;
            }
        }
        if !self.needs_pass() {
            self.done = std::mem::take(&mut self.selects)
                .into_iter()
                .map(|[base, model]| TaskThresholds {
                    base: base.finish(),
                    model: model.finish(),
                })
                .collect();
        }
        Ok(())
    }
    fn hand_out(&mut self, _part: &TensorJob<'_>) -> Result<Streamed> {
        Ok(Box::new(self.done.clone()))
    }
}
