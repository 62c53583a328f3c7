//! A decoder's `config.json`: Llama (2, 3, 3.1 with `llama3` rope scaling), Mistral and Qwen2.
//! Any field that would change the math and that we don't implement is an error naming it.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// Architectures we can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `LlamaForCausalLM`.
    Llama,
    /// `MistralForCausalLM` (sliding window: exact below the window length).
    Mistral,
    /// `Qwen2ForCausalLM` (q/k/v biases).
    Qwen2,
}

/// Llama 3.1's RoPE frequency scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    /// `factor`.
    pub factor: f64,
    /// `low_freq_factor`.
    pub low_freq_factor: f64,
    /// `high_freq_factor`.
    pub high_freq_factor: f64,
    /// `original_max_position_embeddings`.
    pub original_max_position_embeddings: f64,
}

/// What the model's math needs from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The architecture.
    pub architecture: Architecture,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `num_hidden_layers`.
    pub num_layers: usize,
    /// `num_attention_heads`.
    pub num_heads: usize,
    /// `num_key_value_heads` (default: `num_attention_heads`).
    pub num_kv_heads: usize,
    /// `head_dim` (default: hidden / heads).
    pub head_dim: usize,
    /// `rms_norm_eps`.
    pub rms_norm_eps: f64,
    /// `rope_theta`.
    pub rope_theta: f64,
    /// `rope_scaling` of type `llama3`, if any.
    pub rope_scaling: Option<Llama3Scaling>,
    /// `tie_word_embeddings`.
    pub tie_word_embeddings: bool,
    /// Attention projections have biases (Qwen2, or Llama's `attention_bias`).
    pub attention_bias: bool,
    /// MLP projections have biases (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// Mistral's (or Qwen2's, when enabled) sliding window.
    pub sliding_window: Option<usize>,
    /// `pad_token_id`: transformers builds the embedding with `padding_idx` = this id, so its
    /// row gets no gradient from input positions (see docs/how-led-works.md, "Locate").
    pub pad_token_id: Option<usize>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    rope_parameters: Option<Value>,
    #[serde(default)]
    rope_scaling: Option<Value>,
    #[serde(default)]
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: Option<bool>,
    #[serde(default)]
    mlp_bias: Option<bool>,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    sliding_window: Option<usize>,
    #[serde(default)]
    use_sliding_window: Option<bool>,
    #[serde(default)]
    partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pad_token_id: Option<Value>,
}

fn default_eps() -> f64 {
    1e-6
}

impl ModelConfig {
    /// Read `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = led_merging_io::model_dir(dir).join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(path.clone(), e.to_string()))?;
        Self::parse(&text, &path)
    }

    /// Parse config text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |m: String| Error::Config(path.to_path_buf(), m);
        let raw: Raw = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let architecture = architecture(&raw).map_err(bad)?;
        let (rope_theta, rope_scaling) = rope(&raw).map_err(bad)?;
        let (num_heads, num_kv_heads, head_dim) = heads(&raw).map_err(bad)?;
        if !(raw.rms_norm_eps.is_finite() && raw.rms_norm_eps >= 0.0) {
            return Err(bad(format!(
                "rms_norm_eps must be a non-negative number, not {}",
                raw.rms_norm_eps
            )));
        }
        let sliding_window = match architecture {
            Architecture::Mistral => raw.sliding_window,
            Architecture::Qwen2 if raw.use_sliding_window == Some(true) => raw.sliding_window,
            _ => None,
        };
        Ok(ModelConfig {
            architecture,
            vocab_size: nonzero(raw.vocab_size, "vocab_size").map_err(bad)?,
            hidden_size: raw.hidden_size,
            intermediate_size: nonzero(raw.intermediate_size, "intermediate_size").map_err(bad)?,
            num_layers: nonzero(raw.num_hidden_layers, "num_hidden_layers").map_err(bad)?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            attention_bias: raw
                .attention_bias
                .unwrap_or(architecture == Architecture::Qwen2),
            mlp_bias: raw.mlp_bias.unwrap_or(false),
            sliding_window,
            pad_token_id: pad_token_id(raw.pad_token_id.as_ref(), raw.vocab_size).map_err(bad)?,
        })
    }
}

/// `v`, or why a zero `k` is refused.
fn nonzero(v: usize, k: &str) -> std::result::Result<usize, String> {
    if v == 0 {
        Err(format!("{k} must be positive"))
    } else {
        Ok(v)
    }
}

/// `v`, or why `k` is not a positive number.
fn positive(v: f64, k: &str) -> std::result::Result<f64, String> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{k} must be a positive number, not {v}"))
    }
}

/// The architecture (`architectures[0]`, else `model_type`), and its activation and rotary
/// settings checked.
fn architecture(raw: &Raw) -> std::result::Result<Architecture, String> {
    let arch_name = raw
        .architectures
        .first()
        .cloned()
        .or_else(|| raw.model_type.clone())
        .unwrap_or_default();
    let architecture = match arch_name.as_str() {
        "LlamaForCausalLM" | "llama" => Architecture::Llama,
        "MistralForCausalLM" | "mistral" => Architecture::Mistral,
        "Qwen2ForCausalLM" | "qwen2" => Architecture::Qwen2,
        other => {
            return Err(format!(
                "architecture {other:?} is not supported (Llama, Mistral, Qwen2)"
            ));
        }
    };
    if let Some(act) = raw.hidden_act.as_deref().filter(|a| *a != "silu") {
        return Err(format!("hidden_act {act:?} is not supported (silu)"));
    }
    if raw.partial_rotary_factor.is_some_and(|f| f != 1.0) {
        return Err("partial_rotary_factor other than 1 is not supported".into());
    }
    Ok(architecture)
}

/// `rope_theta` and the llama3 rope scaling, checked. transformers 5 moved rope settings into
/// `rope_parameters`.
fn rope(raw: &Raw) -> std::result::Result<(f64, Option<Llama3Scaling>), String> {
    let rope = raw
        .rope_parameters
        .as_ref()
        .or(raw.rope_scaling.as_ref())
        .filter(|v| !v.is_null());
    let rope_theta = raw
        .rope_theta
        .or_else(|| {
            rope.and_then(|r| r.get("rope_theta"))
                .and_then(Value::as_f64)
        })
        .unwrap_or(10000.0);
    let kind = rope.map(|r| {
        r.get("rope_type")
            .or_else(|| r.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default")
    });
    let scaling = match (rope, kind) {
        (Some(r), Some("llama3")) => {
            let num = |k: &str| {
                r.get(k)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| format!("rope_scaling.{k} missing for llama3 scaling"))
            };
            Some(Llama3Scaling {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            })
        }
        (_, None | Some("default")) => None,
        (_, Some(other)) => {
            return Err(format!(
                "rope_scaling type {other:?} is not supported (llama3)"
            ));
        }
    };
    positive(rope_theta, "rope_theta")?;
    if let Some(s) = &scaling {
        positive(s.factor, "rope_scaling.factor")?;
        positive(s.low_freq_factor, "rope_scaling.low_freq_factor")?;
        positive(
            s.original_max_position_embeddings,
            "rope_scaling.original_max_position_embeddings",
        )?;
        if s.high_freq_factor <= s.low_freq_factor {
            return Err(format!(
                "rope_scaling.high_freq_factor {} must exceed low_freq_factor {}",
                s.high_freq_factor, s.low_freq_factor
            ));
        }
    }
    Ok((rope_theta, scaling))
}

/// Attention heads, key-value heads and the head dimension, checked.
fn heads(raw: &Raw) -> std::result::Result<(usize, usize, usize), String> {
    let num_heads = nonzero(raw.num_attention_heads, "num_attention_heads")?;
    let hidden = nonzero(raw.hidden_size, "hidden_size")?;
    let num_kv_heads = nonzero(
        raw.num_key_value_heads.unwrap_or(num_heads),
        "num_key_value_heads",
    )?;
    if num_heads % num_kv_heads != 0 {
        return Err(format!(
            "num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"
        ));
    }
    let head_dim = match raw.head_dim {
        Some(h) => nonzero(h, "head_dim")?,
        None if hidden % num_heads == 0 => hidden / num_heads,
        None => {
            return Err(format!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {num_heads}"
            ));
        }
    };
    if head_dim % 2 != 0 {
        return Err(format!(
            "head_dim {head_dim} must be even for rotary embeddings"
        ));
    }
    Ok((num_heads, num_kv_heads, head_dim))
}

/// `pad_token_id` as transformers uses it for the embedding's `padding_idx`: absent or null is
/// none; a list (some configs give several) is not an id transformers accepts either.
fn pad_token_id(v: Option<&Value>, vocab: usize) -> std::result::Result<Option<usize>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(id) if (id as usize) < vocab => Ok(Some(id as usize)),
            _ => Err(format!(
                "pad_token_id {n} is not a token id below vocab_size {vocab}"
            )),
        },
        Some(other) => Err(format!("pad_token_id {other} is not a token id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<ModelConfig> {
        let text = format!(
            r#"{{"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8, "intermediate_size": 12,
                "num_hidden_layers": 1, "num_attention_heads": 2{extra}}}"#
        );
        ModelConfig::parse(&text, Path::new("config.json"))
    }

    #[test]
    fn defaults_and_errors() {
        let c = parse("").unwrap();
        assert_eq!(
            (
                c.num_kv_heads,
                c.head_dim,
                c.rope_theta,
                c.tie_word_embeddings
            ),
            (2, 4, 10000.0, false)
        );
        let c = parse(r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#).unwrap();
        assert_eq!(c.rope_scaling.unwrap().factor, 8.0);
        for (extra, needle) in [
            (
                r#", "rope_scaling": {"type": "yarn", "factor": 2.0}"#,
                "yarn",
            ),
            (r#", "hidden_act": "gelu""#, "gelu"),
            (r#", "num_key_value_heads": 3"#, "multiple"),
            (r#", "rope_theta": 0"#, "rope_theta"),
            (r#", "rms_norm_eps": -1e-6"#, "rms_norm_eps"),
            (
                r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#,
                "high_freq_factor",
            ),
        ] {
            let e = parse(extra).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("config.json"), "{e}");
        }
        let gpt2 = ModelConfig::parse(
            r#"{"architectures": ["GPT2LMHeadModel"], "vocab_size": 1, "hidden_size": 1, "intermediate_size": 1, "num_hidden_layers": 1, "num_attention_heads": 1}"#,
            Path::new("c.json"),
        );
        assert!(gpt2.unwrap_err().to_string().contains("GPT2"));
    }

    #[test]
    fn pad_token_id_is_read_and_checked() {
        assert_eq!(parse("").unwrap().pad_token_id, None);
        assert_eq!(
            parse(r#", "pad_token_id": null"#).unwrap().pad_token_id,
            None
        );
        assert_eq!(
            parse(r#", "pad_token_id": 2"#).unwrap().pad_token_id,
            Some(2)
        );
        for bad in [
            r#", "pad_token_id": 10"#,
            r#", "pad_token_id": -1"#,
            r#", "pad_token_id": [1, 2]"#,
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("pad_token_id"), "{e}");
        }
    }
}
