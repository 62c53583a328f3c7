//! `led merge CONFIG OUT`: plan (checking everything), then merge with a progress bar.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use bytesize::ByteSize;
use led_merge::{MergeConfig, MergePlan, MergeReport, RunOptions};

pub fn run(
    config: &Path,
    out: &Path,
    force: bool,
    threads: usize,
    dry_run: bool,
    max_shard_size: &str,
    verbose: bool,
) -> Result<()> {
    let max_shard_size = led_io::parse_size(max_shard_size)?;
    let mut parsed = MergeConfig::from_file(config)?;
    // The output's existence is checked first, in the dry run too: it is what the run checks
    // before writing anything.
    if out.exists() && !force {
        return Err(led_io::Error::TargetExists {
            path: out.to_path_buf(),
        }
        .into());
    }
    if !dry_run {
        locate_missing_scores(&mut parsed, out)?;
    }
    let plan = MergePlan::new(parsed, config)?;
    if dry_run {
        print!("{}", plan.describe(verbose));
        println!(
            "(dry run: every check of the run passed; nothing written; would write {})",
            out.display()
        );
        return Ok(());
    }
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let started = std::time::Instant::now();
    let options = RunOptions {
        force,
        threads,
        max_shard_size,
        progress: true,
        ..RunOptions::default()
    };
    let report = led_merge::run(&plan, out, &options)?;
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
        .filter(|w| !plan.warnings.contains(w))
    {
        eprintln!("warning: {w}");
    }
    print_election(plan, &report.led);
}

/// LED's election per model: elected, removed by disjoint and kept, as shares of the weights
/// of the tensors elected over.
pub fn print_election(plan: &MergePlan, led: &BTreeMap<String, led_mask::TensorStats>) {
    if led.is_empty() {
        return;
    }
    let tasks = plan.models.len();
    let mut totals = vec![(0usize, 0usize, 0usize); tasks];
    let mut elements = 0usize;
    for stats in led.values() {
        elements += stats.len;
        for (t, s) in totals.iter_mut().zip(&stats.tasks) {
            t.0 += s.elected;
            t.1 += s.removed;
            t.2 += s.kept;
        }
    }
    println!("LED election over {elements} weights:");
    println!(
        "  {:40} {:>12} {:>12} {:>12}",
        "model", "elected", "disjoint −", "kept"
    );
    for (m, (e, r, k)) in plan.models.iter().zip(totals) {
        let pct = |x: usize| format!("{:.2} %", 100.0 * x as f64 / elements.max(1) as f64);
        println!(
            "  {:40} {:>12} {:>12} {:>12}",
            m.path.display().to_string(),
            pct(e),
            pct(r),
            pct(k)
        );
    }
}

/// `location:` entries: compute (or reuse) their score checkpoints in `OUT.scores/`.
#[cfg(feature = "attribution")]
fn locate_missing_scores(config: &mut MergeConfig, out: &Path) -> Result<()> {
    for (path, reused) in led_merging::resolve_locations(config, out, true)? {
        println!(
            "scores {}: {}",
            path.display(),
            if reused { "reused" } else { "computed" }
        );
    }
    Ok(())
}

#[cfg(not(feature = "attribution"))]
fn locate_missing_scores(_config: &mut MergeConfig, _out: &Path) -> Result<()> {
    // The planner reports `location:` entries as needing a build with libtorch.
    Ok(())
}
