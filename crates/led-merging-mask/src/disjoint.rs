//! Disjoint (docs/how-led-works.md, "3. Disjoint"): every element elected by two or more tasks is removed from all of them.

use crate::dense::DenseMask;

/// Elements set in two or more of `masks`, in one pass over the K masks (O(K · n / 64) word
/// operations, not K²). Panics if the masks differ in length.
pub fn overlap(masks: &[DenseMask]) -> DenseMask {
    let Some(first) = masks.first() else {
        return DenseMask::zeros(0);
    };
    let len = first.len();
    assert!(
        masks.iter().all(|m| m.len() == len),
        "masks over tensors of different sizes"
    );
    let words = len.div_ceil(64);
    let mut once = vec![0u64; words];
    let mut twice = vec![0u64; words];
    for m in masks {
        for ((o, t), &e) in once.iter_mut().zip(twice.iter_mut()).zip(m.words()) {
            *t |= *o & e;
            *o |= e;
        }
    }
    DenseMask::from_words(len, twice).expect("word count from len")
}

/// Replace each E_i by m_i = E_i \ ∪_{j≠i} E_j, in place, and return the removed overlap.
/// Panics if the masks differ in length.
pub fn disjoint(masks: &mut [DenseMask]) -> DenseMask {
    let removed = overlap(masks);
    for m in masks.iter_mut() {
        m.and_not_assign(&removed);
    }
    removed
}
