//! A Llama-family decoder (Llama 2/3, Mistral, Qwen2) as a few plain structs over `tch` tensors,
//! with Hugging Face's tensor names and math (rotate-half RoPE, RMSNorm in f32, GQA, SwiGLU).
//! Weights come from `led-merging-io`, one tensor at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use led_merging_io::Checkpoint;
use tch::{Device, Kind, TchError, Tensor};

use crate::config::{Architecture, ModelConfig};
use crate::{Error, Result, load_tensor};

/// A linear layer `y = x Wᵀ (+ b)`, names `{prefix}.weight` / `{prefix}.bias`.
#[derive(Debug)]
pub(crate) struct Linear {
    pub weight: String,
    pub bias: Option<String>,
}

/// Per-feature sums of squares of the inputs of every Linear and RMSNorm (Wanda), keyed by the
/// weight's name, over the positions selected by `mask`.
#[derive(Debug, Default)]
pub struct Activations {
    pub(crate) sums: BTreeMap<String, Tensor>,
    /// Rows of the current sequence that count (answer positions), as a [T] float mask.
    pub(crate) mask: Option<Tensor>,
}

impl Activations {
    fn record(&mut self, weight: &str, x: &Tensor) -> Result<(), TchError> {
        let Some(mask) = &self.mask else {
            return Ok(());
        };
        let x2 = x.detach().f_to_kind(Kind::Float)?;
        let mask = mask.f_to_device(x2.device())?;
        let sq = x2
            .f_mul(&x2)?
            .f_mul(&mask.f_unsqueeze(-1)?)?
            .f_sum_dim_intlist(0, false, Kind::Float)?;
        match self.sums.get_mut(weight) {
            Some(acc) => {
                drop(acc.f_add_(&sq)?);
            }
            None => {
                self.sums.insert(weight.to_owned(), sq);
            }
        }
        Ok(())
    }
}

/// The model: its config and its parameters by Hugging Face name.
#[derive(Debug)]
pub struct Model {
    /// The config.
    pub config: ModelConfig,
    /// Parameters by name (embedding, every layer, final norm, head when untied).
    pub params: BTreeMap<String, Tensor>,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The embedding's device (where a forward pass starts).
    pub device: Device,
    /// Weight dtype.
    pub kind: Kind,
    /// Each decoder layer's device (all `device` unless placed over several).
    pub layer_devices: Vec<Device>,
    /// The final norm's and the head's device.
    pub head_device: Device,
    inv_freq: Tensor,
}

/// Names of the parameters of layer `l`.
fn layer_names(c: &ModelConfig, l: usize) -> Vec<String> {
    let p = format!("model.layers.{l}");
    let mut names = vec![];
    for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
        names.push(format!("{p}.self_attn.{proj}.weight"));
        if c.attention_bias && proj != "o_proj" {
            names.push(format!("{p}.self_attn.{proj}.bias"));
        }
    }
    for proj in ["gate_proj", "up_proj", "down_proj"] {
        names.push(format!("{p}.mlp.{proj}.weight"));
        if c.mlp_bias {
            names.push(format!("{p}.mlp.{proj}.bias"));
        }
    }
    names.push(format!("{p}.input_layernorm.weight"));
    names.push(format!("{p}.post_attention_layernorm.weight"));
    names
}

/// RoPE inverse frequencies, with Llama 3.1 scaling when configured (as transformers computes them).
fn inv_freq(c: &ModelConfig) -> Vec<f32> {
    let d = c.head_dim;
    let base: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / c.rope_theta.powf((2 * i) as f64 / d as f64))
        .collect();
    let base: Vec<f64> = base.iter().map(|&x| f64::from(x as f32)).collect();
    let Some(s) = c.rope_scaling else {
        return base.iter().map(|&x| x as f32).collect();
    };
    let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
    let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
    base.iter()
        .map(|&f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            let scaled = if wavelen > low_wavelen {
                f / s.factor
            } else {
                f
            };
            let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                / (s.high_freq_factor - s.low_freq_factor);
            // Finite frequencies: "not below high and not above low" is the closed interval.
            let medium = (high_wavelen..=low_wavelen).contains(&wavelen);
            (if medium {
                (1.0 - smooth) * scaled / s.factor + smooth * scaled
            } else {
                scaled
            }) as f32
        })
        .collect()
}

fn rotate_half(x: &Tensor) -> Result<Tensor, TchError> {
    let half = x.size().last().copied().unwrap_or(0) / 2;
    let x1 = x.f_narrow(-1, 0, half)?;
    let x2 = x.f_narrow(-1, half, half)?;
    Tensor::f_cat(&[x2.f_neg()?, x1], -1)
}

impl Model {
    /// Load the model at `dir` (config.json + safetensors) onto `device` in `kind` (f32 or bf16).
    pub fn load(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        Self::load_placed(dir, kind, |_| device)
    }

    /// Load the model at `dir` in `kind` with each parameter on `device_of(name)`: contiguous
    /// layer ranges over several devices ([`crate::placement`]); activations move between them
    /// in the forward pass.
    pub fn load_placed(dir: &Path, kind: Kind, device_of: impl Fn(&str) -> Device) -> Result<Self> {
        let config = ModelConfig::from_dir(dir)?;
        let ckpt = Checkpoint::open(dir)?;
        let mut names = vec!["model.embed_tokens.weight".to_owned()];
        for l in 0..config.num_layers {
            names.extend(layer_names(&config, l));
        }
        names.push("model.norm.weight".into());
        if !config.tie_word_embeddings {
            names.push("lm_head.weight".into());
        }
        let mut params = BTreeMap::new();
        for name in &names {
            if !ckpt.contains(name) {
                return Err(Error::Model(
                    dir.to_path_buf(),
                    format!("tensor {name:?} is missing (config.json says it should exist)"),
                ));
            }
            let t = load_tensor(&ckpt, name, device_of(name), kind)?;
            params.insert(name.clone(), t);
        }
        if let Some(extra) = ckpt
            .tensors()
            .iter()
            .find(|t| !params.contains_key(&t.name) && !t.name.ends_with("rotary_emb.inv_freq"))
        {
            return Err(Error::Model(
                dir.to_path_buf(),
                format!(
                    "tensor {:?} is not part of {:?} as configured",
                    extra.name, config.architecture
                ),
            ));
        }
        let device = device_of("model.embed_tokens.weight");
        let layer_devices = (0..config.num_layers)
            .map(|l| device_of(&format!("model.layers.{l}.input_layernorm.weight")))
            .collect();
        let head_device = device_of("model.norm.weight");
        let inv = Tensor::from_slice(&inv_freq(&config)).to_device(device);
        Ok(Model {
            config,
            params,
            path: dir.to_path_buf(),
            device,
            kind,
            layer_devices,
            head_device,
            inv_freq: inv,
        })
    }

    /// A model from parameters already on `device` (e.g. freshly initialised for training).
    pub fn from_params(
        config: ModelConfig,
        params: BTreeMap<String, Tensor>,
        device: Device,
        kind: Kind,
        path: PathBuf,
    ) -> Self {
        let inv = Tensor::from_slice(&inv_freq(&config)).to_device(device);
        let layer_devices = vec![device; config.num_layers];
        Model {
            config,
            params,
            path,
            device,
            kind,
            layer_devices,
            head_device: device,
            inv_freq: inv,
        }
    }

    /// Names and shapes of every parameter of a model with `config`, in checkpoint order.
    pub fn parameter_shapes(config: &ModelConfig) -> Vec<(String, Vec<i64>)> {
        let c = config;
        let (h, i, kv, q) = (
            c.hidden_size as i64,
            c.intermediate_size as i64,
            (c.num_kv_heads * c.head_dim) as i64,
            (c.num_heads * c.head_dim) as i64,
        );
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            vec![c.vocab_size as i64, h],
        )];
        for l in 0..c.num_layers {
            for name in layer_names(c, l) {
                let shape = match name.rsplit('.').nth(1).unwrap_or("") {
                    "q_proj" if name.ends_with("bias") => vec![q],
                    "k_proj" | "v_proj" if name.ends_with("bias") => vec![kv],
                    "q_proj" => vec![q, h],
                    "k_proj" | "v_proj" => vec![kv, h],
                    "o_proj" => vec![h, q],
                    "gate_proj" | "up_proj" if name.ends_with("bias") => vec![i],
                    "gate_proj" | "up_proj" => vec![i, h],
                    "down_proj" if name.ends_with("bias") => vec![h],
                    "down_proj" => vec![h, i],
                    _ => vec![h],
                };
                out.push((name, shape));
            }
        }
        out.push(("model.norm.weight".into(), vec![h]));
        if !c.tie_word_embeddings {
            out.push(("lm_head.weight".into(), vec![c.vocab_size as i64, h]));
        }
        out
    }

    fn p(&self, name: &str) -> &Tensor {
        &self.params[name]
    }

    fn linear(
        &self,
        x: &Tensor,
        l: &Linear,
        acts: &mut Option<&mut Activations>,
    ) -> Result<Tensor, TchError> {
        if let Some(a) = acts.as_deref_mut() {
            a.record(&l.weight, x)?;
        }
        x.f_linear(self.p(&l.weight), l.bias.as_ref().map(|b| self.p(b)))
    }

    fn lin(&self, prefix: &str, bias: bool) -> Linear {
        Linear {
            weight: format!("{prefix}.weight"),
            bias: bias.then(|| format!("{prefix}.bias")),
        }
    }

    fn rms_norm(
        &self,
        x: &Tensor,
        weight: &str,
        acts: &mut Option<&mut Activations>,
    ) -> Result<Tensor, TchError> {
        if let Some(a) = acts.as_deref_mut() {
            a.record(weight, x)?;
        }
        let xf = x.f_to_kind(Kind::Float)?;
        let var = xf
            .f_pow_tensor_scalar(2)?
            .f_mean_dim(-1, true, Kind::Float)?;
        let normed = xf
            .f_mul(&var.f_add_scalar(self.config.rms_norm_eps)?.f_rsqrt()?)?
            .f_to_kind(x.kind())?;
        self.p(weight).f_mul(&normed)
    }

    /// The error of a failed libtorch operation in the forward pass, named by where it happened.
    fn torch(&self, at: &str) -> impl Fn(TchError) -> Error {
        let (path, at) = (self.path.clone(), at.to_owned());
        move |error| Error::Torch {
            path: path.clone(),
            tensor: at.clone(),
            error,
        }
    }

    /// Final hidden states [T, hidden] (after the last norm) for one sequence of token ids;
    /// `acts` collects Wanda statistics.
    fn hidden(&self, ids: &[i64], acts: &mut Option<&mut Activations>) -> Result<Tensor> {
        let c = &self.config;
        let t = ids.len() as i64;
        if let Some(w) = c.sliding_window
            && ids.len() > w
        {
            return Err(Error::Model(
                self.path.clone(),
                format!(
                    "sequence of {} tokens exceeds the sliding window {w}, which is not implemented",
                    ids.len()
                ),
            ));
        }
        let embed = "model.embed_tokens.weight";
        let rope = (|| -> Result<_, TchError> {
            let ids_t = Tensor::f_from_slice(ids)?.f_to_device(self.device)?;
            // As transformers' `nn.Embedding(padding_idx=pad_token_id)`: the pad row gets no
            // gradient from input positions (ATen's -1 is "no padding row"). The backward of
            // this op sums repeated tokens' gradients in f32 on CUDA too, in a fixed order.
            let padding_idx = c.pad_token_id.map_or(-1, |p| p as i64);
            let x = Tensor::f_embedding(self.p(embed), &ids_t, padding_idx, false, false)?;
            let pos = Tensor::f_arange(t, (Kind::Float, self.device))?;
            let freqs = pos.f_outer(&self.inv_freq)?;
            let emb = Tensor::f_cat(&[&freqs, &freqs], -1)?;
            let cos = emb.f_cos()?.f_to_kind(self.kind)?.f_unsqueeze(1)?;
            let sin = emb.f_sin()?.f_to_kind(self.kind)?.f_unsqueeze(1)?;
            Ok((x, cos, sin))
        })();
        let (mut x, mut cos, mut sin) = rope.map_err(self.torch(embed))?;
        for l in 0..c.num_layers {
            let p = format!("model.layers.{l}");
            // Across devices: the hidden state (and RoPE's tables) move with the layers.
            let dev = self.layer_devices[l];
            if x.device() != dev {
                (|| -> Result<(), TchError> {
                    x = x.f_to_device(dev)?;
                    cos = cos.f_to_device(dev)?;
                    sin = sin.f_to_device(dev)?;
                    Ok(())
                })()
                .map_err(self.torch(&p))?;
            }
            x = self
                .layer(&p, &x, &cos, &sin, acts)
                .map_err(self.torch(&p))?;
        }
        let norm = "model.norm.weight";
        let x = x.f_to_device(self.head_device).map_err(self.torch(norm))?;
        self.rms_norm(&x, norm, acts).map_err(self.torch(norm))
    }

    /// One decoder layer.
    fn layer(
        &self,
        p: &str,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        acts: &mut Option<&mut Activations>,
    ) -> Result<Tensor, TchError> {
        let c = &self.config;
        let t = x.size()[0];
        let (h, kv, hd) = (c.num_heads as i64, c.num_kv_heads as i64, c.head_dim as i64);
        let hs = self.rms_norm(x, &format!("{p}.input_layernorm.weight"), acts)?;
        let ab = c.attention_bias;
        let q = self
            .linear(&hs, &self.lin(&format!("{p}.self_attn.q_proj"), ab), acts)?
            .f_view([t, h, hd])?;
        let k = self
            .linear(&hs, &self.lin(&format!("{p}.self_attn.k_proj"), ab), acts)?
            .f_view([t, kv, hd])?;
        let v = self
            .linear(&hs, &self.lin(&format!("{p}.self_attn.v_proj"), ab), acts)?
            .f_view([t, kv, hd])?;
        let rotate = |x: &Tensor| -> Result<Tensor, TchError> {
            x.f_mul(cos)?.f_add(&rotate_half(x)?.f_mul(sin)?)
        };
        let (q, k) = (rotate(&q)?, rotate(&k)?);
        // [1, heads, T, head_dim]; grouped-query attention shares each k/v head.
        let heads = |x: &Tensor| x.f_transpose(0, 1)?.f_unsqueeze(0);
        let attn = Tensor::f_scaled_dot_product_attention(
            &heads(&q)?,
            &heads(&k)?,
            &heads(&v)?,
            None::<Tensor>,
            0.0,
            true,
            None,
            kv != h,
        )?
        .f_squeeze_dim(0)?
        .f_transpose(0, 1)?
        .f_reshape([t, h * hd])?;
        let o = self.linear(
            &attn,
            &self.lin(&format!("{p}.self_attn.o_proj"), false),
            acts,
        )?;
        let x = x.f_add(&o)?;
        let hs = self.rms_norm(&x, &format!("{p}.post_attention_layernorm.weight"), acts)?;
        let mb = c.mlp_bias;
        let gate = self.linear(&hs, &self.lin(&format!("{p}.mlp.gate_proj"), mb), acts)?;
        let up = self.linear(&hs, &self.lin(&format!("{p}.mlp.up_proj"), mb), acts)?;
        let down = self.linear(
            &gate.f_silu()?.f_mul(&up)?,
            &self.lin(&format!("{p}.mlp.down_proj"), mb),
            acts,
        )?;
        x.f_add(&down)
    }

    /// The output head's name (the embedding when tied).
    fn head(&self) -> &'static str {
        if self.config.tie_word_embeddings {
            "model.embed_tokens"
        } else {
            "lm_head"
        }
    }

    /// Logits [T, vocab] for one sequence of token ids; `acts` collects Wanda statistics.
    pub fn forward(&self, ids: &[i64], mut acts: Option<&mut Activations>) -> Result<Tensor> {
        let x = self.hidden(ids, &mut acts)?;
        self.linear(&x, &self.lin(self.head(), false), &mut acts)
            .map_err(self.torch(self.head()))
    }

    /// Mean negative log-likelihood of the answer tokens `ids[prompt_len..]`, each predicted
    /// from the position before it (docs/how-led-works.md, "Locate"), computed in f32. Logits
    /// are computed for the answer's positions only: the head's output is the largest
    /// activation (tokens × vocabulary).
    pub fn answer_loss(
        &self,
        ids: &[i64],
        prompt_len: usize,
        mut acts: Option<&mut Activations>,
    ) -> Result<Tensor> {
        if prompt_len == 0 || prompt_len >= ids.len() {
            return Err(Error::Model(
                self.path.clone(),
                format!(
                    "a sample needs a prompt and an answer ({} prompt tokens of {})",
                    prompt_len,
                    ids.len()
                ),
            ));
        }
        let x = self.hidden(ids, &mut acts)?;
        let head = self.lin(self.head(), false);
        let n = (ids.len() - prompt_len) as i64;
        (|| -> Result<Tensor, TchError> {
            // Wanda's statistics of the head's input cover every position the mask selects.
            if let Some(a) = acts.as_deref_mut() {
                a.record(&head.weight, &x)?;
            }
            let pred = x
                .f_narrow(0, prompt_len as i64 - 1, n)?
                .f_linear(self.p(&head.weight), None::<Tensor>)?;
            let target = Tensor::f_from_slice(&ids[prompt_len..])?.f_to_device(self.head_device)?;
            pred.f_log_softmax(-1, Kind::Float)?.f_nll_loss(
                &target,
                None::<Tensor>,
                tch::Reduction::Mean,
                -100,
            )
        })()
        .map_err(self.torch(self.head()))
    }

    /// Parameter names in checkpoint order (sorted).
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.params.keys()
    }

    /// Whether an architecture is Mistral (for callers reporting limits).
    pub fn is_mistral(&self) -> bool {
        self.config.architecture == Architecture::Mistral
    }
}
