//! What the parity tests share: the project's virtualenv (transformers, installed by
//! `make test`) and its reference scripts under `tests/parity/`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use led_merging_io::Checkpoint;

/// The virtualenv's python (`LED_VENV`, or the project's `.venv`).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("LED_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} not found: run the tests with `make test` (it installs transformers into the project's virtualenv) or set LED_VENV",
        python.display()
    );
    python
}

/// SmolLM2-135M-Instruct as `make smollm2` converts it (`LED_SMOLLM2`, or `models/`).
pub fn smollm2() -> PathBuf {
    let dir = std::env::var_os("LED_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct")
        });
    assert!(
        dir.join("config.json").exists(),
        "{}: no converted SmolLM2 checkpoint: run `make smollm2` (or `make test`, which does it)",
        dir.display()
    );
    dir
}

/// Run `cmd` offline (`HF_HUB_OFFLINE=1`); panics with its output unless it succeeds; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.env("HF_HUB_OFFLINE", "1").output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `tests/parity/SCRIPT ARGS...` with the venv's python, offline; panics with its stderr.
pub fn reference(script: &str, args: &[&Path]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/parity")
        .join(script);
    let out = Command::new(venv_python())
        .arg(path)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference script {script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The largest |a_i − b_i|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// An int64 tensor of a reference file (token ids, prompt lengths).
pub fn read_i64(reference: &Checkpoint, name: &str) -> Vec<i64> {
    reference
        .read_bytes(name)
        .unwrap()
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}
