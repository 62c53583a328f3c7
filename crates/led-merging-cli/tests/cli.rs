//! The `led` binary as a user runs it: exit codes, messages, dry runs and merges.

use std::process::Command;

fn led() -> Command {
    Command::new(env!("CARGO_BIN_EXE_led"))
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let out = led().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = led()
        .args(["inspect", "/nonexistent/model"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("/nonexistent/model"),
        "{err}"
    );
    let help = led().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("led merge merge.yaml"));
}

#[test]
fn demo_then_dry_run_merge_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let run = led()
        .args(["demo", "--synthetic", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains("task_arithmetic") && text.contains("led elected"),
        "{text}"
    );
    // Rerunning the demo into its own directory works; into a foreign one it refuses.
    assert!(
        led()
            .args(["demo", "--synthetic", "--out"])
            .arg(&out)
            .status()
            .unwrap()
            .success()
    );
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep").unwrap();
    let refused = led()
        .args(["demo", "--synthetic", "--out"])
        .arg(&foreign)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));

    // Overlap analysis of the demo's random-scorer files: two independent top-20 % sets have a
    // Jaccard index of 0.2² / (2·0.2 − 0.2²) = 1/9 in expectation.
    let fig = dir.path().join("fig4");
    let analyze = led()
        .args(["analyze", "--top", "0.2", "--scores"])
        .arg(format!(
            "safety={}",
            out.join("scores/safety.safetensors").display()
        ))
        .arg(format!(
            "math={}",
            out.join("scores/math.safetensors").display()
        ))
        .arg("--out")
        .arg(&fig)
        .output()
        .unwrap();
    assert!(
        analyze.status.success(),
        "{}",
        String::from_utf8_lossy(&analyze.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fig.join("safety_vs_math.json")).unwrap()).unwrap();
    let overall = json["overall"].as_f64().unwrap();
    assert!((overall - 1.0 / 9.0).abs() < 0.005, "{overall}");
    assert!(
        std::fs::read_to_string(fig.join("safety_vs_math.svg"))
            .unwrap()
            .contains("layer 3")
    );
    let png = std::fs::read(fig.join("safety_vs_math.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let one = led()
        .args(["analyze", "--scores", "a=x.safetensors"])
        .output()
        .unwrap();
    assert_eq!(one.status.code(), Some(1));

    let cfg = out.join("configs/led.yaml");
    let dry = led()
        .args(["-v", "merge"])
        .arg(&cfg)
        .arg(dir.path().join("m"))
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(dry.status.success());
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("model.layers.0.mlp.up_proj.weight")
            && plan.contains("led of 2 model(s)")
            && plan.contains("output: 39 tensors"),
        "{plan}"
    );
    assert!(!dir.path().join("m").exists());

    let merged = dir.path().join("m");
    let ok = led()
        .arg("merge")
        .arg(&cfg)
        .arg(&merged)
        .args(["--threads", "2", "--max-shard-size", "500kB"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let merge_text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(merge_text.contains("LED election over"));
    // `analyze --config` reports the same election from the scores alone, plus kinds.
    let election = led()
        .args(["analyze", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("election"))
        .output()
        .unwrap();
    assert!(election.status.success());
    let text = String::from_utf8_lossy(&election.stdout);
    let table = |t: &str| -> Vec<String> {
        t.lines()
            .skip_while(|l| !l.starts_with("LED election over"))
            .take(4)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(table(&text), table(&merge_text), "{text}");
    assert!(
        text.contains("overlap") && text.contains("lm_head"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("election/election.json")).unwrap())
            .unwrap();
    let t = &json["tensors"]["model.layers.0.mlp.up_proj.weight"]["tasks"][0];
    assert_eq!(
        t["elected"].as_u64().unwrap() - t["removed"].as_u64().unwrap(),
        t["kept"].as_u64().unwrap()
    );
    let again = led().arg("merge").arg(&cfg).arg(&merged).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let inspect = led()
        .arg("inspect")
        .arg(&merged)
        .arg("--json")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json["metadata"]["led.merge.method"], "led");
    assert_eq!(json["tensors"].as_array().unwrap().len(), 39);
    assert!(json["shards"].as_array().unwrap().len() > 1);
}

/// The README's main command: the trained toy experiment, end to end.
#[cfg(feature = "attribution")]
#[test]
fn trained_demo_reproduces_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let run = led().args(["demo", "--out"]).arg(&out).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"].as_str().unwrap().starts_with(name))
            .unwrap()
            .clone()
    };
    // The family is what the experiment needs: an unaligned base that is bad at sums, a safety
    // model that refuses held-out harmful requests without refusing benign ones, a math model.
    assert_eq!(row("base")["refusal"], 0.0);
    assert!(row("base")["math"].as_f64().unwrap() < 0.2);
    assert_eq!(row("safety fine-tune")["refusal"], 1.0);
    assert_eq!(row("safety fine-tune")["benign_answered"], 1.0);
    // Deterministic on one machine, but libtorch picks CPU kernels by processor, and this tiny
    // training is chaotic: 100 % on one Xeon, 89 % on another. A math model either way.
    assert!(row("math fine-tune")["math"].as_f64().unwrap() >= 0.8);
    for method in ["task_arithmetic", "ties", "led (", "led without disjoint ("] {
        row(method);
    }
    assert!(
        std::fs::read_to_string(out.join("results.md"))
            .unwrap()
            .contains("| led (")
    );
    // Every setting validated (6 + 10 + 75 + 75), each method's choice kept with its config.
    let validation = std::fs::read_to_string(out.join("validation.md")).unwrap();
    assert_eq!(
        validation.lines().count(),
        2 + 6 + 10 + 75 + 75,
        "{validation}"
    );
    for (key, disjoint) in [("led", "true"), ("led-no-disjoint", "false")] {
        let cfg = std::fs::read_to_string(out.join(format!("configs/chosen-{key}.yaml"))).unwrap();
        assert!(cfg.contains(&format!("disjoint: {disjoint}")), "{cfg}");
        assert!(out.join(format!("merged-{key}/model.safetensors")).exists());
    }
    let merged = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("merged-")
        })
        .count();
    assert_eq!(merged, 4, "only the chosen merges are kept");
    assert!(out.join("scores/base-safety.safetensors").exists());

    // A long `led locate` stopped by Ctrl-C (SIGINT) or killed (SIGKILL) mid-scoring leaves no
    // score file and no temporary file.
    let records = std::fs::read_to_string(out.join("data/pretrain.jsonl")).unwrap();
    let data = dir.path().join("long.jsonl");
    std::fs::write(&data, records.repeat(400)).unwrap();
    let scores_dir = dir.path().join("stopped");
    std::fs::create_dir(&scores_dir).unwrap();
    let target = scores_dir.join("base.safetensors");
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let mut child = led()
            .args(["locate", "--device", "cpu", "--samples", "50000", "--model"])
            .arg(out.join("base"))
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "locate finished before it could be stopped"
        );
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let stopped = child.wait_with_output().unwrap();
        if signal == libc::SIGINT {
            assert_eq!(stopped.status.code(), Some(1), "{stopped:?}");
            let err = String::from_utf8_lossy(&stopped.stderr);
            assert!(err.contains("interrupted"), "{err}");
        } else {
            assert_eq!(stopped.status.code(), None, "killed by the signal");
        }
        let left: Vec<_> = std::fs::read_dir(&scores_dir).unwrap().collect();
        assert!(left.is_empty(), "{signal}: {left:?}");
    }
}
