//! LoRA adapters in PEFT's format (`adapter_config.json` + `adapter_model.safetensors`),
//! applied to a model's tensors as they are read (docs/models.md, "LoRA adapters"): each
//! adapted tensor is `W + s·B·A` computed for the range read, never a merged copy on disk.
//!
//! PEFT names an adapted linear layer's factors `base_model.model.<module>.lora_A.weight`
//! (`[r, in]`) and `.lora_B.weight` (`[out, r]`), an embedding's `.lora_embedding_A`
//! (`[r, rows]`) and `.lora_embedding_B` (`[width, r]`, the update transposed), and writes
//! `modules_to_save` (and a resized embedding's `.base_layer.weight`) as whole tensors, which
//! replace the model's. The scale is `lora_alpha / r` (`/ √r` with `use_rslora`), with
//! `alpha_pattern` per module and `r` read off each module's factors (which `rank_pattern`
//! sets). `fan_in_fan_out` (GPT-2's Conv1D) transposes the update of linear layers too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::header::TensorInfo;

/// An adapter's configuration file.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// An adapter's weights file.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// What PEFT puts before every tensor name of a causal LM's adapter.
const PREFIX: &str = "base_model.model.";

/// What applying a LoRA adapter needs from its `adapter_config.json`.
#[derive(Debug, Clone)]
pub struct LoraConfig {
    /// The default rank (each module's own is read off its factors).
    pub r: usize,
    /// The default `lora_alpha`.
    pub lora_alpha: f64,
    /// `use_rslora`: scale by `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
    /// `fan_in_fan_out`: the model stores linear weights as `[in, out]` (GPT-2's Conv1D).
    pub fan_in_fan_out: bool,
    /// `alpha_pattern`: per-module `lora_alpha`, keyed by a regular expression that a module
    /// name matches at its end, after a dot (PEFT's rule).
    pub alpha_pattern: Vec<(String, f64)>,
    /// `alpha_pattern`'s keys compiled once, as PEFT matches them: `^(.*\.)?(KEY)$`.
    alpha_regexes: Vec<regex::Regex>,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Adapter {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl LoraConfig {
    /// Parse `adapter_config.json` (its text, `path` for errors). Other PEFT types, DoRA, LoRA
    /// biases, layer replication and trainable tokens are refused, naming the setting.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Self> {
        let v: Value = serde_json::from_slice(text).map_err(|e| bad(path, e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad(path, "not a JSON object"))?;
        match obj.get("peft_type").and_then(Value::as_str) {
            Some("LORA") => {}
            Some(other) => {
                return Err(bad(
                    path,
                    format!("peft_type {other}: only LORA adapters can be applied"),
                ));
            }
            None => return Err(bad(path, "no peft_type: not a PEFT adapter configuration")),
        }
        for (key, what) in [
            ("use_dora", "DoRA (use_dora: true)"),
            ("lora_bias", "LoRA biases (lora_bias: true)"),
        ] {
            if obj.get(key) == Some(&Value::Bool(true)) {
                return Err(bad(path, format!("{what} is not supported")));
            }
        }
        for key in [
            "layer_replication",
            "trainable_token_indices",
            "target_parameters",
        ] {
            if obj.get(key).is_some_and(|v| !v.is_null()) {
                return Err(bad(path, format!("{key} is not supported")));
            }
        }
        let number = |key: &str| obj.get(key).and_then(Value::as_f64);
        let r = number("r").ok_or_else(|| bad(path, "no rank r"))?;
        if r < 1.0 || r.fract() != 0.0 {
            return Err(bad(path, format!("rank r = {r} is not a positive integer")));
        }
        let (alpha_pattern, alpha_regexes) = match obj.get("alpha_pattern") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    let a = v
                        .as_f64()
                        .ok_or_else(|| bad(path, format!("alpha_pattern {k:?} is not a number")))?;
                    let re = regex::Regex::new(&format!(r"^(.*\.)?({k})$"))
                        .map_err(|e| bad(path, format!("alpha_pattern {k:?}: {e}")))?;
                    Ok(((k.clone(), a), re))
                })
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .unzip(),
            _ => (Vec::new(), Vec::new()),
        };
        Ok(LoraConfig {
            r: r as usize,
            lora_alpha: number("lora_alpha").unwrap_or(8.0),
            use_rslora: obj.get("use_rslora") == Some(&Value::Bool(true)),
            fan_in_fan_out: obj.get("fan_in_fan_out") == Some(&Value::Bool(true)),
            alpha_pattern,
            alpha_regexes,
        })
    }

    /// The scale of `module`'s update at rank `rank`.
    pub fn scale(&self, module: &str, rank: usize) -> f64 {
        let alpha = self
            .alpha_regexes
            .iter()
            .position(|re| re.is_match(module))
            .map_or(self.lora_alpha, |k| self.alpha_pattern[k].1);
        if self.use_rslora {
            alpha / (rank as f64).sqrt()
        } else {
            alpha / rank as f64
        }
    }
}

/// One tensor's low-rank update, `scale · B·A` (`transposed`: `(B·A)ᵀ`).
#[derive(Debug)]
pub(crate) struct LowRank {
    pub a: TensorInfo,
    pub b: TensorInfo,
    pub scale: f32,
    pub transposed: bool,
}

impl LowRank {
    /// The rank.
    pub fn rank(&self) -> usize {
        self.a.shape[0]
    }

    /// Add the update's elements `start..start + out.len()` (flat, row-major, of a tensor of
    /// `cols` columns) to `out`, given the factors `a` and `b` read whole.
    pub fn add_into(&self, a: &[f32], b: &[f32], cols: usize, start: usize, out: &mut [f32]) {
        let r = self.rank();
        // Row i of the update is Σ_k coef(i, k) · basis(k), a basis row of `cols` values.
        // Plain: coef = B[i, k], basis = A[k, :]. Transposed: coef = A[k, i], basis = B[:, k].
        let basis: std::borrow::Cow<[f32]> = if self.transposed {
            let mut t = vec![0f32; r * cols];
            for (j, row) in b.chunks_exact(r).enumerate() {
                for (k, v) in row.iter().enumerate() {
                    t[k * cols + j] = *v;
                }
            }
            t.into()
        } else {
            a.into()
        };
        let rows_total = if self.transposed {
            a.len() / r
        } else {
            b.len() / r
        };
        let mut at = start;
        let mut done = 0;
        while done < out.len() {
            let (i, j0) = (at / cols, at % cols);
            let n = (cols - j0).min(out.len() - done);
            let dst = &mut out[done..done + n];
            for k in 0..r {
                let coef = if self.transposed {
                    a[k * rows_total + i]
                } else {
                    b[i * r + k]
                } * self.scale;
                for (d, x) in dst.iter_mut().zip(&basis[k * cols + j0..k * cols + j0 + n]) {
                    *d += coef * x;
                }
            }
            done += n;
            at += n;
        }
    }
}

/// What an adapter does to the tensors of the model it is applied to.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Model tensor name → its low-rank update.
    pub low_rank: HashMap<String, LowRank>,
    /// Model tensor name → the adapter's tensor that replaces it.
    pub replaced: HashMap<String, TensorInfo>,
}

/// Split an adapter's tensors (their infos already pointing into the merged shard list) into
/// low-rank updates and whole tensors, keyed by the model tensor they change.
pub(crate) fn plan(dir: &Path, config: &LoraConfig, tensors: Vec<TensorInfo>) -> Result<Plan> {
    let weights = dir.join(ADAPTER_WEIGHTS_FILE);
    let mut factors: HashMap<String, (Option<TensorInfo>, Option<TensorInfo>, bool)> =
        HashMap::new();
    let mut replaced = HashMap::new();
    for t in tensors {
        let name = t.name.strip_prefix(PREFIX).ok_or_else(|| {
            bad(
                &weights,
                format!(
                    "tensor {:?} does not start with {PREFIX:?}: not a PEFT adapter of a causal language model",
                    t.name
                ),
            )
        })?;
        let factor = [
            (".lora_A.weight", true, config.fan_in_fan_out),
            (".lora_B.weight", false, config.fan_in_fan_out),
            (".lora_embedding_A", true, true),
            (".lora_embedding_B", false, true),
        ]
        .into_iter()
        .find_map(|(suffix, is_a, transposed)| {
            name.strip_suffix(suffix)
                .map(|m| (m.to_owned(), is_a, transposed))
        });
        if let Some((module, is_a, transposed)) = factor {
            let slot = factors.entry(module).or_insert((None, None, transposed));
            if is_a {
                slot.0 = Some(t)
            } else {
                slot.1 = Some(t)
            }
            continue;
        }
        if name.contains("lora_") {
            return Err(bad(
                &weights,
                format!("tensor {:?}: a LoRA variant that is not supported", t.name),
            ));
        }
        let target = name
            .replace(".base_layer.", ".")
            .replace(".modules_to_save.default.", ".")
            .replace(".modules_to_save.", ".");
        replaced.insert(target, t);
    }
    let mut low_rank = HashMap::new();
    for (module, (a, b, transposed)) in factors {
        let (Some(a), Some(b)) = (a, b) else {
            return Err(bad(
                &weights,
                format!("{module}: one of its two LoRA factors (A, B) is missing"),
            ));
        };
        if a.shape.len() != 2 || b.shape.len() != 2 || a.shape[0] != b.shape[1] || a.shape[0] == 0 {
            return Err(bad(
                &weights,
                format!(
                    "{module}: factors of shapes A {:?} and B {:?} do not make a rank-r update",
                    a.shape, b.shape
                ),
            ));
        }
        let scale = config.scale(&module, a.shape[0]) as f32;
        low_rank.insert(
            format!("{module}.weight"),
            LowRank {
                a,
                b,
                scale,
                transposed,
            },
        );
    }
    if low_rank.is_empty() && replaced.is_empty() {
        return Err(bad(&weights, "the adapter holds no weights"));
    }
    Ok(Plan { low_rank, replaced })
}

/// The model and adapter of a reference `MODEL+ADAPTER` that does not exist as a path itself:
/// the first `+` whose left side exists and whose right side is a directory with an
/// `adapter_config.json`.
pub fn split_adapted(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let text = path.to_str()?;
    text.match_indices('+').find_map(|(i, _)| {
        let (model, adapter) = (Path::new(&text[..i]), Path::new(&text[i + 1..]));
        (model.exists() && adapter.join(ADAPTER_CONFIG_FILE).is_file())
            .then(|| (model.to_owned(), adapter.to_owned()))
    })
}

/// The directory of `path`'s model files (`config.json`, the tokenizer): `MODEL` of
/// `MODEL+ADAPTER`, else `path` itself.
pub fn model_dir(path: &Path) -> PathBuf {
    if path.exists() {
        return path.to_owned();
    }
    split_adapted(path).map_or_else(|| path.to_owned(), |(model, _)| model)
}

/// Read and parse `dir`'s adapter configuration.
pub(crate) fn read_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let text = std::fs::read(&path).at(&path)?;
    LoraConfig::parse(&path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, shape: &[usize]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype: crate::Dtype::F32,
            shape: shape.to_vec(),
            byte_len: 0,
            shard: PathBuf::new(),
            shard_idx: 0,
            offset: 0,
        }
    }

    #[test]
    fn low_rank_updates_by_hand() {
        // Plain: 0.5 · B·A, B = [[2], [-1]], A = [[1, 2, 3]] → [[1, 2, 3], [-0.5, -1, -1.5]].
        let plain = LowRank {
            a: info("a", &[1, 3]),
            b: info("b", &[2, 1]),
            scale: 0.5,
            transposed: false,
        };
        let mut out = vec![10.0; 3];
        plain.add_into(&[1.0, 2.0, 3.0], &[2.0, -1.0], 3, 2, &mut out);
        assert_eq!(out, [13.0, 9.5, 9.0]);
        // Transposed (embedding, Conv1D): (B·A)ᵀ, A = [[1, 2]] (r × rows), B = [[1], [0], [-1]]
        // (cols × r) → [[1, 0, -1], [2, 0, -2]].
        let transposed = LowRank {
            a: info("a", &[1, 2]),
            b: info("b", &[3, 1]),
            scale: 1.0,
            transposed: true,
        };
        let mut out = vec![0.0; 6];
        transposed.add_into(&[1.0, 2.0], &[1.0, 0.0, -1.0], 3, 0, &mut out);
        assert_eq!(out, [1.0, 0.0, -1.0, 2.0, 0.0, -2.0]);
        // Rank 2, a range across rows: Σ_k B[i, k] A[k, j].
        let two = LowRank {
            a: info("a", &[2, 2]),
            b: info("b", &[2, 2]),
            scale: 1.0,
            transposed: false,
        };
        let mut out = vec![0.0; 2];
        // A = [[1, 0], [0, 1]], B = [[1, 2], [3, 4]]: B·A = B; elements 1..3 = [2, 3].
        two.add_into(&[1.0, 0.0, 0.0, 1.0], &[1.0, 2.0, 3.0, 4.0], 2, 1, &mut out);
        assert_eq!(out, [2.0, 3.0]);
    }

    #[test]
    fn configs_and_scales_as_peft_reads_them() {
        let p = Path::new("adapter_config.json");
        let parse = |text: &str| LoraConfig::parse(p, text.as_bytes());
        let c = parse(
            r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "alpha_pattern": {"down_proj": 16}}"#,
        )
        .unwrap();
        assert_eq!(c.scale("model.layers.0.self_attn.q_proj", 4), 2.0);
        assert_eq!(c.scale("model.layers.0.mlp.down_proj", 4), 4.0);
        assert_eq!(c.scale("model.layers.0.mlp.xdown_proj", 4), 2.0);
        // rank_pattern's rank is the factors' own.
        assert_eq!(c.scale("model.layers.0.self_attn.o_proj", 2), 4.0);
        let rs =
            parse(r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 4, "use_rslora": true}"#).unwrap();
        assert_eq!(rs.scale("m", 4), 2.0);
        for (text, needle) in [
            (r#"{"peft_type": "IA3", "r": 4}"#, "peft_type IA3"),
            (r#"{"r": 4}"#, "no peft_type"),
            (r#"{"peft_type": "LORA", "r": 4, "use_dora": true}"#, "DoRA"),
            (
                r#"{"peft_type": "LORA", "r": 4, "lora_bias": true}"#,
                "LoRA biases",
            ),
            (r#"{"peft_type": "LORA", "r": 0}"#, "not a positive integer"),
            (r#"{"peft_type": "LORA"}"#, "no rank"),
            (
                r#"{"peft_type": "LORA", "r": 2, "alpha_pattern": {"(": 1}}"#,
                "alpha_pattern",
            ),
            (
                r#"{"peft_type": "LORA", "r": 2, "layer_replication": [[0, 1]]}"#,
                "layer_replication",
            ),
            ("[1]", "not a JSON object"),
            ("{", "EOF"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("adapter_config.json"),
                "{text}: {e}"
            );
        }
    }
}
