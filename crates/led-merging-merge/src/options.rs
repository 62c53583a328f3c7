//! How a merge runs: the one source of part sizes for the plan (`--dry-run`) and the run.
//!
//! Memory is planned, not measured: each worker thread holds one part of one tensor at a time,
//! as f32, for the base, every model and the method's temporaries (one task vector per model,
//! the output and two accumulators): 4 · (2 · inputs + 3) bytes per element. A part is as many
//! whole rows as fit the budget divided among the threads; a method that needs a tensor whole
//! gets it whole, one such tensor at a time. docs/PERFORMANCE.md has the measured peaks.

use bytesize::ByteSize;

/// The part size `led analyze` reads score files in (32 Mi elements); merges size their parts
/// from [`RunOptions::memory_budget`].
pub const DEFAULT_CHUNK_ELEMENTS: usize = 1 << 25;

/// Elements of the blocks element-by-element methods are merged in, in parallel: small enough
/// for every buffer of a block to stay in cache (256 Ki elements, 1 MiB per buffer).
pub const BLOCK_ELEMENTS: usize = 1 << 18;

/// The smallest part a budget gives (rows are never split).
const MIN_PART_ELEMENTS: usize = 1 << 16;

/// How to run a merge.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Replace an existing output (`--force`).
    pub overwrite: bool,
    /// Worker threads; 0 = all cores. Each holds one part at a time.
    pub threads: usize,
    /// Shard budget in bytes.
    pub max_shard_size: u64,
    /// Progress on stderr: a bar on a terminal, else a line every 5 s (`led_merging_io::progress`).
    pub progress: bool,
    /// Memory for the merge's buffers, in bytes (`led merge --max-memory`); `None`:
    /// [`default_max_memory`].
    pub max_memory: Option<u64>,
    /// Elements per part, overriding what the budget gives (tests, benchmarks).
    pub chunk_elements: Option<usize>,
}

/// The default budget: a sixteenth of the machine's memory, at most 512 MiB (merging is
/// limited by reading and writing, not by the part size; docs/PERFORMANCE.md).
pub fn default_max_memory() -> u64 {
    const CAP: u64 = 512 << 20;
    total_memory().map_or(CAP, |m| (m / 16).clamp(64 << 20, CAP))
}

/// The machine's memory in bytes (Linux: `/proc/meminfo`).
fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes a part holds per element with `inputs` inputs (base included).
fn bytes_per_element(inputs: usize) -> u64 {
    4 * (2 * inputs as u64 + 3)
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            overwrite: false,
            threads: 0,
            max_shard_size: led_merging_io::DEFAULT_MAX_SHARD_SIZE,
            progress: false,
            max_memory: None,
            chunk_elements: None,
        }
    }
}

impl RunOptions {
    /// Worker threads this run uses.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// The memory budget in bytes.
    pub fn memory_budget(&self) -> u64 {
        self.max_memory.unwrap_or_else(default_max_memory)
    }

    /// Elements per part for a merge of `inputs` inputs (base included).
    pub fn part_elements(&self, inputs: usize) -> usize {
        if let Some(n) = self.chunk_elements {
            return n.max(1);
        }
        let per_thread = self.memory_budget() / self.worker_threads() as u64;
        let n = per_thread / bytes_per_element(inputs);
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .max(MIN_PART_ELEMENTS)
    }

    /// The planned peak of the merge's buffers when the largest tensor merged whole has
    /// `largest_whole` elements: every thread holding a part, plus that tensor.
    pub fn planned_peak(&self, inputs: usize, largest_whole: usize) -> u64 {
        let part = self.part_elements(inputs) as u64;
        let threads = self.worker_threads() as u64;
        let whole = (largest_whole as u64).saturating_sub(part);
        (threads * part + whole) * bytes_per_element(inputs)
    }

    /// One line for `--dry-run`: the budget, the part size and the planned peak.
    pub fn describe_memory(&self, inputs: usize, largest_whole: usize) -> String {
        format!(
            "memory: parts of up to {} elements on {} thread(s), planned peak {} of buffers (budget {}{})",
            self.part_elements(inputs),
            self.worker_threads(),
            ByteSize(self.planned_peak(inputs, largest_whole))
                .display()
                .si(),
            ByteSize(self.memory_budget()).display().si(),
            if self.max_memory.is_none() {
                ", the default: --max-memory to change it"
            } else {
                ""
            }
        )
    }
}
