//! LED's Locate step through the library: score a model on a task dataset (SNIP), write a score
//! checkpoint, then look at which weights it elects at r = 0.1 in one tensor. The same as
//! `led locate`, with the pieces in view.
//!
//! ```sh
//! make demo   # writes out/demo/{base,safety,math} and out/demo/data/*.jsonl
//! make build  # sets up libtorch; then, with the Makefile's environment:
//! cargo run --release --features attribution --example score_with_library -- \
//!     out/demo/safety out/demo/data/safety.jsonl /tmp/safety-scores.safetensors
//! ```

use std::path::Path;

use led_merging::attribution::{DataOptions, LocateOptions, Scorer, locate};
use led_merging::io::Checkpoint;
use led_merging::mask::top_set;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, data, out] = args.as_slice() else {
        return Err("usage: score_with_library MODEL_DIR DATA.jsonl OUT.safetensors".into());
    };
    let options = LocateOptions {
        scorer: Scorer::Snip,
        data: DataOptions {
            samples: 32,
            ..Default::default()
        },
        // Replace a score file from an earlier, different request.
        overwrite: true,
        ..Default::default()
    };
    let report = locate(
        Path::new(model),
        Some(Path::new(data)),
        Path::new(out),
        &options,
    )?;
    if report.reused {
        println!("{out}: an existing score file answered the same request");
    } else {
        println!(
            "scored {} samples ({} tokens) on {} in {:.1} s",
            report.samples, report.tokens, report.device, report.seconds
        );
    }
    // Every weight has a score; the election keeps each tensor's top r.
    let scores = Checkpoint::open(out)?;
    let name = scores
        .tensors()
        .iter()
        .map(|t| t.name.clone())
        .find(|n| n.ends_with("mlp.up_proj.weight"))
        .ok_or("no up_proj tensor")?;
    let values = scores.read_f32(&name)?;
    let (threshold, members) = top_set(&name, &values, 0.1)?;
    println!(
        "{name}: {} weights, top-10 % threshold {:?}, {} members (k = {})",
        values.len(),
        threshold.value,
        members.count(),
        threshold.k
    );
    Ok(())
}
