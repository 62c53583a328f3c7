//! Run a merge from a mergekit-style YAML config (e.g. LED from score files), printing the plan
//! first. The same as `led merge CONFIG OUT`.
//!
//! `cargo run --release --example merge_from_scores -- out/demo/configs/led.yaml out/merged`

use led_merging::mask::TensorStats;
use led_merging::merge::{Detail, MergeConfig, MergePlan, RunOptions, run};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: merge_from_scores CONFIG.yaml OUTPUT_DIR".into());
    };
    let plan = MergePlan::new(MergeConfig::from_file(config)?)?;
    let options = RunOptions {
        overwrite: true,
        ..Default::default()
    };
    print!("{}", plan.describe(Detail::PerTensor, &options));
    let report = run(&plan, out, &options)?;
    for (tensor, stats) in report.reports::<TensorStats>().iter().take(5) {
        let kept: Vec<usize> = stats.tasks.iter().map(|t| t.kept).collect();
        println!(
            "{tensor}: {} elements, kept per task {kept:?}, overlap removed {}",
            stats.len, stats.overlap
        );
    }
    println!("wrote {}", report.written.path.display());
    Ok(())
}
