//! `led analyze`: how much two tasks compete for the same weights (the paper's Fig. 4).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use led_io::Checkpoint;
use led_mask::JaccardTable;
use led_merge::analyze::{heatmap_svg, overlap_table};

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

pub fn run(scores: &[String], top: f64, out: Option<&Path>) -> Result<()> {
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
                std::fs::write(
                    &svg,
                    heatmap_svg(
                        &table,
                        &format!("Jaccard of top-{:.0}% SNIP sets: {na} vs {nb}", top * 100.0),
                    ),
                )?;
                let cells: Vec<_> = table
                    .cells()
                    .map(|(l, k, o)| serde_json::json!({"layer": l, "kind": k.as_str(), "jaccard": o.jaccard(), "intersection": o.intersection, "union": o.union}))
                    .collect();
                let json = serde_json::json!({"a": na, "b": nb, "top": top, "overall": overall.jaccard(), "cells": cells});
                std::fs::write(
                    dir.join(format!("{stem}.json")),
                    serde_json::to_string_pretty(&json)?,
                )?;
                println!("  wrote {} and {stem}.json", svg.display());
            }
        }
    }
    Ok(())
}
