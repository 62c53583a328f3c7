//! The non-weight files a Hugging Face model directory needs, copied from a donor model.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::Dtype;
use crate::error::{Error, IoContext, Result};

/// `config.json`.
pub const CONFIG_FILE: &str = "config.json";

/// Files copied verbatim when the donor has them (`config.json` is rewritten, see
/// [`copy_model_files`]).
pub const MODEL_SIDE_FILES: &[&str] = &[
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
];

/// The JSON document at `path`.
pub(crate) fn json(path: &Path) -> Result<Value> {
    let text = fs::read(path).at(path)?;
    serde_json::from_slice(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })
}

/// `value` (read from `path`) as the JSON object it must be.
pub(crate) fn object<'a>(
    path: &Path,
    value: &'a mut Value,
) -> Result<&'a mut serde_json::Map<String, Value>> {
    value.as_object_mut().ok_or_else(|| Error::Json {
        path: path.to_path_buf(),
        reason: "is not a JSON object".into(),
    })
}

/// Write `value` to `path` as transformers does: pretty, with a final newline.
pub(crate) fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON value");
    fs::write(path, text + "\n").at(path)
}

/// Copy `config.json` (with `torch_dtype` set to `dtype` when given) and every file of
/// [`MODEL_SIDE_FILES`] that exists in `donor` into the directory `dest`. Returns the names
/// copied. A donor without `config.json` is fine (score checkpoints have none).
pub fn copy_model_files(donor: &Path, dest: &Path, dtype: Option<Dtype>) -> Result<Vec<String>> {
    let mut copied = Vec::new();
    let config = donor.join(CONFIG_FILE);
    if config.is_file() {
        let mut value = json(&config)?;
        let obj = object(&config, &mut value)?;
        if let Some(dtype) = dtype {
            obj.insert("torch_dtype".into(), Value::from(dtype.torch_name()));
            // Newer transformers write `dtype` instead; keep both in step.
            if obj.contains_key("dtype") {
                obj.insert("dtype".into(), Value::from(dtype.torch_name()));
            }
        }
        write_json(&dest.join(CONFIG_FILE), &value)?;
        copied.push(CONFIG_FILE.to_owned());
    }
    for name in MODEL_SIDE_FILES {
        let src = donor.join(name);
        if src.is_file() {
            let out = dest.join(name);
            fs::copy(&src, &out).at(&src)?;
            copied.push((*name).to_owned());
        }
    }
    Ok(copied)
}

/// Replace the tokenizer files in `dest` (every file of [`MODEL_SIDE_FILES`] but
/// `generation_config.json`) by those of `src`.
pub(crate) fn copy_tokenizer_files(src: &Path, dest: &Path) -> Result<()> {
    for name in MODEL_SIDE_FILES
        .iter()
        .filter(|n| **n != "generation_config.json")
    {
        let (from, to) = (src.join(name), dest.join(name));
        if to.is_file() {
            fs::remove_file(&to).at(&to)?;
        }
        if from.is_file() {
            fs::copy(&from, &to).at(&from)?;
        }
    }
    Ok(())
}

/// The chat template of the model directory `dir`, trimmed: its `chat_template.jinja`, else
/// `tokenizer_config.json`'s `chat_template` (a string, or the `default` of a list of named
/// templates); `None` when it has none.
pub fn chat_template_of(dir: &Path) -> Option<String> {
    if let Ok(text) = fs::read_to_string(dir.join("chat_template.jinja")) {
        return Some(text.trim().to_owned());
    }
    let config = json(&dir.join("tokenizer_config.json")).ok()?;
    let template = match config.get("chat_template")? {
        Value::String(s) => s.clone(),
        Value::Array(named) => named
            .iter()
            .find(|t| t.get("name") == Some(&Value::from("default")))?
            .get("template")?
            .as_str()?
            .to_owned(),
        _ => return None,
    };
    Some(template.trim().to_owned())
}

/// Give the tokenizer in `dir` the chat template `template`: `chat_template.jinja` written, and
/// `tokenizer_config.json`'s own `chat_template` replaced where it has one (transformers reads
/// either). Returns `false`, writing nothing, when `dir` has no tokenizer.
pub fn set_chat_template(dir: &Path, template: &str) -> Result<bool> {
    let config_path = dir.join("tokenizer_config.json");
    if !config_path.is_file() && !dir.join("tokenizer.json").is_file() {
        return Ok(false);
    }
    let out = dir.join("chat_template.jinja");
    fs::write(&out, template).at(&out)?;
    if config_path.is_file() {
        let mut config = json(&config_path)?;
        if let Some(obj) = config.as_object_mut()
            && obj.contains_key("chat_template")
        {
            obj.insert("chat_template".into(), Value::from(template));
            write_json(&config_path, &config)?;
        }
    }
    Ok(true)
}

/// Rewrite `dir`'s `config.json` for a model whose decoder layers were restacked: output
/// layer i came from layer `layer_sources[i]`. Sets the layer count (`num_hidden_layers`, or
/// GPT-2's `n_layer`, ...) to their count and reorders the per-layer `layer_types` list
/// (sliding or full attention) the same way. A directory without `config.json` is left as it
/// is.
pub fn restack_config(dir: &Path, layer_sources: &[usize]) -> Result<()> {
    let path = dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Ok(());
    }
    let mut value = json(&path)?;
    let obj = object(&path, &mut value)?;
    if let Some(Value::Array(types)) = obj.get("layer_types") {
        let picked: Option<Vec<Value>> = layer_sources
            .iter()
            .map(|&l| types.get(l).cloned())
            .collect();
        let picked = picked.ok_or_else(|| Error::Json {
            path: path.clone(),
            reason: format!(
                "layer_types has {} entries, fewer than the layers taken from it",
                types.len()
            ),
        })?;
        obj.insert("layer_types".into(), Value::Array(picked));
    }
    let mut keys: Vec<&str> = LAYER_COUNT_KEYS
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if keys.is_empty() {
        keys.push("num_hidden_layers");
    }
    for key in keys {
        obj.insert(key.into(), Value::from(layer_sources.len()));
    }
    write_json(&path, &value)
}

/// The keys under which a `config.json` gives its decoder layer count (Llama and most;
/// GPT-2; others).
const LAYER_COUNT_KEYS: [&str; 4] = ["num_hidden_layers", "n_layer", "num_layers", "n_layers"];

/// The keys under which a `config.json` gives the model's width (Llama and most; GPT-2).
const HIDDEN_SIZE_KEYS: [&str; 2] = ["hidden_size", "n_embd"];

/// Where a model directory's `config.json` disagrees with its tensors (name, shape): the
/// embedding's and `lm_head`'s rows against `vocab_size`, the first layer norm's width against
/// `hidden_size`, an untied config without `lm_head.weight`, the decoder layers present against
/// `num_hidden_layers`. transformers refuses to load such a directory. Nothing is checked
/// without a `config.json`.
pub fn config_problems(dir: &Path, tensors: &[(&str, &[usize])]) -> Result<Vec<String>> {
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Ok(Vec::new());
    }
    Ok(problems_of(&json(&config_path)?, tensors))
}

/// [`config_problems`] of a parsed `config.json`.
fn problems_of(config: &Value, tensors: &[(&str, &[usize])]) -> Vec<String> {
    let number = |key: &str| config.get(key).and_then(Value::as_u64);
    let rows = |suffix: &str| {
        tensors
            .iter()
            .find(|(n, _)| n.ends_with(suffix))
            .and_then(|(n, s)| s.first().map(|r| (*n, *r as u64)))
    };
    let mut problems = Vec::new();
    let vocab = number("vocab_size");
    if let Some(vocab) = vocab {
        for suffix in ["embed_tokens.weight", "lm_head.weight", "wte.weight"] {
            if let Some((name, r)) = rows(suffix)
                && r != vocab
            {
                problems.push(format!(
                    "{name} has {r} rows but config.json's vocab_size is {vocab}"
                ));
            }
        }
    }
    if config.get("tie_word_embeddings") == Some(&Value::Bool(false))
        && rows("embed_tokens.weight").is_some()
        && rows("lm_head.weight").is_none()
    {
        problems.push(
            "config.json says tie_word_embeddings: false but there is no lm_head.weight".into(),
        );
    }
    let layers: std::collections::BTreeSet<u64> = tensors
        .iter()
        .filter_map(|(n, _)| crate::decoder_layer(n).map(|(l, _)| l as u64))
        .collect();
    let count = LAYER_COUNT_KEYS
        .iter()
        .find_map(|k| number(k).map(|n| (*k, n)));
    if let (Some((key, n)), Some(last)) = (count, layers.last())
        && (*last + 1 != n || layers.len() as u64 != n)
    {
        problems.push(format!(
            "config.json's {key} is {n} but the tensors hold {} layer(s) (0..={last})",
            layers.len()
        ));
    }
    let hidden = HIDDEN_SIZE_KEYS
        .iter()
        .find_map(|k| number(k).map(|n| (*k, n)));
    if let Some((key, h)) = hidden
        && let Some((name, width)) = tensors.iter().find_map(|(n, s)| {
            let norm = n.ends_with(".input_layernorm.weight") || n.ends_with(".ln_1.weight");
            (norm && s.len() == 1).then(|| (*n, s[0] as u64))
        })
        && width != h
    {
        problems.push(format!(
            "{name} has {width} elements but config.json's {key} is {h}"
        ));
    }
    problems
}

/// Problems that would stop transformers from loading the model directory `dir` whose tensors
/// are `tensors` (name, shape), from its `config.json` and `tokenizer.json`: those of
/// [`config_problems`], and token ids beyond the vocabulary. Nothing is checked without a
/// `config.json` (not a transformers model directory).
pub fn loadability_problems(dir: &Path, tensors: &[(&str, &[usize])]) -> Result<Vec<String>> {
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Ok(Vec::new());
    }
    let config = json(&config_path)?;
    let mut problems = problems_of(&config, tensors);
    let vocab = config.get("vocab_size").and_then(Value::as_u64);
    let tokenizer_path = dir.join("tokenizer.json");
    if let (Some(vocab), true) = (vocab, tokenizer_path.is_file()) {
        let tok = json(&tokenizer_path)?;
        let ids = |v: Option<&Value>| -> Option<u64> {
            match v? {
                Value::Object(m) => m.values().filter_map(Value::as_u64).max(),
                // Unigram: a list of [piece, score]; ids are positions.
                Value::Array(a) => (a.len() as u64).checked_sub(1),
                _ => None,
            }
        };
        let model_max = ids(tok.get("model").and_then(|m| m.get("vocab")));
        let added_max = tok
            .get("added_tokens")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().filter_map(|t| t.get("id")?.as_u64()).max());
        if let Some(max) = model_max.max(added_max)
            && max >= vocab
        {
            problems.push(format!(
                "tokenizer.json has token id {max} but config.json's vocab_size is {vocab}"
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model directory with `config` and `tokenizer.json` holding ids up to `max_id`.
    fn dir_with(config: &str, max_id: u64) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(CONFIG_FILE), config).unwrap();
        let tok = format!(
            r#"{{"model": {{"type": "WordLevel", "vocab": {{"a": 0, "b": 1}}}}, "added_tokens": [{{"id": {max_id}, "content": "<x>"}}]}}"#
        );
        fs::write(d.path().join("tokenizer.json"), tok).unwrap();
        d
    }

    #[test]
    fn chat_templates_are_read_and_set() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(chat_template_of(d.path()), None);
        assert!(!set_chat_template(d.path(), "{{ x }}").unwrap());
        let named = r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": " D "}]}"#;
        fs::write(d.path().join("tokenizer_config.json"), named).unwrap();
        assert_eq!(chat_template_of(d.path()).as_deref(), Some("D"));
        assert!(set_chat_template(d.path(), "{{ new }}").unwrap());
        assert_eq!(chat_template_of(d.path()).as_deref(), Some("{{ new }}"));
        let config = json(&d.path().join("tokenizer_config.json")).unwrap();
        assert_eq!(config["chat_template"], "{{ new }}");
    }

    #[test]
    fn restacked_config_follows_the_layers() {
        let d = dir_with(
            r#"{"num_hidden_layers": 3, "layer_types": ["sliding", "full", "sliding"], "vocab_size": 8}"#,
            0,
        );
        restack_config(d.path(), &[2, 0, 1, 2]).unwrap();
        let v = json(&d.path().join(CONFIG_FILE)).unwrap();
        assert_eq!(v["num_hidden_layers"], 4);
        assert_eq!(
            v["layer_types"],
            serde_json::json!(["sliding", "sliding", "full", "sliding"])
        );
        assert_eq!(v["vocab_size"], 8);
        let err = restack_config(d.path(), &[7]).unwrap_err().to_string();
        assert!(err.contains("layer_types has 4 entries"), "{err}");
    }

    #[test]
    fn loadability_is_checked_against_config_and_tokenizer() {
        let config = r#"{"vocab_size": 64, "tie_word_embeddings": false, "num_hidden_layers": 2, "hidden_size": 8}"#;
        let (embed, head, layer, norm) = ([64usize, 8], [64usize, 8], [8usize, 8], [8usize]);
        let good: Vec<(&str, &[usize])> = vec![
            ("model.embed_tokens.weight", &embed),
            ("model.layers.0.input_layernorm.weight", &norm),
            ("model.layers.0.mlp.up_proj.weight", &layer),
            ("model.layers.1.mlp.up_proj.weight", &layer),
            ("lm_head.weight", &head),
        ];
        let d = dir_with(config, 63);
        assert!(loadability_problems(d.path(), &good).unwrap().is_empty());
        // Rows against vocab_size, a missing untied head, a layer too many, a token id too large.
        let (wide, norm6) = ([66usize, 8], [6usize]);
        let bad: Vec<(&str, &[usize])> = vec![
            ("model.embed_tokens.weight", &wide),
            ("model.layers.0.input_layernorm.weight", &norm6),
            ("model.layers.0.mlp.up_proj.weight", &layer),
            ("model.layers.1.mlp.up_proj.weight", &layer),
            ("model.layers.2.mlp.up_proj.weight", &layer),
        ];
        let d = dir_with(config, 64);
        assert_eq!(
            loadability_problems(d.path(), &bad).unwrap(),
            [
                "model.embed_tokens.weight has 66 rows but config.json's vocab_size is 64",
                "config.json says tie_word_embeddings: false but there is no lm_head.weight",
                "config.json's num_hidden_layers is 2 but the tensors hold 3 layer(s) (0..=2)",
                "model.layers.0.input_layernorm.weight has 6 elements but config.json's hidden_size is 8",
                "tokenizer.json has token id 64 but config.json's vocab_size is 64",
            ]
        );
        // config_problems: the same but the tokenizer's.
        assert_eq!(config_problems(d.path(), &bad).unwrap().len(), 4);
        // Without config.json: not a transformers directory, nothing to check.
        let bare = tempfile::tempdir().unwrap();
        assert!(loadability_problems(bare.path(), &bad).unwrap().is_empty());
    }
}
