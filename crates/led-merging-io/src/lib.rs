//! # led-merging-io: tensor I/O for led-merging
//!
//! Where it sits: every step of LED-Merging (Locate → Elect → Disjoint → Merge) reads and
//! writes Hugging Face checkpoints through this crate; score checkpoints (Locate's output,
//! Elect's input) use the same reader and writer.
//!
//! - [`Checkpoint`] opens a model directory (`model.safetensors`, or shards listed by
//!   `model.safetensors.index.json`) or one `.safetensors` file, validates every header before
//!   reading data, lists tensors, and reads one tensor or an element range of it as `f32`
//!   (from F32, F16, BF16, F64 and integer dtypes), mapping only those bytes.
//! - [`CheckpointWriter`] streams tensors (in any order, from any thread) into shards split by a
//!   byte budget, converting `f32` to BF16/F16/F32 with round-to-nearest-even, inside a
//!   temporary directory that is renamed into place only when complete.
//! - [`copy_model_files`] brings config and tokenizer files over from a donor model;
//!   [`meta`] defines the metadata keys for provenance and [`ScoreMetadata`].
//!
//! ```
//! use led_merging_io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions, parse_size};
//! let dir = tempfile::tempdir()?;
//! let out = dir.path().join("model");
//! let specs = vec![
//!     TensorSpec::new("a", Dtype::F32, [4]),
//!     TensorSpec::new("b", Dtype::BF16, [2, 3]),
//! ];
//! let options = WriterOptions { max_shard_size: parse_size("16B")?, ..Default::default() };
//! let writer = CheckpointWriter::create_dir(&out, specs, options)?;
//! writer.write_f32("b", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?; // any order
//! writer.write_f32("a", &[0.5; 4])?;
//! let written = writer.finish()?;
//! assert_eq!(written.shards, ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
//!
//! let ckpt = Checkpoint::open(&out)?;
//! assert_eq!(ckpt.info("b")?.shape, [2, 3]);
//! assert_eq!(ckpt.read_f32_range("b", 2..4)?, [3.0, 4.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adapter;
mod dtype;
mod error;
mod files;
mod header;
mod hub;
mod llama;
pub mod meta;
mod names;
pub mod progress;
mod reader;
mod score_metadata;
mod size;
mod torch_bin;
mod vocab;
mod writer;

pub use adapter::{
    ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LoraConfig, model_dir, split_adapted,
};
pub use dtype::{Dtype, decode_f32, encode_f32};
pub use error::{Error, Result};
pub use files::{
    CONFIG_FILE, MODEL_SIDE_FILES, chat_template_of, config_problems, copy_model_files,
    loadability_problems, restack_config, set_chat_template,
};
pub use hub::{HubSnapshot, ModelRef, Resolved, cache_dir, resolve_in, resolve_model};
pub use llama::LlamaShape;
pub use names::{decoder_layer, in_layer, is_vocab_tensor, stack_layer};
pub use reader::{Checkpoint, TensorInfo, validate_safetensors};
pub use score_metadata::{ScoreMetadata, weights_fingerprint};
pub use size::parse_size;
pub use vocab::{TOKENIZER_FILE, Vocabulary, config_vocab_size, plain_added_token, set_vocabulary};
pub use writer::{CheckpointWriter, TensorSpec, WriterOptions, Written};

/// Largest safetensors header accepted, in bytes (as the safetensors crate: 100 MB).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;
/// Most tensors accepted in one header or one write.
pub const MAX_TENSORS: usize = 1_000_000;
/// Default shard budget: `5GB`, as transformers and mergekit.
pub const DEFAULT_MAX_SHARD_SIZE: u64 = 5_000_000_000;
/// Weights file of an unsharded Hugging Face checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Index file of a sharded Hugging Face checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Weights file of an unsharded PyTorch checkpoint (`torch.save` format).
pub const BIN_FILE: &str = "pytorch_model.bin";
/// Index file of a sharded PyTorch checkpoint.
pub const BIN_INDEX_FILE: &str = "pytorch_model.bin.index.json";
