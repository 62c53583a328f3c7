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

/// Copy `config.json` (with `torch_dtype` set to `dtype` when given) and every file of
/// [`MODEL_SIDE_FILES`] that exists in `donor` into the directory `dest`. Returns the names
/// copied. A donor without `config.json` is fine (score checkpoints have none).
pub fn copy_model_files(donor: &Path, dest: &Path, dtype: Option<Dtype>) -> Result<Vec<String>> {
    let mut copied = Vec::new();
    let config = donor.join(CONFIG_FILE);
    if config.is_file() {
        let text = fs::read(&config).at(&config)?;
        let mut value: Value = serde_json::from_slice(&text).map_err(|e| Error::Json {
            path: config.clone(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let obj = value.as_object_mut().ok_or_else(|| Error::Json {
            path: config.clone(),
            reason: "is not a JSON object".into(),
        })?;
        if let Some(dtype) = dtype {
            obj.insert("torch_dtype".into(), Value::from(dtype.torch_name()));
            // Newer transformers write `dtype` instead; keep both in step.
            if obj.contains_key("dtype") {
                obj.insert("dtype".into(), Value::from(dtype.torch_name()));
            }
        }
        let out = dest.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(&value).expect("JSON value");
        fs::write(&out, text + "\n").at(&out)?;
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
