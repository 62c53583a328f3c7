//! The Python peers the tests compare with (transformers, peft, huggingface_hub, PyTorch), from
//! the project's virtualenv (`make venv`).

// Not every test binary that includes this module uses all of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The virtualenv's python, or `None` (with a note) when it is absent: a plain `cargo test`
/// runs without Python. `make test` sets `LED_REQUIRE_PEERS=1`, which turns a missing
/// virtualenv into a failure, so CI never skips `what`.
pub fn python(what: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("LED_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    if python.exists() {
        return Some(python);
    }
    assert!(
        std::env::var_os("LED_REQUIRE_PEERS").is_none(),
        "{} not found",
        python.display()
    );
    eprintln!("SKIPPED {what}: no {}", python.display());
    None
}

/// A command's stdout and stderr, for failure messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run the fixture script `script` (relative to this crate) with `python`, writing under `dir`.
pub fn make_fixtures(python: &Path, script: &str, dir: &Path) {
    let o = std::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .arg(dir)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o));
}

/// transformers (with `python`) loads the model directory `dir` and runs a forward pass with
/// finite logits.
pub fn transformers_runs(python: &Path, dir: &Path) {
    let o = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import sys, torch\n\
             from transformers import AutoModelForCausalLM\n\
             m = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n\
             logits = m(torch.tensor([[1, 2, 3]])).logits\n\
             assert torch.isfinite(logits).all(), logits\n",
        )
        .arg(dir)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "transformers on {}: {}",
        dir.display(),
        text(&o)
    );
}

/// Where huggingface_hub (with `python`, offline, `local_files_only`) finds each `(repo,
/// revision)` in the cache `cache`: `snapshot_download`'s directory and transformers'
/// `cached_file` of `config.json`, in order.
pub fn huggingface_hub_resolves(
    python: &Path,
    cache: &Path,
    refs: &[(&str, &str)],
) -> Vec<(PathBuf, PathBuf)> {
    let script = r#"
import sys
from huggingface_hub import snapshot_download
from transformers.utils import cached_file
cache = sys.argv[1]
for ref in sys.argv[2:]:
    repo, rev = ref.split("@", 1)
    path = snapshot_download(repo, revision=rev, cache_dir=cache, local_files_only=True)
    config = cached_file(repo, "config.json", revision=rev, cache_dir=cache, local_files_only=True)
    print(path, config)
"#;
    let o = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(cache)
        .args(refs.iter().map(|(repo, rev)| format!("{repo}@{rev}")))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "huggingface_hub: {}", text(&o));
    let found: Vec<(PathBuf, PathBuf)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|line| {
            let (path, config) = line.split_once(' ').unwrap();
            (path.into(), config.into())
        })
        .collect();
    assert_eq!(found.len(), refs.len(), "{}", text(&o));
    found
}
