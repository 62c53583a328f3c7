//! Stage 0: every model reference of the config resolved to a local path, as mergekit reads
//! them (docs/models.md): a local directory as it is, a Hub repo id (`org/name[@revision]`) to
//! its snapshot in the Hugging Face cache (downloaded into it first when absent, unless
//! `HF_HUB_OFFLINE` forbids it). The plan runs on the resolved
//! config; the config as written is what the output's provenance records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use led_merging_io::{ModelRef, Resolved};

use super::config_err;
use crate::config::MergeConfig;
use crate::error::Result;

/// One reference of the config that named a Hub repo, and where it resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The first config key that names it (`models[0].model`, `base_model`, ...).
    pub key: String,
    /// The reference as written.
    pub reference: String,
    /// Where it resolved.
    pub resolved: Resolved,
}

/// Resolves references, each text once, naming the config key of the first that fails.
struct Resolver<'a> {
    source: &'a Path,
    done: BTreeMap<String, PathBuf>,
    hub: Vec<Resolution>,
}

impl Resolver<'_> {
    fn path(&mut self, key: String, p: &mut PathBuf) -> Result<()> {
        let text = p.to_string_lossy().into_owned();
        if let Some(done) = self.done.get(&text) {
            p.clone_from(done);
            return Ok(());
        }
        let resolved = ModelRef::parse(&text)
            .resolve()
            .map_err(|e| config_err(self.source, key.clone(), e.to_string()))?;
        self.done.insert(text.clone(), resolved.path.clone());
        p.clone_from(&resolved.path);
        if resolved.hub.is_some() || resolved.adapter.as_ref().is_some_and(|a| a.hub.is_some()) {
            self.hub.push(Resolution {
                key,
                reference: text,
                resolved,
            });
        }
        Ok(())
    }
}

/// `config` with every model reference resolved to a local path, and the references that named
/// a Hub repo with where they resolved.
pub(super) fn resolve(config: &MergeConfig) -> Result<(MergeConfig, Vec<Resolution>)> {
    let mut out = config.clone();
    let mut r = Resolver {
        source: config.source(),
        done: BTreeMap::new(),
        hub: Vec::new(),
    };
    out.visit_model_refs(|key, p| r.path(key, p))?;
    Ok((out, r.hub))
}
