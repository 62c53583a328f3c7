//! `led locate` + `led merge` on a real pretrained LLM (SmolLM2-135M-Instruct, converted by
//! `make smollm2`; `make test` sets `LED_SMOLLM2`): the merged checkpoint loads in Hugging Face
//! `transformers` with every tensor, each element is the base's or base + λτ, and it chats.
#![cfg(feature = "attribution")]

// The venv and model lookups the attribution parity tests use.
#[path = "../../led-merging-attribution/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn led() -> Command {
    Command::new(env!("CARGO_BIN_EXE_led"))
}

/// The helper script, SmolLM2, and a "fine-tune" of it written into `d` (`ft`).
fn smollm2_and_a_finetune(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let base = common::smollm2();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real/smollm2_merge.py");
    let ft = d.join("ft");
    common::run_ok(
        Command::new(common::venv_python())
            .arg(&script)
            .arg("perturb")
            .arg(&base)
            .arg(&ft),
    );
    (script, base, ft)
}

#[test]
fn led_merge_of_smollm2_loads_in_transformers_and_chats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (script, base, ft) = smollm2_and_a_finetune(d);
    std::fs::write(
        d.join("data.jsonl"),
        "{\"prompt\": \"What is the capital of France?\", \"answer\": \"The capital of France is Paris.\"}\n\
         {\"prompt\": \"What is 2 + 3?\", \"answer\": \"2 + 3 = 5.\"}\n",
    )
    .unwrap();
    // Without --chat-template, a chat model gets a note saying what the flag changes.
    let raw = led()
        .args(["locate", "--samples", "1", "--device", "cpu", "--model"])
        .arg(&base)
        .arg("--data")
        .arg(d.join("data.jsonl"))
        .arg("--out")
        .arg(d.join("raw.safetensors"))
        .output()
        .unwrap();
    let note = String::from_utf8_lossy(&raw.stderr);
    assert!(
        raw.status.success() && note.contains("pass --chat-template"),
        "{note}"
    );
    for (name, model) in [("base", &base), ("ft", &ft)] {
        common::run_ok(
            led()
                .args([
                    "locate",
                    "--chat-template",
                    "--samples",
                    "2",
                    "--device",
                    "cpu",
                    "--model",
                ])
                .arg(model)
                .arg("--data")
                .arg(d.join("data.jsonl"))
                .arg("--out")
                .arg(d.join(format!("{name}.safetensors"))),
        );
    }
    let config = d.join("merge.yaml");
    std::fs::write(
        &config,
        format!(
            "merge_method: led\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 0.8, density: 0.5}}\n    scores: {{model: {}, base: {}}}\ndtype: float32\nout_dtype: bfloat16\n",
            base.display(),
            ft.display(),
            d.join("ft.safetensors").display(),
            d.join("base.safetensors").display()
        ),
    )
    .unwrap();
    let merged = d.join("merged");
    let report = common::run_ok(led().arg("merge").arg(&config).arg(&merged));
    assert!(report.contains("kept"), "{report}");
    let check = common::run_ok(
        Command::new(common::venv_python())
            .arg(&script)
            .args(["check"])
            .arg(&merged)
            .arg(&base)
            .arg(&ft)
            .arg("0.8"),
    );
    eprintln!("{check}");
    assert!(check.contains("Paris"), "{check}");
}

/// mergekit's tokenizer features on a real tokenizer (SmolLM2's byte-level BPE with 49152
/// tokens): a union vocabulary, a token added with another token's rows, padding to a multiple
/// of 64, over a task-arithmetic merge of SmolLM2 and a perturbed copy; led and mergekit (its
/// command from the same virtualenv) write the same tensors bit for bit and tokenizers that
/// encode alike.
#[test]
fn tokenizer_union_on_smollm2_is_mergekits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (script, base, ft) = smollm2_and_a_finetune(d);
    let config = d.join("merge.yaml");
    std::fs::write(
        &config,
        format!(
            "merge_method: task_arithmetic\nbase_model: {b}\nmodels:\n  - model: {f}\n    parameters: {{weight: 0.5}}\ntokenizer:\n  source: union\n  tokens:\n    \"<|tool|>\": {{source: {{kind: model_token, model: \"{f}\", token: \"<|im_start|>\"}}}}\n  pad_to_multiple_of: 64\ndtype: float32\nout_dtype: bfloat16\n",
            b = base.display(),
            f = ft.display(),
        ),
    )
    .unwrap();
    let (ours, theirs) = (d.join("ours"), d.join("theirs"));
    common::run_ok(led().arg("merge").arg(&config).arg(&ours));
    let mergekit = common::venv_python().with_file_name("mergekit-yaml");
    common::run_ok(
        Command::new(mergekit)
            .arg(&config)
            .arg(&theirs)
            .args(["--no-write-model-card", "--quiet"]),
    );
    let same = common::run_ok(
        Command::new(common::venv_python())
            .arg(&script)
            .arg("same")
            .arg(&ours)
            .arg(&theirs),
    );
    eprintln!("{same}");
    assert!(same.contains("\"rows\": 49216"), "{same}");
}
