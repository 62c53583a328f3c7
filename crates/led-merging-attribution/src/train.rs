//! Just enough training to build the demo's model family on a CPU: random initialisation,
//! Adam on the answer loss, greedy generation, and saving as a Hugging Face checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use led_merging_io::{CheckpointWriter, Dtype, TensorSpec, WriterOptions};
use tch::{Device, Kind, Tensor};

use crate::config::ModelConfig;
use crate::data::Sample;
use crate::model::Model;
use crate::{Error, Result, to_f32_vec};

/// A freshly initialised model: matrices ~ N(0, 0.02²), norms 1, biases 0 (as transformers).
pub fn init_model(config: ModelConfig, seed: i64, device: Device) -> Model {
    tch::manual_seed(seed);
    let params: BTreeMap<String, Tensor> = Model::parameter_shapes(&config)
        .into_iter()
        .map(|(name, shape)| {
            let t = if name.ends_with("norm.weight") {
                Tensor::ones(shape.as_slice(), (Kind::Float, device))
            } else if name.ends_with(".bias") {
                Tensor::zeros(shape.as_slice(), (Kind::Float, device))
            } else {
                Tensor::randn(shape.as_slice(), (Kind::Float, device)) * 0.02
            };
            (name, t.set_requires_grad(true))
        })
        .collect();
    Model::from_params(config, params, device, Kind::Float, "<new>".into())
}

/// Adam over a model's parameters (no weight decay).
pub struct Adam {
    lr: f64,
    step: i32,
    state: BTreeMap<String, (Tensor, Tensor)>,
}

impl Adam {
    /// Adam with learning rate `lr`, β = (0.9, 0.999).
    pub fn new(model: &Model, lr: f64) -> Self {
        let state = model
            .params
            .iter()
            .map(|(n, p)| (n.clone(), (p.zeros_like(), p.zeros_like())))
            .collect();
        Adam { lr, step: 0, state }
    }

    /// One update from the accumulated gradients, which are then cleared.
    pub fn step(&mut self, model: &mut Model) {
        self.step += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        tch::no_grad(|| {
            for (name, p) in model.params.iter_mut() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let (m, v) = self.state.get_mut(name).expect("state per parameter");
                let _ = m.f_mul_scalar_(b1);
                let _ = m.f_add_(&(&g * (1.0 - b1)));
                let _ = v.f_mul_scalar_(b2);
                let _ = v.f_add_(&(&g * &g * (1.0 - b2)));
                let update = (&*m / c1) / ((&*v / c2).sqrt() + eps) * self.lr;
                let _ = p.f_sub_(&update);
                p.zero_grad();
            }
        });
    }
}

/// Train on `samples` (answer loss) for `epochs` passes in the given order, `batch` samples per
/// step; returns the mean loss of the last epoch.
pub fn train(
    model: &mut Model,
    samples: &[Sample],
    epochs: usize,
    batch: usize,
    lr: f64,
) -> Result<f32> {
    for p in model.params.values_mut() {
        let _ = p.set_requires_grad(true);
    }
    let mut opt = Adam::new(model, lr);
    let mut last = 0.0;
    for _ in 0..epochs {
        let mut total = 0.0;
        for chunk in samples.chunks(batch.max(1)) {
            for s in chunk {
                let loss = model.answer_loss(&s.ids, s.prompt_len, None)? / chunk.len() as f64;
                total += loss.double_value(&[]) * chunk.len() as f64;
                loss.backward();
            }
            opt.step(model);
        }
        last = (total / samples.len().max(1) as f64) as f32;
    }
    Ok(last)
}

/// Greedy continuation of `prompt`: up to `max_new` tokens, stopping after `stop`.
pub fn generate(model: &Model, prompt: &[i64], max_new: usize, stop: i64) -> Result<Vec<i64>> {
    let mut ids = prompt.to_vec();
    tch::no_grad(|| -> Result<()> {
        for _ in 0..max_new {
            let logits = model.forward(&ids, None)?;
            let next = logits
                .get(ids.len() as i64 - 1)
                .argmax(0, false)
                .int64_value(&[]);
            ids.push(next);
            if next == stop {
                break;
            }
        }
        Ok(())
    })?;
    Ok(ids[prompt.len()..].to_vec())
}

/// Save `model` as a Hugging Face Llama checkpoint in `dir` (BF16 weights, config.json, and
/// any `extra` files such as tokenizer.json).
pub fn save(model: &Model, dir: &Path, extra: &[(&str, &[u8])]) -> Result<()> {
    let c = &model.config;
    let specs: Vec<TensorSpec> = model
        .params
        .iter()
        .map(|(n, p)| {
            TensorSpec::new(
                n,
                Dtype::BF16,
                p.size().iter().map(|&d| d as usize).collect::<Vec<_>>(),
            )
        })
        .collect();
    let writer = CheckpointWriter::create_dir(
        dir,
        specs,
        WriterOptions {
            overwrite: true,
            ..Default::default()
        },
    )?;
    for (name, p) in &model.params {
        let values = to_f32_vec(p).map_err(|error| Error::Torch {
            path: dir.to_path_buf(),
            tensor: name.clone(),
            error,
        })?;
        writer.write_f32(name, &values)?;
    }
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size, "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads, "num_key_value_heads": c.num_kv_heads, "head_dim": c.head_dim,
        "rms_norm_eps": c.rms_norm_eps, "rope_theta": c.rope_theta, "hidden_act": "silu",
        "tie_word_embeddings": c.tie_word_embeddings, "max_position_embeddings": 256, "torch_dtype": "bfloat16",
        "bos_token_id": 1, "eos_token_id": 2,
    });
    writer.add_file(
        "config.json",
        serde_json::to_string_pretty(&config)
            .expect("json")
            .as_bytes(),
    )?;
    for (name, bytes) in extra {
        writer.add_file(name, bytes)?;
    }
    writer.finish()?;
    Ok(())
}
