//! The reliability promises of docs/RELIABILITY.md that need a real process: a merge killed
//! with SIGKILL, a merge past a file-size limit, inputs never modified.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use led_merging_io::{CheckpointWriter, Dtype, TensorSpec, WriterOptions};

fn led() -> Command {
    Command::new(env!("CARGO_BIN_EXE_led"))
}

/// A base and two models of `tensors` × `n` f32 elements, and a ties config over them.
fn family(d: &Path, tensors: usize, n: usize) -> PathBuf {
    for (k, name) in ["base", "a", "b"].iter().enumerate() {
        let specs: Vec<TensorSpec> = (0..tensors)
            .map(|t| {
                TensorSpec::new(
                    format!("model.layers.{t}.mlp.up_proj.weight"),
                    Dtype::F32,
                    [n / 64, 64],
                )
            })
            .collect();
        let w = CheckpointWriter::create_dir(
            d.join(name),
            specs.clone(),
            WriterOptions {
                max_shard_size: (n * 4 * 2) as u64,
                ..Default::default()
            },
        )
        .unwrap();
        for s in &specs {
            let v: Vec<f32> = (0..s.numel())
                .map(|i| ((i * (k + 3)) % 1013) as f32 * 1e-3)
                .collect();
            w.write_f32(&s.name, &v).unwrap();
        }
        w.finish().unwrap();
    }
    let cfg = d.join("ties.yaml");
    let yaml = format!(
        "merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0, density: 0.5}}\n  - model: {c}\n    parameters: {{weight: 0.5, density: 0.5}}\n",
        b = d.join("base").display(),
        a = d.join("a").display(),
        c = d.join("b").display()
    );
    std::fs::write(&cfg, yaml).unwrap();
    cfg
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_mid_merge_leaves_no_output_and_a_rerun_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = family(d, 12, 1 << 20);
    let out = d.join("merged");
    let mut child = led()
        .arg("merge")
        .arg(&cfg)
        .arg(&out)
        .args(["--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as the writer's temporary directory exists: mid-write.
    let start = Instant::now();
    while !names(d).iter().any(|n| n.starts_with(".merged.led-tmp-")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the merge never started writing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the merge finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !out.exists(),
        "a killed merge must leave nothing at the target"
    );
    let ok = led().arg("merge").arg(&cfg).arg(&out).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.join("model.safetensors").exists());
    // The dead run's temporary directory was cleaned up by the rerun.
    assert!(
        !names(d).iter().any(|n| n.contains("led-tmp")),
        "{:?}",
        names(d)
    );
}

#[test]
fn file_size_limit_gives_a_clean_error_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = family(d, 4, 1 << 16);
    let out = d.join("merged");
    // bash's ulimit -f counts 1024-byte blocks: 256 KiB, less than one output shard.
    let script = format!(
        "ulimit -f 256; exec {} merge {} {}",
        env!("CARGO_BIN_EXE_led"),
        cfg.display(),
        out.display()
    );
    let run = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("File too large"), "{err}");
    assert!(!out.exists());
    assert!(
        !names(d).iter().any(|n| n.contains("led-tmp")),
        "{:?}",
        names(d)
    );
}

#[test]
fn inputs_are_never_modified() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = family(d, 3, 1 << 12);
    let snapshot = || -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        for m in ["base", "a", "b"] {
            for name in names(&d.join(m)) {
                let p = d.join(m).join(name);
                files.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
        files
    };
    let before = snapshot();
    let ok = led()
        .arg("merge")
        .arg(&cfg)
        .arg(d.join("merged"))
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert_eq!(snapshot(), before);
}

/// Run `script` (bash) as root of a new user and mount namespace, where it may mount a small
/// tmpfs or a read-only bind mount even without privileges; `None` where the kernel or
/// container refuses namespaces.
fn in_namespace(script: &str) -> Option<std::process::Output> {
    let probe = Command::new("unshare").args(["-rm", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: `unshare -rm` (user + mount namespaces) is not available here");
        return None;
    }
    Some(
        Command::new("unshare")
            .args(["-rm", "bash", "-c", script])
            .output()
            .unwrap(),
    )
}

#[test]
fn disk_full_gives_a_clean_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 4 tensors of 256 KiB: 1 MiB of output on a 512 KiB file system.
    let cfg = family(d, 4, 1 << 16);
    let small = d.join("small-disk");
    std::fs::create_dir(&small).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=512k tmpfs {s} || exit 99; {led} merge {cfg} {s}/merged; rc=$?; ls -A {s}; exit $rc",
        s = small.display(),
        led = env!("CARGO_BIN_EXE_led"),
        cfg = cfg.display()
    );
    let Some(run) = in_namespace(&script) else {
        return;
    };
    assert_ne!(run.status.code(), Some(99), "tmpfs mount failed: {run:?}");
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains("small-disk/merged: tensor \"model.layers."),
        "the error names the target and the tensor: {err}"
    );
    // Nothing left on the full disk: no output, no temporary directory.
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "", "{run:?}");
}

#[test]
fn read_only_target_gives_a_clean_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = family(d, 2, 1 << 12);
    let ro = d.join("read-only");
    std::fs::create_dir(&ro).unwrap();
    // A read-only bind mount refuses writes even to root (permissions would not).
    let script = format!(
        "mount --bind {r} {r} && mount -o remount,bind,ro {r} || exit 99; {led} merge {cfg} {r}/merged; rc=$?; ls -A {r}; exit $rc",
        r = ro.display(),
        led = env!("CARGO_BIN_EXE_led"),
        cfg = cfg.display()
    );
    let Some(run) = in_namespace(&script) else {
        return;
    };
    assert_ne!(run.status.code(), Some(99), "bind mount failed: {run:?}");
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(err.contains("read-only"), "the error names the path: {err}");
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "", "{run:?}");
    assert!(names(&ro).is_empty());
}
