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
    /// The YAML config.
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
    #[arg(long, default_value = "5GB")]
    pub max_shard_size: String,
}

/// `led merge`; `verbose` (`-v`) lists every tensor in the dry run's plan.
pub fn run(args: &Args, verbose: bool) -> Result<()> {
    let (config, out) = (args.config.as_path(), args.out.as_path());
    let max_shard_size = led_merging_io::parse_size(&args.max_shard_size)?;
    let max_memory = args
        .max_memory
        .as_deref()
        .map(led_merging_io::parse_size)
        .transpose()?;
    let mut parsed = MergeConfig::from_file(config)?;
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
/// of the tensors elected over.
pub fn print_election(plan: &MergePlan, led: &BTreeMap<String, led_merging_mask::TensorStats>) {
    let Some(total) = led_merging_mask::TensorStats::sum(led.values()) else {
        return;
    };
    let elements = total.len;
    println!("LED election over {elements} weights:");
    println!(
        "  {:40} {:>12} {:>12} {:>12}",
        "model", "elected", "disjoint −", "kept"
    );
    for (m, t) in plan.models().iter().zip(&total.tasks) {
        let pct = |x: usize| format!("{:.2} %", 100.0 * x as f64 / elements.max(1) as f64);
        println!(
            "  {:40} {:>12} {:>12} {:>12}",
            m.path.display().to_string(),
            pct(t.elected),
            pct(t.removed),
            pct(t.kept)
        );
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
