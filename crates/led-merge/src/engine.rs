//! Running a plan: tensor by tensor (in parallel across tensors), reading inputs as f32,
//! merging, and writing through `led-io`'s atomic streaming writer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use led_io::{Checkpoint, CheckpointWriter, TensorSpec, WriterOptions, Written, meta};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::{ModelTensor, TensorJob, TensorNote};
use crate::plan::{Action, MergePlan, TensorPlan, resolve};

/// How to run a merge.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Replace an existing output.
    pub force: bool,
    /// Worker threads (tensors merged at once); 0 = all cores. Peak memory grows with it.
    pub threads: usize,
    /// Shard budget in bytes.
    pub max_shard_size: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            force: false,
            threads: 0,
            max_shard_size: led_io::DEFAULT_MAX_SHARD_SIZE,
            progress: false,
        }
    }
}

/// What a merge did.
#[derive(Debug)]
pub struct MergeReport {
    /// The output.
    pub written: Written,
    /// Warnings (planning and per tensor).
    pub warnings: Vec<String>,
    /// LED statistics per tensor.
    pub led: BTreeMap<String, led_mask::TensorStats>,
}

/// Read `name` from `ckpt` as f32 aligned to the reference's `rows` (vocabulary rule, spec
/// §4): missing rows come from `fill` (the base's values, or zeros for scores), extra rows are
/// dropped.
fn read_aligned(
    ckpt: &Checkpoint,
    name: &str,
    shape: &[usize],
    fill: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let info = ckpt.info(name)?;
    let want: usize = shape.iter().product();
    if info.shape == shape {
        return Ok(ckpt.read_f32(name)?);
    }
    let row: usize = shape[1..].iter().product();
    let have_rows = info.shape[0].min(shape[0]);
    let mut out = ckpt.read_f32_range(name, 0..have_rows * row)?;
    out.reserve(want - out.len());
    match fill {
        Some(f) => out.extend_from_slice(&f[have_rows * row..want]),
        None => out.resize(want, 0.0),
    }
    Ok(out)
}

fn merge_tensor(
    plan: &MergePlan,
    t: &TensorPlan,
    writer: &CheckpointWriter,
    seed: u64,
) -> Result<Vec<TensorNote>> {
    let reference = plan.base.as_ref().unwrap_or(&plan.models[0]);
    if t.action == Action::Copy {
        writer.write_bytes(&t.name, &reference.ckpt.read_bytes(&t.name)?)?;
        return Ok(Vec::new());
    }
    let base = match &plan.base {
        Some(b) => Some(b.ckpt.read_f32(&t.name)?),
        None => None,
    };
    let fill = base.as_deref();
    let mut values = Vec::with_capacity(t.inputs.len());
    let mut scores = Vec::with_capacity(t.inputs.len());
    for &k in &t.inputs {
        let m = &plan.models[k];
        values.push(read_aligned(&m.ckpt, &t.name, &t.shape, fill)?);
        scores.push(match &m.scores {
            Some((ms, bs)) if ms.contains(&t.name) && bs.contains(&t.name) => Some((
                read_aligned(ms, &t.name, &t.shape, None)?,
                bs.read_f32(&t.name)?,
            )),
            _ => None,
        });
    }
    let params: Vec<_> = t
        .inputs
        .iter()
        .map(|&k| resolve(&plan.models[k].parameters, &t.name))
        .collect();
    let global = resolve(&plan.config.parameters, &t.name);
    let job = TensorJob {
        name: &t.name,
        shape: &t.shape,
        base: base.as_deref(),
        models: t
            .inputs
            .iter()
            .enumerate()
            .map(|(j, &k)| ModelTensor {
                index: plan.models[k].index.unwrap_or(k),
                values: &values[j],
                params: &params[j],
                scores: scores[j]
                    .as_ref()
                    .map(|(m, b)| (m.as_slice(), b.as_slice())),
            })
            .collect(),
        global: &global,
        seed,
    };
    let mut out = vec![0f32; t.numel()];
    let notes = if job.models.is_empty() {
        // No model holds this tensor: keep the base's (or reference's) values.
        out.copy_from_slice(&reference.ckpt.read_f32(&t.name)?);
        Vec::new()
    } else {
        plan.method.merge(&job, &mut out)?
    };
    if let Some(bad) = out.iter().position(|x| !x.is_finite()) {
        return Err(Error::op(
            &t.name,
            plan.method.name(),
            format!(
                "result is not finite at element {bad}: the inputs hold NaN or infinite values"
            ),
        ));
    }
    writer.write_f32(&t.name, &out)?;
    Ok(notes)
}

fn model_card(plan: &MergePlan, yaml: &str) -> String {
    let mut s = String::from("---\ntags:\n- merge\n- led-merging\n---\n# Merged model\n\n");
    s += &format!(
        "Merged with [led-merging]({}) {} using `{}`.\n\n",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION"),
        plan.method.name()
    );
    if let Some(b) = &plan.base {
        s += &format!("Base model: `{}`\n\n", b.path.display());
    }
    s += "Models:\n";
    for m in &plan.models {
        s += &format!("- `{}`\n", m.path.display());
    }
    s += &format!("\n## Configuration\n\n```yaml\n{yaml}```\n");
    s
}

/// Run `plan` into the directory `out`.
pub fn run(plan: &MergePlan, out: &Path, options: &RunOptions) -> Result<MergeReport> {
    let yaml = plan.config.to_yaml();
    let inputs: Vec<String> = plan
        .base
        .iter()
        .chain(&plan.models)
        .map(|i| i.path.display().to_string())
        .collect();
    let mut metadata = BTreeMap::new();
    metadata.insert(meta::TOOL.to_string(), meta::tool_version());
    metadata.insert(meta::KIND.to_string(), meta::KIND_MERGE.to_string());
    metadata.insert(
        meta::MERGE_METHOD.to_string(),
        plan.method.name().to_string(),
    );
    metadata.insert(meta::MERGE_CONFIG.to_string(), yaml.clone());
    metadata.insert(
        meta::MERGE_INPUTS.to_string(),
        serde_json::to_string(&inputs).expect("strings"),
    );
    let specs = plan
        .tensors
        .iter()
        .map(|t| TensorSpec::new(&t.name, t.dtype, t.shape.clone()))
        .collect();
    let writer = CheckpointWriter::create_dir(
        out,
        specs,
        WriterOptions {
            max_shard_size: options.max_shard_size,
            overwrite: options.force,
            metadata,
        },
    )?;
    let seed = plan.config.random_seed.unwrap_or(0);
    let bar = if options.progress {
        ProgressBar::new(plan.output_bytes())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {binary_bytes}/{binary_total_bytes} {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message("merging");
    let notes = Mutex::new(Vec::new());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| Error::Unsupported(format!("thread pool: {e}")))?;
    pool.install(|| {
        plan.tensors.par_iter().with_max_len(1).try_for_each(|t| {
            tracing::debug!(tensor = %t.name, "merging");
            let n = merge_tensor(plan, t, &writer, seed)?;
            bar.inc(t.numel() as u64 * t.dtype.size() as u64);
            notes
                .lock()
                .expect("not poisoned")
                .push((t.name.clone(), n));
            Ok::<_, Error>(())
        })
    })?;
    bar.finish_and_clear();
    let out_dtype = plan
        .tensors
        .iter()
        .find(|t| t.action == Action::Merge)
        .map(|t| t.dtype);
    writer.copy_model_files(&plan.donor, out_dtype)?;
    writer.add_file("README.md", model_card(plan, &yaml).as_bytes())?;
    let written = writer.finish()?;
    let mut warnings = plan.warnings.clone();
    let mut led = BTreeMap::new();
    let mut notes = notes.into_inner().expect("not poisoned");
    notes.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, list) in notes {
        for note in list {
            match note {
                TensorNote::Warning(w) => warnings.push(format!("tensor {name:?}: {w}")),
                TensorNote::Led(stats) => {
                    led.insert(name.clone(), stats);
                }
            }
        }
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(MergeReport {
        written,
        warnings,
        led,
    })
}
