//! `led demo`: the embedded default. It builds a small Llama-shaped model family on disk
//! (base plus two fine-tunes, sharded BF16 Hugging Face checkpoints with config.json), then
//! streams through it with the workspace's crates and reports what it did.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use bytesize::ByteSize;
use led_merging_io::{Checkpoint, CheckpointWriter, Dtype, LlamaShape, TensorSpec, WriterOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shape of the generated family: a tiny Llama with grouped-query attention.
const SHAPE: LlamaShape = LlamaShape {
    vocab: 512,
    hidden: 128,
    intermediate: 344,
    layers: 4,
    heads: 4,
    kv_heads: 2,
    positions: 256,
    tied: false,
};

/// File that marks a directory as the demo's own output.
const DEMO_MARKER: &str = ".led-demo";

/// Shard budget for the demo's checkpoints: small, so that sharding is exercised.
const DEMO_SHARD_SIZE: u64 = 400_000;

/// Base weights: norms at 1, matrices uniform in ±1/sqrt(fan_in).
fn base_values(spec: &TensorSpec, rng: &mut ChaCha8Rng) -> Vec<f32> {
    if spec.shape.len() == 1 {
        return vec![1.0; spec.numel()];
    }
    let scale = 1.0 / (spec.shape[1] as f32).sqrt();
    (0..spec.numel())
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect()
}

fn write_model(
    dir: &Path,
    specs: &[TensorSpec],
    config: &serde_json::Value,
    mut values: impl FnMut(&TensorSpec) -> Vec<f32>,
) -> Result<()> {
    let options = WriterOptions {
        max_shard_size: DEMO_SHARD_SIZE,
        overwrite: true,
        ..Default::default()
    };
    let writer = CheckpointWriter::create_dir(dir, specs.to_vec(), options)?;
    for spec in specs {
        writer.write_f32(&spec.name, &values(spec))?;
    }
    writer.add_file(
        led_merging_io::CONFIG_FILE,
        serde_json::to_string_pretty(config)?.as_bytes(),
    )?;
    writer.finish()?;
    Ok(())
}

/// The spec's `random` scorer: uniform scores from a generator keyed by (seed, tensor name).
fn write_random_scores(path: &Path, specs: &[TensorSpec], model: &Path, seed: u64) -> Result<()> {
    let record = led_merging_io::ScoreMetadata {
        scorer: "random".into(),
        model: model.display().to_string(),
        dataset: "(none: random scorer)".into(),
        seed,
        ..Default::default()
    };
    let f32_specs: Vec<TensorSpec> = specs
        .iter()
        .map(|s| TensorSpec::new(&s.name, Dtype::F32, s.shape.clone()))
        .collect();
    let options = WriterOptions {
        overwrite: true,
        metadata: record.to_map(),
        ..Default::default()
    };
    let writer = CheckpointWriter::create_file(path, f32_specs.clone(), options)?;
    for s in &f32_specs {
        let key = s.name.bytes().fold(seed, |h, b| {
            h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b))
        });
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        let values: Vec<f32> = (0..s.numel()).map(|_| rng.random::<f32>()).collect();
        writer.write_f32(&s.name, &values)?;
    }
    writer.finish()?;
    Ok(())
}

/// For each task vector τ_i = θ_i − θ_b: ⟨θ_m − θ_b, τ_i⟩ / ‖τ_i‖².
fn retained(base: &Path, tasks: &[&PathBuf], merged: &Path) -> Result<Vec<f64>> {
    let (b, m) = (Checkpoint::open(base)?, Checkpoint::open(merged)?);
    let models: Vec<Checkpoint> = tasks
        .iter()
        .map(Checkpoint::open)
        .collect::<Result<_, _>>()?;
    let mut dot = vec![0f64; tasks.len()];
    let mut norm = vec![0f64; tasks.len()];
    for info in b.tensors() {
        let bv = b.read_f32(&info.name)?;
        let mv = m.read_f32(&info.name)?;
        for (i, model) in models.iter().enumerate() {
            let tv = model.read_f32(&info.name)?;
            for ((x, y), z) in bv.iter().zip(&tv).zip(&mv) {
                let tau = f64::from(y - x);
                dot[i] += tau * f64::from(z - x);
                norm[i] += tau * tau;
            }
        }
    }
    Ok(dot
        .iter()
        .zip(&norm)
        .map(|(d, n)| d / n.max(f64::MIN_POSITIVE))
        .collect())
}

/// Arguments of `led demo`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  led demo\n  led demo --synthetic --out /tmp/demo")]
pub struct Args {
    /// Where the demo writes its models and report.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Write into OUT even if it exists and was not made by the demo.
    #[arg(long)]
    pub force: bool,
    /// The quick synthetic demo (random weights and scores) instead of the trained experiment.
    #[arg(long)]
    pub synthetic: bool,
}

/// The demo replaces its own earlier output, and nothing else unless forced.
fn claim_output(out: &Path, force: bool) -> Result<()> {
    let marker = out.join(DEMO_MARKER);
    let foreign = out
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
        && !marker.exists();
    if foreign && !force {
        anyhow::bail!(
            "{}: exists and was not written by `led demo` (use --force to write into it)",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(
        &marker,
        "written by `led demo`; rerunning the demo replaces this directory's models\n",
    )
    .with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

/// The model family: a base and two fine-tunes that move different weights, as
/// `(name, directory)`.
fn write_family(out: &Path, specs: &[TensorSpec]) -> Result<Vec<(&'static str, PathBuf)>> {
    let config = SHAPE.config(Dtype::BF16);
    let mut rng = ChaCha8Rng::seed_from_u64(2025);
    let base: Vec<Vec<f32>> = specs.iter().map(|s| base_values(s, &mut rng)).collect();
    let models: Vec<(&'static str, PathBuf)> = ["base", "safety", "math"]
        .iter()
        .map(|n| (*n, out.join(n)))
        .collect();
    for (k, (name, dir)) in models.iter().enumerate() {
        let mut idx = 0;
        let mut tune = ChaCha8Rng::seed_from_u64(7 + k as u64);
        write_model(dir, specs, &config, |_| {
            let mut v = base[idx].clone();
            idx += 1;
            if k > 0 {
                // A sparse task vector: 5 % of the weights move by up to ±0.02.
                for x in v.iter_mut() {
                    if tune.random::<f32>() < 0.05 {
                        *x += (tune.random::<f32>() * 2.0 - 1.0) * 0.02;
                    }
                }
            }
            v
        })?;
        let ckpt = Checkpoint::open(dir)?;
        let shards: std::collections::BTreeSet<_> =
            ckpt.tensors().iter().map(|t| &t.shard).collect();
        println!(
            "  wrote {name:7} {} tensors, {} in {} shards",
            ckpt.tensors().len(),
            ByteSize(ckpt.total_bytes()).display().si(),
            shards.len()
        );
    }
    Ok(models)
}

/// Score files. The synthetic demo uses the spec's `random` scorer (the paper's ablation):
/// i.i.d. uniform scores keyed by (seed, tensor). Returns their directory.
fn write_scores(out: &Path, specs: &[TensorSpec]) -> Result<PathBuf> {
    let scores_dir = out.join("scores");
    std::fs::create_dir_all(&scores_dir)?;
    let score_files = [
        ("safety", 11u64),
        ("base-safety", 12),
        ("math", 13),
        ("base-math", 14),
    ];
    for (name, seed) in score_files {
        let model = if name.starts_with("base") {
            "base"
        } else {
            name
        };
        write_random_scores(
            &scores_dir.join(format!("{name}.safetensors")),
            specs,
            &out.join(model),
            seed,
        )?;
    }
    println!(
        "  wrote {} score checkpoints (random scorer) in {}",
        score_files.len(),
        scores_dir.display()
    );
    Ok(scores_dir)
}

/// The merges the demo runs: the classic baselines and LED-Merging, as YAML configs.
fn configs(models: &[(&str, PathBuf)], scores_dir: &Path) -> [(&'static str, String); 3] {
    let (b, sa, ma, sc) = (
        models[0].1.display(),
        models[1].1.display(),
        models[2].1.display(),
        scores_dir.display(),
    );
    [
        (
            "task_arithmetic",
            format!(
                "merge_method: task_arithmetic\nbase_model: {b}\nmodels:\n  - model: {sa}\n    parameters: {{weight: 1.0}}\n  - model: {ma}\n    parameters: {{weight: 1.0}}\n"
            ),
        ),
        (
            "ties",
            format!(
                "merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {sa}\n    parameters: {{weight: 1.0, density: 0.5}}\n  - model: {ma}\n    parameters: {{weight: 1.0, density: 0.5}}\n"
            ),
        ),
        (
            "led",
            format!(
                "merge_method: led\nbase_model: {b}\nmodels:\n  - model: {sa}\n    parameters: {{weight: 1.0, density: 0.4}}\n    scores: {{model: {sc}/safety.safetensors, base: {sc}/base-safety.safetensors}}\n  - model: {ma}\n    parameters: {{weight: 1.0, density: 0.5}}\n    scores: {{model: {sc}/math.safetensors, base: {sc}/base-math.safetensors}}\nparameters: {{election: \"11\", disjoint: true}}\n"
            ),
        ),
    ]
}

/// Merge each config with the engine, printing how much of each task vector survived.
fn merge_all(out: &Path, models: &[(&str, PathBuf)], configs: &[(&str, String)]) -> Result<()> {
    let configs_dir = out.join("configs");
    std::fs::create_dir_all(&configs_dir)?;
    println!(
        "  {:16} {:>14} {:>14} {:>10}",
        "merge", "τ_safety kept", "τ_math kept", "time"
    );
    for (method, yaml) in configs {
        let cfg = configs_dir.join(format!("{method}.yaml"));
        std::fs::write(&cfg, yaml)?;
        let t0 = Instant::now();
        let plan =
            led_merging_merge::MergePlan::new(led_merging_merge::MergeConfig::from_file(&cfg)?)?;
        let merged = out.join(format!("merged-{method}"));
        let options = led_merging_merge::RunOptions {
            overwrite: true,
            max_shard_size: DEMO_SHARD_SIZE,
            ..Default::default()
        };
        let report = led_merging_merge::run(&plan, &merged, &options)?;
        let kept = retained(&models[0].1, &[&models[1].1, &models[2].1], &merged)?;
        println!(
            "  {method:16} {:>14.3} {:>14.3} {:>10.0?}",
            kept[0],
            kept[1],
            t0.elapsed()
        );
        if *method == "led" {
            print_election(&report);
        }
    }
    Ok(())
}

/// LED's election, summed over tensors: the share of weights each task elected and kept.
fn print_election(report: &led_merging_merge::MergeReport) {
    let total = led_merging_mask::TensorStats::sum(report.reports().values());
    let n = total.as_ref().map_or(0, |t| t.len);
    let count = |i: usize, kept: bool| {
        total
            .as_ref()
            .and_then(|t| t.tasks.get(i))
            .map_or(0, |t| if kept { t.kept } else { t.elected })
    };
    let (e, k) = (
        [count(0, false), count(1, false)],
        [count(0, true), count(1, true)],
    );
    let pct = |x: usize| 100.0 * x as f64 / n.max(1) as f64;
    println!(
        "  led elected {:.1} % / {:.1} % of weights, kept {:.1} % / {:.1} % after disjoint (safety / math)",
        pct(e[0]),
        pct(e[1]),
        pct(k[0]),
        pct(k[1])
    );
}

/// `led demo`: the trained experiment (with libtorch) or the synthetic demo.
pub fn run(args: &Args) -> Result<()> {
    let (out, force, synthetic) = (args.out.as_path(), args.force, args.synthetic);
    let started = Instant::now();
    claim_output(out, force)?;
    println!("led-merging demo: output in {}", out.display());
    #[cfg(feature = "attribution")]
    if !synthetic {
        println!("  {}", led_merging_attribution::Runtime::detect());
        return super::trained_demo::run(out);
    }
    #[cfg(not(feature = "attribution"))]
    if !synthetic {
        println!(
            "  (built without libtorch: running the synthetic demo; `make demo` runs the trained experiment)"
        );
    }
    #[cfg(feature = "attribution")]
    println!("  {}", led_merging_attribution::Runtime::detect());

    let specs = SHAPE.specs(Dtype::BF16);
    let models = write_family(out, &specs)?;
    let scores_dir = write_scores(out, &specs)?;
    merge_all(out, &models, &configs(&models, &scores_dir))?;
    println!(
        "  (τ kept = ⟨θ_merged − θ_base, τ⟩ / ‖τ‖²: 1 means the whole task vector survived the merge)"
    );
    println!(
        "done in {:.2?}; inspect a model with: led inspect {}",
        started.elapsed(),
        models[0].1.display()
    );
    Ok(())
}
