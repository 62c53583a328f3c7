//! The Hugging Face cache as huggingface_hub lays it out and finds it (docs/models.md): where it
//! is, and a repo id at a revision resolved to its snapshot without the network.

use std::path::{Path, PathBuf};

use super::{HubSnapshot, Resolved, looks_like_repo_id};
use crate::error::{Error, Result};

/// A non-empty environment variable as a path, `~` expanded as huggingface_hub does.
fn env_path(key: &str) -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let path = var(key)?;
    match path.strip_prefix("~") {
        Ok(rest) => var("HOME").map(|h| h.join(rest)),
        Err(_) => Some(path),
    }
}

/// Hugging Face's home: `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else
/// `~/.cache/huggingface` (the cache and the token file live under it).
pub(super) fn hf_home() -> Option<PathBuf> {
    if let Some(home) = env_path("HF_HOME") {
        return Some(home);
    }
    let cache =
        env_path("XDG_CACHE_HOME").or_else(|| env_path("HOME").map(|h| h.join(".cache")))?;
    Some(cache.join("huggingface"))
}

/// The Hugging Face hub cache directory, as huggingface_hub finds it.
pub fn cache_dir() -> Option<PathBuf> {
    env_path("HF_HUB_CACHE")
        .or_else(|| env_path("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| hf_home().map(|h| h.join("hub")))
}

/// The weight files led reads, in the order its reader looks for them: `model.safetensors`
/// (or its index), the adapter's, `pytorch_model.bin` (or its index). An index comes before its
/// single file, whose shards it lists.
pub(super) const WEIGHT_FILES: [&str; 5] = [
    crate::INDEX_FILE,
    crate::SINGLE_FILE,
    crate::ADAPTER_WEIGHTS_FILE,
    crate::BIN_INDEX_FILE,
    crate::BIN_FILE,
];

/// Whether `file` is an index of shards.
pub(super) fn is_index(file: &str) -> bool {
    file == crate::INDEX_FILE || file == crate::BIN_INDEX_FILE
}

/// The weight files a snapshot must hold: the first of [`WEIGHT_FILES`] it has, with every
/// shard an index lists. `None` when the snapshot has none of them.
pub(super) fn weight_files(dir: &Path) -> Option<Vec<String>> {
    let first = WEIGHT_FILES.into_iter().find(|f| dir.join(f).exists())?;
    let mut files = if is_index(first) {
        index_shards(&dir.join(first)).unwrap_or_default()
    } else {
        Vec::new()
    };
    files.push(first.to_owned());
    Some(files)
}

/// The shard files an index's `weight_map` names (each once); `None` when it cannot be read.
pub(super) fn index_shards(index: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(index).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut shards: Vec<String> = json
        .get("weight_map")?
        .as_object()?
        .values()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    shards.sort();
    shards.dedup();
    Some(shards)
}

/// Whether a snapshot holds what a merge or Locate reads: a config (a model's or an adapter's)
/// and its weights, every shard its index lists included.
pub(super) fn complete(dir: &Path) -> bool {
    let has_config = [crate::CONFIG_FILE, crate::ADAPTER_CONFIG_FILE]
        .iter()
        .any(|f| dir.join(f).exists());
    has_config && weight_files(dir).is_some_and(|files| files.iter().all(|f| dir.join(f).exists()))
}

/// Whether `text` is a full commit hash (40 lower-case hex digits).
pub(super) fn is_commit(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The command that puts `repo` at `revision` into the cache.
pub(super) fn fetch_hint(repo: &str, revision: Option<&str>) -> String {
    match revision {
        Some(r) => format!("`huggingface-cli download {repo} --revision {r}`"),
        None => format!("`huggingface-cli download {repo}`"),
    }
}

/// The reference as messages name it: `org/name` or `org/name@revision`.
pub(super) fn reference(repo: &str, revision: Option<&str>) -> String {
    match revision {
        Some(r) => format!("{repo}@{r}"),
        None => repo.to_owned(),
    }
}

/// An error about `repo` at `revision`.
pub(super) fn hub_error(repo: &str, revision: Option<&str>, reason: String) -> Error {
    Error::Hub {
        reference: reference(repo, revision),
        reason,
    }
}

/// Refuse what is no repo id or no revision, before the cache or the network is asked.
pub(super) fn check_reference(repo: &str, revision: Option<&str>) -> Result<()> {
    let err = |reason: String| hub_error(repo, revision, reason);
    if !looks_like_repo_id(repo) {
        return Err(err(format!(
            "{repo:?} is not a Hub repo id (org/name) and not a local path"
        )));
    }
    let rev = revision.unwrap_or("main");
    // A revision is a path under refs/ (`refs/pr/1` included): nothing that climbs out of it.
    if rev.is_empty()
        || rev.starts_with('/')
        || rev.contains('\\')
        || rev
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(err(format!(
            "revision {rev:?} is not a branch, tag or commit"
        )));
    }
    Ok(())
}

/// What the cache holds of a reference.
pub(super) enum Lookup {
    /// Its snapshot.
    Found(Resolved),
    /// Nothing (why, for a message that goes on with what fetches it).
    Missing(String),
}

/// `models--org--name`: the repository's directory in the cache.
pub(super) fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// Look `repo` at `revision` up in the cache `cache` (a checked reference): its snapshot, or
/// why there is none; an error when what is there is damaged.
pub(super) fn lookup(cache: &Path, repo: &str, revision: Option<&str>) -> Result<Lookup> {
    let err = |reason: String| hub_error(repo, revision, reason);
    let rev = revision.unwrap_or("main");
    let repo_dir = repo_dir(cache, repo);
    if !repo_dir.is_dir() {
        return Ok(Lookup::Missing(format!(
            "not a local directory, and not in the Hugging Face cache {}",
            cache.display()
        )));
    }
    let commit = if is_commit(rev) {
        rev.to_owned()
    } else {
        let ref_file = repo_dir.join("refs").join(rev);
        let Ok(text) = std::fs::read_to_string(&ref_file) else {
            return Ok(Lookup::Missing(format!(
                "revision {rev:?} is not in the cache ({} has no {})",
                repo_dir.display(),
                Path::new("refs").join(rev).display(),
            )));
        };
        let commit = text.trim();
        if !is_commit(commit) {
            return Err(err(format!(
                "{}: holds {commit:?}, not a commit hash: the cache is damaged; fetch it again with {}",
                ref_file.display(),
                fetch_hint(repo, revision)
            )));
        }
        commit.to_owned()
    };
    let snapshot = repo_dir.join("snapshots").join(&commit);
    if !snapshot.is_dir() {
        return Ok(Lookup::Missing(format!(
            "commit {commit} is not in the cache ({} is missing)",
            snapshot.display(),
        )));
    }
    check_snapshot(&snapshot).map_err(err)?;
    Ok(Lookup::Found(Resolved {
        path: snapshot,
        hub: Some(HubSnapshot {
            repo: repo.to_owned(),
            revision: rev.to_owned(),
            commit,
        }),
        adapter: None,
    }))
}

/// Resolve `repo` at `revision` in the cache `cache`, offline: an error naming the reference and
/// what fetches it when the cache does not hold it.
pub fn resolve_in(cache: &Path, repo: &str, revision: Option<&str>) -> Result<Resolved> {
    check_reference(repo, revision)?;
    match lookup(cache, repo, revision)? {
        Lookup::Found(resolved) => Ok(resolved),
        Lookup::Missing(why) => Err(offline_error(repo, revision, &why)),
    }
}

/// The error for a reference the cache lacks (`why`) when nothing may be downloaded.
pub(super) fn offline_error(repo: &str, revision: Option<&str>, why: &str) -> Error {
    hub_error(
        repo,
        revision,
        format!(
            "{why} (offline: nothing is downloaded); fetch it with {}, or set HF_HUB_CACHE / \
             HF_HOME to the cache that holds it",
            fetch_hint(repo, revision)
        ),
    )
}

/// A snapshot's files are links into `blobs/`: one whose blob is missing (an interrupted
/// download, a cleaned cache) is an error naming it.
fn check_snapshot(dir: &Path) -> std::result::Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link && !path.exists() {
            let target = std::fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            return Err(format!(
                "{}: links to {target}, which is missing (an interrupted download or a cleaned \
                 cache); fetch the model again",
                path.display()
            ));
        }
    }
    Ok(())
}
