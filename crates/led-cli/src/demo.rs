//! `led demo`: the embedded default. It builds a small Llama-shaped model family on disk
//! (base plus two fine-tunes, sharded BF16 Hugging Face checkpoints with config.json), then
//! streams through it with the workspace's crates and reports what it did.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use bytesize::ByteSize;
use led_io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shape of the generated family: a tiny Llama with grouped-query attention.
struct TinyLlama {
    vocab: usize,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
}

const SHAPE: TinyLlama = TinyLlama {
    vocab: 512,
    hidden: 128,
    intermediate: 344,
    layers: 4,
    heads: 4,
    kv_heads: 2,
};

/// File that marks a directory as the demo's own output.
const DEMO_MARKER: &str = ".led-demo";

/// Shard budget for the demo's checkpoints: small, so that sharding is exercised.
const DEMO_SHARD_SIZE: u64 = 400_000;

impl TinyLlama {
    fn specs(&self) -> Vec<TensorSpec> {
        let (h, i, kv) = (
            self.hidden,
            self.intermediate,
            self.hidden / self.heads * self.kv_heads,
        );
        let mut specs = vec![TensorSpec::new(
            "model.embed_tokens.weight",
            Dtype::BF16,
            [self.vocab, h],
        )];
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            for (name, shape) in [
                ("self_attn.q_proj.weight", vec![h, h]),
                ("self_attn.k_proj.weight", vec![kv, h]),
                ("self_attn.v_proj.weight", vec![kv, h]),
                ("self_attn.o_proj.weight", vec![h, h]),
                ("mlp.gate_proj.weight", vec![i, h]),
                ("mlp.up_proj.weight", vec![i, h]),
                ("mlp.down_proj.weight", vec![h, i]),
                ("input_layernorm.weight", vec![h]),
                ("post_attention_layernorm.weight", vec![h]),
            ] {
                specs.push(TensorSpec::new(format!("{p}.{name}"), Dtype::BF16, shape));
            }
        }
        specs.push(TensorSpec::new("model.norm.weight", Dtype::BF16, [h]));
        specs.push(TensorSpec::new(
            "lm_head.weight",
            Dtype::BF16,
            [self.vocab, h],
        ));
        specs
    }

    fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "max_position_embeddings": 256,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "hidden_act": "silu",
            "tie_word_embeddings": false,
            "torch_dtype": "bfloat16",
        })
    }
}

/// Base weights: norms at 1, matrices uniform in ±1/sqrt(fan_in).
fn base_values(spec: &TensorSpec, rng: &mut ChaCha8Rng) -> Vec<f32> {
    if spec.shape.len() == 1 {
        return vec![1.0; spec.numel()];
    }
    let scale = 1.0 / (spec.shape[1] as f32).sqrt();
    (0..spec.numel())
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect()
}

fn write_model(
    dir: &Path,
    specs: &[TensorSpec],
    config: &serde_json::Value,
    mut values: impl FnMut(&TensorSpec) -> Vec<f32>,
) -> Result<()> {
    let options = WriterOptions {
        max_shard_size: DEMO_SHARD_SIZE,
        overwrite: true,
        ..Default::default()
    };
    let writer = CheckpointWriter::create_dir(dir, specs.to_vec(), options)?;
    for spec in specs {
        writer.write_f32(&spec.name, &values(spec))?;
    }
    writer.add_file(
        led_io::CONFIG_FILE,
        serde_json::to_string_pretty(config)?.as_bytes(),
    )?;
    writer.finish()?;
    Ok(())
}

pub fn run(out: &Path, force: bool) -> Result<()> {
    let started = Instant::now();
    // The demo replaces its own earlier output, and nothing else unless forced.
    let marker = out.join(DEMO_MARKER);
    let foreign = out
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
        && !marker.exists();
    if foreign && !force {
        anyhow::bail!(
            "{}: exists and was not written by `led demo` (use --force to write into it)",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(
        &marker,
        "written by `led demo`; rerunning the demo replaces this directory's models\n",
    )
    .with_context(|| format!("writing {}", marker.display()))?;
    println!("led-merging demo: output in {}", out.display());
    #[cfg(feature = "attribution")]
    println!("  {}", led_attribution::Runtime::detect());

    // 1. The model family: a base and two fine-tunes that move different weights.
    let specs = SHAPE.specs();
    let config = SHAPE.config();
    let mut rng = ChaCha8Rng::seed_from_u64(2025);
    let base: Vec<Vec<f32>> = specs.iter().map(|s| base_values(s, &mut rng)).collect();
    let models: Vec<(&str, PathBuf)> = ["base", "safety", "math"]
        .iter()
        .map(|n| (*n, out.join(n)))
        .collect();
    for (k, (name, dir)) in models.iter().enumerate() {
        let mut idx = 0;
        let mut tune = ChaCha8Rng::seed_from_u64(7 + k as u64);
        write_model(dir, &specs, &config, |_| {
            let mut v = base[idx].clone();
            idx += 1;
            if k > 0 {
                // A sparse task vector: 5 % of the weights move by up to ±0.02.
                for x in v.iter_mut() {
                    if tune.random::<f32>() < 0.05 {
                        *x += (tune.random::<f32>() * 2.0 - 1.0) * 0.02;
                    }
                }
            }
            v
        })?;
        let ckpt = Checkpoint::open(dir)?;
        let shards: std::collections::BTreeSet<_> =
            ckpt.tensors().iter().map(|t| &t.shard).collect();
        println!(
            "  wrote {name:7} {} tensors, {} in {} shards",
            ckpt.tensors().len(),
            ByteSize(ckpt.total_bytes()).display().si(),
            shards.len()
        );
    }

    // 2. Stream every model back, tensor by tensor, and measure the task vectors.
    let base_ckpt = Checkpoint::open(&models[0].1)?;
    for (name, dir) in &models[1..] {
        let ckpt = Checkpoint::open(dir)?;
        let (mut changed, mut total, mut sq) = (0usize, 0usize, 0f64);
        for info in base_ckpt.tensors() {
            let b = base_ckpt.read_f32(&info.name)?;
            let m = ckpt.read_f32(&info.name)?;
            ensure!(b.len() == m.len(), "{}: shape differs", info.name);
            for (x, y) in b.iter().zip(&m) {
                let d = f64::from(y - x);
                changed += usize::from(d != 0.0);
                sq += d * d;
            }
            total += b.len();
        }
        println!(
            "  task vector {name:7} ‖τ‖₂ = {:.4}, {:.2} % of {} weights changed",
            sq.sqrt(),
            100.0 * changed as f64 / total as f64,
            total
        );
    }
    println!(
        "done in {:.2?}; inspect a model with: led inspect {}",
        started.elapsed(),
        models[0].1.display()
    );
    Ok(())
}
