//! Parsing and validating one safetensors file's header, reading nothing else.
//!
//! Layout: `u64` little-endian header length `n`, `n` bytes of JSON, then the data section.
//! Every check happens before anything proportional to the declared sizes is allocated.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::error::{Error, IoContext, Result};
use crate::{Dtype, MAX_HEADER_SIZE, MAX_TENSORS};

/// The JSON key holding string metadata.
pub(crate) const METADATA_KEY: &str = "__metadata__";

/// One tensor entry as validated from a header; offsets are relative to the data section.
#[derive(Debug, Clone)]
pub(crate) struct RawTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub begin: u64,
    pub end: u64,
}

/// What the reader knows about one tensor, from headers alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Element type on disk.
    pub dtype: Dtype,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Size of the data on disk in bytes.
    pub byte_len: u64,
    /// The shard file holding it, relative to the checkpoint directory (the file name for a
    /// single-file checkpoint).
    pub shard: PathBuf,
    pub(crate) shard_idx: usize,
    /// Absolute offset of the first byte in the shard file.
    pub(crate) offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed and validated header.
#[derive(Debug)]
pub(crate) struct Header {
    /// Absolute file offset of the data section.
    pub data_start: u64,
    pub tensors: Vec<RawTensor>,
    pub metadata: BTreeMap<String, String>,
}

/// JSON object entries in file order, duplicates kept (serde_json's maps drop them silently).
pub(crate) struct Entries<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    if out.len() > MAX_TENSORS {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_TENSORS} entries"
                        )));
                    }
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

/// The first duplicated key in `keys`, if any.
pub(crate) fn first_duplicate<'a>(keys: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = HashSet::new();
    keys.into_iter().find(|k| !seen.insert(*k))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// Bytes needed by `shape` elements of `dtype`, `None` on overflow.
pub(crate) fn byte_len(dtype: Dtype, shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
}

/// Read and validate the header of the safetensors file at `path` (already open as `file`).
pub(crate) fn read_header(path: &Path, file: &File) -> Result<Header> {
    let file_len = file.metadata().at(path)?.len();
    if file_len < 8 {
        return Err(Error::TooShort {
            path: path.into(),
            len: file_len,
        });
    }
    let mut prefix = [0u8; 8];
    file.read_exact_at(&mut prefix, 0).at(path)?;
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER_SIZE {
        return Err(Error::HeaderTooLarge {
            path: path.into(),
            len: n,
            limit: MAX_HEADER_SIZE,
        });
    }
    if n > file_len - 8 {
        return Err(Error::HeaderBeyondFile {
            path: path.into(),
            len: n,
            file_len,
        });
    }
    let mut buf = vec![0u8; n as usize];
    file.read_exact_at(&mut buf, 8).at(path)?;
    let data_start = 8 + n;
    let data_len = file_len - data_start;
    parse_header(path, &buf, data_start, data_len)
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidHeader {
        path: path.into(),
        reason: reason.into(),
    }
}

pub(crate) fn parse_header(
    path: &Path,
    json: &[u8],
    data_start: u64,
    data_len: u64,
) -> Result<Header> {
    let text = std::str::from_utf8(json).map_err(|e| invalid(path, format!("not UTF-8: {e}")))?;
    // Trailing spaces are the format's padding.
    let entries: Entries<serde_json::Value> = serde_json::from_str(text.trim_end_matches(' '))
        .map_err(|e| invalid(path, format!("not a JSON object: {e}")))?;
    let entries = entries.0;
    if entries.len() > MAX_TENSORS {
        return Err(Error::TooManyTensors {
            path: path.into(),
            count: entries.len(),
            limit: MAX_TENSORS,
        });
    }
    if let Some(dup) = first_duplicate(entries.iter().map(|(k, _)| k.as_str())) {
        return Err(Error::DuplicateTensor {
            path: path.into(),
            tensor: dup.to_owned(),
        });
    }
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if name == METADATA_KEY {
            metadata = serde_json::from_value(value).map_err(|e| {
                invalid(
                    path,
                    format!("{METADATA_KEY} must map strings to strings: {e}"),
                )
            })?;
            continue;
        }
        let entry: TensorEntry = serde_json::from_value(value)
            .map_err(|e| invalid(path, format!("tensor {name:?}: {e}")))?;
        let dtype = Dtype::from_safetensors(&entry.dtype).ok_or_else(|| Error::UnknownDtype {
            path: path.into(),
            tensor: name.clone(),
            dtype: entry.dtype.clone(),
        })?;
        let (begin, end) = entry.data_offsets;
        if begin > end || end > data_len {
            return Err(Error::OffsetOutOfBounds {
                path: path.into(),
                tensor: name,
                begin,
                end,
                data_len,
            });
        }
        let expected = byte_len(dtype, &entry.shape);
        if expected != Some(end - begin) {
            return Err(Error::ShapeMismatch {
                path: path.into(),
                tensor: name,
                dtype,
                shape: entry.shape,
                expected: expected.unwrap_or(u64::MAX),
                actual: end - begin,
            });
        }
        tensors.push(RawTensor {
            name,
            dtype,
            shape: entry.shape,
            begin,
            end,
        });
    }
    let mut by_offset: Vec<&RawTensor> = tensors.iter().filter(|t| t.end > t.begin).collect();
    by_offset.sort_by_key(|t| (t.begin, t.end));
    for pair in by_offset.windows(2) {
        if pair[1].begin < pair[0].end {
            return Err(Error::OverlappingTensors {
                path: path.into(),
                first: pair[0].name.clone(),
                second: pair[1].name.clone(),
            });
        }
    }
    Ok(Header {
        data_start,
        tensors,
        metadata,
    })
}
