//! Write a synthetic Llama-shaped model family (a base and fine-tunes that perturb a fraction
//! of its weights) plus random-scorer score files, for benchmarks and experiments.
//!
//! `cargo run --release --example synthetic_family -- OUT_DIR [HIDDEN] [LAYERS] [VOCAB] [MODELS]`
//!
//! Writes OUT_DIR/base, OUT_DIR/model-1..N (BF16, 5GB shards) and OUT_DIR/scores/*.safetensors.

use std::path::Path;

use led_merging::io::{CheckpointWriter, Dtype, LlamaShape, TensorSpec, WriterOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

fn fill(name: &str, n: usize, seed: u64, f: impl Fn(&mut ChaCha8Rng) -> f32 + Sync) -> Vec<f32> {
    let key = name.bytes().fold(seed, |h, b| {
        h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b))
    });
    let mut out = vec![0f32; n];
    out.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng = ChaCha8Rng::seed_from_u64(key ^ ((c as u64) << 40));
            chunk.iter_mut().for_each(|x| *x = f(&mut rng));
        });
    out
}

fn write(
    dir: &Path,
    specs: &[TensorSpec],
    values: impl Fn(&TensorSpec) -> Vec<f32>,
    config: &str,
    file: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let opts = WriterOptions {
        overwrite: true,
        ..Default::default()
    };
    let w = if file {
        CheckpointWriter::create_file(dir, specs.to_vec(), opts)?
    } else {
        CheckpointWriter::create_dir(dir, specs.to_vec(), opts)?
    };
    for s in specs {
        w.write_f32(&s.name, &values(s))?;
    }
    if !file {
        w.add_file("config.json", config.as_bytes())?;
    }
    w.finish()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = Path::new(
        args.first()
            .ok_or("usage: synthetic_family OUT_DIR [HIDDEN] [LAYERS] [VOCAB] [MODELS]")?,
    );
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (hidden, layers, vocab, models) = (num(1, 1024), num(2, 8), num(3, 8192), num(4, 3));
    let shape = LlamaShape {
        vocab,
        hidden,
        intermediate: hidden * 11 / 4,
        layers,
        heads: 16,
        kv_heads: 4,
        positions: 2048,
        tied: false,
    };
    let specs = shape.specs(Dtype::BF16);
    let params: usize = specs.iter().map(|s| s.numel()).sum();
    let config = shape.config(Dtype::BF16).to_string();
    std::fs::create_dir_all(out.join("scores"))?;
    let base = |s: &TensorSpec| {
        fill(&s.name, s.numel(), 0, |r| {
            (r.random::<f32>() * 2.0 - 1.0) * 0.02
        })
    };
    write(&out.join("base"), &specs, base, &config, false)?;
    for m in 1..=models {
        let tuned = |s: &TensorSpec| {
            let b = base(s);
            let d = fill(&s.name, s.numel(), m as u64, |r| {
                if r.random::<f32>() < 0.1 {
                    (r.random::<f32>() * 2.0 - 1.0) * 0.002
                } else {
                    0.0
                }
            });
            b.iter().zip(d).map(|(x, y)| x + y).collect()
        };
        write(
            &out.join(format!("model-{m}")),
            &specs,
            tuned,
            &config,
            false,
        )?;
        let score_specs: Vec<TensorSpec> = specs
            .iter()
            .map(|s| TensorSpec::new(&s.name, Dtype::F32, s.shape.clone()))
            .collect();
        for (name, seed) in [
            (format!("model-{m}"), 100 + m as u64),
            (format!("base-{m}"), 200 + m as u64),
        ] {
            let scores = |s: &TensorSpec| fill(&s.name, s.numel(), seed, |r| r.random::<f32>());
            write(
                &out.join("scores").join(format!("{name}.safetensors")),
                &score_specs,
                scores,
                "",
                true,
            )?;
        }
    }
    println!(
        "wrote a base and {models} models of {params} parameters each under {}",
        out.display()
    );
    Ok(())
}
