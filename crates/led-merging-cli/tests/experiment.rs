//! `make experiment`'s pipeline (experiments/smollm2/run.py, docs/experiments/smollm2.md) as
//! its `--quick` smoke run: every stage but the heat map (matplotlib is the experiment's own
//! dependency, not the tests'), on a tiny Llama with SmolLM2's tokenizer, with this build's
//! `led`. The run must finish and its report must hold a row for every condition and method.
#![cfg(feature = "attribution")]

#[path = "../../led-merging-attribution/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn quick_run_of_every_stage() {
    let d = tempfile::tempdir().unwrap();
    let tiny = d.path().join("tiny");
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::run_ok(
        Command::new(common::venv_python())
            .arg(crate_dir.join("tests/experiment/tiny_model.py"))
            .arg(&tiny)
            .arg(common::smollm2()),
    );
    let out = d.path().join("out");
    common::run_ok(
        Command::new(common::venv_python())
            .arg(crate_dir.join("../../experiments/smollm2/run.py"))
            .args([
                "--quick",
                "--skip",
                "heat-map",
                "--led",
                env!("CARGO_BIN_EXE_led"),
            ])
            .arg("--model")
            .arg(&tiny)
            .arg("--out")
            .arg(&out),
    );

    let timings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("timings.json")).unwrap()).unwrap();
    for stage in [
        "data",
        "fine-tunes",
        "locate",
        "analyze",
        "search",
        "test",
        "keeps",
        "energy",
        "conditions",
    ] {
        assert!(timings.get(stage).is_some(), "no time for stage {stage}");
    }
    let results = std::fs::read_to_string(out.join("results.md")).unwrap();
    // The Locate log: what each run wrote, gradient-only scores and the adapters' included.
    for key in [
        "base-safety-snip: wrote",
        "safety-safety-grad: wrote",
        "base-any-random: wrote",
        "lora-safety-safety-snip: wrote",
        "safety-strong-safety-snip: wrote",
    ] {
        assert!(
            results.contains(key),
            "results.md lacks {key:?}:\n{results}"
        );
    }
    let conditions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("conditions.json")).unwrap())
            .unwrap();
    for cond in ["bf16", "f32", "strong", "lora"] {
        let methods = &conditions[cond]["methods"];
        for method in ["task_arithmetic", "led", "magnitude"] {
            let refusal = methods[method]["test"]["refusal"].as_f64();
            assert!(
                refusal.is_some_and(|r| (0.0..=1.0).contains(&r)),
                "{cond}/{method}: {}",
                methods[method]
            );
        }
        let kept = methods["led"]["election"]["safety"]["kept"].as_f64();
        assert!(kept.is_some(), "{cond}: no election statistics");
    }
    for method in ["led_grad", "led_priority", "led_priority_no_disjoint"] {
        assert!(conditions["bf16"]["methods"][method]["test"]["math"].is_f64());
    }
    assert!(results.contains("| lora | led |"), "{results}");
}
