//! Streaming, atomic checkpoint writer.
//!
//! The caller declares every tensor (name, dtype, shape) up front, so each shard's header and
//! every tensor's offset are known before any data arrives. Tensors (or chunks of them) can then
//! be written in any order, from any thread, straight to their final place with positional writes:
//! nothing is buffered beyond one conversion chunk. Everything goes into a hidden temporary
//! directory (or file) beside the target that is renamed into place by [`CheckpointWriter::finish`];
//! dropping the writer without finishing removes it.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::error::{Error, IoContext, Result};
use crate::header::{byte_len, first_duplicate};
use crate::{DEFAULT_MAX_SHARD_SIZE, Dtype, INDEX_FILE, SINGLE_FILE, encode_f32};

/// One tensor the writer will receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Element type on disk.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// A spec from its parts.
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: impl Into<Vec<usize>>) -> Self {
        TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.into(),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// How the writer lays out and places its output.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Largest shard in bytes of tensor data (a single larger tensor gets a shard of its own).
    pub max_shard_size: u64,
    /// Replace an existing target instead of failing.
    pub overwrite: bool,
    /// `__metadata__` written into every shard; `format: pt` is added when absent.
    pub metadata: BTreeMap<String, String>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_shard_size: DEFAULT_MAX_SHARD_SIZE,
            overwrite: false,
            metadata: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct Slot {
    spec: TensorSpec,
    byte_len: u64,
    shard: usize,
    /// Absolute offset of the tensor's first byte in its shard file.
    offset: u64,
    written: AtomicU64,
}

#[derive(Debug)]
struct OutShard {
    /// File name inside the output directory (or the temp file for a single-file target).
    name: String,
    path: PathBuf,
    file: File,
}

/// What a finished write produced.
#[derive(Debug, Clone)]
pub struct Written {
    /// The final target path.
    pub path: PathBuf,
    /// Shard file names (relative to `path` for a directory).
    pub shards: Vec<String>,
    /// Bytes of tensor data written.
    pub total_size: u64,
}

/// Writes a checkpoint directory (Hugging Face layout) or one `.safetensors` file.
///
/// ```
/// use led_merging_io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};
/// let dir = tempfile::tempdir()?;
/// let target = dir.path().join("merged");
/// let specs = vec![TensorSpec::new("w", Dtype::BF16, [2, 2])];
/// let writer = CheckpointWriter::create_dir(&target, specs, WriterOptions::default())?;
/// writer.write_f32("w", &[1.0, 2.0, 3.0, 4.0])?;
/// writer.finish()?;
/// assert_eq!(Checkpoint::open(&target)?.read_f32("w")?, [1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct CheckpointWriter {
    target: PathBuf,
    /// The temporary directory (directory layout) or file (single-file layout).
    temp: PathBuf,
    single_file: bool,
    overwrite: bool,
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    shards: Vec<OutShard>,
    finished: bool,
}

/// Elements converted per positional write: bounds the writer's own buffer to a few MiB.
const WRITE_CHUNK: usize = 1 << 20;

/// Remove temporary outputs for `name` left in `parent` by writers whose process is gone
/// (killed with SIGKILL, or the machine went down): they can never be finished.
fn remove_stale_temps(parent: &Path, name: &str) {
    let prefix = format!(".{name}.led-tmp-");
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && remove_any(&entry.path()).is_ok() {
            tracing::info!(
                "removed {} left by a writer that no longer runs",
                entry.path().display()
            );
        }
    }
}

fn temp_path(target: &Path) -> Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| Error::Write {
        path: target.into(),
        tensor: String::new(),
        reason: "target has no file name".into(),
    })?;
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).at(parent)?;
    remove_stale_temps(parent, &name.to_string_lossy());
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(parent.join(format!(
        ".{}.led-tmp-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

impl CheckpointWriter {
    /// Write a Hugging Face checkpoint directory at `target`: `model.safetensors` if everything
    /// fits one shard, else `model-0000i-of-0000N.safetensors` plus `model.safetensors.index.json`.
    pub fn create_dir(
        target: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        options: WriterOptions,
    ) -> Result<Self> {
        Self::create(target.as_ref(), specs, options, false)
    }

    /// Write one `.safetensors` file at `target` (no sharding).
    pub fn create_file(
        target: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        options: WriterOptions,
    ) -> Result<Self> {
        let options = WriterOptions {
            max_shard_size: u64::MAX,
            ..options
        };
        Self::create(target.as_ref(), specs, options, true)
    }

    fn create(
        target: &Path,
        specs: Vec<TensorSpec>,
        mut options: WriterOptions,
        single_file: bool,
    ) -> Result<Self> {
        if target.symlink_metadata().is_ok() && !options.overwrite {
            return Err(Error::TargetExists {
                path: target.into(),
            });
        }
        let fail = |tensor: &str, reason: String| Error::Write {
            path: target.into(),
            tensor: tensor.into(),
            reason,
        };
        if let Some(dup) = first_duplicate(specs.iter().map(|s| s.name.as_str())) {
            return Err(fail(dup, "declared twice".into()));
        }
        if specs.len() > crate::MAX_TENSORS {
            return Err(fail(
                "",
                format!(
                    "{} tensors is more than the limit of {}",
                    specs.len(),
                    crate::MAX_TENSORS
                ),
            ));
        }
        // Assign shards greedily in the order given.
        let mut groups: Vec<Vec<(TensorSpec, u64)>> = vec![Vec::new()];
        let mut current = 0u64;
        for spec in specs {
            if spec.name.is_empty() || spec.name == crate::header::METADATA_KEY {
                return Err(fail(&spec.name, "is not a valid tensor name".into()));
            }
            let len = byte_len(spec.dtype, &spec.shape)
                .ok_or_else(|| fail(&spec.name, format!("shape {:?} overflows", spec.shape)))?;
            let last = groups.last_mut().expect("non-empty");
            if !last.is_empty() && current.saturating_add(len) > options.max_shard_size {
                groups.push(vec![(spec, len)]);
                current = len;
            } else {
                last.push((spec, len));
                current += len;
            }
        }
        options
            .metadata
            .entry("format".into())
            .or_insert_with(|| "pt".into());

        let temp = temp_path(target)?;
        let total = groups.len();
        let mut writer = CheckpointWriter {
            target: target.into(),
            temp: temp.clone(),
            single_file,
            overwrite: options.overwrite,
            slots: Vec::new(),
            by_name: HashMap::new(),
            shards: Vec::with_capacity(total),
            finished: false,
        };
        if !single_file {
            fs::create_dir(&temp).at(&temp)?;
        }
        for (i, group) in groups.into_iter().enumerate() {
            let name = if single_file {
                target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else if total == 1 {
                SINGLE_FILE.to_owned()
            } else {
                format!("model-{:05}-of-{:05}.safetensors", i + 1, total)
            };
            let path = if single_file {
                temp.clone()
            } else {
                temp.join(&name)
            };
            writer.add_shard(i, name, path, group, &options.metadata)?;
        }
        Ok(writer)
    }

    fn add_shard(
        &mut self,
        idx: usize,
        name: String,
        path: PathBuf,
        group: Vec<(TensorSpec, u64)>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut header = serde_json::Map::new();
        header.insert(crate::header::METADATA_KEY.into(), json!(metadata));
        let mut offset = 0u64;
        let mut placed = Vec::with_capacity(group.len());
        for (spec, len) in group {
            header.insert(
                spec.name.clone(),
                json!({"dtype": spec.dtype.as_safetensors(), "shape": spec.shape, "data_offsets": [offset, offset + len]}),
            );
            placed.push((spec, len, offset));
            offset += len;
        }
        let mut bytes =
            serde_json::to_vec(&Value::Object(header)).expect("JSON of strings and numbers");
        // Pad with spaces so the data section starts 8-byte aligned, as safetensors does.
        bytes.resize(bytes.len().next_multiple_of(8), b' ');
        let data_start = 8 + bytes.len() as u64;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .at(&path)?;
        file.set_len(data_start + offset).at(&path)?;
        file.write_all_at(&(bytes.len() as u64).to_le_bytes(), 0)
            .at(&path)?;
        file.write_all_at(&bytes, 8).at(&path)?;
        for (spec, len, off) in placed {
            self.by_name.insert(spec.name.clone(), self.slots.len());
            self.slots.push(Slot {
                spec,
                byte_len: len,
                shard: idx,
                offset: data_start + off,
                written: AtomicU64::new(0),
            });
        }
        self.shards.push(OutShard { name, path, file });
        Ok(())
    }

    /// The final target path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The declared tensors, in file order.
    pub fn specs(&self) -> impl Iterator<Item = &TensorSpec> {
        self.slots.iter().map(|s| &s.spec)
    }

    fn fail(&self, tensor: &str, reason: String) -> Error {
        Error::Write {
            path: self.target.clone(),
            tensor: tensor.into(),
            reason,
        }
    }

    fn slot(&self, name: &str) -> Result<&Slot> {
        self.by_name
            .get(name)
            .map(|&i| &self.slots[i])
            .ok_or_else(|| self.fail(name, "was not declared when the writer was created".into()))
    }

    fn put(&self, slot: &Slot, byte_start: u64, bytes: &[u8]) -> Result<()> {
        let shard = &self.shards[slot.shard];
        // Name the target and the tensor, not only the temporary file (disk full, I/O error).
        shard
            .file
            .write_all_at(bytes, slot.offset + byte_start)
            .map_err(|e| {
                self.fail(
                    &slot.spec.name,
                    format!("writing {}: {e}", shard.path.display()),
                )
            })?;
        slot.written.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    /// Write elements `start..start + values.len()` of tensor `name`, converting from `f32` to
    /// its declared dtype (round to nearest, ties to even). Chunks of one tensor may come in any
    /// order and from any thread, but must not overlap.
    pub fn write_f32_chunk(&self, name: &str, start: usize, values: &[f32]) -> Result<()> {
        let slot = self.slot(name)?;
        let dtype = slot.spec.dtype;
        if !dtype.writable_from_f32() {
            return Err(self.fail(
                name,
                format!("dtype {dtype} cannot be written from f32 (use write_bytes)"),
            ));
        }
        let numel = slot.spec.numel();
        if start
            .checked_add(values.len())
            .is_none_or(|end| end > numel)
        {
            return Err(self.fail(
                name,
                format!(
                    "elements {start}..{} are outside the declared {numel}",
                    start.saturating_add(values.len())
                ),
            ));
        }
        let size = dtype.size();
        let mut buf = vec![0u8; values.len().min(WRITE_CHUNK) * size];
        for (i, chunk) in values.chunks(WRITE_CHUNK).enumerate() {
            let out = &mut buf[..chunk.len() * size];
            encode_f32(dtype, chunk, out);
            let elem = start + i * WRITE_CHUNK;
            self.put(slot, (elem * size) as u64, out)?;
        }
        Ok(())
    }

    /// Write the whole tensor `name` from `f32` values.
    pub fn write_f32(&self, name: &str, values: &[f32]) -> Result<()> {
        let numel = self.slot(name)?.spec.numel();
        if values.len() != numel {
            return Err(self.fail(
                name,
                format!("got {} values for {numel} declared elements", values.len()),
            ));
        }
        self.write_f32_chunk(name, 0, values)
    }

    /// Write the whole tensor `name` as raw little-endian bytes of its declared dtype (for
    /// tensors copied unchanged, e.g. integer buffers).
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let slot = self.slot(name)?;
        if bytes.len() as u64 != slot.byte_len {
            return Err(self.fail(
                name,
                format!("got {} bytes for {} declared", bytes.len(), slot.byte_len),
            ));
        }
        self.put(slot, 0, bytes)
    }

    /// Write elements from `start` of tensor `name` as raw little-endian bytes of its declared
    /// dtype (a whole number of elements). Chunks may come in any order, but must not overlap.
    pub fn write_bytes_chunk(&self, name: &str, start: usize, bytes: &[u8]) -> Result<()> {
        let slot = self.slot(name)?;
        let size = slot.spec.dtype.size() as u64;
        let begin = start as u64 * size;
        if !(bytes.len() as u64).is_multiple_of(size) || begin + bytes.len() as u64 > slot.byte_len
        {
            return Err(self.fail(
                name,
                format!(
                    "{} bytes from element {start} are not whole elements inside the declared {} bytes",
                    bytes.len(),
                    slot.byte_len
                ),
            ));
        }
        self.put(slot, begin, bytes)
    }

    /// Add a side file (README.md, config.json, ...) to a directory target.
    pub fn add_file(&self, name: &str, contents: &[u8]) -> Result<()> {
        let path = self.side_file_path(name)?;
        fs::write(&path, contents).at(&path)
    }

    fn side_file_path(&self, name: &str) -> Result<PathBuf> {
        if self.single_file {
            return Err(self.fail("", format!("cannot add {name:?} to a single-file target")));
        }
        let taken = self.shards.iter().any(|s| s.name == name) || name == INDEX_FILE;
        if taken || Path::new(name).components().count() != 1 || name.starts_with('.') {
            return Err(self.fail("", format!("{name:?} is not a valid side-file name")));
        }
        Ok(self.temp.join(name))
    }

    /// Copy a model's non-weight files from `donor` into a directory target, setting
    /// `torch_dtype` in `config.json`. See [`crate::copy_model_files`].
    pub fn copy_model_files(&self, donor: &Path, dtype: Option<Dtype>) -> Result<Vec<String>> {
        // Validates that this is a directory target.
        self.side_file_path(crate::files::CONFIG_FILE)?;
        crate::files::copy_model_files(donor, &self.temp, dtype)
    }

    /// For a directory target: give the tokenizer added so far the chat template `template`;
    /// `false` when there is no tokenizer. See [`crate::set_chat_template`].
    pub fn set_chat_template(&self, template: &str) -> Result<bool> {
        self.side_file_path("chat_template.jinja")?;
        crate::files::set_chat_template(&self.temp, template)
    }

    /// For a directory target: edit the tokenizer added so far (or, given `tokenizer_from`,
    /// that directory's tokenizer, replacing it) to a merged vocabulary of `vocab_size` rows.
    /// See [`crate::set_vocabulary`].
    pub fn set_vocabulary(
        &self,
        tokenizer_from: Option<&Path>,
        keep_below: Option<u32>,
        added: &[serde_json::Value],
        vocab_size: usize,
    ) -> Result<()> {
        self.side_file_path(crate::files::CONFIG_FILE)?;
        if let Some(dir) = tokenizer_from {
            crate::files::copy_tokenizer_files(dir, &self.temp)?;
        }
        crate::vocab::set_vocabulary(&self.temp, keep_below, added, vocab_size)
    }

    /// For a directory target: rewrite the `config.json` added so far for restacked decoder
    /// layers (output layer i from layer `layer_sources[i]`). See [`crate::restack_config`].
    pub fn restack_config(&self, layer_sources: &[usize]) -> Result<()> {
        self.side_file_path(crate::files::CONFIG_FILE)?;
        crate::files::restack_config(&self.temp, layer_sources)
    }

    /// For a directory target: fail with [`Error::NotLoadable`] if its `config.json` and
    /// `tokenizer.json` (as added so far) and the declared tensors would not load in
    /// transformers ([`crate::loadability_problems`]). Call it before [`Self::finish`]:
    /// on failure nothing is moved into place.
    pub fn check_loadable(&self) -> Result<()> {
        if self.single_file {
            return Ok(());
        }
        let tensors: Vec<(&str, &[usize])> = self
            .slots
            .iter()
            .map(|s| (s.spec.name.as_str(), s.spec.shape.as_slice()))
            .collect();
        let problems = crate::files::loadability_problems(&self.temp, &tensors)?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::NotLoadable {
                path: self.target.clone(),
                problems,
            })
        }
    }

    /// Check every declared tensor was written in full, flush to disk, write the index, and
    /// move the result into place.
    pub fn finish(mut self) -> Result<Written> {
        let missing: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.written.load(Ordering::Acquire) != s.byte_len)
            .map(|s| s.spec.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Incomplete {
                path: self.target.clone(),
                missing,
            });
        }
        for shard in &self.shards {
            shard.file.sync_all().at(&shard.path)?;
        }
        let total_size: u64 = self.slots.iter().map(|s| s.byte_len).sum();
        if !self.single_file && self.shards.len() > 1 {
            let weight_map: BTreeMap<&str, &str> = self
                .slots
                .iter()
                .map(|s| (s.spec.name.as_str(), self.shards[s.shard].name.as_str()))
                .collect();
            let index = json!({"metadata": {"total_size": total_size}, "weight_map": weight_map});
            crate::files::write_json(&self.temp.join(INDEX_FILE), &index)?;
        }
        self.replace_target()?;
        self.finished = true;
        Ok(Written {
            path: self.target.clone(),
            shards: self.shards.iter().map(|s| s.name.clone()).collect(),
            total_size,
        })
    }

    fn replace_target(&self) -> Result<()> {
        let target = &self.target;
        if target.symlink_metadata().is_ok() {
            if !self.overwrite {
                return Err(Error::TargetExists {
                    path: target.clone(),
                });
            }
            // Move the old output aside first so the target never holds a mix of both.
            let old = temp_path(target)?;
            fs::rename(target, &old).at(target)?;
            fs::rename(&self.temp, target).at(target)?;
            remove_any(&old).at(&old)?;
        } else {
            fs::rename(&self.temp, target).at(target)?;
        }
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the rename durable; some filesystems refuse to sync a directory: not fatal.
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if path.symlink_metadata()?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        if !self.finished
            && self.temp.symlink_metadata().is_ok()
            && let Err(e) = remove_any(&self.temp)
        {
            tracing::warn!("could not remove {}: {e}", self.temp.display());
        }
    }
}
