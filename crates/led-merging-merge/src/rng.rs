//! Counter-based randomness for DARE and DELLA: the stream for one (seed, tensor, model) is
//! fixed by those three alone, and each block of elements has its own sub-stream, so results
//! don't depend on thread count or scheduling.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Elements per independent sub-stream (chunks of this size can be processed in parallel).
pub(crate) const BLOCK: usize = 1 << 16;

/// What identifies one random stream: (seed, tensor name, model index).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamKey<'a> {
    pub seed: u64,
    pub tensor: &'a str,
    pub model: usize,
}

impl StreamKey<'_> {
    /// The generator for block `block` of this stream.
    pub(crate) fn block(&self, block: usize) -> ChaCha8Rng {
        block_rng(self.seed, self.tensor, self.model, block)
    }
}

/// The generator for block `block` of model `model` in tensor `tensor` under `seed`.
fn block_rng(seed: u64, tensor: &str, model: usize, block: usize) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(b"led-merging/rng/v1\0");
    h.update(seed.to_le_bytes());
    h.update((tensor.len() as u64).to_le_bytes());
    h.update(tensor.as_bytes());
    h.update((model as u64).to_le_bytes());
    let key: [u8; 32] = h.finalize().into();
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(block as u64);
    rng
}
