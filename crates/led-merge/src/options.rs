//! How a merge runs: the one source of part sizes for the plan (`--dry-run`) and the run.

/// Tensors with more elements than this are merged in parts of whole rows when the method
/// allows it, so memory stays bounded whatever a tensor's size: 32 Mi elements, 128 MiB per
/// input as f32.
pub const DEFAULT_CHUNK_ELEMENTS: usize = 1 << 25;

/// How to run a merge.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Replace an existing output.
    pub force: bool,
    /// Worker threads (tensors merged at once); 0 = all cores. Peak memory grows with it.
    pub threads: usize,
    /// Shard budget in bytes.
    pub max_shard_size: u64,
    /// Progress on stderr: a bar on a terminal, else a line every 5 s (`led_io::progress`).
    pub progress: bool,
    /// Tensors larger than this many elements are merged in parts where the method allows
    /// (see [`DEFAULT_CHUNK_ELEMENTS`]).
    pub chunk_elements: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            force: false,
            threads: 0,
            max_shard_size: led_io::DEFAULT_MAX_SHARD_SIZE,
            progress: false,
            chunk_elements: DEFAULT_CHUNK_ELEMENTS,
        }
    }
}
