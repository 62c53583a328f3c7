//! The metadata of a score checkpoint ([`ScoreMetadata`], keys in [`crate::meta`]) and the
//! fingerprint of a model's weights that it records.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::meta::*;

/// sha256 (hex) over every weight file's name, size and modification time and every tensor's
/// name, dtype, shape and size: any rewrite (or copy) of the weights changes it, without reading
/// tensor data. Score files record it ([`WEIGHTS_FINGERPRINT_OPTION`]) so that a merge can check
/// that they were computed on the weights they are paired with.
pub fn weights_fingerprint(ckpt: &crate::Checkpoint) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (path, _) in ckpt.shard_metadata() {
        let meta = std::fs::metadata(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.update(
            path.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update(meta.len().to_le_bytes());
        h.update(mtime.to_le_bytes());
    }
    for t in ckpt.tensors() {
        h.update(t.name.as_bytes());
        h.update(t.dtype.as_safetensors().as_bytes());
        h.update(format!("{:?}{}", t.shape, t.byte_len).as_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// What a score checkpoint records about how it was computed (docs/formats.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScoreMetadata {
    /// `snip`, `wanda` or `random`.
    pub scorer: String,
    /// The scored model's path.
    pub model: String,
    /// sha256 (hex) of the model's `config.json`.
    pub model_config_sha256: String,
    /// The dataset's path.
    pub dataset: String,
    /// sha256 (hex) of the dataset file.
    pub dataset_sha256: String,
    /// Number of samples.
    pub samples: u64,
    /// Seed.
    pub seed: u64,
    /// Scorer options that change the result (sample selection, max tokens, fields, ...).
    pub options: BTreeMap<String, String>,
    /// The tool that wrote it (informational; not compared by [`ScoreMetadata::same_request`]).
    pub tool: String,
}

impl ScoreMetadata {
    /// The safetensors `__metadata__` map for this record (with `format: pt`).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(FORMAT.into(), "pt".into());
        m.insert(KIND.into(), KIND_SCORES.into());
        m.insert(
            TOOL.into(),
            if self.tool.is_empty() {
                tool_version()
            } else {
                self.tool.clone()
            },
        );
        m.insert(SCORE_SCORER.into(), self.scorer.clone());
        m.insert(SCORE_MODEL.into(), self.model.clone());
        m.insert(
            SCORE_MODEL_CONFIG_SHA256.into(),
            self.model_config_sha256.clone(),
        );
        m.insert(SCORE_DATASET.into(), self.dataset.clone());
        m.insert(SCORE_DATASET_SHA256.into(), self.dataset_sha256.clone());
        m.insert(SCORE_SAMPLES.into(), self.samples.to_string());
        m.insert(SCORE_SEED.into(), self.seed.to_string());
        for (k, v) in &self.options {
            m.insert(format!("{SCORE_OPTION_PREFIX}{k}"), v.clone());
        }
        m
    }

    /// Read the record back from a score file's metadata (`path` names it in errors).
    pub fn from_map(path: &Path, map: &BTreeMap<String, String>) -> Result<Self> {
        let bad = |reason: String| Error::ScoreMetadata {
            path: path.into(),
            reason,
        };
        if map.get(KIND).map(String::as_str) != Some(KIND_SCORES) {
            return Err(bad(format!(
                "{KIND} is not {KIND_SCORES:?}: not a score checkpoint written by led-merging"
            )));
        }
        let get = |key: &str| {
            map.get(key)
                .cloned()
                .ok_or_else(|| bad(format!("missing key {key}")))
        };
        let num = |key: &str| {
            get(key)?
                .parse::<u64>()
                .map_err(|e| bad(format!("{key}: {e}")))
        };
        Ok(ScoreMetadata {
            scorer: get(SCORE_SCORER)?,
            model: get(SCORE_MODEL)?,
            model_config_sha256: get(SCORE_MODEL_CONFIG_SHA256)?,
            dataset: get(SCORE_DATASET)?,
            dataset_sha256: get(SCORE_DATASET_SHA256)?,
            samples: num(SCORE_SAMPLES)?,
            seed: num(SCORE_SEED)?,
            options: map
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(SCORE_OPTION_PREFIX)
                        .map(|k| (k.to_owned(), v.clone()))
                })
                .collect(),
            tool: map.get(TOOL).cloned().unwrap_or_default(),
        })
    }

    /// Whether a file with this record answers `request`: same scorer, model, model config,
    /// dataset content, sample count, seed and options. The tool version is not compared.
    pub fn same_request(&self, request: &ScoreMetadata) -> bool {
        self.differences(request).is_empty()
    }

    /// What differs between this record and `request`, one `field: this ≠ request` line per
    /// field (options as `option.NAME`, `-` where absent); the tool version is not compared.
    pub fn differences(&self, request: &ScoreMetadata) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |field: &str, a: &str, b: &str| {
            if a != b {
                let show = |v: &str| {
                    if v.is_empty() {
                        "-".to_owned()
                    } else {
                        v.to_owned()
                    }
                };
                out.push(format!("{field}: {} ≠ {}", show(a), show(b)));
            }
        };
        cmp("scorer", &self.scorer, &request.scorer);
        cmp("model", &self.model, &request.model);
        cmp(
            "model_config_sha256",
            &self.model_config_sha256,
            &request.model_config_sha256,
        );
        cmp("dataset", &self.dataset, &request.dataset);
        cmp(
            "dataset_sha256",
            &self.dataset_sha256,
            &request.dataset_sha256,
        );
        cmp(
            "samples",
            &self.samples.to_string(),
            &request.samples.to_string(),
        );
        cmp("seed", &self.seed.to_string(), &request.seed.to_string());
        let keys: std::collections::BTreeSet<&String> =
            self.options.keys().chain(request.options.keys()).collect();
        for k in keys {
            cmp(
                &format!("option.{k}"),
                self.options.get(k).map_or("", String::as_str),
                request.options.get(k).map_or("", String::as_str),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_metadata_round_trips_and_matches() {
        let m = ScoreMetadata {
            scorer: "snip".into(),
            model: "/m/instruct".into(),
            model_config_sha256: "ab".into(),
            dataset: "safety.jsonl".into(),
            dataset_sha256: "cd".into(),
            samples: 128,
            seed: 7,
            options: [("max_tokens".to_string(), "512".to_string())].into(),
            tool: String::new(),
        };
        let map = m.to_map();
        assert_eq!(map[FORMAT], "pt");
        assert_eq!(map["led.scores.option.max_tokens"], "512");
        let back = ScoreMetadata::from_map(Path::new("s.safetensors"), &map).unwrap();
        assert_eq!(back.tool, tool_version());
        assert!(back.same_request(&m));
        let other = ScoreMetadata {
            seed: 8,
            ..m.clone()
        };
        assert!(!back.same_request(&other));
        assert_eq!(back.differences(&other), ["seed: 7 ≠ 8"]);
        let mut mode = m.clone();
        mode.options.insert("compute".into(), "cuda-bf16".into());
        assert_eq!(back.differences(&mode), ["option.compute: - ≠ cuda-bf16"]);
        let mut broken = map.clone();
        broken.remove(SCORE_SEED);
        let err = ScoreMetadata::from_map(Path::new("s.safetensors"), &broken).unwrap_err();
        assert!(
            err.to_string().contains("s.safetensors") && err.to_string().contains(SCORE_SEED),
            "{err}"
        );
        broken.insert(SCORE_SEED.into(), "x".into());
        assert!(ScoreMetadata::from_map(Path::new("s"), &broken).is_err());
        let plain: BTreeMap<String, String> = [(FORMAT.to_string(), "pt".to_string())].into();
        assert!(ScoreMetadata::from_map(Path::new("s"), &plain).is_err());
    }
}
