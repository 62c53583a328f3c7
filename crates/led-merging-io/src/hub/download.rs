//! Downloads into the Hugging Face cache (docs/models.md, "Downloads"): the files a merge or
//! Locate reads of a repository the cache lacks, fetched with Hugging Face's own `hf-hub` crate
//! into the layout huggingface_hub writes (`blobs/<etag>`, `snapshots/<commit>/<file>` links,
//! `refs/<revision>`), so Python tools and led share one cache.
//!
//! What is fetched: the top-level config and tokenizer files, and the weights led reads, chosen
//! as its reader chooses them (an index and exactly the shards it lists, else one file;
//! safetensors before `pytorch_model.bin`, as mergekit prefers them). A file arrives as
//! `blobs/<etag>.part` and is renamed to its blob, then linked from the snapshot, only when
//! complete: a killed download leaves no snapshot file half written, and the next run resumes the
//! `.part`.

use std::path::Path;

use hf_hub::api::Progress;
use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use indicatif::ProgressBar;

use super::cache::{self, fetch_hint, hub_error, index_shards};
use crate::error::{Error, Result};
use crate::progress;

/// The Hub, unless `HF_ENDPOINT` names another (a mirror, or a test's server).
pub(super) const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Files besides the weights that a merge or Locate reads (configs, tokenizers, chat templates).
fn is_side_file(name: &str) -> bool {
    let extension = Path::new(name).extension().and_then(|e| e.to_str());
    matches!(extension, Some("json" | "jinja"))
        || matches!(name, "tokenizer.model" | "merges.txt" | "vocab.txt")
}

/// Whether `HF_HUB_OFFLINE` forbids the network (huggingface_hub's true values).
pub(super) fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_uppercase().as_str(),
            "1" | "ON" | "YES" | "TRUE"
        )
    })
}

/// `HF_ENDPOINT`, else [`DEFAULT_ENDPOINT`], without a trailing `/`.
pub(super) fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .map(|e| e.trim().trim_end_matches('/').to_owned())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
}

/// The access token, found as huggingface_hub finds it: `HF_TOKEN`, else
/// `HUGGING_FACE_HUB_TOKEN`, else the file `HF_TOKEN_PATH`, else `$HF_HOME/token` (what
/// `huggingface-cli login` writes).
pub(super) fn token() -> Option<String> {
    let nonempty = |t: String| {
        let t = t.trim().to_owned();
        (!t.is_empty()).then_some(t)
    };
    for key in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Some(token) = std::env::var(key).ok().and_then(nonempty) {
            return Some(token);
        }
    }
    let file = std::env::var_os("HF_TOKEN_PATH")
        .filter(|p| !p.is_empty())
        .map(Into::into)
        .or_else(|| cache::hf_home().map(|h| h.join("token")))?;
    std::fs::read_to_string(file).ok().and_then(nonempty)
}

/// Fetch what a merge or Locate reads of `repo` at `revision` into `cache`, skipping the files
/// its snapshot already holds. `why` says what the cache lacked, for messages.
pub(super) fn fetch(cache_dir: &Path, repo: &str, revision: Option<&str>, why: &str) -> Result<()> {
    let rev = revision.unwrap_or("main");
    let endpoint = endpoint();
    let err = |reason: String| hub_error(repo, revision, reason);
    let api = ApiBuilder::from_cache(Cache::new(cache_dir.to_path_buf()))
        .with_endpoint(endpoint.clone())
        .with_token(token())
        .with_progress(false)
        .with_retries(3)
        .build()
        .map_err(|e| err(format!("cannot set up downloads: {e}")))?;
    let hub = api.repo(Repo::with_revision(
        repo.to_owned(),
        RepoType::Model,
        rev.to_owned(),
    ));
    // Listing the repository writes nothing: every refusal up to the first file leaves the
    // cache as it was.
    let info = hub.info().map_err(|e| {
        err(format!(
            "{why}, and the listing of its files failed: {}; nothing was written. Fetch it where \
             the Hub is reachable with {} (or `led merge --dry-run` there), or set HF_HUB_CACHE \
             / HF_HOME to a cache that holds it",
            listing_failure(&e, &endpoint),
            fetch_hint(repo, revision)
        ))
    })?;
    let listing: Vec<&str> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.as_str())
        .filter(|f| !f.contains('/'))
        .collect();
    let weights = weights_to_fetch(&listing).ok_or_else(|| {
        err(format!(
            "{endpoint} lists no weights led reads at the top of the repository ({}, or {} with \
             its index; listed: {}); nothing was written",
            crate::SINGLE_FILE,
            crate::BIN_FILE,
            listing.join(", ")
        ))
    })?;
    let snapshot = cache::repo_dir(cache_dir, repo)
        .join("snapshots")
        .join(&info.sha);
    // The side files, and the weights picked (not the other formats' indexes, which are JSON).
    let mut files: Vec<&str> = listing
        .iter()
        .copied()
        .filter(|f| is_side_file(f) && !cache::WEIGHT_FILES.contains(f))
        .collect();
    files.push(weights);
    files.sort_unstable();
    files.dedup();
    let label = format!("{repo}@{rev}");
    tracing::info!(
        "downloading {repo}@{rev} (commit {}) from {endpoint} into {}",
        info.sha,
        cache_dir.display()
    );
    for file in &files {
        get(&hub, &label, &snapshot, file, &err)?;
    }
    // A sharded checkpoint: the shards its index lists (the listing may hold other weights, such
    // as a `consolidated.safetensors` beside the shards, that no reader of this layout reads).
    if cache::is_index(weights) {
        let shards = index_shards(&snapshot.join(weights)).ok_or_else(|| {
            err(format!(
                "{}: not an index with a weight_map",
                snapshot.join(weights).display()
            ))
        })?;
        for shard in &shards {
            get(&hub, &label, &snapshot, shard, &err)?;
        }
    }
    // huggingface_hub records refs for branches and tags only; hf-hub also writes one named after
    // a commit asked for by hash. Remove it so the cache reads as huggingface_hub left it.
    if cache::is_commit(rev) {
        let stray = cache::repo_dir(cache_dir, repo).join("refs").join(rev);
        if std::fs::read_to_string(&stray).is_ok_and(|t| t.trim() == rev) {
            let _ = std::fs::remove_file(stray);
        }
    }
    Ok(())
}

/// The weights to fetch from a listing, as led's reader picks them: the first of
/// [`cache::WEIGHT_FILES`] listed (an index's shards come after it).
fn weights_to_fetch(listing: &[&str]) -> Option<&'static str> {
    cache::WEIGHT_FILES
        .into_iter()
        .find(|f| listing.contains(f))
}

/// Download `file` unless the snapshot holds it; a failure names the file and what was kept.
fn get(
    hub: &ApiRepo,
    label: &str,
    snapshot: &Path,
    file: &str,
    err: &dyn Fn(String) -> Error,
) -> Result<()> {
    if snapshot.join(file).exists() {
        return Ok(());
    }
    let bar = Bar {
        label: label.to_owned(),
        bar: None,
    };
    hub.download_with_progress(file, bar)
        .map(drop)
        .map_err(|e| {
            err(format!(
                "{file}: download failed: {e}; no snapshot file links to it (what arrived is kept \
                 as a `.part` under blobs/ and resumed by the next run)"
            ))
        })
}

/// Why listing a repository failed, in words a user acts on.
fn listing_failure(e: &ApiError, endpoint: &str) -> String {
    match e {
        ApiError::RequestError(request) => match request.as_ref() {
            ureq::Error::Status(401, _) => format!(
                "{endpoint} answered 401: no such repository, or a private or gated one; set \
                 HF_TOKEN (or run `huggingface-cli login`) with a token that may read it"
            ),
            ureq::Error::Status(403, _) => format!(
                "{endpoint} answered 403: a gated repository; accept its conditions on its page \
                 and use a token (HF_TOKEN) of that account"
            ),
            ureq::Error::Status(404, _) => {
                format!("{endpoint} answered 404: no such repository or revision")
            }
            ureq::Error::Status(code, _) => format!("{endpoint} answered {code}"),
            ureq::Error::Transport(t) => format!("{endpoint} cannot be reached ({t})"),
        },
        other => other.to_string(),
    }
}

/// A progress bar per file, on stderr (a plain line every few seconds without a terminal),
/// named `repo@revision/file`.
struct Bar {
    /// `repo@revision`.
    label: String,
    /// Made when the download starts (its size known).
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        let message = format!("downloading {}/{filename}", self.label);
        match &self.bar {
            // A retry starts over at the size; the caller then moves it to what is kept.
            Some(bar) => {
                bar.set_length(size as u64);
                bar.set_position(0);
            }
            None => {
                let units = "{bytes}/{total_bytes}, {bytes_per_sec}";
                self.bar = Some(progress::bar(size as u64, message, units, true));
            }
        }
    }

    fn update(&mut self, size: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(size as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            progress::finish(bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_as_the_reader_picks_them() {
        let pick = |listing: &[&str]| weights_to_fetch(listing);
        // An index wins over the single files beside it (its shards come after it).
        assert_eq!(
            pick(&[
                "consolidated.safetensors",
                "model.safetensors.index.json",
                "pytorch_model.bin"
            ]),
            Some("model.safetensors.index.json")
        );
        assert_eq!(
            pick(&["pytorch_model.bin", "model.safetensors"]),
            Some("model.safetensors")
        );
        assert_eq!(
            pick(&["adapter_config.json", "adapter_model.safetensors"]),
            Some("adapter_model.safetensors")
        );
        assert_eq!(
            pick(&[
                "pytorch_model.bin.index.json",
                "pytorch_model-00001-of-00002.bin"
            ]),
            Some("pytorch_model.bin.index.json")
        );
        assert_eq!(
            pick(&["README.md", "model.onnx", "consolidated.safetensors"]),
            None
        );
    }

    #[test]
    fn side_files_are_configs_and_tokenizers() {
        for yes in [
            "config.json",
            "tokenizer_config.json",
            "generation_config.json",
            "tokenizer.model",
            "merges.txt",
            "vocab.txt",
            "chat_template.jinja",
        ] {
            assert!(is_side_file(yes), "{yes}");
        }
        for no in [
            "README.md",
            "training_args.bin",
            "model.onnx",
            ".gitattributes",
            "LICENSE",
        ] {
            assert!(!is_side_file(no), "{no}");
        }
    }

    #[test]
    fn a_snapshot_is_complete_with_a_config_and_every_shard() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(!cache::complete(d));
        std::fs::write(d.join("config.json"), "{}").unwrap();
        assert!(!cache::complete(d), "no weights");
        let index = r#"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "c": "s1.safetensors"}}"#;
        std::fs::write(d.join("model.safetensors.index.json"), index).unwrap();
        std::fs::write(d.join("s1.safetensors"), "").unwrap();
        assert!(!cache::complete(d), "a shard missing");
        std::fs::write(d.join("s2.safetensors"), "").unwrap();
        assert!(cache::complete(d));
    }
}
