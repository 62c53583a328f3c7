//! What storing scores in bf16 (`led locate --score-dtype bf16`) does to LED's elections,
//! measured with led's own election code on two f32 score files of one tensor layout (a base's
//! and a fine-tune's): for each ratio r, the share of extra members that ties at the threshold
//! add (members beyond k = ⌊r·n⌋, over k), and the Jaccard index of the elections (base top-r ∩
//! fine-tune top-r, pattern `11`) from the f32 scores against those from the same scores rounded
//! to bf16 (round to nearest even, as the writer rounds). docs/formats.md records the figures.
//!
//! ```text
//! cargo run --release --example score_dtype_effect -- BASE.safetensors FT.safetensors [R ...]
//! ```

use led_merging::io::Checkpoint;
use led_merging::mask::{Pattern, elect};

/// Counts over every tensor at one ratio.
#[derive(Default)]
struct Tally {
    /// Σ k over both score files' thresholds.
    k: u64,
    /// Σ (members − k) with f32 scores, and with bf16 scores.
    ties_f32: u64,
    ties_bf16: u64,
    /// |E_f32|, |E_bf16|, |E_f32 ∩ E_bf16|.
    elected_f32: u64,
    elected_bf16: u64,
    both: u64,
}

fn bf16(scores: &[f32]) -> Vec<f32> {
    scores
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: score_dtype_effect BASE.safetensors FT.safetensors [RATIO ...]".into());
    }
    let ratios: Vec<f64> = if args.len() > 2 {
        args[2..]
            .iter()
            .map(|r| r.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![0.1, 0.2, 0.4]
    };
    let (base, ft) = (Checkpoint::open(&args[0])?, Checkpoint::open(&args[1])?);
    let mut tallies: Vec<Tally> = ratios.iter().map(|_| Tally::default()).collect();
    for t in base.tensors() {
        let (b, f) = (base.read_f32(&t.name)?, ft.read_f32(&t.name)?);
        let (b16, f16) = (bf16(&b), bf16(&f));
        for (tally, &r) in tallies.iter_mut().zip(&ratios) {
            let full = elect(&t.name, &b, &f, r, Pattern::BothHigh)?;
            let half = elect(&t.name, &b16, &f16, r, Pattern::BothHigh)?;
            let extra = |e: &led_merging::mask::Election| {
                (e.base.members + e.model.members).saturating_sub(e.base.k + e.model.k) as u64
            };
            tally.k += (full.base.k + full.model.k) as u64;
            tally.ties_f32 += extra(&full);
            tally.ties_bf16 += extra(&half);
            tally.elected_f32 += full.elected.count() as u64;
            tally.elected_bf16 += half.elected.count() as u64;
            let mut both = full.elected.clone();
            both.and_assign(&half.elected);
            tally.both += both.count() as u64;
        }
    }
    println!("r\tties f32\tties bf16\telected f32\telected bf16\tJaccard");
    for (tally, r) in tallies.iter().zip(&ratios) {
        let union = tally.elected_f32 + tally.elected_bf16 - tally.both;
        println!(
            "{r}\t{:.4} %\t{:.4} %\t{}\t{}\t{:.5}",
            100.0 * tally.ties_f32 as f64 / tally.k.max(1) as f64,
            100.0 * tally.ties_bf16 as f64 / tally.k.max(1) as f64,
            tally.elected_f32,
            tally.elected_bf16,
            tally.both as f64 / union.max(1) as f64
        );
    }
    Ok(())
}
