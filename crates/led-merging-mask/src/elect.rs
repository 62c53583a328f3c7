//! Elect (docs/how-led-works.md, "2. Elect"): per tensor, the top-r sets under the base's and the fine-tuned model's
//! scores, combined by an election pattern.

use std::fmt;
use std::str::FromStr;

use crate::dense::DenseMask;
use crate::error::{Error, Result, check_len};
use crate::threshold::{Threshold, select_threshold};

/// How base membership (first digit) and fine-tuned membership (second digit) combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pattern {
    /// `11`: important to both the base and the fine-tuned model, M_b ∩ M_u (the method).
    #[default]
    BothHigh,
    /// `01`: important to the fine-tuned model only, M_u \ M_b.
    FineTunedOnly,
    /// `10`: important to the base only, M_b \ M_u.
    BaseOnly,
    /// `00`: important to neither, the complement of M_b ∪ M_u.
    BothLow,
}

impl Pattern {
    /// Every pattern, in the paper's order.
    pub const ALL: [Pattern; 4] = [
        Pattern::BothHigh,
        Pattern::FineTunedOnly,
        Pattern::BaseOnly,
        Pattern::BothLow,
    ];

    /// The election's truth table, the one place it is written: the membership in M_b (first
    /// digit) and in M_u (second digit) an element must have to be elected.
    #[inline]
    pub const fn wants(self) -> (bool, bool) {
        match self {
            Pattern::BothHigh => (true, true),
            Pattern::FineTunedOnly => (false, true),
            Pattern::BaseOnly => (true, false),
            Pattern::BothLow => (false, false),
        }
    }

    /// Whether an element with these memberships is elected.
    #[inline]
    pub fn admits(self, in_base: bool, in_model: bool) -> bool {
        (in_base, in_model) == self.wants()
    }

    /// The pattern on 64 elements at once: bit i of the result is `admits(bit i of in_base,
    /// bit i of in_model)`.
    #[inline]
    pub fn admits_word(self, in_base: u64, in_model: u64) -> u64 {
        let (base, model) = self.wants();
        let side = |bits: u64, wanted: bool| if wanted { bits } else { !bits };
        side(in_base, base) & side(in_model, model)
    }

    /// The pattern applied to whole masks (set algebra on roaring masks).
    pub fn combine(self, base: &crate::Mask, model: &crate::Mask) -> crate::Mask {
        match self.wants() {
            (true, true) => base & model,
            (false, true) => model - base,
            (true, false) => base - model,
            (false, false) => !&(base | model),
        }
    }

    /// The two-digit spelling, `"11"`.
    pub fn as_str(self) -> &'static str {
        match self.wants() {
            (true, true) => "11",
            (false, true) => "01",
            (true, false) => "10",
            (false, false) => "00",
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pattern {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| Error::BadPattern(s.into()))
    }
}

/// One tensor's top-r set under one score tensor.
pub fn top_set(tensor: &str, scores: &[f32], ratio: f64) -> Result<(Threshold, DenseMask)> {
    let t = select_threshold(tensor, scores, ratio)?;
    Ok((t, DenseMask::from_cutoff(scores, t.cutoff())))
}

/// The outcome of electing one task's weights in one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Election {
    /// The base's threshold (M_b).
    pub base: Threshold,
    /// The fine-tuned model's threshold (M_u).
    pub model: Threshold,
    /// E = pattern(M_b, M_u).
    pub elected: DenseMask,
}

/// Elect task weights of tensor `tensor`: thresholds of both score tensors at `ratio`, then
/// `pattern` per element, in one pass over both.
pub fn elect(
    tensor: &str,
    base_scores: &[f32],
    model_scores: &[f32],
    ratio: f64,
    pattern: Pattern,
) -> Result<Election> {
    let base = select_threshold(tensor, base_scores, ratio)?;
    let model = select_threshold(tensor, model_scores, ratio)?;
    elect_at(tensor, base_scores, model_scores, base, model, pattern)
}

/// [`elect`] with both thresholds already selected (e.g. streamed over a tensor too large to
/// hold, see [`crate::StreamingThreshold`]); the score slices may then be any matching part of
/// the tensor.
pub fn elect_at(
    tensor: &str,
    base_scores: &[f32],
    model_scores: &[f32],
    base: Threshold,
    model: Threshold,
    pattern: Pattern,
) -> Result<Election> {
    check_len(
        tensor,
        || "the fine-tuned model's scores".into(),
        base_scores.len(),
        model_scores.len(),
    )?;
    let in_base = DenseMask::from_cutoff(base_scores, base.cutoff());
    let in_model = DenseMask::from_cutoff(model_scores, model.cutoff());
    let elected = DenseMask::combine(&in_base, &in_model, |b, u| pattern.admits_word(b, u));
    Ok(Election {
        base,
        model,
        elected,
    })
}

/// Largest bit pattern of a finite non-negative f32 (`f32::MAX`).
const MAX_BITS: u32 = 0x7F7F_FFFF;

/// Rewrite non-negative scores so that the top-r election picks the **lowest** scores: the
/// authors' `--neg_prune` convention (docs/how-led-works.md, "The authors' score convention").
///
/// Each score s becomes the f32 whose bit pattern is `f32::MAX`'s minus s's. On non-negative
/// finite floats this reverses the order exactly (no rounding, ties stay ties) and keeps every
/// value positive, so the usual rule `s ≥ t ∧ s > 0` becomes the authors' rule on the original
/// scores: s ≤ t, the k-th smallest, ties at it all kept, zero scores electable. (A score of
/// exactly `f32::MAX` would become 0 and never be elected.) NaN and infinite scores are left as
/// they are, for the election to reject; a negative score is an error naming the tensor.
///
/// ```
/// # use led_merging_mask::{lowest_first, select_threshold, DenseMask};
/// let mut s = [0.0f32, 5.0, 1.0, 1.0, 9.0];
/// lowest_first("w", &mut s)?;
/// let t = select_threshold("w", &s, 0.4)?; // k = 2: the two lowest, ties at the cut kept
/// let elected: Vec<usize> = DenseMask::from_cutoff(&s, t.cutoff()).iter_ones().collect();
/// assert_eq!(elected, [0, 2, 3]);
/// # Ok::<(), led_merging_mask::Error>(())
/// ```
pub fn lowest_first(tensor: &str, scores: &mut [f32]) -> Result<()> {
    if let Some(first) = scores.iter().position(|s| *s < 0.0) {
        return Err(Error::NegativeScore {
            tensor: tensor.into(),
            first,
            value: scores[first],
        });
    }
    for s in scores.iter_mut().filter(|s| s.is_finite()) {
        // -0.0 counts as 0.
        *s = f32::from_bits(MAX_BITS - (s.to_bits() & 0x7FFF_FFFF));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_table_is_the_paper_s_two_digits() {
        // (pattern, elected for (in M_b, in M_u) = (1,1), (1,0), (0,1), (0,0)), worked by hand.
        let table = [
            ("11", [true, false, false, false]),
            ("10", [false, true, false, false]),
            ("01", [false, false, true, false]),
            ("00", [false, false, false, true]),
        ];
        let cases = [(true, true), (true, false), (false, true), (false, false)];
        for (spelling, expected) in table {
            let p: Pattern = spelling.parse().unwrap();
            assert_eq!(p.as_str(), spelling);
            for ((b, u), want) in cases.into_iter().zip(expected) {
                assert_eq!(p.admits(b, u), want, "{spelling} at ({b}, {u})");
            }
            // Bits 0..4 of the words are the four cases above.
            let word = p.admits_word(0b0011, 0b0101);
            let bits: Vec<bool> = (0..4).map(|i| word >> i & 1 == 1).collect();
            assert_eq!(bits, expected, "{spelling} on words");
        }
    }

    #[test]
    fn lowest_first_reverses_the_order_exactly() {
        let original = [0.0f32, -0.0, 1e-45, 1e-38, 0.5, 1.0, 1.0, 3.0e38, f32::MAX];
        let mut s = original;
        lowest_first("w", &mut s).unwrap();
        assert!(s.iter().all(|x| x.is_finite() && *x >= 0.0));
        for i in 0..s.len() {
            for j in 0..s.len() {
                let (a, b) = (original[i], original[j]);
                assert_eq!(a.partial_cmp(&b), s[j].partial_cmp(&s[i]), "{a} vs {b}");
            }
        }
        assert_eq!(s[0], f32::MAX);
        assert_eq!(s[8], 0.0);
        let mut bad = [1.0f32, -2.0];
        assert_eq!(
            lowest_first("w", &mut bad).unwrap_err(),
            Error::NegativeScore {
                tensor: "w".into(),
                first: 1,
                value: -2.0
            }
        );
        let mut odd = [f32::NAN, f32::INFINITY, 2.0];
        lowest_first("w", &mut odd).unwrap();
        assert!(odd[0].is_nan() && odd[1] == f32::INFINITY);
    }
}
