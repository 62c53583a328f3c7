//! The crate's error type.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong planning or running a merge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Io(#[from] led_merging_io::Error),
    /// Election, disjoint or masks failed.
    #[error(transparent)]
    Mask(#[from] led_merging_mask::Error),
    /// The config file is invalid; `key` is the path of the offending key.
    #[error("{path}: {key}: {reason}")]
    Config {
        /// The config file (or `<config>` when parsed from a string).
        path: PathBuf,
        /// Dotted path of the key, e.g. `models[1].parameters.density`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Several problems in a config, each as its own error would say it.
    #[error("{} problems in the config:\n  {}", problems.len(), problems.join("\n  "))]
    Problems {
        /// One line per problem, each naming the file and key.
        problems: Vec<String>,
    },
    /// The inputs can't be merged; every offending tensor is listed.
    #[error("inputs are incompatible ({} problem(s)):\n  {}", problems.len(), problems.join("\n  "))]
    Incompatible {
        /// One line per problem, each naming the file and tensor.
        problems: Vec<String>,
    },
    /// A merge operator refused a tensor.
    #[error("tensor {tensor:?}: {method}: {reason}")]
    Op {
        /// The tensor.
        tensor: String,
        /// The method.
        method: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Computing the scores a `location:` entry asks for failed.
    #[cfg(feature = "attribution")]
    #[error(transparent)]
    Locate(#[from] led_merging_attribution::Error),
    /// A step that is specified but not available in this build or yet.
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// NaN or infinite values met while selecting by |θ_i − θ_b| (TIES's top-k, breadcrumbs'
    /// band) are the inputs' fault: say so as the merge says it, not as a corrupt score file.
    pub(crate) fn in_weights(self, method: &'static str) -> Self {
        match self {
            Error::Mask(led_merging_mask::Error::NonFinite {
                tensor,
                count,
                first,
            }) => Error::op(
                &tensor,
                method,
                format!(
                    "result is not finite at element {first}: the inputs hold NaN or infinite values ({count} element(s) of a task vector)"
                ),
            ),
            other => other,
        }
    }

    pub(crate) fn op(tensor: &str, method: &'static str, reason: impl Into<String>) -> Self {
        Error::Op {
            tensor: tensor.into(),
            method,
            reason: reason.into(),
        }
    }
}
