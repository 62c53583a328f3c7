//! Merge (docs/how-led-works.md, "4. Merge"): θ = θ_b + Σ λ_i (m_i ⊙ τ_i), straight from dense masks, without
//! materialising f32 masks or task vectors.

use rayon::prelude::*;

use crate::dense::DenseMask;
use crate::error::{Error, Result};

/// One task's contribution to a tensor.
#[derive(Debug, Clone, Copy)]
pub struct TaskUpdate<'a> {
    /// The fine-tuned weights θ_i (τ_i = θ_i − θ_b is formed on the fly).
    pub model: &'a [f32],
    /// Scale λ_i.
    pub lambda: f32,
    /// The task's final mask m_i.
    pub mask: &'a DenseMask,
}

/// Elements per parallel task (a multiple of 64 so every task owns whole mask words).
const CHUNK: usize = 1 << 16;

/// Write θ_b + Σ λ_i (m_i ⊙ (θ_i − θ_b)) into `out`, summing tasks in the order given
/// (deterministic for any thread count). Elements in no mask get exactly θ_b; a masked-out
/// element never reads θ_i, so a non-finite weight outside the masks cannot leak in.
pub fn apply_masks(
    tensor: &str,
    base: &[f32],
    tasks: &[TaskUpdate<'_>],
    out: &mut [f32],
) -> Result<()> {
    let n = base.len();
    let mismatch = |what: String, got: usize| Error::LengthMismatch {
        tensor: tensor.into(),
        what,
        expected: n,
        got,
    };
    if out.len() != n {
        return Err(mismatch("the output".into(), out.len()));
    }
    for (i, t) in tasks.iter().enumerate() {
        if t.model.len() != n {
            return Err(mismatch(format!("model {i}"), t.model.len()));
        }
        if t.mask.len() != n {
            return Err(mismatch(format!("mask {i}"), t.mask.len()));
        }
    }
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
        let start = c * CHUNK;
        let b = &base[start..start + out.len()];
        out.copy_from_slice(b);
        for t in tasks {
            let m = &t.model[start..start + out.len()];
            let words = &t.mask.words()[start / 64..(start + out.len()).div_ceil(64)];
            let (outs, ms, bs) = (out.chunks_mut(64), m.chunks(64), b.chunks(64));
            for (((&word, out), m), b) in words.iter().zip(outs).zip(ms).zip(bs) {
                if word != 0 {
                    add_masked(out, m, b, word, t.lambda);
                }
            }
        }
    });
    Ok(())
}

/// `out[j] += λ (m[j] − b[j])` where bit j of `word` is set (at most 64 elements), else
/// `out[j]` unchanged. For a full word, the sum is computed everywhere and kept by a bit
/// select, not a branch (vectorised: each half's bits tested against constant lanes); the
/// arithmetic of a kept element is the same either way.
#[inline]
fn add_masked(out: &mut [f32], m: &[f32], b: &[f32], word: u64, lambda: f32) {
    if let (Ok(out), Ok(m), Ok(b)) = (
        <&mut [f32; 64]>::try_from(&mut *out),
        <&[f32; 64]>::try_from(m),
        <&[f32; 64]>::try_from(b),
    ) {
        for h in 0..2 {
            let half = (word >> (32 * h)) as u32;
            for j in 0..32 {
                let k = 32 * h + j;
                let sum = out[k] + lambda * (m[k] - b[k]);
                let keep = 0u32.wrapping_sub(u32::from(half & (1 << j) != 0));
                out[k] = f32::from_bits(sum.to_bits() & keep | out[k].to_bits() & !keep);
            }
        }
        return;
    }
    for (j, ((o, &m), &b)) in out.iter_mut().zip(m).zip(b).enumerate() {
        if word >> j & 1 == 1 {
            *o += lambda * (m - b);
        }
    }
}
