//! The crate's one error type: every variant names the file, and the tensor where there is one.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Hugging Face Hub repo id that does not resolve to a snapshot of the local cache (and was
    /// not, or could not be, downloaded into it).
    #[error("model {reference}: {reason}")]
    Hub {
        /// The reference, as given (`org/name` or `org/name@revision`).
        reference: String,
        /// Why, and what fetches it.
        reason: String,
    },
    /// A LoRA adapter that cannot be applied.
    #[error("{path}: LoRA adapter: {reason}")]
    Adapter {
        /// The adapter's directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A `pytorch_model.bin` that is not a plain state dict of tensors, or asks for code.
    #[error("{path}: PyTorch checkpoint: {reason}")]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An operating-system I/O error on a file.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error (part of the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The file is shorter than the 8-byte header length prefix.
    #[error("{path}: not a safetensors file: {len} bytes is shorter than the 8-byte header length")]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
    },
    /// The header length exceeds [`crate::MAX_HEADER_SIZE`].
    #[error("{path}: header length {len} exceeds the limit of {limit} bytes")]
    HeaderTooLarge {
        /// The file.
        path: PathBuf,
        /// The declared header length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The header length points past the end of the file.
    #[error(
        "{path}: header length {len} is larger than the file ({file_len} bytes): truncated or not safetensors"
    )]
    HeaderBeyondFile {
        /// The file.
        path: PathBuf,
        /// The declared header length.
        len: u64,
        /// The file's size.
        file_len: u64,
    },
    /// The header is not valid UTF-8 JSON of the expected shape.
    #[error("{path}: invalid safetensors header: {reason}")]
    InvalidHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The header holds more tensors than [`crate::MAX_TENSORS`].
    #[error("{path}: header lists {count} tensors, more than the limit of {limit}")]
    TooManyTensors {
        /// The file.
        path: PathBuf,
        /// How many entries the header holds.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A tensor name appears twice (in one header, or in two shards).
    #[error("{path}: tensor {tensor:?} is listed twice")]
    DuplicateTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A dtype string that safetensors does not define.
    #[error("{path}: tensor {tensor:?}: unknown dtype {dtype:?}")]
    UnknownDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype string found.
        dtype: String,
    },
    /// The dtype cannot be used for the requested operation.
    #[error("{path}: tensor {tensor:?}: dtype {dtype} {reason}")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype.
        dtype: crate::Dtype,
        /// Why it can't be used.
        reason: &'static str,
    },
    /// The byte span of a tensor disagrees with its dtype and shape.
    #[error(
        "{path}: tensor {tensor:?}: {dtype} {shape:?} needs {expected} bytes but its offsets span {actual}"
    )]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The declared dtype.
        dtype: crate::Dtype,
        /// The declared shape.
        shape: Vec<usize>,
        /// Bytes implied by dtype × shape (saturated at u64::MAX on overflow).
        expected: u64,
        /// Bytes between the declared offsets.
        actual: u64,
    },
    /// A tensor's offsets are reversed or point past the data section.
    #[error(
        "{path}: tensor {tensor:?}: data offsets [{begin}, {end}) are outside the data section of {data_len} bytes (truncated file?)"
    )]
    OffsetOutOfBounds {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Declared begin.
        begin: u64,
        /// Declared end.
        end: u64,
        /// Size of the data section actually present.
        data_len: u64,
    },
    /// Two tensors share bytes.
    #[error("{path}: tensors {first:?} and {second:?} overlap in the data section")]
    OverlappingTensors {
        /// The file.
        path: PathBuf,
        /// One tensor.
        first: String,
        /// The other.
        second: String,
    },
    /// The index file is malformed.
    #[error("{path}: invalid index: {reason}")]
    InvalidIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The index names a shard path that is absolute or leaves the model directory.
    #[error(
        "{path}: tensor {tensor:?}: shard path {shard:?} is absolute or escapes the model directory"
    )]
    ShardEscapes {
        /// The index file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The offending shard path.
        shard: String,
    },
    /// The index names a shard that is not on disk.
    #[error("{path}: tensor {tensor:?}: shard {shard:?} named by the index does not exist")]
    MissingShard {
        /// The index file.
        path: PathBuf,
        /// The (first) tensor mapped to it.
        tensor: String,
        /// The missing shard path.
        shard: PathBuf,
    },
    /// The index maps a tensor to a shard that does not contain it.
    #[error(
        "{path}: tensor {tensor:?} is mapped by the index to this shard, but the shard does not contain it"
    )]
    NotInShard {
        /// The shard.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// The directory has no weights file transformers reads.
    #[error(
        "{path}: no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json found"
    )]
    NoWeights {
        /// The directory.
        path: PathBuf,
    },
    /// No tensor of that name.
    #[error("{path}: no tensor named {tensor:?}")]
    TensorNotFound {
        /// The checkpoint.
        path: PathBuf,
        /// The name asked for.
        tensor: String,
    },
    /// An element range outside the tensor, or a buffer of the wrong length.
    #[error("{path}: tensor {tensor:?}: {reason}")]
    BadRange {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The output target exists and overwriting was not asked for.
    #[error(
        "{path}: already exists (pass --force to replace it; in the library: `overwrite` in the options)"
    )]
    TargetExists {
        /// The target.
        path: PathBuf,
    },
    /// A problem with the tensors handed to the writer.
    #[error("{path}: tensor {tensor:?}: {reason}")]
    Write {
        /// The target being written.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// `finish` was called before every planned tensor was written.
    #[error("{path}: {} planned tensor(s) never written, first {:?}", missing.len(), missing.first())]
    Incomplete {
        /// The target being written.
        path: PathBuf,
        /// The tensors not written.
        missing: Vec<String>,
    },
    /// A size such as `5GB` that can't be parsed.
    #[error("invalid size {text:?}: {reason}")]
    InvalidSize {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON side file (config.json) that can't be read or written.
    #[error("{path}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A written model directory that transformers would not load as it is (checked before it
    /// is moved into place, so nothing is written).
    #[error("{path}: the output would not load as a Hugging Face model: {}", problems.join("; "))]
    NotLoadable {
        /// The output.
        path: PathBuf,
        /// Every inconsistency found.
        problems: Vec<String>,
    },
    /// Score-checkpoint metadata that is missing or malformed.
    #[error("{path}: score metadata: {reason}")]
    ScoreMetadata {
        /// The score file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}

/// Attach a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
