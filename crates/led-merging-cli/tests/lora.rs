//! LoRA adapters (PEFT format) applied as tensors are read (docs/models.md, "LoRA adapters"):
//! `MODEL+ADAPTER` reads as peft's own `merge_and_unload` of it (attention, MLP and embedding
//! targets, `modules_to_save`, `alpha_pattern`, `rank_pattern`, rsLoRA, GPT-2's
//! `fan_in_fan_out`); a merge naming `base+adapter` gives mergekit 0.1.5's result; adapters that
//! cannot apply are clear errors that write nothing; `led locate` on `base+adapter` scores what
//! it scores on peft's merged copy. Models and adapters are made by
//! `tests/lora/make_adapters.py` with transformers and peft from the project's virtualenv;
//! skipped without it unless `LED_REQUIRE_PEERS` is set.

use std::path::Path;
use std::process::Command;

use led_merging_io::Checkpoint;

mod peers;

use peers::text;

/// The fixtures under `dir`.
fn fixtures(python: &Path, dir: &Path) {
    peers::make_fixtures(python, "tests/lora/make_adapters.py", dir);
}

fn adapted(d: &Path, model: &str, adapter: &str) -> String {
    format!("{}+{}", d.join(model).display(), d.join(adapter).display())
}

/// Largest |a − b| over max |b| of any tensor; the same names and shapes.
fn worst(ours: &Checkpoint, theirs: &Checkpoint) -> f32 {
    let names = |c: &Checkpoint| {
        c.tensors()
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(ours), names(theirs));
    let mut worst = 0f32;
    for t in theirs.tensors() {
        let (a, b) = (
            ours.read_f32(&t.name).unwrap(),
            theirs.read_f32(&t.name).unwrap(),
        );
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        worst = worst.max(diff / scale);
    }
    worst
}

#[test]
fn adapters_read_as_peft_merges_them_and_merge_as_mergekit_does() {
    let Some(python) = peers::python("the LoRA tests") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixtures(&python, d);
    for (model, adapter) in [("base", "lora"), ("base", "rslora"), ("gpt2", "gpt2-lora")] {
        let ours = Checkpoint::open(adapted(d, model, adapter)).unwrap();
        assert_eq!(ours.adapter(), Some(d.join(adapter).as_path()));
        let theirs = Checkpoint::open(d.join(format!("{adapter}-merged"))).unwrap();
        let w = worst(&ours, &theirs);
        assert!(w < 1e-6, "{adapter}: {w}");
        // The adapter changes something: the merged model is not the base.
        let plain = Checkpoint::open(d.join(model)).unwrap();
        assert!(worst(&plain, &theirs) > 1e-3, "{adapter} changes nothing");
        // Raw reads of an updated tensor are the updated values in the tensor's dtype.
        let q = if model == "gpt2" {
            "transformer.h.0.attn.c_attn.weight"
        } else {
            "model.layers.0.mlp.up_proj.weight"
        };
        let bytes = ours.read_bytes(q).unwrap();
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, ours.read_f32(q).unwrap());
    }

    // Locate scores the adapted weights: what it writes for peft's merged copy.
    let locate = |model: &str, out: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_led"))
            .args(["locate", "--samples", "6", "--model", model, "--data"])
            .arg(d.join("task.jsonl"))
            .arg("--out")
            .arg(d.join(out))
            .output()
            .unwrap();
        assert!(o.status.success(), "{model}: {}", text(&o));
        Checkpoint::open(d.join(out)).unwrap()
    };
    let ours = locate(&adapted(d, "base", "lora"), "scores-adapted.safetensors");
    let theirs = locate(
        &d.join("lora-merged").display().to_string(),
        "scores-merged.safetensors",
    );
    let w = worst(&ours, &theirs);
    assert!(
        w < 1e-4,
        "Locate on base+lora against peft's merged copy: {w}"
    );

    // A merge naming base+adapter: peft's merged copy merged alike, and mergekit's result.
    let yaml = |lora: &str| {
        format!(
            "merge_method: task_arithmetic\nbase_model: {b}\nmodels:\n  - model: {lora}\n    parameters: {{weight: 1.0}}\n  - model: {o}\n    parameters: {{weight: 0.5}}\ndtype: float32\n",
            b = d.join("base").display(),
            o = d.join("other").display(),
        )
    };
    let led_merge = |name: &str, lora: &str| {
        let cfg = d.join(format!("{name}.yaml"));
        std::fs::write(&cfg, yaml(lora)).unwrap();
        let out = d.join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_led"))
            .arg("merge")
            .arg(&cfg)
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o));
        (cfg, out)
    };
    let (cfg, ours) = led_merge("with-adapter", &adapted(d, "base", "lora"));
    let (_, copy) = led_merge(
        "with-merged-copy",
        &d.join("lora-merged").display().to_string(),
    );
    let ours = Checkpoint::open(ours).unwrap();
    let w = worst(&ours, &Checkpoint::open(&copy).unwrap());
    assert!(w < 1e-6, "against peft's merged copy: {w}");
    let mk_out = d.join("mergekit");
    let o = Command::new(python.with_file_name("mergekit-yaml"))
        .arg(&cfg)
        .arg(&mk_out)
        .args(["--no-write-model-card", "--quiet", "--lora-merge-cache"])
        .arg(d.join("lora-cache"))
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "mergekit: {}", text(&o));
    let w = worst(&ours, &Checkpoint::open(&mk_out).unwrap());
    assert!(w < 1e-6, "against mergekit: {w}");
    // transformers loads what led wrote from base+lora and runs it.
    peers::transformers_runs(&python, &d.join("with-adapter"));
}

#[test]
fn adapters_that_cannot_apply_are_errors_that_write_nothing() {
    let Some(python) = peers::python("the LoRA tests") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixtures(&python, d);
    // An adapter with no weights: an empty safetensors file.
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::copy(
        d.join("lora/adapter_config.json"),
        empty.join("adapter_config.json"),
    )
    .unwrap();
    let header = b"{}";
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(empty.join("adapter_model.safetensors"), bytes).unwrap();
    // Another PEFT type.
    let ia3 = d.join("ia3");
    std::fs::create_dir(&ia3).unwrap();
    let config = std::fs::read_to_string(d.join("lora/adapter_config.json")).unwrap();
    std::fs::write(
        ia3.join("adapter_config.json"),
        config.replace("\"LORA\"", "\"IA3\""),
    )
    .unwrap();
    let out = d.join("merged");
    for (model, adapter, needles) in [
        (
            "wide",
            "lora",
            &["mlp.down_proj.weight", "[16, 48]", "another model"][..],
        ),
        ("gpt2", "lora", &["lacks", "another architecture"][..]),
        ("base", "dora", &["DoRA"][..]),
        ("base", "empty", &["holds no weights"][..]),
        ("base", "ia3", &["peft_type IA3"][..]),
    ] {
        let cfg = d.join(format!("{model}-{adapter}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "merge_method: task_arithmetic\nbase_model: {b}\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0}}\n",
                b = d.join(model).display(),
                a = adapted(d, model, adapter),
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
            assert_eq!(o.status.code(), Some(1), "{adapter}: {said}");
            for n in needles {
                assert!(said.contains(n), "{adapter}: {n:?} not in {said}");
            }
            assert!(said.contains("models[0].model"), "{said}");
            assert!(!out.exists());
        }
    }
}
