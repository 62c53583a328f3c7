//! Opening checkpoints (a Hugging Face model directory or one `.safetensors` file) and reading
//! tensors as `f32` with memory bounded by the tensor (or range) read.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;

use crate::adapter::{ADAPTER_WEIGHTS_FILE, LowRank};
use crate::error::{Error, IoContext, Result};
pub use crate::header::TensorInfo;
use crate::header::{Entries, first_duplicate, read_header};
use crate::{BIN_FILE, BIN_INDEX_FILE, Dtype, INDEX_FILE, SINGLE_FILE, decode_f32};

#[derive(Debug)]
struct Shard {
    path: PathBuf,
    file: File,
    metadata: BTreeMap<String, String>,
}

/// Validate a whole safetensors file held in memory (`name` is used in errors): the header and
/// every tensor's place in the data section, exactly as [`Checkpoint::open`] checks a file.
/// Returns the number of tensors.
pub fn validate_safetensors(name: &str, bytes: &[u8]) -> Result<usize> {
    let path = Path::new(name);
    if bytes.len() < 8 {
        return Err(Error::TooShort {
            path: path.into(),
            len: bytes.len() as u64,
        });
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let file_len = bytes.len() as u64;
    if n > crate::MAX_HEADER_SIZE {
        return Err(Error::HeaderTooLarge {
            path: path.into(),
            len: n,
            limit: crate::MAX_HEADER_SIZE,
        });
    }
    if n > file_len - 8 {
        return Err(Error::HeaderBeyondFile {
            path: path.into(),
            len: n,
            file_len,
        });
    }
    let header =
        crate::header::parse_header(path, &bytes[8..8 + n as usize], 8 + n, file_len - 8 - n)?;
    Ok(header.tensors.len())
}

/// An open checkpoint: headers parsed and validated, no tensor data read.
///
/// ```no_run
/// let ckpt = led_merging_io::Checkpoint::open("models/llama-3-8b")?;
/// for t in ckpt.tensors() {
///     println!("{} {} {:?} in {}", t.name, t.dtype, t.shape, t.shard.display());
/// }
/// let q = ckpt.read_f32("model.layers.0.self_attn.q_proj.weight")?;
/// # Ok::<(), led_merging_io::Error>(())
/// ```
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    shards: Vec<Shard>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    index_metadata: serde_json::Map<String, serde_json::Value>,
    /// A LoRA adapter applied as tensors are read.
    adapter: Option<Adapted>,
}

/// A LoRA adapter applied to a checkpoint: its shards follow the model's in `shards`.
#[derive(Debug)]
struct Adapted {
    dir: PathBuf,
    low_rank: HashMap<String, LowRank>,
}

#[derive(serde::Deserialize)]
struct IndexFile {
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    weight_map: Entries<String>,
}

/// A shard path from an index must be a plain relative path inside the directory.
fn is_contained(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && p.components().any(|c| matches!(c, Component::Normal(_)))
}

/// Whether `file` starts with `magic`.
fn starts_with(file: &File, magic: &[u8]) -> bool {
    let mut head = vec![0u8; magic.len()];
    read_exact_at(file, &mut head, 0).is_ok() && head == magic
}

/// Whether the low-rank update `lr` (from the adapter file `weights`) fits `target` of the model
/// at `model` (`info`, if it has it).
fn check_fits(
    weights: &Path,
    model: &Path,
    target: &str,
    info: Option<&TensorInfo>,
    lr: &LowRank,
) -> Result<()> {
    let fail = |reason: String| Error::Adapter {
        path: weights.to_owned(),
        reason,
    };
    let Some(info) = info else {
        return Err(fail(format!(
            "{} updates {target}, which the model at {} lacks: an adapter of another architecture?",
            lr.a.name,
            model.display()
        )));
    };
    // The update's shape: [rows of B, columns of A], transposed for embeddings and Conv1D.
    let (r0, r1) = (lr.b.shape[0], lr.a.shape[1]);
    let update = if lr.transposed { [r1, r0] } else { [r0, r1] };
    if info.shape != update {
        return Err(fail(format!(
            "{} and {} make a {update:?} update of {target}, which is {:?} in the model at {}: an adapter of another model?",
            lr.a.name,
            lr.b.name,
            info.shape,
            model.display()
        )));
    }
    if !info.dtype.readable_as_f32() || !info.dtype.writable_from_f32() {
        return Err(fail(format!(
            "{target} is {} in the model: a LoRA update applies to float weights only",
            info.dtype
        )));
    }
    Ok(())
}

/// The `blobs/` folder of the Hugging Face cache repository that `dir` is a snapshot of
/// (`models--ORG--NAME/snapshots/REV[/SUBFOLDER]`), if it is one: huggingface_hub links every
/// file of a snapshot to a blob there (docs/models.md).
fn cache_blobs(dir: &Path) -> Option<PathBuf> {
    let snapshot = dir.ancestors().find(|a| {
        a.parent().and_then(Path::file_name) == Some("snapshots".as_ref())
            && a.parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("models--"))
    })?;
    snapshot
        .parent()?
        .parent()?
        .join("blobs")
        .canonicalize()
        .ok()
}

impl Checkpoint {
    /// Open a checkpoint directory (`model.safetensors`, else `model.safetensors.index.json`
    /// and its shards, as transformers does) or a single `.safetensors` file.
    ///
    /// `MODEL+ADAPTER` (a path that does not exist, whose parts do: mergekit's spelling)
    /// opens `MODEL` with the LoRA adapter `ADAPTER` applied ([`Checkpoint::open_with_adapter`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists()
            && let Some((model, adapter)) = crate::adapter::split_adapted(path)
        {
            return Self::open_with_adapter(model, adapter);
        }
        let meta = std::fs::metadata(path).at(path)?;
        if !meta.is_dir() {
            let name = path
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| path.into());
            return Self::from_shards(path, vec![(path.to_path_buf(), name)], None);
        }
        let single = path.join(SINGLE_FILE);
        if single.is_file() {
            return Self::from_shards(path, vec![(single, SINGLE_FILE.into())], None);
        }
        let index = path.join(INDEX_FILE);
        if index.is_file() {
            return Self::open_index(path, &index);
        }
        // As transformers: safetensors first, then PyTorch's own format.
        let bin = path.join(BIN_FILE);
        if bin.is_file() {
            return Self::from_shards(path, vec![(bin, BIN_FILE.into())], None);
        }
        let bin_index = path.join(BIN_INDEX_FILE);
        if bin_index.is_file() {
            return Self::open_index(path, &bin_index);
        }
        Err(Error::NoWeights { path: path.into() })
    }

    fn open_index(dir: &Path, index: &Path) -> Result<Self> {
        let bad = |reason: String| Error::InvalidIndex {
            path: index.into(),
            reason,
        };
        let text = std::fs::read(index).at(index)?;
        if text.len() as u64 > crate::MAX_HEADER_SIZE {
            return Err(bad(format!(
                "{} bytes is larger than the {} byte limit",
                text.len(),
                crate::MAX_HEADER_SIZE
            )));
        }
        let parsed: IndexFile = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        let weight_map = parsed.weight_map.0;
        if let Some(dup) = first_duplicate(weight_map.iter().map(|(k, _)| k.as_str())) {
            return Err(Error::DuplicateTensor {
                path: index.into(),
                tensor: dup.into(),
            });
        }
        let canonical_dir = dir.canonicalize().at(dir)?;
        let blobs = cache_blobs(&canonical_dir);
        let mut shard_ids: HashMap<&str, usize> = HashMap::new();
        let mut shard_paths = Vec::new();
        for (tensor, shard) in &weight_map {
            if shard_ids.contains_key(shard.as_str()) {
                continue;
            }
            let escapes = || Error::ShardEscapes {
                path: index.into(),
                tensor: tensor.clone(),
                shard: shard.clone(),
            };
            if !is_contained(shard) {
                return Err(escapes());
            }
            let full = dir.join(shard);
            let canonical = match full.canonicalize() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::MissingShard {
                        path: index.into(),
                        tensor: tensor.clone(),
                        shard: full,
                    });
                }
                Err(e) => return Err(Error::io(full, e)),
            };
            // A symlink may point anywhere: only its target counts. In a Hugging Face cache
            // snapshot every file is a link into the repository's own `blobs/`.
            let inside = canonical.starts_with(&canonical_dir)
                || blobs.as_ref().is_some_and(|b| canonical.starts_with(b));
            if !inside {
                return Err(escapes());
            }
            shard_ids.insert(shard, shard_paths.len());
            shard_paths.push((full, PathBuf::from(shard)));
        }
        let wanted: Vec<(String, usize)> = weight_map
            .iter()
            .map(|(t, s)| (t.clone(), shard_ids[s.as_str()]))
            .collect();
        Self::from_shards(dir, shard_paths, Some((wanted, parsed.metadata)))
    }

    /// Build from shard files; with an index, keep exactly the tensors it maps to each shard.
    #[allow(clippy::type_complexity)]
    fn from_shards(
        root: &Path,
        shard_paths: Vec<(PathBuf, PathBuf)>,
        index: Option<(
            Vec<(String, usize)>,
            serde_json::Map<String, serde_json::Value>,
        )>,
    ) -> Result<Self> {
        let mut shards = Vec::with_capacity(shard_paths.len());
        let mut per_shard: Vec<HashMap<String, TensorInfo>> = Vec::with_capacity(shard_paths.len());
        for (idx, (full, rel)) in shard_paths.into_iter().enumerate() {
            let file = File::open(&full).at(&full)?;
            let header = if starts_with(&file, crate::torch_bin::ZIP_MAGIC) {
                crate::torch_bin::read_torch_zip(&full, &file)?
            } else if starts_with(&file, b"\x80\x02\x8a\x0a") {
                return Err(Error::Pickle {
                    path: full,
                    reason: "the legacy torch.save format (before PyTorch 1.6) is not read: \
                             save it again with a current PyTorch, or convert it to safetensors"
                        .into(),
                });
            } else {
                read_header(&full, &file)?
            };
            let infos = header
                .tensors
                .into_iter()
                .map(|t| {
                    let info = TensorInfo {
                        name: t.name.clone(),
                        dtype: t.dtype,
                        shape: t.shape,
                        byte_len: t.end - t.begin,
                        shard: rel.clone(),
                        shard_idx: idx,
                        offset: header.data_start + t.begin,
                    };
                    (t.name, info)
                })
                .collect();
            per_shard.push(infos);
            shards.push(Shard {
                path: full,
                file,
                metadata: header.metadata,
            });
        }
        let (mut tensors, index_metadata) = match index {
            None => (
                per_shard
                    .into_iter()
                    .flat_map(|m| m.into_values())
                    .collect::<Vec<_>>(),
                serde_json::Map::new(),
            ),
            Some((wanted, meta)) => {
                let mut out = Vec::with_capacity(wanted.len());
                for (name, shard) in wanted {
                    let info = per_shard[shard]
                        .remove(&name)
                        .ok_or_else(|| Error::NotInShard {
                            path: shards[shard].path.clone(),
                            tensor: name.clone(),
                        })?;
                    out.push(info);
                }
                for (shard, rest) in shards.iter().zip(&per_shard) {
                    if let Some(extra) = rest.keys().next() {
                        tracing::warn!(
                            "{}: {} tensor(s) not in the index are ignored (first {extra:?})",
                            shard.path.display(),
                            rest.len()
                        );
                    }
                }
                (out, meta)
            }
        };
        // Header order is unspecified: sort by name so every listing is deterministic.
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Checkpoint {
            path: root.to_path_buf(),
            shards,
            tensors,
            by_name,
            index_metadata,
            adapter: None,
        })
    }

    /// Open the model at `model` with the LoRA adapter in the directory `adapter` applied
    /// (`crate::adapter`): the adapter's whole tensors replace the model's, its low-rank
    /// updates are added as each tensor is read. Every shape is checked here, naming the
    /// tensor.
    pub fn open_with_adapter(model: impl AsRef<Path>, adapter: impl AsRef<Path>) -> Result<Self> {
        let adapter = adapter.as_ref();
        let mut ckpt = Self::open(model)?;
        let config = crate::adapter::read_config(adapter)?;
        let weights = adapter.join(ADAPTER_WEIGHTS_FILE);
        if !weights.is_file() {
            let pickled = adapter.join("adapter_model.bin");
            return Err(Error::Adapter {
                path: adapter.to_owned(),
                reason: if pickled.is_file() {
                    "has adapter_model.bin but no adapter_model.safetensors: only safetensors adapters are read (peft saves them by default)".into()
                } else {
                    format!("no {ADAPTER_WEIGHTS_FILE}")
                },
            });
        }
        let extra = Self::open(&weights)?;
        let first = ckpt.shards.len();
        ckpt.shards.extend(extra.shards);
        let infos = extra
            .tensors
            .into_iter()
            .map(|mut t| {
                t.shard_idx += first;
                t
            })
            .collect();
        let plan = crate::adapter::plan(adapter, &config, infos)?;
        for (target, mut info) in plan.replaced {
            let Some(&k) = ckpt.by_name.get(&target) else {
                return Err(Error::Adapter {
                    path: weights,
                    reason: format!(
                        "tensor {:?} replaces {target}, which the model at {} lacks: an adapter of another architecture?",
                        info.name,
                        ckpt.path.display()
                    ),
                });
            };
            info.name = target;
            ckpt.tensors[k] = info;
        }
        for (target, lr) in &plan.low_rank {
            let info = ckpt.by_name.get(target).map(|&k| &ckpt.tensors[k]);
            check_fits(&weights, &ckpt.path, target, info, lr)?;
        }
        ckpt.adapter = Some(Adapted {
            dir: adapter.to_owned(),
            low_rank: plan.low_rank,
        });
        Ok(ckpt)
    }

    /// The directory of the LoRA adapter applied, if any.
    pub fn adapter(&self) -> Option<&Path> {
        self.adapter.as_ref().map(|a| a.dir.as_path())
    }

    /// The path this checkpoint was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// One tensor's description, if present.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// One tensor's description, or an error naming the checkpoint and tensor.
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.get(name).ok_or_else(|| Error::TensorNotFound {
            path: self.path.clone(),
            tensor: name.into(),
        })
    }

    /// The `__metadata__` of the first shard (every shard carries the same one when written by
    /// this crate).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.shards[0].metadata
    }

    /// The `__metadata__` of every shard, with the shard's path.
    pub fn shard_metadata(&self) -> impl Iterator<Item = (&Path, &BTreeMap<String, String>)> {
        self.shards.iter().map(|s| (s.path.as_path(), &s.metadata))
    }

    /// The index file's `metadata` object (empty without an index).
    pub fn index_metadata(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.index_metadata
    }

    /// Sum of all tensors' sizes on disk.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.byte_len).sum()
    }

    fn bad_range(&self, name: &str, reason: String) -> Error {
        Error::BadRange {
            path: self.path.clone(),
            tensor: name.into(),
            reason,
        }
    }

    /// Read exactly the bytes of elements `start..` of `info` that fill `out` (nothing else of
    /// the file), by positional reads: no map to set up and tear down per read, and threads
    /// share the file. A file shortened since it was opened is an error naming it.
    fn read_elements(&self, info: &TensorInfo, start: usize, out: &mut [u8]) -> Result<()> {
        let shard = &self.shards[info.shard_idx];
        let offset = info.offset + (start * info.dtype.size()) as u64;
        read_exact_at(&shard.file, out, offset).at(&shard.path)
    }

    /// Elements `range` of `info` into `out` as f32 (serially): f32 little-endian straight into
    /// `out`'s bytes, other dtypes through a buffer that stays in cache.
    fn read_f32_serial(
        &self,
        info: &TensorInfo,
        range: Range<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        if info.dtype == Dtype::F32 && cfg!(target_endian = "little") {
            return self.read_elements(info, range.start, bytemuck::cast_slice_mut(out));
        }
        let size = info.dtype.size();
        let mut raw = vec![0u8; out.len().min(DECODE_ELEMENTS) * size];
        for (k, out) in out.chunks_mut(DECODE_ELEMENTS).enumerate() {
            let raw = &mut raw[..out.len() * size];
            self.read_elements(info, range.start + k * DECODE_ELEMENTS, raw)?;
            let ok = decode_f32(info.dtype, raw, out);
            debug_assert!(ok);
        }
        Ok(())
    }

    fn check_range(&self, info: &TensorInfo, range: &Range<usize>) -> Result<()> {
        let n = info.numel();
        if range.start > range.end || range.end > n {
            return Err(self.bad_range(
                &info.name,
                format!("element range {range:?} is outside 0..{n}"),
            ));
        }
        Ok(())
    }

    /// Read elements `range` (flat, row-major) of tensor `name` into `out` as `f32`.
    /// `out.len()` must equal the range's length.
    pub fn read_f32_range_into(
        &self,
        name: &str,
        range: Range<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        let info = self.info(name)?;
        self.check_range(info, &range)?;
        if out.len() != range.len() {
            return Err(self.bad_range(
                name,
                format!(
                    "output buffer holds {} elements, range {range:?} has {}",
                    out.len(),
                    range.len()
                ),
            ));
        }
        if !info.dtype.readable_as_f32() {
            return Err(Error::UnsupportedDtype {
                path: self.shards[info.shard_idx].path.clone(),
                tensor: name.into(),
                dtype: info.dtype,
                reason: "cannot be read as f32",
            });
        }
        if out.len() <= PAR_ELEMENTS {
            self.read_f32_serial(info, range.clone(), out)?;
        } else {
            out.par_chunks_mut(PAR_ELEMENTS)
                .enumerate()
                .try_for_each(|(k, out)| {
                    let start = range.start + k * PAR_ELEMENTS;
                    self.read_f32_serial(info, start..start + out.len(), out)
                })?;
        }
        self.add_low_rank(info, range.start, out)
    }

    /// Add the adapter's low-rank update of `info` (if any) to `out`, its elements from
    /// `start`.
    fn add_low_rank(&self, info: &TensorInfo, start: usize, out: &mut [f32]) -> Result<()> {
        let Some(lr) = self
            .adapter
            .as_ref()
            .and_then(|a| a.low_rank.get(&info.name))
        else {
            return Ok(());
        };
        let whole = |t: &TensorInfo| -> Result<Vec<f32>> {
            let mut v = vec![0f32; t.numel()];
            self.read_f32_serial(t, 0..v.len(), &mut v)?;
            Ok(v)
        };
        let (a, b) = (whole(&lr.a)?, whole(&lr.b)?);
        lr.add_into(&a, &b, info.shape[1], start, out);
        Ok(())
    }

    /// Read elements `range` (flat, row-major) of tensor `name` as `f32`.
    pub fn read_f32_range(&self, name: &str, range: Range<usize>) -> Result<Vec<f32>> {
        let mut out = vec![0.0; range.len()];
        self.read_f32_range_into(name, range, &mut out)?;
        Ok(out)
    }

    /// Read tensor `name` into `out` (length = numel) as `f32`.
    pub fn read_f32_into(&self, name: &str, out: &mut [f32]) -> Result<()> {
        let n = self.info(name)?.numel();
        self.read_f32_range_into(name, 0..n, out)
    }

    /// Read tensor `name` as `f32`.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let n = self.info(name)?.numel();
        self.read_f32_range(name, 0..n)
    }

    /// Read tensor `name`'s raw little-endian bytes, whatever its dtype.
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let n = self.info(name)?.numel();
        self.read_bytes_range(name, 0..n)
    }

    /// Read the raw little-endian bytes of elements `range` (flat, row-major) of tensor `name`.
    pub fn read_bytes_range(&self, name: &str, range: Range<usize>) -> Result<Vec<u8>> {
        let info = self.info(name)?;
        self.check_range(info, &range)?;
        let mut out = vec![0; range.len() * info.dtype.size()];
        if self
            .adapter
            .as_ref()
            .is_some_and(|a| a.low_rank.contains_key(name))
        {
            // Updated by the adapter: computed in f32, then stored in the tensor's dtype.
            let values = self.read_f32_range(name, range)?;
            let ok = crate::encode_f32(info.dtype, &values, &mut out);
            debug_assert!(ok, "checked when the adapter was opened");
            return Ok(out);
        }
        self.read_elements(info, range.start, &mut out)?;
        Ok(out)
    }
}

/// Elements read and converted at once per thread: large reads go in parallel in parts of
/// this many elements.
const PAR_ELEMENTS: usize = 1 << 20;
/// Elements of a dtype other than f32 read per positional read, then converted (their bytes
/// stay in cache).
const DECODE_ELEMENTS: usize = 1 << 16;

/// Fill `buf` from `file` at `offset`, whatever the platform.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            match std::os::windows::fs::FileExt::seek_read(file, &mut buf[done..], at)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}
