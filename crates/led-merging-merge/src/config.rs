//! The merge config: mergekit's YAML shape, extended for LED-Merging.
//!
//! ```yaml
//! merge_method: led
//! base_model: meta-llama/Meta-Llama-3-8B
//! models:
//!   - model: ./instruct
//!     parameters: {weight: 1.0, density: 0.1}
//!     scores: {model: scores/instruct-safety.safetensors, base: scores/base-safety.safetensors}
//!   - model: ./math
//!     parameters: {weight: 1.0, density: 0.4}
//!     scores: {model: scores/math.safetensors, base: scores/base-math.safetensors}
//! parameters: {election: "11", disjoint: true}
//! out_dtype: bfloat16
//! ```
//!
//! Unknown keys are errors naming the key's path (`models[1].parameters.densty`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A parameter value: a number, a boolean or a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// Any number.
    Number(f64),
    /// A string, e.g. an election pattern `"11"`.
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// One entry of a conditional parameter list: applies to tensors whose name contains
/// `filter` (every tensor when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditional {
    /// Substring of the tensor name.
    #[serde(default)]
    pub filter: Option<String>,
    /// The value (a scalar or a gradient).
    pub value: Setting,
}

/// A parameter setting: a scalar, or mergekit's `[{filter, value}]` list where the first
/// entry whose filter is a substring of the tensor name wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Setting {
    /// The same value for every tensor.
    Scalar(Scalar),
    /// mergekit's gradient `[0, 0.5, 1]`: numbers interpolated linearly over the layers (layer
    /// l of a stack of L at t = l / (L − 1); other tensors at t = 0), booleans and strings picked
    /// at index ⌊t·(n − 1)⌋.
    Gradient(Vec<Scalar>),
    /// Per-tensor values chosen by name.
    Conditional(Vec<Conditional>),
}

/// Where tensor `name` sits for a gradient, as mergekit computes it: `l / (L − 1)` for layer l
/// of a stack of L layers (1 for a one-layer stack; each stack, the decoder's or a vision
/// tower's, over its own layers), 0 for every tensor outside the stacks. `stacks` gives each
/// stack's layer count by its prefix ([`led_merging_io::stack_layer`]).
pub(crate) fn layer_t(name: &str, stacks: &BTreeMap<String, usize>) -> f64 {
    led_merging_io::stack_layer(name).map_or(0.0, |(stack, l)| {
        position(l, stacks.get(stack).copied().unwrap_or(l + 1))
    })
}

/// Gradient position of layer `l` of `layers`: `l / (layers − 1)`, 1 for a single layer.
pub(crate) fn position(l: usize, layers: usize) -> f64 {
    if layers <= 1 {
        1.0
    } else {
        l as f64 / (layers - 1) as f64
    }
}

impl Setting {
    /// The value for tensor `name` at gradient position `t` (its layer's place in its stack,
    /// 0 to 1), if any entry applies.
    pub fn resolve(&self, name: &str, t: f64) -> Option<Scalar> {
        match self {
            Setting::Scalar(s) => Some(s.clone()),
            Setting::Gradient(list) => {
                let numbers: Option<Vec<f64>> = list
                    .iter()
                    .map(|v| match v {
                        Scalar::Number(n) => Some(*n),
                        _ => None,
                    })
                    .collect();
                let last = list.len().checked_sub(1)?;
                let scaled = t * last as f64;
                match numbers {
                    Some(v) => {
                        let i0 = (scaled.floor() as usize).min(last);
                        let i1 = (i0 + 1).min(last);
                        let frac = scaled - i0 as f64;
                        Some(Scalar::Number((1.0 - frac) * v[i0] + frac * v[i1]))
                    }
                    None => list.get((scaled as usize).min(last)).cloned(),
                }
            }
            Setting::Conditional(list) => list
                .iter()
                .find(|c| {
                    c.filter
                        .as_deref()
                        .is_none_or(|f| f == "*" || name.contains(f))
                })
                .and_then(|c| c.value.resolve(name, t)),
        }
    }

    pub(crate) fn scalars(&self) -> Vec<&Scalar> {
        match self {
            Setting::Scalar(s) => vec![s],
            Setting::Gradient(list) => list.iter().collect(),
            Setting::Conditional(list) => list.iter().flat_map(|c| c.value.scalars()).collect(),
        }
    }
}

/// Named parameters (`weight`, `density`, ...).
pub type Parameters = BTreeMap<String, Setting>;

/// Score checkpoints for one LED task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorePaths {
    /// Scores of the fine-tuned model on its task dataset.
    pub model: PathBuf,
    /// Scores of the base on the same dataset.
    pub base: PathBuf,
}

/// Where to compute scores for one LED task (the Locate step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// JSONL or CSV calibration data.
    pub data: PathBuf,
    /// Number of samples (default [`led_merging_io::meta::DEFAULT_SAMPLES`]).
    #[serde(default)]
    pub samples: Option<u64>,
    /// `snip` (default), `wanda` or `random`.
    #[serde(default)]
    pub scorer: Option<String>,
}

/// One input model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Model directory (or `.safetensors` file).
    pub model: PathBuf,
    /// Per-model parameters.
    #[serde(default)]
    pub parameters: Parameters,
    /// LED: precomputed score checkpoints.
    #[serde(default)]
    pub scores: Option<ScorePaths>,
    /// LED: compute scores from this dataset.
    #[serde(default)]
    pub location: Option<Location>,
}

/// One output slice (`slices:`): consecutive output layers merged from the same number of
/// layers of each source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    /// The inputs, each with its layer range.
    pub sources: Vec<SliceSource>,
    /// Parameters of this slice's tensors, over the top-level ones (a source's own win).
    #[serde(default, skip_serializing_if = "Parameters::is_empty")]
    pub parameters: Parameters,
    /// mergekit's per-slice base; led accepts only the top-level `base_model` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<PathBuf>,
}

/// One source of a slice: a model's layers `layer_range[0]..layer_range[1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceSource {
    /// Model directory.
    pub model: PathBuf,
    /// First layer and one past the last (mergekit's half-open `[start, end]`).
    pub layer_range: [usize; 2],
    /// This source's parameters for this slice.
    #[serde(default, skip_serializing_if = "Parameters::is_empty")]
    pub parameters: Parameters,
}

/// mergekit's `tokenizer` block (docs/merging.md, "Tokenizers").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    /// `union` (the default), `base` or a model directory.
    #[serde(default = "union")]
    pub source: String,
    /// Per token, where its embedding rows come from (tokens not in the vocabulary are added,
    /// in this order).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tokens: IndexMap<String, TokenEmbedding>,
    /// Pad the embedding rows to a multiple of this (the padding rows are each model's mean
    /// row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_to_multiple_of: Option<usize>,
}

fn union() -> String {
    "union".into()
}

/// Where one token's embedding rows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEmbedding {
    /// The source (absent: mergekit's default rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TokenSource>,
    /// Use the source for every model, even those that have the token.
    #[serde(default)]
    pub force: bool,
}

/// A token's embedding source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenSource {
    /// `kind: zero` or `kind: model_token`.
    Kind(TokenKind),
    /// The same token's rows in this model.
    Model(PathBuf),
}

/// The tagged token sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenKind {
    /// Zeros.
    Zero,
    /// Another token's row in a model: by id, or by its text in that model's tokenizer.
    ModelToken {
        /// The model.
        model: PathBuf,
        /// The row.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_id: Option<u32>,
        /// The token whose row it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
}

/// A merge config, as written in YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// `led`, `linear`, `task_arithmetic`, `ties`, ...
    pub merge_method: String,
    /// The base model (required by every method but `linear`).
    #[serde(default)]
    pub base_model: Option<PathBuf>,
    /// The models to merge; an entry equal to `base_model` stands for the base.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// mergekit's layer surgery, instead of `models`: the output's decoder layers, slice after
    /// slice, each merged from its sources' layer ranges (docs/merging.md, "Slices").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<Slice>,
    /// Global parameters.
    #[serde(default)]
    pub parameters: Parameters,
    /// mergekit's compute dtype. We always compute in f32; this is the output dtype when
    /// `out_dtype` is absent (as in mergekit).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Output dtype (default: `dtype`, else the base's dtype).
    #[serde(default)]
    pub out_dtype: Option<String>,
    /// Seed for random methods (DARE, DELLA); default 0.
    #[serde(default)]
    pub random_seed: Option<u64>,
    /// The output's tokenizer, as mergekit's `tokenizer_source`: `base`, `union` (every
    /// model's tokens) or a model directory; the embedding rows follow it (docs/merging.md,
    /// "Tokenizers"). Absent: the base's tokenizer and rows, unchanged.
    #[serde(default)]
    pub tokenizer_source: Option<String>,
    /// mergekit's `tokenizer` block: `source` (as `tokenizer_source`, default `union`),
    /// per-token embedding sources, `pad_to_multiple_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerConfig>,
    /// The output tokenizer's chat template: `auto` (the one most of the models have) or a
    /// Jinja template (docs/merging.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// mergekit-multi's `name`: in a config of several documents, what later documents call
    /// this one's output (docs/merging.md, "Several documents").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The file the config was read from, named by errors about it (empty for a config built
    /// in code; see [`MergeConfig::source`]).
    #[serde(skip)]
    pub source: PathBuf,
}

/// YAML 1.2 booleans only: a model named `y` or `no` stays a string.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

impl MergeConfig {
    /// Parse YAML text; `path` names the source in errors (and becomes
    /// [`MergeConfig::source`]).
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self> {
        let mut config = Self::parse_yaml(text, path)?;
        config.source = path.into();
        Ok(config)
    }

    /// Where the config came from, for errors: its file, or `<config>` for one built in code.
    pub fn source(&self) -> &Path {
        if self.source.as_os_str().is_empty() {
            Path::new("<config>")
        } else {
            &self.source
        }
    }

    /// Every document of YAML text holding one or several (mergekit-multi's `---`-separated
    /// configs), in order; `path` names the source in errors.
    pub fn documents(text: &str, path: &Path) -> Result<Vec<Self>> {
        let values: Vec<serde_json::Value> =
            serde_saphyr::from_multiple_with_options(text, yaml_options()).map_err(|e| {
                Error::Config {
                    path: path.into(),
                    key: "<yaml>".into(),
                    reason: e.to_string(),
                }
            })?;
        let several = values.len() > 1;
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let mut config = Self::from_value(value, path).map_err(|e| match e {
                    Error::Config { path, key, reason } if several => Error::Config {
                        path,
                        key: format!("document {}: {key}", i + 1),
                        reason,
                    },
                    e => e,
                })?;
                config.source = path.into();
                Ok(config)
            })
            .collect()
    }

    fn parse_yaml(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| {
                let reason = e.to_string();
                Error::Config {
                    path: path.into(),
                    key: "<yaml>".into(),
                    // In the user's words, not the parser's API.
                    reason: if reason.contains("multiple YAML documents") {
                        "several YAML documents (`---`, mergekit-multi): `led merge` runs them \
                         (with `--intermediate-dir`); in code, read them with \
                         `MergeConfig::documents` and run them with `MultiMerge`"
                            .into()
                    } else {
                        reason
                    },
                }
            })?;
        Self::from_value(value, path)
    }

    fn from_value(value: serde_json::Value, path: &Path) -> Result<Self> {
        // mergekit keys led does not implement: said so, with what to do instead.
        for (key, why) in [(
            "modules",
            "mergekit's per-module configs (multimodal models) are not supported: use `models` or `slices`",
        )] {
            if value.get(key).is_some() {
                return Err(Error::Config {
                    path: path.into(),
                    key: key.into(),
                    reason: why.into(),
                });
            }
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            Error::Config {
                path: path.into(),
                key: if key == "." {
                    "<top level>".into()
                } else {
                    key
                },
                reason: {
                    let reason = e.into_inner().to_string();
                    if reason.contains("untagged enum TokenSource") {
                        "expected a model directory, `{kind: zero}`, or `{kind: model_token, \
                         model: DIR, token: TEXT}` (or `token_id: N`)"
                            .into()
                    } else if reason.contains("untagged enum Setting") {
                        "expected a number, boolean or string, a gradient list `[0.2, 0.5, 1]`, \
                         or a list of `{filter, value}` entries"
                            .into()
                    } else {
                        reason
                    }
                },
            }
        })
    }

    /// Read and parse a YAML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.into(),
            key: "<file>".into(),
            reason: e.to_string(),
        })?;
        Self::from_yaml(&text, path)
    }

    /// Visit every model reference of the config with the config key naming it:
    /// `base_model`, `models[i].model`, each slice's `base_model` and sources, the tokenizer
    /// sources other than `base` and `union`, and per-token model sources. `f` may rewrite a
    /// reference; the first error stops the walk.
    pub fn visit_model_refs<E>(
        &mut self,
        mut f: impl FnMut(String, &mut PathBuf) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if let Some(b) = &mut self.base_model {
            f("base_model".into(), b)?;
        }
        for (i, m) in self.models.iter_mut().enumerate() {
            f(format!("models[{i}].model"), &mut m.model)?;
        }
        for (i, s) in self.slices.iter_mut().enumerate() {
            if let Some(b) = &mut s.base_model {
                f(format!("slices[{i}].base_model"), b)?;
            }
            for (j, src) in s.sources.iter_mut().enumerate() {
                f(format!("slices[{i}].sources[{j}].model"), &mut src.model)?;
            }
        }
        let mut text_ref = |key: &str, s: &mut String| {
            if matches!(s.as_str(), "base" | "union") {
                return Ok(());
            }
            let mut p = PathBuf::from(&*s);
            f(key.to_owned(), &mut p)?;
            *s = p.to_string_lossy().into_owned();
            Ok(())
        };
        if let Some(s) = &mut self.tokenizer_source {
            text_ref("tokenizer_source", s)?;
        }
        if let Some(t) = &mut self.tokenizer {
            text_ref("tokenizer.source", &mut t.source)?;
            for (token, e) in &mut t.tokens {
                let key = format!("tokenizer.tokens.{token}.source");
                match &mut e.source {
                    Some(TokenSource::Model(p)) => f(key, p)?,
                    Some(TokenSource::Kind(TokenKind::ModelToken { model, .. })) => {
                        f(format!("{key}.model"), model)?;
                    }
                    Some(TokenSource::Kind(TokenKind::Zero)) | None => {}
                }
            }
        }
        Ok(())
    }

    /// The config as YAML (for provenance and the model card).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self)
            .unwrap_or_else(|e| format!("# could not render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MergeConfig> {
        MergeConfig::from_yaml(text, Path::new("merge.yaml"))
    }

    #[test]
    fn mergekit_shape_parses() {
        let c = parse(
            "merge_method: ties\nbase_model: ./base\nmodels:\n  - model: ./a\n    parameters:\n      weight: 0.5\n      density: [{filter: mlp, value: 0.3}, {value: 0.7}]\n  - model: ./base\nparameters:\n  normalize: true\ndtype: float32\n",
        )
        .unwrap();
        assert_eq!(c.merge_method, "ties");
        assert_eq!(c.models.len(), 2);
        let density = &c.models[0].parameters["density"];
        assert_eq!(
            density.resolve("model.layers.0.mlp.up_proj.weight", 0.0),
            Some(Scalar::Number(0.3))
        );
        assert_eq!(
            density.resolve("model.layers.0.self_attn.q_proj.weight", 0.0),
            Some(Scalar::Number(0.7))
        );
        assert_eq!(
            c.parameters["normalize"],
            Setting::Scalar(Scalar::Bool(true))
        );
        let back = parse(&c.to_yaml()).unwrap();
        assert_eq!(back, c);
    }

    /// mergekit's gradients, worked by hand: layer l of 4 sits at t = l/3.
    #[test]
    fn gradients_interpolate_over_layers() {
        let c = parse(
            "merge_method: slerp
base_model: ./b
models:
  - model: ./a
parameters:
  t: [0, 0.5, 1]
  weight: [{filter: mlp, value: [1.0, 0.0]}, {value: 0.2}]
  flag: [true, false]
",
        )
        .unwrap();
        let stacks: BTreeMap<String, usize> = [("model.layers.".to_owned(), 4)].into();
        let at = |key: &str, name: &str| c.parameters[key].resolve(name, layer_t(name, &stacks));
        let n = |x: f64| Some(Scalar::Number(x));
        assert_eq!(at("t", "model.embed_tokens.weight"), n(0.0));
        // t = 1/3: scaled 2/3 between 0 and 0.5 → 1/3; t = 2/3: scaled 4/3 → 0.5 + 0.5/3.
        let close = |v: Option<Scalar>, want: f64| match v {
            Some(Scalar::Number(x)) => assert!((x - want).abs() < 1e-12, "{x} vs {want}"),
            other => panic!("{other:?}"),
        };
        close(at("t", "model.layers.1.self_attn.q_proj.weight"), 1.0 / 3.0);
        close(
            at("t", "model.layers.2.self_attn.q_proj.weight"),
            0.5 + 0.5 / 3.0,
        );
        assert_eq!(at("t", "model.layers.3.mlp.up_proj.weight"), n(1.0));
        // A gradient inside a filter entry.
        close(at("weight", "model.layers.1.mlp.up_proj.weight"), 2.0 / 3.0);
        assert_eq!(
            at("weight", "model.layers.1.self_attn.q_proj.weight"),
            n(0.2)
        );
        // Booleans are picked, not interpolated: index floor(t · 1).
        let flag = |name: &str| at("flag", name);
        assert_eq!(
            flag("model.layers.2.mlp.up_proj.weight"),
            Some(Scalar::Bool(true))
        );
        assert_eq!(
            flag("model.layers.3.mlp.up_proj.weight"),
            Some(Scalar::Bool(false))
        );
        let one: BTreeMap<String, usize> = [("model.layers.".to_owned(), 1)].into();
        assert_eq!(layer_t("model.layers.0.mlp.up_proj.weight", &one), 1.0);
        // A vision tower's layers run over its own count.
        let both: BTreeMap<String, usize> = [
            ("model.layers.".to_owned(), 4),
            ("vision_tower.encoder.layers.".to_owned(), 2),
        ]
        .into();
        assert_eq!(
            layer_t("vision_tower.encoder.layers.1.fc1.weight", &both),
            1.0
        );
        assert_eq!(
            layer_t("model.layers.1.mlp.up_proj.weight", &both),
            1.0 / 3.0
        );
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let e =
            parse("merge_method: ties\nmodels:\n  - model: a\n  - model: b\n    paramters: {}\n")
                .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("merge.yaml") && msg.contains("models[1]") && msg.contains("paramters"),
            "{msg}"
        );
        let e = parse("merge_method: ties\nbase: x\n").unwrap_err();
        assert!(e.to_string().contains("base"), "{e}");
        let e = parse("merge_method: [1]\n").unwrap_err();
        assert!(e.to_string().contains("merge_method"), "{e}");
        let e = parse("merge_method: ties\nmodels:\n  - model: a\n    scores: {model: x}\n")
            .unwrap_err();
        assert!(e.to_string().contains("models[0].scores"), "{e}");
        assert!(parse("merge_method: ties\n  bad indent: [").is_err());
        // Duplicate keys are an error, and `y` / `no` are strings (YAML 1.2).
        assert!(parse("merge_method: ties\nmerge_method: linear\n").is_err());
        let c = parse("merge_method: ties\nbase_model: no\nmodels: [{model: y}]\n").unwrap();
        assert_eq!(c.base_model.as_deref(), Some(Path::new("no")));
    }
}
