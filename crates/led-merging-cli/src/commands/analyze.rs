//! `led analyze`: how much two tasks compete for the same weights (the paper's Fig. 4).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use led_merging_io::Checkpoint;
use led_merging_mask::{JaccardTable, TensorKind, TensorStats, classify};
use led_merging_merge::analyze::overlap_table;

use super::plot::{heatmap_png, heatmap_svg};
use led_merging_merge::{MergeConfig, MergePlan, RunOptions};

/// `NAME=PATH` pairs, at least two.
pub fn parse_scores(specs: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let pairs: Vec<(String, PathBuf)> = specs
        .iter()
        .map(|s| match s.split_once('=') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_owned(), PathBuf::from(p))),
            _ => bail!("--scores {s:?}: expected NAME=PATH"),
        })
        .collect::<Result<_>>()?;
    if pairs.len() < 2 {
        bail!("--scores: give at least two score checkpoints (NAME=PATH)");
    }
    Ok(pairs)
}

fn print_table(table: &JaccardTable) {
    let kinds: Vec<_> = table.by_kind().into_keys().collect();
    print!("  {:>8}", "layer");
    for k in &kinds {
        print!(" {:>7}", k.as_str());
    }
    println!();
    let cells: std::collections::BTreeMap<_, _> = table
        .cells()
        .map(|(l, k, o)| ((l, k), o.jaccard()))
        .collect();
    for l in table.by_layer().into_keys() {
        print!(
            "  {:>8}",
            l.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
        );
        for k in &kinds {
            match cells.get(&(l, *k)) {
                Some(j) => print!(" {j:>7.3}"),
                None => print!(" {:>7}", ""),
            }
        }
        println!();
    }
    print!("  {:>8}", "all");
    for (_, o) in table.by_kind() {
        print!(" {:>7.3}", o.jaccard());
    }
    println!();
}

/// `--config`: the election of an LED config, per model and per tensor kind.
fn election(config: &Path, out: Option<&Path>) -> Result<()> {
    let plan = MergePlan::new(MergeConfig::from_file(config)?)?;
    let stats = led_merging_merge::led_election(&plan, &RunOptions::default())?;
    println!("Election of {}:", config.display());
    super::merge::print_election(&plan, &stats);
    // Per tensor kind: the share of each kind's weights each model keeps, and the share
    // elected by two or more models (removed when disjoint is on).
    let mut by_kind: BTreeMap<TensorKind, Vec<&TensorStats>> = BTreeMap::new();
    for (name, s) in &stats {
        by_kind.entry(classify(name).1).or_default().push(s);
    }
    let kinds: BTreeMap<TensorKind, TensorStats> = by_kind
        .into_iter()
        .filter_map(|(kind, list)| TensorStats::sum(list).map(|total| (kind, total)))
        .collect();
    // One column per model, named by its directory.
    let heads: Vec<String> = plan
        .models()
        .iter()
        .map(|m| {
            let name = m.path.file_name().unwrap_or(m.path.as_os_str());
            format!("kept {}", name.to_string_lossy())
        })
        .collect();
    let widths: Vec<usize> = heads.iter().map(|h| h.chars().count().max(12)).collect();
    print!("  {:>8} {:>12}", "kind", "overlap");
    for (h, w) in heads.iter().zip(&widths) {
        print!(" {h:>w$}");
    }
    println!();
    let pct = |x: usize, n: usize| format!("{:.2} %", 100.0 * x as f64 / n.max(1) as f64);
    for (kind, total) in &kinds {
        print!(
            "  {:>8} {:>12}",
            kind.as_str(),
            pct(total.overlap, total.len)
        );
        for (t, w) in total.tasks.iter().zip(&widths) {
            print!(" {:>w$}", pct(t.kept, total.len));
        }
        println!();
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tensors: serde_json::Map<String, serde_json::Value> = stats
            .iter()
            .map(|(name, s)| {
                let tasks: Vec<_> = s
                    .tasks
                    .iter()
                    .map(|t| serde_json::json!({"elected": t.elected, "removed": t.removed, "kept": t.kept, "base_threshold": t.base.value, "model_threshold": t.model.value, "energy": t.energy, "kept_energy": t.kept_energy}))
                    .collect();
                (
                    name.clone(),
                    serde_json::json!({"len": s.len, "overlap": s.overlap, "tasks": tasks}),
                )
            })
            .collect();
        let models: Vec<String> = plan
            .models()
            .iter()
            .map(|m| m.path.display().to_string())
            .collect();
        let path = dir.join("election.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(
                &serde_json::json!({"config": config, "models": models, "tensors": tensors}),
            )?,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!("  wrote {}", path.display());
    }
    Ok(())
}

/// Arguments of `led analyze`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  led analyze --scores safety=scores/safety.safetensors math=scores/math.safetensors --top 0.2 --out fig4/\n  led analyze --config led.yaml --out election/"
)]
pub struct Args {
    /// Score checkpoints as NAME=PATH (two or more).
    #[arg(long = "scores", required_unless_present = "config", num_args = 1..)]
    pub scores: Vec<String>,
    /// An LED merge config: report what its election keeps and what disjoint removes,
    /// per model and tensor kind, from the score files alone (no weight read, nothing
    /// merged).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The ratio r of the top sets compared.
    #[arg(long, default_value_t = 0.2)]
    pub top: f64,
    /// Write a heat map (SVG and PNG) and JSON per pair here (and election.json with
    /// --config).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let (scores, config, top, out) = (
        args.scores.as_slice(),
        args.config.as_deref(),
        args.top,
        args.out.as_deref(),
    );
    if let Some(config) = config {
        election(config, out)?;
        if scores.is_empty() {
            return Ok(());
        }
        println!();
    }
    let pairs = parse_scores(scores)?;
    let opened: Vec<(String, Checkpoint)> = pairs
        .iter()
        .map(|(n, p)| {
            Ok((
                n.clone(),
                Checkpoint::open(p).with_context(|| format!("score checkpoint {n}"))?,
            ))
        })
        .collect::<Result<_>>()?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for i in 0..opened.len() {
        for j in i + 1..opened.len() {
            let ((na, a), (nb, b)) = (&opened[i], &opened[j]);
            let table = overlap_table(a, b, top)?;
            let overall = table.overall();
            println!(
                "Jaccard of the top-{:.0} % sets, {na} vs {nb}: {:.4} over {} tensors",
                top * 100.0,
                overall.jaccard(),
                overall.tensors
            );
            print_table(&table);
            if let Some(dir) = out {
                let stem = format!("{na}_vs_{nb}");
                let svg = dir.join(format!("{stem}.svg"));
                let title = format!(
                    "Jaccard of top-{:.0}% score sets: {na} vs {nb}",
                    top * 100.0
                );
                std::fs::write(&svg, heatmap_svg(&table, &title))
                    .with_context(|| format!("writing {}", svg.display()))?;
                let png = dir.join(format!("{stem}.png"));
                std::fs::write(&png, heatmap_png(&table, &title))
                    .with_context(|| format!("writing {}", png.display()))?;
                let cells: Vec<_> = table
                    .cells()
                    .map(|(l, k, o)| serde_json::json!({"layer": l, "kind": k.as_str(), "jaccard": o.jaccard(), "intersection": o.intersection, "union": o.union}))
                    .collect();
                let json = serde_json::json!({"a": na, "b": nb, "top": top, "overall": overall.jaccard(), "cells": cells});
                std::fs::write(
                    dir.join(format!("{stem}.json")),
                    serde_json::to_string_pretty(&json)?,
                )?;
                println!("  wrote {}, {stem}.png and {stem}.json", svg.display());
            }
        }
    }
    Ok(())
}
