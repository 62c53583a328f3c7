//! The crate's error type: every variant names the tensor.

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong electing, combining or reading masks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor with no elements has no top-r set.
    #[error("tensor {tensor:?}: has no elements")]
    Empty {
        /// The tensor.
        tensor: String,
    },
    /// A mask ratio outside (0, 1].
    #[error("tensor {tensor:?}: ratio {ratio} is outside (0, 1]")]
    BadRatio {
        /// The tensor.
        tensor: String,
        /// The ratio given.
        ratio: f64,
    },
    /// More elements to select than the tensor has.
    #[error("tensor {tensor:?}: cannot select the {k} largest of {len} elements")]
    BadK {
        /// The tensor.
        tensor: String,
        /// Elements to select.
        k: usize,
        /// Elements it has.
        len: usize,
    },
    /// NaN or infinite scores: the score file is corrupt.
    #[error(
        "tensor {tensor:?}: {count} score(s) are NaN or infinite (first at element {first}): the score file is corrupt"
    )]
    NonFinite {
        /// The tensor.
        tensor: String,
        /// How many.
        count: usize,
        /// Index of the first.
        first: usize,
    },
    /// A negative score where scores must be non-negative (electing the lowest scores).
    #[error(
        "tensor {tensor:?}: score {value} at element {first} is negative: electing the lowest scores (neg_prune) needs non-negative scores such as SNIP's or Wanda's"
    )]
    NegativeScore {
        /// The tensor.
        tensor: String,
        /// Index of the first negative score.
        first: usize,
        /// Its value.
        value: f32,
    },
    /// Two inputs of one tensor disagree in length.
    #[error("tensor {tensor:?}: {what} has {got} elements, expected {expected}")]
    LengthMismatch {
        /// The tensor.
        tensor: String,
        /// Which input.
        what: String,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A tensor larger than a roaring mask can index (2^32 − 1 elements).
    #[error("tensor {tensor:?}: {len} elements is more than a mask can index (4294967295)")]
    TooLarge {
        /// The tensor.
        tensor: String,
        /// Its length.
        len: usize,
    },
    /// Two tasks of one tensor ask for safety priority.
    #[error("tensor {tensor:?}: tasks {first} and {second} both have priority; at most one may")]
    TwoPriorities {
        /// The tensor.
        tensor: String,
        /// The first task with priority.
        first: usize,
        /// The second.
        second: usize,
    },
    /// An unknown election pattern.
    #[error("unknown election pattern {0:?} (expected 11, 01, 10 or 00)")]
    BadPattern(String),
    /// A serialized mask that can't be read.
    #[error("invalid mask data: {0}")]
    BadMaskData(String),
}

/// `Ok` when `got == expected`, else a [`Error::LengthMismatch`] naming `tensor` and `what`.
pub(crate) fn check_len(
    tensor: &str,
    what: impl FnOnce() -> String,
    expected: usize,
    got: usize,
) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            tensor: tensor.into(),
            what: what(),
            expected,
            got,
        })
    }
}
