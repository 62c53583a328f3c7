//! # led-merging
//!
//! Merge fine-tuned large language models without the merge destroying their safety.
//! This facade re-exports the workspace's crates:
//!
//! - [`io`] (`led-io`): Hugging Face safetensors checkpoints, sharded reading and writing.
//!
//! Later crates (mask algebra, merge operators, attribution) are re-exported here as they land.

pub use led_io as io;

// The README's Rust examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
