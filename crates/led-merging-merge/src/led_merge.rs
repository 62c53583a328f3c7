//! A few-lines API for an LED-Merging run: base, tasks (model, λ, r, scores or a dataset),
//! election pattern, disjoint, output. The `led` command's `location:` entries go through
//! [`resolve_locations`] too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use led_merging_io::Dtype;
use led_merging_mask::{Pattern, TensorStats};

use crate::config::{Location, MergeConfig, ModelEntry, Scalar, ScorePaths, Setting};
use crate::engine::{MergeReport, reports_of, run, survey};
use crate::error::Result;
use crate::options::RunOptions;
use crate::plan::MergePlan;

/// Where a task's importance scores come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Scores {
    /// Score checkpoints already computed (`led locate`, or another tool).
    Files {
        /// Scores of the fine-tuned model on the task's data.
        model: PathBuf,
        /// Scores of the base on the same data.
        base: PathBuf,
    },
    /// Compute them (needs the `attribution` feature): SNIP on the first `samples` records.
    Locate {
        /// JSONL or CSV calibration data.
        data: PathBuf,
        /// Number of samples.
        samples: u64,
    },
}

/// One task of an LED merge: a fine-tuned model, where its scores come from, its mask ratio r
/// (`density`, required) and its scale λ (`weight`, default 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    model: PathBuf,
    scores: Scores,
    weight: Option<f32>,
    density: Option<f64>,
    priority: bool,
}

impl Task {
    /// The fine-tuned `model` with its `scores`.
    pub fn new(model: impl Into<PathBuf>, scores: Scores) -> Self {
        Task {
            model: model.into(),
            scores,
            weight: None,
            density: None,
            priority: false,
        }
    }

    /// λ: the scale of this task's masked task vector (default 1).
    pub fn weight(mut self, lambda: f32) -> Self {
        self.weight = Some(lambda);
        self
    }

    /// r: the share of each tensor's weights elected by both the base's and this model's scores.
    pub fn density(mut self, r: f64) -> Self {
        self.density = Some(r);
        self
    }

    /// Safety priority (one task at most): inside this task's election, its task vector alone
    /// (docs/how-led-works.md, "Safety priority").
    pub fn priority(mut self) -> Self {
        self.priority = true;
        self
    }
}

/// An LED-Merging run, built in a few calls.
///
/// ```no_run
/// use led_merging_merge::{LedMerge, Scores, Task};
/// let files = |model: &str, base: &str| Scores::Files { model: model.into(), base: base.into() };
/// let report = LedMerge::new("models/llama-3-8b")
///     .task(Task::new("models/instruct", files("s/instruct.safetensors", "s/base-safety.safetensors")).density(0.1))
///     .task(Task::new("models/math", files("s/math.safetensors", "s/base-math.safetensors")).density(0.4))
///     .run("merged")?;
/// println!("{} tensors elected", report.tensor_reports.len());
/// # Ok::<(), led_merging_merge::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LedMerge {
    base: PathBuf,
    tasks: Vec<Task>,
    election: Pattern,
    disjoint: bool,
    out_dtype: Option<Dtype>,
    options: RunOptions,
}

impl LedMerge {
    /// Start from the base model.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        LedMerge {
            base: base.into(),
            tasks: Vec::new(),
            election: Pattern::BothHigh,
            disjoint: true,
            out_dtype: None,
            options: RunOptions::default(),
        }
    }

    /// Add a task.
    pub fn task(mut self, task: Task) -> Self {
        self.tasks.push(task);
        self
    }

    /// The election pattern of every task (default `11`).
    pub fn election(mut self, pattern: Pattern) -> Self {
        self.election = pattern;
        self
    }

    /// Remove weights elected by several tasks (default true).
    pub fn disjoint(mut self, on: bool) -> Self {
        self.disjoint = on;
        self
    }

    /// Output dtype (default: the base's).
    pub fn out_dtype(mut self, dtype: Dtype) -> Self {
        self.out_dtype = Some(dtype);
        self
    }

    /// Engine options (threads, shard size, overwrite, progress).
    pub fn options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// The equivalent mergekit-style config (what `led merge` would read).
    pub fn config(&self) -> MergeConfig {
        let num = |x: f64| Setting::Scalar(Scalar::Number(x));
        let models = self
            .tasks
            .iter()
            .map(|task| {
                let mut parameters = BTreeMap::new();
                if let Some(w) = task.weight {
                    parameters.insert("weight".to_string(), num(f64::from(w)));
                }
                if let Some(r) = task.density {
                    parameters.insert("density".to_string(), num(r));
                }
                if task.priority {
                    parameters.insert("priority".to_string(), Setting::Scalar(Scalar::Bool(true)));
                }
                let (scores, location) = match &task.scores {
                    Scores::Files { model, base } => (
                        Some(ScorePaths {
                            model: model.clone(),
                            base: base.clone(),
                        }),
                        None,
                    ),
                    Scores::Locate { data, samples } => (
                        None,
                        Some(Location {
                            data: data.clone(),
                            samples: Some(*samples),
                            scorer: None,
                        }),
                    ),
                };
                ModelEntry {
                    model: task.model.clone(),
                    parameters,
                    scores,
                    location,
                }
            })
            .collect();
        let mut parameters = BTreeMap::new();
        parameters.insert(
            "election".to_string(),
            Setting::Scalar(Scalar::Text(self.election.as_str().into())),
        );
        parameters.insert(
            "disjoint".to_string(),
            Setting::Scalar(Scalar::Bool(self.disjoint)),
        );
        MergeConfig {
            merge_method: "led".into(),
            base_model: Some(self.base.clone()),
            models,
            slices: Vec::new(),
            parameters,
            dtype: None,
            out_dtype: self.out_dtype.map(|d| d.torch_name().to_owned()),
            random_seed: None,
            tokenizer_source: None,
            tokenizer: None,
            chat_template: None,
            name: None,
            source: "<LedMerge>".into(),
        }
    }

    /// Check everything, compute missing scores (with `attribution`), merge into `out`.
    pub fn run(&self, out: impl AsRef<Path>) -> Result<MergeReport> {
        let out = out.as_ref();
        #[allow(unused_mut)]
        let mut config = self.config();
        #[cfg(feature = "attribution")]
        resolve_locations(&mut config, out, &self.options)?;
        let plan = MergePlan::new(config)?;
        run(&plan, out, &self.options)
    }
}

/// Below this share of a task's task-vector energy kept by an LED merge (‖m ⊙ τ‖² / ‖τ‖², over
/// every merged tensor), `led merge` and `led analyze --config` warn. The SmolLM2 experiment
/// (docs/experiments/smollm2.md) sets it: every LED setting that kept less than half of
/// ‖τ_safety‖² refused less than task arithmetic (90 %): 0–32 % when it kept 0.0–42 % (in bf16,
/// f32, LoRA and 5×-longer fine-tunes alike), 72 % with safety priority keeping 31.5 %; math,
/// kept at 81–89 %, survived.
pub const KEPT_ENERGY_WARNING: f64 = 0.5;

/// One warning per model of `plan` whose LED election (`stats`, as [`led_election`] or a
/// merge's report gives it) keeps less than [`KEPT_ENERGY_WARNING`] of its task vector's
/// energy; none when the energies are unknown (0).
pub fn kept_energy_warnings(
    plan: &MergePlan,
    stats: &BTreeMap<String, TensorStats>,
) -> Vec<String> {
    let Some(total) = TensorStats::sum(stats.values()) else {
        return Vec::new();
    };
    plan.models()
        .iter()
        .zip(&total.tasks)
        .enumerate()
        .filter(|(_, (_, t))| t.energy > 0.0 && t.kept_energy / t.energy < KEPT_ENERGY_WARNING)
        .map(|(i, (m, t))| {
            format!(
                "models[{i}] ({}): the LED merge keeps {:.1} % of its task vector's energy \
                 (‖m ⊙ τ‖² / ‖τ‖²), below {:.0} %: on SmolLM2 every merge keeping less than half \
                 of the safety task's lost refusals against task arithmetic (docs/experiments/smollm2.md). \
                 Raise its density, set `disjoint: false`, or give it `priority: true`",
                m.path.display(),
                100.0 * t.kept_energy / t.energy,
                100.0 * KEPT_ENERGY_WARNING
            )
        })
        .collect()
}

/// LED's election for every merged tensor of `plan`, as [`run`] would report it in
/// [`MergeReport::reports`] (the energies of the task vectors kept included: the weights are
/// read as a merge reads them); nothing is written. An error for methods other than `led`.
pub fn led_election(
    plan: &MergePlan,
    options: &RunOptions,
) -> Result<BTreeMap<String, TensorStats>> {
    if plan.method().name() != crate::ops::MergeMethod::name(&crate::ops::Led) {
        return Err(crate::error::Error::Unsupported(format!(
            "the election needs merge_method: led, not {}",
            plan.method().name()
        )));
    }
    Ok(reports_of(&survey(plan, options)?))
}

/// A score file [`resolve_locations`] computed or reused.
#[cfg(feature = "attribution")]
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedScores {
    /// The score checkpoint.
    pub path: PathBuf,
    /// An existing file answered the request (nothing was computed).
    pub reused: bool,
}

/// For every `location:` entry of an LED config, compute (or reuse) the score checkpoints of the
/// model and of the base on that dataset in `OUT.scores/`, and point the entry at them.
/// Returns each score file with whether it was reused. `options.progress` shows Locate's
/// progress.
#[cfg(feature = "attribution")]
pub fn resolve_locations(
    config: &mut MergeConfig,
    out: &Path,
    options: &RunOptions,
) -> Result<Vec<LocatedScores>> {
    use led_merging_attribution::{DataOptions, LocateOptions, Scorer};
    let mut done = Vec::new();
    let Some(base) = config.base_model.clone() else {
        return Ok(done);
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "merged".into());
    let dir = out.with_file_name(format!("{name}.scores"));
    let source = config.source().to_path_buf();
    for (i, entry) in config.models.iter_mut().enumerate() {
        let Some(loc) = entry.location.clone() else {
            continue;
        };
        if entry.scores.is_some() {
            continue;
        }
        let scorer_name = loc.scorer.as_deref().unwrap_or("snip");
        let scorer = Scorer::parse(scorer_name).ok_or_else(|| crate::error::Error::Config {
            path: source.clone(),
            key: format!("models[{i}].location.scorer"),
            reason: format!("{scorer_name:?} is not snip, wanda, random or grad"),
        })?;
        std::fs::create_dir_all(&dir).map_err(|error| led_merging_io::Error::Io {
            path: dir.clone(),
            error,
        })?;
        let mut data = DataOptions::default();
        if let Some(samples) = loc.samples {
            data.samples = samples as usize;
        }
        let locate_options = LocateOptions {
            scorer,
            data,
            progress: options.progress,
            ..Default::default()
        };
        let stem = loc
            .data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Each task's own pair: one file serves one role (docs/merging.md), so two tasks on the
        // same data (or data files of the same name) never share the base's scores.
        let model_scores = dir.join(format!("models{i}-{stem}-{scorer_name}.safetensors"));
        let base_scores = dir.join(format!("models{i}-base-{stem}-{scorer_name}.safetensors"));
        for (model, path) in [(&entry.model, &model_scores), (&base, &base_scores)] {
            let report =
                led_merging_attribution::locate(model, Some(&loc.data), path, &locate_options)?;
            done.push(LocatedScores {
                path: path.clone(),
                reused: report.reused,
            });
        }
        entry.scores = Some(ScorePaths {
            model: model_scores,
            base: base_scores,
        });
        entry.location = None;
    }
    Ok(done)
}
