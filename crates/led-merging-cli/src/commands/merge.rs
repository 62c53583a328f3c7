//! `led merge CONFIG OUT`: plan (checking everything), then merge with a progress bar.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use bytesize::ByteSize;
use led_merging_merge::{Detail, MergeConfig, MergePlan, MergeReport, RunOptions};

/// Arguments of `led merge`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Relative paths in the config resolve from the current directory (as in mergekit).\n\nExamples:\n  led merge merge.yaml merged/ --dry-run\n  led -v merge merge.yaml merged/ --dry-run   # one line per tensor\n  led merge merge.yaml merged/ --threads 4 --max-memory 2GB --max-shard-size 2GB\n  led merge merge.yaml merged/ --force        # replace merged/"
)]
pub struct Args {
    /// The YAML config (one document, or several: mergekit-multi).
    pub config: PathBuf,
    /// Output model directory.
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Worker threads (0 = one per core); each holds one part of a tensor at a time.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Memory for the merge's buffers, e.g. 2GB: parts of large tensors are sized so that
    /// every thread's part fits (default: a sixteenth of the machine's memory, at most 512 MiB;
    /// `--dry-run` prints the plan).
    #[arg(long)]
    pub max_memory: Option<String>,
    /// Check everything and print the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Largest output shard, e.g. 5GB or 500MiB.
    #[arg(long, default_value = "5GB", alias = "out-shard-size")]
    pub max_shard_size: String,
    /// For a config of several YAML documents (mergekit-multi): where each named document's
    /// merge is written (`DIR/NAME`); the final (unnamed) one goes to OUT.
    #[arg(long)]
    pub intermediate_dir: Option<PathBuf>,
    /// mergekit-yaml's flags, accepted so that its command lines paste as they are: each is
    /// mapped to ours or has no effect here (`led merge --help` says which).
    #[command(flatten)]
    pub mergekit: MergekitFlags,
}

/// mergekit-yaml's flags that `led merge` accepts (docs/merging.md, "mergekit's command line").
/// `--out-shard-size` is `--max-shard-size`'s alias; these have no effect, for the reason
/// each gives.
#[derive(clap::Args, Debug, Default)]
#[allow(clippy::struct_excessive_bools)]
pub struct MergekitFlags {
    /// mergekit: merge on the GPU. No effect: merging is paced by reading and writing weights,
    /// which led streams on the CPU (Locate uses the GPU: `led locate --device cuda`).
    #[arg(long, hide_short_help = true)]
    pub cuda: bool,
    /// mergekit: read .bin checkpoints lazily. No effect: led always streams tensor by tensor.
    #[arg(long, hide_short_help = true)]
    pub lazy_unpickle: bool,
    /// mergekit: allow merges it considers unwise (mixed architectures). No effect: led checks
    /// names, shapes and dtypes tensor by tensor and refuses only what cannot be merged.
    #[arg(long, hide_short_help = true)]
    pub allow_crimes: bool,
    /// mergekit: copy the base's tokenizer. No effect: led always writes the tokenizer (the
    /// base's, or the one `tokenizer_source` builds).
    #[arg(long, hide_short_help = true)]
    pub copy_tokenizer: bool,
    /// mergekit: keep tensors on the GPU or in memory. No effect: led never holds a model.
    #[arg(long, hide_short_help = true)]
    pub low_cpu_memory: bool,
    /// mergekit: write safetensors. No effect: led always does.
    #[arg(long, hide_short_help = true)]
    pub safe_serialization: bool,
    /// mergekit: trust remote code in model configs. No effect: led runs no model code.
    #[arg(long, hide_short_help = true)]
    pub trust_remote_code: bool,
    /// mergekit: write a README model card. No effect: led always does.
    #[arg(long, hide_short_help = true)]
    pub write_model_card: bool,
}

impl MergekitFlags {
    /// One line per flag given, saying why it changes nothing.
    fn notes(&self) -> Vec<&'static str> {
        [
            (self.cuda, "--cuda: merging streams on the CPU (paced by I/O); Locate is what uses a GPU"),
            (self.lazy_unpickle, "--lazy-unpickle: led always streams tensor by tensor"),
            (self.allow_crimes, "--allow-crimes: led checks every tensor's name, shape and dtype and refuses only what cannot merge"),
            (self.copy_tokenizer, "--copy-tokenizer: led always writes the output's tokenizer"),
            (self.low_cpu_memory, "--low-cpu-memory: led never holds a whole model"),
            (self.safe_serialization, "--safe-serialization: led always writes safetensors"),
            (self.trust_remote_code, "--trust-remote-code: led runs no model code"),
            (self.write_model_card, "--write-model-card: led always writes README.md"),
        ]
        .into_iter()
        .filter_map(|(given, note)| given.then_some(note))
        .collect()
    }
}

/// `led merge`; `verbose` (`-v`) lists every tensor in the dry run's plan.
pub fn run(args: &Args, verbose: bool) -> Result<()> {
    for note in args.mergekit.notes() {
        eprintln!("note: mergekit's {note}: no effect");
    }
    let text =
        std::fs::read_to_string(&args.config).map_err(|e| led_merging_merge::Error::Config {
            path: args.config.clone(),
            key: "<file>".into(),
            reason: e.to_string(),
        })?;
    let documents = MergeConfig::documents(&text, &args.config)?;
    if documents.len() == 1 {
        let parsed = documents.into_iter().next().expect("one document");
        return merge_one(parsed, &args.out, args, verbose);
    }
    let Some(intermediate) = &args.intermediate_dir else {
        anyhow::bail!(
            "{}: {} YAML documents (mergekit-multi): give --intermediate-dir DIR for the named \
             merges' outputs (the final one goes to {})",
            args.config.display(),
            documents.len(),
            args.out.display()
        );
    };
    let multi = led_merging_merge::MultiMerge::new(documents, intermediate, &args.out)?;
    for step in multi.steps {
        let label = step.name.as_deref().unwrap_or("final merge");
        let waiting = step.needs.iter().find(|n| !intermediate.join(n).exists());
        if args.dry_run && waiting.is_some() {
            println!(
                "== {label} → {}: planned once {} is merged (it reads that output)",
                step.out.display(),
                waiting.map(String::as_str).unwrap_or_default()
            );
            continue;
        }
        // A named merge already written is reused (as mergekit-multi does), unless --force.
        if step.name.is_some()
            && step.out != args.out
            && step.out.join("config.json").exists()
            && !args.force
        {
            println!("== {label}: {} exists: reused", step.out.display());
            continue;
        }
        println!("== {label} → {}", step.out.display());
        merge_one(step.config, &step.out, args, verbose)?;
    }
    Ok(())
}

/// Plan and run (or, with `--dry-run`, plan and describe) one config into `out`.
fn merge_one(mut parsed: MergeConfig, out: &Path, args: &Args, verbose: bool) -> Result<()> {
    let max_shard_size = led_merging_io::parse_size(&args.max_shard_size)?;
    let max_memory = args
        .max_memory
        .as_deref()
        .map(led_merging_io::parse_size)
        .transpose()?;
    // The output's existence is checked first, in the dry run too: it is what the run checks
    // before writing anything.
    if out.exists() && !args.force {
        return Err(led_merging_io::Error::TargetExists {
            path: out.to_path_buf(),
        }
        .into());
    }
    if !args.dry_run {
        locate_missing_scores(&mut parsed, out)?;
    }
    let plan = MergePlan::new(parsed)?;
    let options = RunOptions {
        overwrite: args.force,
        threads: args.threads,
        max_shard_size,
        progress: true,
        max_memory,
        ..RunOptions::default()
    };
    if args.dry_run {
        let detail = if verbose {
            Detail::PerTensor
        } else {
            Detail::Summary
        };
        print!("{}", plan.describe(detail, &options));
        println!(
            "(dry run: every check of the run passed; nothing written; would write {})",
            out.display()
        );
        return Ok(());
    }
    for w in plan.warnings() {
        eprintln!("warning: {w}");
    }
    let started = std::time::Instant::now();
    let report = led_merging_merge::run(&plan, out, &options)?;
    print_report(&plan, &report);
    println!(
        "wrote {} ({} in {} shard(s)) in {:.1?}",
        report.written.path.display(),
        ByteSize(report.written.total_size).display().si(),
        report.written.shards.len(),
        started.elapsed()
    );
    Ok(())
}

/// LED totals per task: elected, removed by disjoint, kept.
pub fn print_report(plan: &MergePlan, report: &MergeReport) {
    for w in report
        .warnings
        .iter()
        .filter(|w| !plan.warnings().contains(w))
    {
        eprintln!("warning: {w}");
    }
    print_election(plan, &report.reports());
}

/// LED's election per model: elected, removed by disjoint and kept, as shares of the weights
/// of the tensors elected over, and the share of its task vector's energy kept; a warning for
/// a model that keeps too little of it ([`led_merging_merge::kept_energy_warnings`]).
pub fn print_election(plan: &MergePlan, led: &BTreeMap<String, led_merging_mask::TensorStats>) {
    let Some(total) = led_merging_mask::TensorStats::sum(led.values()) else {
        return;
    };
    let elements = total.len;
    println!("LED election over {elements} weights:");
    println!(
        "  {:40} {:>12} {:>12} {:>12} {:>12}",
        "model", "elected", "disjoint −", "kept", "‖m⊙τ‖²/‖τ‖²"
    );
    for (m, t) in plan.models().iter().zip(&total.tasks) {
        let pct = |x: usize| format!("{:.2} %", 100.0 * x as f64 / elements.max(1) as f64);
        let energy = if t.energy > 0.0 {
            format!("{:.2} %", 100.0 * t.kept_energy / t.energy)
        } else {
            "-".to_owned()
        };
        println!(
            "  {:40} {:>12} {:>12} {:>12} {:>12}",
            m.path.display().to_string(),
            pct(t.elected),
            pct(t.removed),
            pct(t.kept),
            energy
        );
    }
    for w in led_merging_merge::kept_energy_warnings(plan, led) {
        eprintln!("warning: {w}");
    }
}

/// `location:` entries: compute (or reuse) their score checkpoints in `OUT.scores/`.
#[cfg(feature = "attribution")]
fn locate_missing_scores(config: &mut MergeConfig, out: &Path) -> Result<()> {
    let options = RunOptions {
        progress: true,
        ..RunOptions::default()
    };
    for s in led_merging_merge::resolve_locations(config, out, &options)? {
        println!(
            "scores {}: {}",
            s.path.display(),
            if s.reused { "reused" } else { "computed" }
        );
    }
    Ok(())
}

#[cfg(not(feature = "attribution"))]
fn locate_missing_scores(_config: &mut MergeConfig, _out: &Path) -> Result<()> {
    // The planner reports `location:` entries as needing a build with libtorch.
    Ok(())
}
