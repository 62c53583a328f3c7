//! `pytorch_model.bin` inputs (single, and sharded with `pytorch_model.bin.index.json`), read
//! without running pickle code (docs/formats.md, "pytorch_model.bin"): each reads exactly as
//! its safetensors twin and merges to the same bytes; a file whose pickle would create a file
//! if Python loaded it is refused, naming the global, and the file is not created; damaged
//! inputs are errors that write nothing. Checkpoints are made by
//! `tests/torch_bin/make_checkpoints.py` with PyTorch from the project's virtualenv; skipped
//! without it unless `LED_REQUIRE_PEERS` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use led_merging_io::Checkpoint;

mod peers;

use peers::text;

/// The fixtures under `dir`.
fn fixtures(python: &Path, dir: &Path) {
    peers::make_fixtures(python, "tests/torch_bin/make_checkpoints.py", dir);
}

fn merge(d: &Path, name: &str, suffix: &str) -> (PathBuf, Output) {
    let cfg = d.join(format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {m}\n    parameters: {{weight: 1.0, density: 0.5}}\n  - model: {o}\n    parameters: {{weight: 0.7, density: 0.3}}\n",
            b = d.join(format!("f32{suffix}")).display(),
            m = d.join(format!("bf16{suffix}")).display(),
            o = d.join(format!("other{suffix}")).display(),
        ),
    )
    .unwrap();
    let out = d.join(name);
    let o = Command::new(env!("CARGO_BIN_EXE_led"))
        .arg("merge")
        .arg(&cfg)
        .arg(&out)
        .output()
        .unwrap();
    (out, o)
}

#[test]
fn bin_checkpoints_read_and_merge_as_their_safetensors_twins() {
    let Some(python) = peers::python("the pytorch_model.bin tests") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixtures(&python, d);
    for name in ["f32", "bf16", "other"] {
        let twin = Checkpoint::open(d.join(format!("{name}-st"))).unwrap();
        for form in ["bin", "bin-sharded"] {
            let bin = Checkpoint::open(d.join(format!("{name}-{form}"))).unwrap();
            let listed = |c: &Checkpoint| {
                c.tensors()
                    .iter()
                    .map(|t| (t.name.clone(), t.dtype, t.shape.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(listed(&bin), listed(&twin), "{name}-{form}");
            for t in twin.tensors() {
                assert_eq!(
                    bin.read_bytes(&t.name).unwrap(),
                    twin.read_bytes(&t.name).unwrap(),
                    "{name}-{form}: {}",
                    t.name
                );
            }
        }
    }
    let (st, o) = merge(d, "merged-st", "-st");
    assert!(o.status.success(), "{}", text(&o));
    for suffix in ["-bin", "-bin-sharded"] {
        let (bin, o) = merge(d, &format!("merged{suffix}"), suffix);
        assert!(o.status.success(), "{}", text(&o));
        peers::transformers_runs(&python, &bin);
        let (a, b) = (
            Checkpoint::open(&bin).unwrap(),
            Checkpoint::open(&st).unwrap(),
        );
        for t in b.tensors() {
            assert_eq!(
                a.read_bytes(&t.name).unwrap(),
                b.read_bytes(&t.name).unwrap(),
                "{suffix}: {}",
                t.name
            );
        }
    }
}

#[test]
fn hostile_and_damaged_bin_files_are_refused_and_write_nothing() {
    let Some(python) = peers::python("the pytorch_model.bin tests") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixtures(&python, d);
    let pwned = d.join("pwned");
    // The hostile pickle as a model's weights.
    let hostile = d.join("hostile-model");
    std::fs::create_dir(&hostile).unwrap();
    std::fs::copy(d.join("f32-st/config.json"), hostile.join("config.json")).unwrap();
    std::fs::copy(d.join("hostile.bin"), hostile.join("pytorch_model.bin")).unwrap();
    // A truncated .bin, and an index naming a shard that is not there.
    let truncated = d.join("truncated");
    std::fs::create_dir(&truncated).unwrap();
    std::fs::copy(d.join("f32-st/config.json"), truncated.join("config.json")).unwrap();
    let bytes = std::fs::read(d.join("f32-bin/pytorch_model.bin")).unwrap();
    std::fs::write(
        truncated.join("pytorch_model.bin"),
        &bytes[..bytes.len() - 100],
    )
    .unwrap();
    let missing = d.join("missing-shard");
    std::fs::create_dir(&missing).unwrap();
    for f in [
        "config.json",
        "pytorch_model.bin.index.json",
        "pytorch_model-00001-of-00003.bin",
    ] {
        std::fs::copy(d.join("f32-bin-sharded").join(f), missing.join(f)).unwrap();
    }
    let out = d.join("merged");
    for (model, needles) in [
        (
            &hostile,
            &["refers to io.open", "pytorch_model.bin", "models[0].model"][..],
        ),
        (&truncated, &["pytorch_model.bin", "zip"][..]),
        (&missing, &["pytorch_model-00002-of-00003.bin"][..]),
    ] {
        let cfg = d.join("bad.yaml");
        std::fs::write(
            &cfg,
            format!(
                "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0}}\n",
                d.join("f32-st").display(),
                model.display()
            ),
        )
        .unwrap();
        for dry in [true, false] {
            let mut c = Command::new(env!("CARGO_BIN_EXE_led"));
            c.arg("merge").arg(&cfg).arg(&out);
            if dry {
                c.arg("--dry-run");
            }
            let o = c.output().unwrap();
            let said = text(&o);
            assert_eq!(o.status.code(), Some(1), "{}: {said}", model.display());
            for n in needles {
                assert!(said.contains(n), "{n:?} not in {said}");
            }
            assert!(!out.exists());
        }
    }
    assert!(!pwned.exists(), "reading the hostile file ran its code");
    // The file is hostile indeed: Python's pickle, allowed to, runs it.
    let o = Command::new(&python)
        .arg("-c")
        .arg("import sys, torch; torch.load(sys.argv[1], weights_only=False)")
        .arg(d.join("hostile.bin"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(pwned.exists(), "the hostile file did not create its file");
}
