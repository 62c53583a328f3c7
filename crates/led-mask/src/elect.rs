//! Elect (spec §2): per tensor, the top-r sets under the base's and the fine-tuned model's
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

    /// Whether an element with these memberships is elected.
    #[inline]
    pub fn admits(self, in_base: bool, in_model: bool) -> bool {
        match self {
            Pattern::BothHigh => in_base && in_model,
            Pattern::FineTunedOnly => !in_base && in_model,
            Pattern::BaseOnly => in_base && !in_model,
            Pattern::BothLow => !in_base && !in_model,
        }
    }

    /// The pattern applied to whole masks (set algebra on roaring masks).
    pub fn combine(self, base: &crate::Mask, model: &crate::Mask) -> crate::Mask {
        match self {
            Pattern::BothHigh => base & model,
            Pattern::FineTunedOnly => model - base,
            Pattern::BaseOnly => base - model,
            Pattern::BothLow => !&(base | model),
        }
    }

    /// The two-digit spelling, `"11"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::BothHigh => "11",
            Pattern::FineTunedOnly => "01",
            Pattern::BaseOnly => "10",
            Pattern::BothLow => "00",
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
    let elected = DenseMask::combine(&in_base, &in_model, |b, u| match pattern {
        Pattern::BothHigh => b & u,
        Pattern::FineTunedOnly => !b & u,
        Pattern::BaseOnly => b & !u,
        Pattern::BothLow => !(b | u),
    });
    Ok(Election {
        base,
        model,
        elected,
    })
}
