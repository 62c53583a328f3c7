//! Dense masks: one bit per element in `u64` words, the representation of the hot path
//! (building masks from a threshold scan, disjoint, applying masks to weights).

use bitvec::prelude::{BitVec, Lsb0};
use rayon::prelude::*;

/// Words per parallel task when scanning scores.
const WORDS_PER_TASK: usize = 1 << 14;

/// A dense bitset over `len` elements. Bits at and beyond `len` in the last word are always
/// zero, so word-wise operations and popcounts need no tail handling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DenseMask {
    len: usize,
    words: Vec<u64>,
}

fn tail_mask(len: usize) -> u64 {
    match len % 64 {
        0 => u64::MAX,
        r => (1u64 << r) - 1,
    }
}

/// Bit b set where `scores[b] >= cutoff`, for at most 64 scores: on x86-64, four comparisons
/// and one sign-bit gather per instruction; one at a time elsewhere.
#[inline]
fn at_or_above(scores: &[f32], cutoff: f32) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Ok(scores) = <&[f32; 64]>::try_from(scores) {
        // SAFETY: SSE is part of every x86-64 CPU (the target's baseline).
        return unsafe { at_or_above_sse(scores, cutoff) };
    }
    scores
        .iter()
        .enumerate()
        .fold(0, |bits, (b, &x)| bits | u64::from(x >= cutoff) << b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse")]
fn at_or_above_sse(scores: &[f32; 64], cutoff: f32) -> u64 {
    use std::arch::x86_64::{_mm_cmpge_ps, _mm_movemask_ps, _mm_set_ps, _mm_set1_ps};
    let c = _mm_set1_ps(cutoff);
    scores.chunks_exact(4).enumerate().fold(0, |bits, (q, x)| {
        let x = _mm_set_ps(x[3], x[2], x[1], x[0]);
        // An ordered comparison: a NaN is never at or above the cutoff, as above.
        bits | (_mm_movemask_ps(_mm_cmpge_ps(x, c)) as u64) << (4 * q)
    })
}

impl DenseMask {
    /// No element set.
    pub fn zeros(len: usize) -> Self {
        DenseMask {
            len,
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// Every element set.
    pub fn ones(len: usize) -> Self {
        let mut m = DenseMask {
            len,
            words: vec![u64::MAX; len.div_ceil(64)],
        };
        m.clear_tail();
        m
    }

    /// Build from a predicate over element indices, in parallel, 64 elements per word.
    pub fn from_fn(len: usize, f: impl Fn(usize) -> bool + Sync) -> Self {
        let mut words = vec![0u64; len.div_ceil(64)];
        words
            .par_chunks_mut(WORDS_PER_TASK)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (w, word) in chunk.iter_mut().enumerate() {
                    let start = (c * WORDS_PER_TASK + w) * 64;
                    let end = (start + 64).min(len);
                    let mut bits = 0u64;
                    for (b, i) in (start..end).enumerate() {
                        bits |= u64::from(f(i)) << b;
                    }
                    *word = bits;
                }
            });
        DenseMask { len, words }
    }

    /// Elements with `scores[i] >= cutoff`, one comparison per element, 64 per word, in
    /// parallel: the threshold scan of the hot path.
    pub fn from_cutoff(scores: &[f32], cutoff: f32) -> Self {
        let len = scores.len();
        let mut words = vec![0u64; len.div_ceil(64)];
        words
            .par_chunks_mut(WORDS_PER_TASK)
            .zip(scores.par_chunks(WORDS_PER_TASK * 64))
            .for_each(|(words, scores)| {
                for (word, s) in words.iter_mut().zip(scores.chunks(64)) {
                    *word = at_or_above(s, cutoff);
                }
            });
        DenseMask { len, words }
    }

    /// Word-wise `f(a, b)` of two masks of equal length (tail bits cleared afterwards).
    /// Panics on different lengths.
    pub fn combine(a: &DenseMask, b: &DenseMask, f: impl Fn(u64, u64) -> u64) -> Self {
        assert_eq!(a.len, b.len, "masks of different lengths");
        let mut m = DenseMask {
            len: a.len,
            words: a
                .words
                .iter()
                .zip(&b.words)
                .map(|(&x, &y)| f(x, y))
                .collect(),
        };
        m.clear_tail();
        m
    }

    /// Build from raw LSB-first words; bits beyond `len` are cleared. `None` if the word count
    /// does not match `len`.
    pub fn from_words(len: usize, words: Vec<u64>) -> Option<Self> {
        if words.len() != len.div_ceil(64) {
            return None;
        }
        let mut m = DenseMask { len, words };
        m.clear_tail();
        Some(m)
    }

    fn clear_tail(&mut self) {
        if let Some(last) = self.words.last_mut() {
            *last &= tail_mask(self.len);
        }
    }

    /// Number of elements the mask covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mask covers no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The LSB-first words (bit `i % 64` of word `i / 64` is element `i`).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Whether element `i` is set (false beyond `len`).
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] >> (i % 64) & 1 == 1
    }

    /// Set or clear element `i`. Panics if `i >= len`.
    pub fn set(&mut self, i: usize, value: bool) {
        assert!(
            i < self.len,
            "index {i} out of range for a mask of {} elements",
            self.len
        );
        let bit = 1u64 << (i % 64);
        if value {
            self.words[i / 64] |= bit;
        } else {
            self.words[i / 64] &= !bit;
        }
    }

    /// Number of elements set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Indices of the set elements, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + b
                })
            })
        })
    }

    fn zip_with(&mut self, other: &DenseMask, f: impl Fn(u64, u64) -> u64) {
        assert_eq!(self.len, other.len, "masks of different lengths");
        self.words
            .iter_mut()
            .zip(&other.words)
            .for_each(|(a, &b)| *a = f(*a, b));
    }

    /// `self ∩= other`. Panics on different lengths.
    pub fn and_assign(&mut self, other: &DenseMask) {
        self.zip_with(other, |a, b| a & b);
    }

    /// `self ∪= other`. Panics on different lengths.
    pub fn or_assign(&mut self, other: &DenseMask) {
        self.zip_with(other, |a, b| a | b);
    }

    /// `self \= other`. Panics on different lengths.
    pub fn and_not_assign(&mut self, other: &DenseMask) {
        self.zip_with(other, |a, b| a & !b);
    }

    /// The complement within `len`.
    pub fn complement(&self) -> DenseMask {
        let mut m = DenseMask {
            len: self.len,
            words: self.words.iter().map(|w| !w).collect(),
        };
        m.clear_tail();
        m
    }

    /// The same bits as a `bitvec` vector (one copy of the words).
    pub fn to_bitvec(&self) -> BitVec<u64, Lsb0> {
        let mut bv = BitVec::from_vec(self.words.clone());
        bv.truncate(self.len);
        bv
    }

    /// From a `bitvec` vector (one copy of its words).
    pub fn from_bitvec(bits: &BitVec<u64, Lsb0>) -> Self {
        DenseMask::from_words(bits.len(), bits.as_raw_slice().to_vec())
            .expect("bitvec's word count matches its length")
    }
}
