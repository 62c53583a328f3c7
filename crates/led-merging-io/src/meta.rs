//! Metadata keys written into safetensors headers, defined once: merge provenance and score
//! checkpoints (docs/formats.md). What score files record is read and written by
//! [`crate::ScoreMetadata`].

/// `format`: transformers expects `pt`.
pub const FORMAT: &str = "format";
/// What wrote the file: `led-merging <version>`.
pub const TOOL: &str = "led.tool";
/// Kind of file: [`KIND_MERGE`] or [`KIND_SCORES`].
pub const KIND: &str = "led.kind";
/// Value of [`KIND`] for a merged model.
pub const KIND_MERGE: &str = "merge";
/// Value of [`KIND`] for a score checkpoint.
pub const KIND_SCORES: &str = "scores";

/// Merge provenance: the merge method.
pub const MERGE_METHOD: &str = "led.merge.method";
/// Merge provenance: the full config (YAML text).
pub const MERGE_CONFIG: &str = "led.merge.config";
/// Merge provenance: the input paths (JSON array).
pub const MERGE_INPUTS: &str = "led.merge.inputs";

/// Scores: scorer name (`snip`, `wanda`, `random`).
pub const SCORE_SCORER: &str = "led.scores.scorer";
/// Scores: path of the scored model.
pub const SCORE_MODEL: &str = "led.scores.model";
/// Scores: sha256 of the scored model's `config.json`.
pub const SCORE_MODEL_CONFIG_SHA256: &str = "led.scores.model_config_sha256";
/// Scores: path of the calibration dataset.
pub const SCORE_DATASET: &str = "led.scores.dataset";
/// Scores: sha256 of the calibration dataset file.
pub const SCORE_DATASET_SHA256: &str = "led.scores.dataset_sha256";
/// Scores: number of samples used.
pub const SCORE_SAMPLES: &str = "led.scores.samples";
/// How many samples the Locate step scores when not told (`led locate`, `location:`).
pub const DEFAULT_SAMPLES: usize = 128;
/// Scores: seed (sample selection, random scorer).
pub const SCORE_SEED: &str = "led.scores.seed";
/// Prefix of scorer-specific options (`led.scores.option.max_tokens`, ...).
pub const SCORE_OPTION_PREFIX: &str = "led.scores.option.";

/// This tool's name and version, as recorded in [`TOOL`].
pub fn tool_version() -> String {
    format!("led-merging {}", env!("CARGO_PKG_VERSION"))
}

/// The score option holding [`crate::weights_fingerprint`] of the scored model.
pub const WEIGHTS_FINGERPRINT_OPTION: &str = "model_weights_fingerprint";
