//! What the Hub tests (`hub_cache.rs`, `hub_download.rs`) share: `led` cut off from the
//! machine's own Hugging Face settings, a TIES config, a merge run, tensor equality.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use led_merging_io::Checkpoint;

/// `led` with no Hugging Face variable of the machine's (cache, offline, endpoint, token).
pub fn led() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_led"));
    for k in [
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HOME",
        "XDG_CACHE_HOME",
        "HF_HUB_OFFLINE",
        "HF_ENDPOINT",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
    ] {
        c.env_remove(k);
    }
    c
}

/// A TIES config of `base`, `a` and `b` (each a path or a reference).
pub fn ties(base: &str, a: &str, b: &str) -> String {
    format!(
        "merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0, density: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.7, density: 0.3}}\n"
    )
}

/// Run `led merge` (the command `c`, with its environment) on `yaml`, written as
/// `d/name.yaml`, into `d/name`.
pub fn merge(c: &mut Command, d: &Path, name: &str, yaml: &str) -> (PathBuf, Output) {
    let cfg = d.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml).unwrap();
    let out = d.join(name);
    (
        out.clone(),
        c.arg("merge").arg(&cfg).arg(&out).output().unwrap(),
    )
}

/// Every tensor of the two checkpoints, bit for bit.
pub fn same_tensors(a: &Path, b: &Path) {
    let (a, b) = (Checkpoint::open(a).unwrap(), Checkpoint::open(b).unwrap());
    assert_eq!(a.tensors().len(), b.tensors().len());
    for t in a.tensors() {
        assert_eq!(
            a.read_bytes(&t.name).unwrap(),
            b.read_bytes(&t.name).unwrap(),
            "{}",
            t.name
        );
    }
}
