//! Model references as mergekit reads them, and the Hugging Face cache as huggingface_hub lays it
//! out (docs/models.md).
//!
//! A reference is a local directory (or file) when that path exists; otherwise a Hub repo id,
//! `org/name` or `org/name@revision` (a branch, tag or full commit hash). A repo id resolves,
//! without the network, to its snapshot in the cache: `<cache>/models--org--name/refs/<revision>`
//! holds a commit hash, `<cache>/models--org--name/snapshots/<commit>/` the files. The cache is
//! `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `HF_HOME/hub`, else
//! `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`: huggingface_hub's order.
//!
//! A repo id the cache does not hold (or holds without the files a merge reads) is downloaded
//! into it (`download`, with the `download` feature), unless `HF_HUB_OFFLINE` forbids it; a
//! cached one never touches the network.

mod cache;
#[cfg(feature = "download")]
mod download;

use std::path::PathBuf;

use cache::{Lookup, check_reference, complete, lookup, offline_error};
pub use cache::{cache_dir, resolve_in};

use crate::error::{Error, Result};

/// What a model reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A local directory or file.
    Local(PathBuf),
    /// A Hugging Face Hub repository.
    Hub {
        /// `org/name` (or `name`).
        repo: String,
        /// A branch, tag or commit hash (`main` when absent).
        revision: Option<String>,
    },
    /// `MODEL+ADAPTER`: a model with a LoRA adapter applied, each side a reference.
    Adapted {
        /// The model.
        model: Box<ModelRef>,
        /// The adapter's directory (or repo).
        adapter: Box<ModelRef>,
    },
}

/// Where a reference resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The local directory (or file) to read.
    pub path: PathBuf,
    /// For a repo id: the repository, the revision asked for and the commit it resolved to.
    pub hub: Option<HubSnapshot>,
    /// For `MODEL+ADAPTER`: where the adapter resolved (`path` is then `MODEL_PATH+ADAPTER_PATH`,
    /// which [`crate::Checkpoint::open`] opens with the adapter applied, and `hub` the model's).
    pub adapter: Option<Box<Resolved>>,
}

/// A repo id resolved to a snapshot of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSnapshot {
    /// `org/name`.
    pub repo: String,
    /// The revision asked for (`main` when none was given).
    pub revision: String,
    /// The commit hash it resolved to.
    pub commit: String,
}

impl ModelRef {
    /// Read a reference as mergekit does: an existing path is local; `org/name[@revision]` that
    /// is not a path here is a repo id; anything else is a local path (that does not exist).
    pub fn parse(text: &str) -> Self {
        let local = PathBuf::from(text);
        if local.exists() {
            return ModelRef::Local(local);
        }
        // mergekit's `model+lora`: split at the first `+` (a local path with a `+` in it exists,
        // and was taken above).
        if let Some((model, adapter)) = text.split_once('+') {
            return ModelRef::Adapted {
                model: Box::new(ModelRef::parse(model)),
                adapter: Box::new(ModelRef::parse(adapter)),
            };
        }
        let (repo, revision) = match text.split_once('@') {
            Some((repo, rev)) => (repo, Some(rev.to_owned())),
            None => (text, None),
        };
        if looks_like_repo_id(repo) {
            ModelRef::Hub {
                repo: repo.to_owned(),
                revision,
            }
        } else {
            ModelRef::Local(local)
        }
    }

    /// Resolve to a local path: a local reference as it is (checked later, by what opens it),
    /// a repo id to its snapshot in the cache; an error naming the repo id when it is not
    /// cached, and what fetches it.
    pub fn resolve(&self) -> Result<Resolved> {
        match self {
            ModelRef::Local(path) => Ok(Resolved {
                path: path.clone(),
                hub: None,
                adapter: None,
            }),
            ModelRef::Adapted { model, adapter } => {
                let (model, adapter) = (model.resolve()?, adapter.resolve()?);
                let mut joined = model.path.into_os_string();
                joined.push("+");
                joined.push(&adapter.path);
                Ok(Resolved {
                    path: joined.into(),
                    hub: model.hub,
                    adapter: Some(Box::new(adapter)),
                })
            }
            ModelRef::Hub { repo, revision } => {
                let cache = cache_dir().ok_or_else(|| Error::Hub {
                    reference: repo.clone(),
                    reason: "no Hugging Face cache: set HF_HUB_CACHE or HF_HOME (HOME is not set)"
                        .into(),
                })?;
                resolve_hub(&cache, repo, revision.as_deref())
            }
        }
    }
}

/// Resolve a repo id in `cache`: its snapshot when the cache holds what a merge reads of it;
/// else, where downloads are allowed, fetched first; else the offline error.
fn resolve_hub(cache: &std::path::Path, repo: &str, revision: Option<&str>) -> Result<Resolved> {
    check_reference(repo, revision)?;
    let why = match lookup(cache, repo, revision)? {
        // An incomplete snapshot offline is read as it is: what opens it names the missing file.
        Lookup::Found(resolved) if complete(&resolved.path) || !may_download() => {
            return Ok(resolved);
        }
        Lookup::Found(resolved) => format!(
            "the cache's snapshot {} lacks files a merge reads",
            resolved.path.display()
        ),
        Lookup::Missing(why) => why,
    };
    if !may_download() {
        return Err(offline_error(repo, revision, &why));
    }
    #[cfg(feature = "download")]
    download::fetch(cache, repo, revision, &why)?;
    // What the download put in the cache.
    resolve_in(cache, repo, revision)
}

/// Whether a reference missing from the cache may be downloaded: built with the `download`
/// feature and `HF_HUB_OFFLINE` not set.
fn may_download() -> bool {
    #[cfg(feature = "download")]
    return !download::offline();
    #[cfg(not(feature = "download"))]
    return false;
}

/// Resolve `text` (a path or a repo id) to a local path.
pub fn resolve_model(text: &str) -> Result<Resolved> {
    ModelRef::parse(text).resolve()
}

/// Whether `text` has the shape of a Hub repo id (`name` or `org/name`; huggingface_hub's
/// rules: letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96 characters a part).
fn looks_like_repo_id(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() > 2 || text.contains("--") || text.contains("..") || text.ends_with(".git") {
        return false;
    }
    parts.iter().all(|p| {
        !p.is_empty()
            && p.len() <= 96
            && !p.starts_with(['.', '-'])
            && !p.ends_with(['.', '-'])
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    })
}

/// A path for messages: `org/name@revision → snapshot (commit)` for a repo id, the path else.
/// With an adapter: the model's, then `+ LoRA adapter` and the adapter's.
impl std::fmt::Display for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.path.to_string_lossy();
        let model = match &self.adapter {
            Some(a) => text
                .strip_suffix(&format!("+{}", a.path.to_string_lossy()))
                .unwrap_or(&text)
                .to_owned(),
            None => text.into_owned(),
        };
        match &self.hub {
            Some(h) => write!(
                f,
                "{}@{} → {model} (commit {})",
                h.repo, h.revision, h.commit
            )?,
            None => write!(f, "{model}")?,
        }
        match &self.adapter {
            Some(a) => write!(f, " + LoRA adapter {a}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_as_huggingface_hub_accepts_them() {
        for ok in ["gpt2", "org/name", "Org-1/na_me.v2", "a/b"] {
            assert!(looks_like_repo_id(ok), "{ok}");
        }
        for bad in [
            "",
            "a/b/c",
            "../x",
            "org/..",
            "org/.hidden",
            "a--b/c",
            "org/name.git",
            "org/na me",
            "/abs",
            "org/",
        ] {
            assert!(!looks_like_repo_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_local_path_wins_over_a_repo_id() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().join("org").join("name");
        std::fs::create_dir_all(&here).unwrap();
        let text = here.to_str().unwrap();
        assert_eq!(ModelRef::parse(text), ModelRef::Local(here.clone()));
        assert_eq!(
            ModelRef::parse("no-such-org/no-such-model@v1"),
            ModelRef::Hub {
                repo: "no-such-org/no-such-model".into(),
                revision: Some("v1".into())
            }
        );
        assert_eq!(
            ModelRef::parse("./no/such/dir"),
            ModelRef::Local("./no/such/dir".into())
        );
    }

    /// `MODEL+ADAPTER`, each side a path or a repo id, resolved in the cache like any other.
    #[test]
    fn model_plus_adapter_resolves_each_side() {
        let hub = |repo: &str, revision: Option<&str>| {
            Box::new(ModelRef::Hub {
                repo: repo.into(),
                revision: revision.map(Into::into),
            })
        };
        assert_eq!(
            ModelRef::parse("org/base+org/adapter@v2"),
            ModelRef::Adapted {
                model: hub("org/base", None),
                adapter: hub("org/adapter", Some("v2")),
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let with_plus = dir.path().join("a+b");
        std::fs::create_dir(&with_plus).unwrap();
        let text = with_plus.to_str().unwrap();
        assert_eq!(ModelRef::parse(text), ModelRef::Local(with_plus.clone()));

        let cache = dir.path().join("hub");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        for repo in ["models--org--base", "models--org--adapter"] {
            std::fs::create_dir_all(cache.join(repo).join("snapshots").join(commit)).unwrap();
            std::fs::create_dir_all(cache.join(repo).join("refs")).unwrap();
            std::fs::write(cache.join(repo).join("refs/main"), commit).unwrap();
        }
        let base = resolve_in(&cache, "org/base", None).unwrap();
        let adapter = resolve_in(&cache, "org/adapter", None).unwrap();
        let local = dir.path().join("local-model");
        std::fs::create_dir(&local).unwrap();
        let resolved = ModelRef::Adapted {
            model: Box::new(ModelRef::Local(local.clone())),
            adapter: Box::new(ModelRef::Local(adapter.path.clone())),
        }
        .resolve()
        .unwrap();
        assert_eq!(
            resolved.path,
            PathBuf::from(format!("{}+{}", local.display(), adapter.path.display()))
        );
        assert_eq!(
            resolved.to_string(),
            format!(
                "{} + LoRA adapter {}",
                local.display(),
                adapter.path.display()
            )
        );
        assert!(base.path.ends_with(commit));
    }
}
