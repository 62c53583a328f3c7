//! A merge method of your own, run by the same engine as the built-in ones (planning checks,
//! streaming, sharded atomic output, provenance): "consensus" task arithmetic, which adds the
//! task vectors only where every model moved the weight in the same direction.
//!
//! `cargo run --release --example custom_merge_operator`

use std::path::Path;

use led_merging::io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};
use led_merging::merge::ops::{
    Chunking, MergeMethod, ParamSpec, Streamed, TensorJob, TensorNote, TensorSetup, TensorStream,
    any_number, unit,
};
use led_merging::merge::{MergeConfig, MergePlan, Result, RunOptions, run};

/// θ = θ_b + Σ w_i τ_i where all τ_i share a sign, θ_b elsewhere; a tensor where more than
/// `max_disputed` of the weights are disputed stays at the base whole.
struct Consensus;

const WEIGHT: ParamSpec = ParamSpec::new("weight", any_number).required();
const MAX_DISPUTED: ParamSpec = ParamSpec::new("max_disputed", unit).or(1.0);

/// Whether the models moved weight `j` of `job` in different directions.
fn disputed(job: &TensorJob<'_>, j: usize) -> bool {
    let b = job.base.unwrap_or(&[])[j];
    let mut deltas = job.models.iter().map(|m| m.values[j] - b);
    !(deltas.clone().all(|d| d >= 0.0) || deltas.all(|d| d <= 0.0))
}

/// The share of disputed weights of a whole tensor, counted over its parts.
#[derive(Default)]
struct DisputedShare {
    counts: (usize, usize),
    done: bool,
}

impl TensorStream for DisputedShare {
    fn needs_pass(&self) -> bool {
        !self.done
    }
    fn feed(&mut self, part: &TensorJob<'_>) -> Result<()> {
        let n = part.base.map_or(0, <[f32]>::len);
        self.counts.0 += (0..n).filter(|&j| disputed(part, j)).count();
        self.counts.1 += n;
        Ok(())
    }
    fn end_pass(&mut self) -> Result<()> {
        self.done = true;
        Ok(())
    }
    fn hand_out(&mut self, _part: &TensorJob<'_>) -> Result<Streamed> {
        Ok(Box::new(self.counts))
    }
}

impl MergeMethod for Consensus {
    fn name(&self) -> &'static str {
        "consensus"
    }
    fn model_params(&self) -> &'static [ParamSpec] {
        &[WEIGHT]
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[MAX_DISPUTED]
    }
    // Element by element once the tensor's disputed share is known: the engine runs the
    // stream over every part of a tensor too large to hold at once, then hands each part the
    // counts. (The default, `Chunking::Whole`, gets every tensor whole.)
    fn chunking(&self, _t: &TensorSetup<'_>) -> Chunking {
        Chunking::Streamed
    }
    fn stream(&self, _t: &TensorSetup<'_>) -> Result<Box<dyn TensorStream>> {
        Ok(Box::new(DisputedShare::default()))
    }
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let base = job.base(self.name())?;
        let weights = job
            .models
            .iter()
            .map(|m| job.model_number(m, "weight", "consensus").map(|w| w as f32))
            .collect::<Result<Vec<_>>>()?;
        // A whole tensor counts itself; a part gets the whole tensor's counts.
        let (count, len) = match job.streamed::<(usize, usize)>() {
            Some(&counts) => counts,
            None => (
                (0..base.len()).filter(|&j| disputed(job, j)).count(),
                base.len(),
            ),
        };
        let share = count as f64 / len.max(1) as f64;
        let max = job.global.value(&MAX_DISPUTED);
        for (j, (o, &b)) in out.iter_mut().zip(base).enumerate() {
            *o = b;
            if share <= max && !disputed(job, j) {
                let deltas = job.models.iter().map(|m| m.values[j] - b);
                *o += deltas.zip(&weights).map(|(d, w)| w * d).sum::<f32>();
            }
        }
        Ok(vec![TensorNote::Warning(format!(
            "{count} of {len} weights disputed, kept at the base"
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
    let plan = MergePlan::with_method(MergeConfig::from_file(&config)?, Box::new(Consensus))?;
    let out = d.join("merged");
    let report = run(&plan, &out, &RunOptions::default())?;
    for w in &report.warnings {
        println!("{w}");
    }
    let merged = Checkpoint::open(&out)?.read_f32("model.layers.0.mlp.up_proj.weight")?;
    println!("merged: {merged:?}");
    // Parts of one row (4 elements): the stream counts over all four first; same result.
    let parts = RunOptions {
        chunk_elements: Some(4),
        ..RunOptions::default()
    };
    run(&plan, d.join("in-parts"), &parts)?;
    let in_parts = Checkpoint::open(d.join("in-parts"))?;
    assert_eq!(
        in_parts.read_f32("model.layers.0.mlp.up_proj.weight")?,
        merged
    );
    // Even weights: both moved up, 0.5·i + 1·1; odd ones: a up, b down, so kept at the base.
    assert_eq!(merged[2], 2.0);
    assert_eq!(merged[3], 0.0);
    Ok(())
}
