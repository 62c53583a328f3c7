//! A merge method of your own, run by the same engine as the built-in ones (planning checks,
//! streaming, sharded atomic output, provenance): "consensus" task arithmetic, which adds the
//! task vectors only where every model moved the weight in the same direction.
//!
//! `cargo run --release --example custom_merge_operator`

use std::path::Path;

use led_merging::io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};
use led_merging::merge::ops::{
    Chunking, MergeMethod, ParamSpec, Params, TensorJob, TensorNote, any_number,
};
use led_merging::merge::{MergeConfig, MergePlan, Result, RunOptions, run};

/// θ = θ_b + Σ w_i τ_i where all τ_i share a sign, θ_b elsewhere.
struct Consensus;

const WEIGHT: ParamSpec = ParamSpec {
    name: "weight",
    check: any_number,
};

impl MergeMethod for Consensus {
    fn name(&self) -> &'static str {
        "consensus"
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[WEIGHT]
    }
    fn required_model_params(&self) -> &'static [&'static str] {
        &["weight"]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[]
    }
    // Element by element: the engine may hand over a huge tensor in parts of rows. (A method
    // needing sums over the whole tensor, such as norms, returns `Chunking::Statistics` and
    // adds each part to them in `MergeMethod::accumulate`; the default, `Chunking::Whole`,
    // gets every tensor whole.)
    fn chunking(&self, _global: &Params, _models: &[Params]) -> Chunking {
        Chunking::Elementwise
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let base = job.base(self.name())?;
        let weights = job
            .models
            .iter()
            .map(|m| job.model_number(m, "weight", "consensus").map(|w| w as f32))
            .collect::<Result<Vec<_>>>()?;
        let mut disputed = 0;
        for (j, (o, &b)) in out.iter_mut().zip(base).enumerate() {
            let deltas = job.models.iter().map(|m| m.values[j] - b);
            let agree = deltas.clone().all(|d| d >= 0.0) || deltas.clone().all(|d| d <= 0.0);
            *o = b;
            if agree {
                *o += deltas.zip(&weights).map(|(d, w)| w * d).sum::<f32>();
            } else {
                disputed += 1;
            }
        }
        Ok(vec![TensorNote::Warning(format!(
            "{disputed} of {} weights disputed, kept at the base",
            out.len()
        ))])
    }
}

/// A one-tensor model whose values are `f(i)`.
fn model(dir: &Path, f: impl Fn(usize) -> f32) -> std::result::Result<(), led_merging::io::Error> {
    let spec = TensorSpec::new("model.layers.0.mlp.up_proj.weight", Dtype::F32, [4, 4]);
    let w = CheckpointWriter::create_dir(dir, vec![spec], WriterOptions::default())?;
    let values: Vec<f32> = (0..16).map(f).collect();
    w.write_f32("model.layers.0.mlp.up_proj.weight", &values)?;
    w.finish()?;
    Ok(())
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    model(&d.join("base"), |_| 0.0)?;
    model(&d.join("a"), |i| i as f32)?; // every weight up
    model(&d.join("b"), |i| if i % 2 == 0 { 1.0 } else { -1.0 })?; // half down
    let config = d.join("consensus.yaml");
    std::fs::write(
        &config,
        format!(
            "merge_method: consensus\nbase_model: {b}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {c}\n    parameters: {{weight: 1.0}}\n",
            b = d.join("base").display(),
            a = d.join("a").display(),
            c = d.join("b").display()
        ),
    )?;
    let plan = MergePlan::with_method(
        MergeConfig::from_file(&config)?,
        &config,
        Box::new(Consensus),
    )?;
    let out = d.join("merged");
    let report = run(&plan, &out, &RunOptions::default())?;
    for w in &report.warnings {
        println!("{w}");
    }
    let merged = Checkpoint::open(&out)?.read_f32("model.layers.0.mlp.up_proj.weight")?;
    println!("merged: {merged:?}");
    // Even weights: both moved up, 0.5·i + 1·1; odd ones: a up, b down, so kept at the base.
    assert_eq!(merged[2], 2.0);
    assert_eq!(merged[3], 0.0);
    Ok(())
}
