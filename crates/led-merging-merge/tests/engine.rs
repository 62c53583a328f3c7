//! The engine on real checkpoint directories: planning errors, LED from score files, the
//! vocabulary and tied-head rules, determinism across thread counts, atomic output.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use led_merging_io::{Checkpoint, Dtype, meta};
use led_merging_mask::TensorStats;
use led_merging_merge::{Detail, Error, MergeConfig, MergePlan, RunOptions, led_election, run};

fn plan(yaml: &str, dir: &Path) -> Result<MergePlan, Error> {
    let cfg = dir.join("merge.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    MergePlan::new(MergeConfig::from_file(&cfg)?)
}

fn led_yaml(d: &Path, extra: &str) -> String {
    format!(
        "merge_method: led\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{weight: 1.0, density: 0.1}}\n    scores: {{model: {d}/s-scores.safetensors, base: {d}/base-s-scores.safetensors}}\n  - model: {m}\n    parameters: {{weight: 0.8, density: 0.4}}\n    scores: {{model: {d}/m-scores.safetensors, base: {d}/base-m-scores.safetensors}}\n{extra}",
        b = d.join("base").display(),
        s = d.join("safety").display(),
        m = d.join("math").display(),
        d = d.display(),
    )
}

fn family(d: &Path, dtype: Dtype) {
    common::write_model(&d.join("base"), 0, 0.0, common::VOCAB, dtype, false);
    common::write_model(&d.join("safety"), 1, 0.05, common::VOCAB, dtype, false);
    common::write_model(&d.join("math"), 2, 0.05, common::VOCAB, dtype, false);
    let specs = common::specs(common::VOCAB, Dtype::F32, false);
    for (name, seed) in [("s", 1), ("base-s", 2), ("m", 3), ("base-m", 4)] {
        common::write_scores(&d.join(format!("{name}-scores.safetensors")), &specs, seed);
    }
}

#[test]
fn led_merge_from_score_files_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::BF16);
    let plan = plan(
        &led_yaml(d, "parameters: {election: \"11\", disjoint: true}\n"),
        d,
    )
    .unwrap();
    assert!(
        plan.describe(Detail::PerTensor, &RunOptions::default())
            .contains("led of 2 model(s)")
    );
    let out = d.join("merged");
    let report = run(&plan, &out, &RunOptions::default()).unwrap();
    assert_eq!(report.tensor_reports.len(), 21);
    let ckpt = Checkpoint::open(&out).unwrap();
    // Output dtype defaults to the base's; provenance is recorded; config and card are there.
    assert!(ckpt.tensors().iter().all(|t| t.dtype == Dtype::BF16));
    assert_eq!(ckpt.metadata()[meta::MERGE_METHOD], "led");
    assert!(ckpt.metadata()[meta::MERGE_CONFIG].contains("merge_method: led"));
    assert!(
        std::fs::read_to_string(out.join("README.md"))
            .unwrap()
            .contains("merge_method: led")
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");

    // Recompute one tensor by hand with led-merging-mask and compare bit for bit (after bf16 rounding).
    let name = "model.layers.1.mlp.up_proj.weight";
    let read = |p: &str| Checkpoint::open(d.join(p)).unwrap().read_f32(name).unwrap();
    let (base, safety, math) = (read("base"), read("safety"), read("math"));
    let (ss, bss, ms, bms) = (
        read("s-scores.safetensors"),
        read("base-s-scores.safetensors"),
        read("m-scores.safetensors"),
        read("base-m-scores.safetensors"),
    );
    let tasks = [
        led_merging_mask::LedTask {
            model: &safety,
            base_scores: &bss,
            model_scores: &ss,
            ratio: 0.1,
            lambda: 1.0,
            pattern: led_merging_mask::Pattern::BothHigh,
            priority: false,
        },
        led_merging_mask::LedTask {
            model: &math,
            base_scores: &bms,
            model_scores: &ms,
            ratio: 0.4,
            lambda: 0.8,
            pattern: led_merging_mask::Pattern::BothHigh,
            priority: false,
        },
    ];
    let mut want = vec![0.0; base.len()];
    let stats = led_merging_mask::led_tensor(name, &base, &tasks, true, &mut want).unwrap();
    assert_eq!(report.reports::<TensorStats>()[name], stats);
    assert!(stats.tasks.iter().all(|t| t.kept > 0), "{stats:?}");
    let want: Vec<f32> = want
        .iter()
        .map(|&x| half::bf16::from_f32(x).to_f32())
        .collect();
    assert_eq!(ckpt.read_f32(name).unwrap(), want);
    // Elements in no mask keep the base value exactly.
    let got = ckpt.read_f32(name).unwrap();
    let unchanged = got.iter().zip(&base).filter(|(a, b)| a == b).count();
    assert!(unchanged > base.len() / 2);
}

#[test]
fn same_output_with_one_or_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::F32);
    let dare = format!(
        "merge_method: dare_ties\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{weight: 1.0, density: 0.3}}\n  - model: {m}\n    parameters: {{weight: 0.5, density: 0.6}}\nrandom_seed: 42\n",
        b = d.join("base").display(),
        s = d.join("safety").display(),
        m = d.join("math").display()
    );
    for (k, yaml) in [led_yaml(d, ""), dare].iter().enumerate() {
        let p = plan(yaml, d).unwrap();
        let mut outputs = Vec::new();
        for threads in [1, 2, 8] {
            let out = d.join(format!("out-{k}-{threads}"));
            run(
                &p,
                &out,
                &RunOptions {
                    threads,
                    max_shard_size: 30_000,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut files: Vec<_> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            outputs.push(
                files
                    .iter()
                    .map(|f| std::fs::read(f).unwrap())
                    .collect::<Vec<_>>(),
            );
        }
        assert!(outputs[0].len() > 3, "sharded output");
        assert_eq!(outputs[0], outputs[1]);
        assert_eq!(outputs[0], outputs[2]);
    }
}

#[test]
fn incompatible_inputs_are_listed_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::F32);
    // A model whose MLP is the wrong size, with an extra tensor.
    let odd = d.join("odd");
    let mut specs = common::specs(common::VOCAB, Dtype::F32, false);
    for s in specs.iter_mut().filter(|s| s.name.contains("up_proj")) {
        s.shape = vec![common::INTER + 1, common::HIDDEN];
    }
    specs.push(led_merging_io::TensorSpec::new(
        "model.extra.weight",
        Dtype::F32,
        [3],
    ));
    let w = led_merging_io::CheckpointWriter::create_dir(&odd, specs.clone(), Default::default())
        .unwrap();
    for s in &specs {
        w.write_f32(&s.name, &vec![0.0; s.numel()]).unwrap();
    }
    w.finish().unwrap();
    let yaml = format!(
        "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0}}\n",
        d.join("base").display(),
        odd.display()
    );
    let err = plan(&yaml, d).unwrap_err();
    let msg = err.to_string();
    let Error::Incompatible { problems } = &err else {
        panic!("{msg}")
    };
    // Both layers' up_proj and the extra tensor: every offender, not just the first.
    assert_eq!(problems.len(), 3, "{msg}");
    assert!(
        msg.contains("model.layers.0.mlp.up_proj.weight")
            && msg.contains("model.layers.1.mlp.up_proj.weight")
    );
    assert!(msg.contains("model.extra.weight") && msg.contains("odd"));
    assert!(!d.join("out").exists());
}

/// mergekit's `slices`: what does not make sense is refused before anything is read, naming
/// the slice and source; the output of a frankenmerge has its layers renumbered.
#[test]
fn slices_are_checked_and_renumbered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::F32);
    let b = d.join("base").display().to_string();
    let s = d.join("safety").display().to_string();
    let m = d.join("math").display().to_string();
    let src = |model: &str, from: usize, to: usize| {
        format!("      - model: {model}\n        layer_range: [{from}, {to}]\n")
    };
    let cases = [
        (
            format!(
                "merge_method: passthrough\nmodels: [{{model: {s}}}]\nslices:\n  - sources:\n{}",
                src(&s, 0, 1)
            ),
            "either `models` or `slices`",
        ),
        (
            format!(
                "merge_method: slerp\nbase_model: {b}\nparameters: {{t: 0.5}}\nslices:\n  - sources:\n{}{}",
                src(&b, 0, 2),
                src(&s, 0, 1)
            ),
            "slices[0].sources[1].layer_range: [0, 1] has 1 layer(s) but sources[0]'s has 2",
        ),
        (
            format!(
                "merge_method: passthrough\nslices:\n  - sources:\n{}",
                src(&s, 1, 1)
            ),
            "holds no layer",
        ),
        (
            format!(
                "merge_method: passthrough\nslices:\n  - sources:\n{}",
                src(&s, 1, 3)
            ),
            "slices[0].sources[0]: layer_range [1, 3] goes past",
        ),
        (
            format!(
                "merge_method: task_arithmetic\nbase_model: {b}\nslices:\n  - sources:\n{}{}  - sources:\n{}",
                src(&b, 0, 1),
                src(&s, 0, 1),
                src(&m, 1, 2)
            ),
            "slices[1].sources: base_model",
        ),
        (
            format!(
                "merge_method: slerp\nbase_model: {b}\nparameters: {{t: 0.5}}\nslices:\n  - sources:\n{}{}{}",
                src(&b, 0, 2),
                src(&s, 0, 2),
                src(&m, 0, 2)
            ),
            "slices[0].sources: slerp: needs exactly one model",
        ),
        (
            format!(
                "merge_method: passthrough\nslices:\n  - sources:\n{}{}",
                src(&s, 0, 2),
                src(&m, 0, 2)
            ),
            "passthrough: takes one input per tensor",
        ),
    ];
    for (yaml, want) in cases {
        let err = plan(&yaml, d).unwrap_err().to_string();
        assert!(err.contains(want), "expected {want:?} in: {err}");
    }
    // Layers 1 of math, then 0..2 of safety: three layers, renumbered; the embeddings from
    // the first slice's source, the final norm and head from the last one's.
    let yaml = format!(
        "merge_method: passthrough\nslices:\n  - sources:\n{}  - sources:\n{}",
        src(&m, 1, 2),
        src(&s, 0, 2)
    );
    let p = plan(&yaml, d).unwrap();
    let out = d.join("stacked");
    run(&p, &out, &RunOptions::default()).unwrap();
    let merged = Checkpoint::open(&out).unwrap();
    let (math, safety) = (
        Checkpoint::open(d.join("math")).unwrap(),
        Checkpoint::open(d.join("safety")).unwrap(),
    );
    let q = |l: usize| format!("model.layers.{l}.self_attn.q_proj.weight");
    for (out_name, from, name) in [
        (q(0), &math, q(1)),
        (q(1), &safety, q(0)),
        (q(2), &safety, q(1)),
        (
            "model.embed_tokens.weight".into(),
            &math,
            "model.embed_tokens.weight".into(),
        ),
        (
            "model.norm.weight".into(),
            &safety,
            "model.norm.weight".into(),
        ),
        ("lm_head.weight".into(), &safety, "lm_head.weight".into()),
    ] {
        assert_eq!(
            merged.read_f32(&out_name).unwrap(),
            from.read_f32(&name).unwrap(),
            "{out_name}"
        );
    }
    assert!(merged.get(&q(3)).is_none());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["num_hidden_layers"], 3);
}

/// `chat_template: auto` takes the template most models have; a Jinja template is used as
/// given; a name is one of the templates led knows (mergekit's names), else refused.
#[test]
fn chat_templates_auto_and_given() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::F32);
    let template = |model: &str, t: &str| {
        std::fs::write(
            d.join(model).join("tokenizer_config.json"),
            serde_json::json!({ "chat_template": t }).to_string(),
        )
        .unwrap();
    };
    template("base", "{{ base }}");
    template("safety", "{{ shared }}");
    template("math", "{{ shared }}");
    let yaml = |extra: &str| {
        format!(
            "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 0.5}}\n  - model: {}\n    parameters: {{weight: 0.5}}\n{extra}",
            d.join("base").display(),
            d.join("safety").display(),
            d.join("math").display()
        )
    };
    let saved = |extra: &str, out: &str| {
        let p = plan(&yaml(extra), d).unwrap();
        run(&p, d.join(out), &RunOptions::default()).unwrap();
        let config = std::fs::read_to_string(d.join(out).join("tokenizer_config.json")).unwrap();
        let jinja = std::fs::read_to_string(d.join(out).join("chat_template.jinja")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["chat_template"], jinja.as_str());
        jinja
    };
    assert_eq!(saved("chat_template: auto\n", "auto"), "{{ shared }}");
    let given = "{% for m in messages %}{{ m.content }}{% endfor %}";
    assert_eq!(
        saved(&format!("chat_template: \"{given}\"\n"), "given"),
        given
    );
    // A named template, as mergekit's: chatml.
    assert!(
        saved("chat_template: chatml\n", "named")
            .starts_with("{% for message in messages %}{{ '<|im_start|>'")
    );
    let err = plan(&yaml("chat_template: vicuna\n"), d)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("chat_template") && err.contains("not a template led knows (alpaca, chatml"),
        "{err}"
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::F32);
    let b = d.join("base").display().to_string();
    let s = d.join("safety").display().to_string();
    let cases = [
        (
            format!("merge_method: frankenmerge\nbase_model: {b}\nmodels: [{{model: {s}}}]\n"),
            "merge_method",
        ),
        (
            format!(
                "merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{weight: 1, densty: 0.5}}\n"
            ),
            "models[0].parameters.densty",
        ),
        (
            format!(
                "merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{weight: 1, density: 1.5}}\n"
            ),
            "models[0].parameters.density",
        ),
        (
            format!(
                "merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{density: 0.5}}\n"
            ),
            "models[0].parameters.weight",
        ),
        (
            format!("merge_method: ties\nmodels:\n  - model: {s}\n    parameters: {{weight: 1}}\n"),
            "base_model",
        ),
        (
            format!("merge_method: slerp\nbase_model: {b}\nmodels: [{{model: {s}}}]\n"),
            "parameters.t",
        ),
        (
            format!(
                "merge_method: led\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{density: 0.0}}\n    scores: {{model: x, base: y}}\n"
            ),
            "models[0].parameters.density",
        ),
        (
            format!(
                "merge_method: led\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{density: 0.2}}\n"
            ),
            "models[0]",
        ),
        (
            format!(
                "merge_method: led\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{density: 0.2}}\n    scores: {{model: x, base: y}}\nparameters: {{election: \"12\"}}\n"
            ),
            "parameters.election",
        ),
        (
            format!("merge_method: model_stock\nbase_model: {b}\nmodels: [{{model: {s}}}]\n"),
            "models",
        ),
        (
            format!(
                "merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{weight: 1}}\nout_dtype: int8\n"
            ),
            "out_dtype",
        ),
        (
            format!(
                "merge_method: task_arithmetic\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{weight: yes please}}\n"
            ),
            "models[0].parameters.weight",
        ),
    ];
    for (yaml, key) in cases {
        let err = plan(&yaml, d).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("merge.yaml") && msg.contains(key),
            "expected {key} in: {msg}"
        );
    }
    // Problems in several entries are reported together, each naming its key.
    let err = plan(
        &format!(
            "merge_method: ties\nmodels:\n  - model: {s}\n    parameters: {{weight: 1, densty: 0.5}}\n  - model: {b}\n    parameters: {{density: 0.5}}\n"
        ),
        d,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Problems { ref problems } if problems.len() == 3)
            && msg.contains("base_model: required by ties")
            && msg.contains("models[0].parameters.densty")
            && msg.contains("models[1].parameters.weight"),
        "{msg}"
    );
    // An unknown method is named, with the methods there are.
    let err = plan(
        &format!("merge_method: rum\nbase_model: {b}\nmodels: [{{model: {s}}}]\n"),
        d,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unknown method \"rum\"") && err.contains("nearswap, sce"),
        "{err}"
    );
    let err = plan(&format!("merge_method: led\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{density: 0.2}}\n    location: {{data: safety.jsonl}}\n"), d).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported(_)) && err.to_string().contains("location"),
        "{err}"
    );
    let err = plan(&format!("merge_method: task_arithmetic\nbase_model: {b}\nmodels:\n  - model: {}/nowhere\n    parameters: {{weight: 1}}\n", d.display()), d).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}

#[test]
fn vocabulary_rows_and_tied_heads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Base with a tied head; one model with a larger vocabulary and its own head; one smaller.
    common::write_model(&d.join("base"), 0, 0.0, common::VOCAB, Dtype::F32, true);
    common::write_model(
        &d.join("big"),
        1,
        0.05,
        common::VOCAB + 8,
        Dtype::F32,
        false,
    );
    common::write_model(
        &d.join("small"),
        2,
        0.05,
        common::VOCAB - 16,
        Dtype::F32,
        true,
    );
    let yaml = format!(
        "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0}}\n  - model: {}\n    parameters: {{weight: 1.0}}\n",
        d.join("base").display(),
        d.join("big").display(),
        d.join("small").display()
    );
    let p = plan(&yaml, d).unwrap();
    assert!(
        p.warnings()
            .iter()
            .any(|w| w.contains("lm_head.weight ignored")),
        "{:?}",
        p.warnings()
    );
    assert!(
        p.warnings()
            .iter()
            .any(|w| w.contains("beyond the base's vocabulary")),
        "{:?}",
        p.warnings()
    );
    let out = d.join("out");
    run(&p, &out, &RunOptions::default()).unwrap();
    let ckpt = Checkpoint::open(&out).unwrap();
    assert!(!ckpt.contains("lm_head.weight"), "the head stays tied");
    let name = "model.embed_tokens.weight";
    assert_eq!(
        ckpt.info(name).unwrap().shape,
        [common::VOCAB, common::HIDDEN]
    );
    let emb = ckpt.read_f32(name).unwrap();
    let base = Checkpoint::open(d.join("base"))
        .unwrap()
        .read_f32(name)
        .unwrap();
    let big = Checkpoint::open(d.join("big"))
        .unwrap()
        .read_f32(name)
        .unwrap();
    let small = Checkpoint::open(d.join("small"))
        .unwrap()
        .read_f32(name)
        .unwrap();
    let h = common::HIDDEN;
    // A row both models have: both deltas. A row only `big` has (small lacks it): one delta.
    let j = 3 * h + 5;
    assert!((emb[j] - (base[j] + (big[j] - base[j]) + (small[j] - base[j]))).abs() < 1e-6);
    let j = (common::VOCAB - 2) * h + 1;
    assert!((emb[j] - big[j]).abs() < 1e-6);
}

#[test]
fn output_is_atomic_and_never_overwritten_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::F32);
    let p = plan(&led_yaml(d, ""), d).unwrap();
    let out = d.join("merged");
    run(&p, &out, &RunOptions::default()).unwrap();
    let err = run(&p, &out, &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    run(
        &p,
        &out,
        &RunOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    // A merge that fails mid-way (a NaN in one input tensor) leaves nothing behind.
    let nan_dir = d.join("nan");
    let specs = common::specs(common::VOCAB, Dtype::F32, false);
    let w =
        led_merging_io::CheckpointWriter::create_dir(&nan_dir, specs.clone(), Default::default())
            .unwrap();
    for s in &specs {
        let mut v = common::values(&s.name, s.numel(), 5, 0.01);
        if s.name == "model.norm.weight" {
            v[3] = f32::NAN;
        }
        w.write_f32(&s.name, &v).unwrap();
    }
    w.finish().unwrap();
    let yaml = format!(
        "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0}}\n",
        d.join("base").display(),
        nan_dir.display()
    );
    let p = plan(&yaml, d).unwrap();
    let target = d.join("bad-merge");
    let err = run(&p, &target, &RunOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("model.norm.weight") && err.to_string().contains("not finite"),
        "{err}"
    );
    assert!(!target.exists());
    // A NaN that a selection by magnitude would drop or keep silently (TIES's top-k,
    // breadcrumbs' band; whole or in parts) is an error naming the input, tensor and element.
    let up = "model.layers.1.mlp.up_proj.weight";
    let w = led_merging_io::CheckpointWriter::create_dir(
        nan_dir.with_extension("2"),
        specs.clone(),
        Default::default(),
    )
    .unwrap();
    for s in &specs {
        let mut v = common::values(&s.name, s.numel(), 5, 0.01);
        if s.name == up {
            v[1000] = f32::NAN;
        }
        w.write_f32(&s.name, &v).unwrap();
    }
    w.finish().unwrap();
    for method in ["ties", "breadcrumbs"] {
        let yaml = format!(
            "merge_method: {method}\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0, density: 0.5}}\n",
            d.join("base").display(),
            nan_dir.with_extension("2").display()
        );
        let p = plan(&yaml, d).unwrap();
        for chunk_elements in [usize::MAX, 64] {
            let err = run(
                &p,
                &target,
                &RunOptions {
                    chunk_elements: Some(chunk_elements),
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(up)
                    && err.contains(&format!(
                        "{}: element 1000 is NaN",
                        nan_dir.with_extension("2").display()
                    ))
                    && err.contains("not finite"),
                "{method}, parts of {chunk_elements}: {err}"
            );
            assert!(!target.exists());
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("led-tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

/// Every file of an output directory, in name order.
fn dir_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(f).unwrap())
        })
        .collect()
}

#[test]
fn merging_large_tensors_in_parts_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::BF16);
    // A second family with a tied base and models of other vocabulary sizes, so that parts
    // cross the row where a smaller model's rows end (filled from the base).
    let v = d.join("vocab");
    common::write_model(&v.join("base"), 0, 0.0, common::VOCAB, Dtype::F32, true);
    common::write_model(
        &v.join("big"),
        1,
        0.05,
        common::VOCAB + 8,
        Dtype::F32,
        false,
    );
    common::write_model(
        &v.join("small"),
        2,
        0.05,
        common::VOCAB - 17,
        Dtype::F32,
        true,
    );
    // A family with tokenizers (mergekit's tokenizer tests' models): vocabulary rows aligned
    // by token and padded, part by part.
    let t = d.join("tok");
    for (name, seed, rows, added) in [
        ("base", 0, 64, &[][..]),
        ("chatml", 1, 66, &["<|im_start|>", "<|im_end|>"][..]),
        ("padded", 2, 64, &["<U0>", "<U1>"][..]),
    ] {
        common::write_model(&t.join(name), seed, 0.05, rows, Dtype::F32, false);
        common::write_tokenizer(&t.join(name), 64, added);
    }
    let tokenized = |method: &str, tokenizer: &str| {
        format!(
            "merge_method: {method}\nbase_model: {b}\nmodels:\n  - model: {c}\n    parameters: {{weight: 0.7, density: 0.5}}\n  - model: {p}\n    parameters: {{weight: 0.4, density: 0.5}}\n{tokenizer}",
            b = t.join("base").display(),
            c = t.join("chatml").display(),
            p = t.join("padded").display(),
        )
    };
    let pair = |method: &str, params: &str| {
        format!(
            "merge_method: {method}\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 0.7{params}}}\n  - model: {}\n    parameters: {{weight: 0.4{params}}}\n",
            v.join("base").display(),
            v.join("big").display(),
            v.join("small").display()
        )
    };
    let configs = [
        led_yaml(d, ""),
        led_yaml(d, "parameters: {disjoint: false, election: \"01\"}\n"),
        // The authors' convention: reversed scores, streamed thresholds included.
        led_yaml(d, "parameters: {neg_prune: true}\n"),
        pair("task_arithmetic", ""),
        pair("ties", ", density: 1.0"),
        // TIES's exact top-k, streamed: on BF16 inputs (many equal magnitudes, so the ties
        // handed out part by part matter) and across vocabulary sizes.
        format!(
            "merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{weight: 1.0, density: 0.3}}\n  - model: {m}\n    parameters: {{weight: 0.5, density: 1.0}}\n",
            b = d.join("base").display(),
            s = d.join("safety").display(),
            m = d.join("math").display()
        ),
        pair("ties", ", density: 0.5"),
        // DARE: random streams keyed by position; the L1 factor streamed first.
        pair("dare_ties", ", density: 0.5"),
        format!(
            "{}parameters: {{rescale: inverse_density}}\nrandom_seed: 7\n",
            pair("dare_linear", ", density: 0.3")
        ),
        format!(
            "{}parameters: {{rescale: false}}\n",
            pair("dare_linear", ", density: 0.6")
        ),
        // DELLA: per-row streams (rows whole in every part), the L1 factor streamed first.
        pair("della", ", density: 0.5, epsilon: 0.2"),
        format!(
            "{}parameters: {{rescale: false}}\nrandom_seed: 5\n",
            pair("della_linear", ", density: 0.4, epsilon: 0.1")
        ),
        // Breadcrumbs: both cuts of the magnitude ranks streamed, the ties at each handed out
        // part by part: on BF16 (many equal magnitudes) and across vocabulary sizes.
        pair("breadcrumbs", ", density: 0.5"),
        format!(
            "merge_method: breadcrumbs_ties\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{weight: 1.0, density: 0.4, gamma: 0.2}}\n  - model: {m}\n    parameters: {{weight: 0.5, density: 0.9}}\n",
            b = d.join("base").display(),
            s = d.join("safety").display(),
            m = d.join("math").display()
        ),
        pair("linear", ""),
        // Norms and dot products over the whole tensor, summed part by part first.
        format!(
            "merge_method: slerp\nbase_model: {}\nmodels: [{{model: {}}}]\nparameters: {{t: 0.3}}\n",
            v.join("base").display(),
            v.join("small").display()
        ),
        format!(
            "merge_method: model_stock\nbase_model: {}\nmodels: [{{model: {}}}, {{model: {}}}]\n",
            v.join("base").display(),
            v.join("big").display(),
            v.join("small").display()
        ),
        // RAM+: the models' shared and lone counts over the whole tensor, streamed first.
        format!(
            "{}parameters: {{epsilon: 0.01, r: 0.5, alpha: 0.6}}\n",
            pair("ramplus_tl", "")
        ),
        format!("{}parameters: {{epsilon: 0.02}}\n", pair("ram", "")),
        tokenized(
            "ties",
            "tokenizer:\n  source: union\n  pad_to_multiple_of: 16\n  tokens:\n    _tok_5: {source: {kind: zero}, force: true}\n",
        ),
        tokenized("task_arithmetic", "tokenizer_source: base\n"),
        format!(
            "merge_method: model_stock\nbase_model: {b}\nmodels: [{{model: {s}}}, {{model: {m}}}]\nparameters: {{filter_wise: true}}\n",
            b = d.join("base").display(),
            s = d.join("safety").display(),
            m = d.join("math").display()
        ),
    ];
    for (k, yaml) in configs.iter().enumerate() {
        let p = plan(yaml, d).unwrap();
        let whole = d.join(format!("whole-{k}"));
        let parts = d.join(format!("parts-{k}"));
        let a = run(&p, &whole, &RunOptions::default()).unwrap();
        // 64 elements: two rows of 32 per part, so every matrix is merged in many parts.
        let b = run(
            &p,
            &parts,
            &RunOptions {
                chunk_elements: Some(64),
                ..Default::default()
            },
        )
        .unwrap();
        same_stats(&a.reports::<TensorStats>(), &b.reports::<TensorStats>(), k);
        // The election alone, from the scores only, whole or in parts, says what the merge did.
        for chunk_elements in [usize::MAX, 64] {
            let opts = RunOptions {
                chunk_elements: Some(chunk_elements),
                ..Default::default()
            };
            match led_election(&p, &opts) {
                Ok(stats) => same_stats(&stats, &a.reports::<TensorStats>(), k),
                Err(e) => {
                    assert!(a.tensor_reports.is_empty(), "config {k}: {e}");
                    assert!(e.to_string().contains("merge_method: led"), "{e}");
                }
            }
        }
        assert_eq!(a.warnings, b.warnings, "config {k}");
        assert_eq!(dir_bytes(&whole), dir_bytes(&parts), "config {k}: {yaml}");
    }
}

/// A method of the caller's own, run by the engine: every weight becomes its model 0 value × 2.
struct Doubler;

impl led_merging_merge::ops::MergeMethod for Doubler {
    fn name(&self) -> &'static str {
        "doubler"
    }
    fn model_params(&self) -> &'static [led_merging_merge::ops::ParamSpec] {
        &[]
    }
    fn global_params(&self) -> &'static [led_merging_merge::ops::ParamSpec] {
        &[]
    }
    fn merge(
        &self,
        job: &led_merging_merge::ops::TensorJob<'_>,
        out: &mut [f32],
    ) -> led_merging_merge::Result<Vec<led_merging_merge::ops::TensorNote>> {
        out.iter_mut()
            .zip(job.models[0].values)
            .for_each(|(o, v)| *o = 2.0 * v);
        Ok(Vec::new())
    }
}

#[test]
fn a_custom_method_runs_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    family(d, Dtype::F32);
    let yaml = |method: &str| {
        format!(
            "merge_method: {method}\nbase_model: {}\nmodels:\n  - model: {}\n",
            d.join("base").display(),
            d.join("safety").display()
        )
    };
    let cfg = d.join("custom.yaml");
    std::fs::write(&cfg, yaml("ties")).unwrap();
    let err = MergePlan::with_method(MergeConfig::from_file(&cfg).unwrap(), Box::new(Doubler))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("merge_method") && err.contains("doubler"),
        "{err}"
    );
    std::fs::write(&cfg, yaml("doubler")).unwrap();
    let p =
        MergePlan::with_method(MergeConfig::from_file(&cfg).unwrap(), Box::new(Doubler)).unwrap();
    run(&p, d.join("out"), &RunOptions::default()).unwrap();
    let name = "model.layers.0.mlp.down_proj.weight";
    let got = Checkpoint::open(d.join("out"))
        .unwrap()
        .read_f32(name)
        .unwrap();
    let want: Vec<f32> = Checkpoint::open(d.join("safety"))
        .unwrap()
        .read_f32(name)
        .unwrap()
        .iter()
        .map(|v| 2.0 * v)
        .collect();
    assert_eq!(got, want);
}

/// The same LED statistics: counts and thresholds exactly, the task vectors' energies (f64
/// sums, merged in another order in parts) within 1e-12 relative.
fn same_stats(a: &BTreeMap<String, TensorStats>, b: &BTreeMap<String, TensorStats>, k: usize) {
    let strip = |m: &BTreeMap<String, TensorStats>| {
        let mut m = m.clone();
        let mut energies = Vec::new();
        for s in m.values_mut() {
            for t in &mut s.tasks {
                energies.push((t.energy, t.kept_energy));
                (t.energy, t.kept_energy) = (0.0, 0.0);
            }
        }
        (m, energies)
    };
    let ((a, ea), (b, eb)) = (strip(a), strip(b));
    assert_eq!(a, b, "config {k}");
    for ((x, xk), (y, yk)) in ea.into_iter().zip(eb) {
        for (u, v) in [(x, y), (xk, yk)] {
            assert!(
                (u - v).abs() <= 1e-12 * v.abs().max(1.0),
                "config {k}: {u} vs {v}"
            );
        }
    }
}

/// The worked example's tensors: an embedding and a Linear of [2, 5].
const WORKED_NAMES: [&str; 2] = [
    "model.embed_tokens.weight",
    "model.layers.0.mlp.up_proj.weight",
];

/// A checkpoint (a directory, or one file) of [`WORKED_NAMES`], each holding `values`.
fn write(path: &Path, values: [f32; 10], is_dir: bool) {
    use led_merging_io::{CheckpointWriter, TensorSpec, WriterOptions};
    let specs: Vec<TensorSpec> = WORKED_NAMES
        .iter()
        .map(|n| TensorSpec::new(*n, Dtype::F32, [2, 5]))
        .collect();
    let w = if is_dir {
        CheckpointWriter::create_dir(path, specs, WriterOptions::default())
    } else {
        CheckpointWriter::create_file(path, specs, WriterOptions::default())
    }
    .unwrap();
    for n in WORKED_NAMES {
        w.write_f32(n, &values).unwrap();
    }
    w.finish().unwrap();
}

/// The worked example's family (docs/how-led-works.md) under `d`: a base of zeros, two models
/// of ones (τ = 1), and each task's score files, for an embedding and a Linear tensor of
/// [2, 5]. Returns the tensor names.
fn worked_example(d: &Path) -> [&'static str; 2] {
    write(&d.join("base"), [0.0; 10], true);
    write(&d.join("a"), [1.0; 10], true);
    write(&d.join("b"), [1.0; 10], true);
    write(
        &d.join("a-ft.safetensors"),
        [9., 8., 7., 7., 5., 4., 3., 2., 1., 0.],
        false,
    );
    write(
        &d.join("a-base.safetensors"),
        [8., 9., 1., 7., 7., 6., 0., 0., 0., 0.],
        false,
    );
    write(
        &d.join("b-ft.safetensors"),
        [0., 1., 7., 9., 8., 2., 6., 5., 5., 3.],
        false,
    );
    write(
        &d.join("b-base.safetensors"),
        [0., 0., 9., 8., 1., 2., 7., 6., 5., 5.],
        false,
    );
    WORKED_NAMES
}

/// An LED config over [`worked_example`]'s family: task a (λ 1, r 0.3) and b (λ 0.5, r 0.5)
/// with the further parameters `a`, `b` (e.g. `, priority: true`), and global `params`.
fn worked_yaml(d: &Path, a: &str, b: &str, params: &str) -> String {
    format!(
        "merge_method: led\nbase_model: {d}/base\nmodels:\n  - model: {d}/a\n    parameters: {{weight: 1.0, density: 0.3{a}}}\n    scores: {{model: {d}/a-ft.safetensors, base: {d}/a-base.safetensors}}\n  - model: {d}/b\n    parameters: {{weight: 0.5, density: 0.5{b}}}\n    scores: {{model: {d}/b-ft.safetensors, base: {d}/b-base.safetensors}}\nparameters: {params}\n",
        d = d.display()
    )
}

/// The authors' score convention (`neg_prune: true`) on the worked example, by hand: every
/// tensor but the embedding elects its k lowest scores (t = the k-th smallest, `s ≤ t`, ties
/// kept, zeros electable); the embedding keeps the paper's rule.
///
/// Task A (r = 0.3, k = 3): ft [9,8,7,7,5,4,3,2,1,0] → t = 2, M_u = {7,8,9};
/// base [8,9,1,7,7,6,0,0,0,0] → t = 0, M_b = {6,7,8,9}; E_A = {7,8,9}.
/// Task B (r = 0.5, k = 5): ft [0,1,7,9,8,2,6,5,5,3] → t = 5, M_u = {0,1,5,7,8,9};
/// base [0,0,9,8,1,2,7,6,5,5] → t = 5, M_b = {0,1,4,5,8,9}; E_B = {0,1,5,8,9}.
/// Disjoint drops {8,9}: m_A = {7}, m_B = {0,1,5}. With τ = 1, λ = (1, 0.5), θ_b = 0:
/// θ = [0.5,0.5,0,0,0,0.5,0,1,0,0]; without Disjoint [0.5,0.5,0,0,0,0.5,0,1,1.5,1.5].
#[test]
fn neg_prune_elects_the_lowest_scores_except_in_the_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = worked_example(d);
    let yaml = |params: &str| worked_yaml(d, "", "", params);
    // The paper's rule (the embedding under either convention); without Disjoint element 3,
    // elected by both tasks, gets 1 + 0.5.
    let paper = [1., 1., 0.5, 0., 0., 0., 0.5, 0.5, 0.5, 0.];
    let paper_no_disjoint = [1., 1., 0.5, 1.5, 0., 0., 0.5, 0.5, 0.5, 0.];
    for (k, (params, want_linear, want_embedding)) in [
        (
            "{neg_prune: true}",
            [0.5, 0.5, 0., 0., 0., 0.5, 0., 1., 0., 0.],
            paper,
        ),
        (
            "{neg_prune: true, disjoint: false}",
            [0.5, 0.5, 0., 0., 0., 0.5, 0., 1., 1.5, 1.5],
            paper_no_disjoint,
        ),
        ("{neg_prune: false}", paper, paper),
    ]
    .into_iter()
    .enumerate()
    {
        let p = plan(&yaml(params), d).unwrap();
        for chunk_elements in [usize::MAX, 5] {
            let out = d.join(format!("merged-{k}-{chunk_elements}"));
            let report = run(
                &p,
                &out,
                &RunOptions {
                    chunk_elements: Some(chunk_elements),
                    ..Default::default()
                },
            )
            .unwrap();
            let got = Checkpoint::open(&out).unwrap();
            assert_eq!(got.read_f32(names[1]).unwrap(), want_linear, "{params}");
            // The embedding elects its highest scores under either convention.
            assert_eq!(got.read_f32(names[0]).unwrap(), want_embedding, "{params}");
            // The election alone agrees with the merge.
            let opts = RunOptions {
                chunk_elements: Some(chunk_elements),
                ..Default::default()
            };
            assert_eq!(
                led_election(&p, &opts).unwrap(),
                report.reports::<TensorStats>(),
                "{params}"
            );
        }
    }
    // Negative scores cannot be reversed: an error naming the tensor.
    write(
        &d.join("a-ft.safetensors.neg"),
        [9., 8., 7., 7., 5., 4., 3., 2., 1., -1.],
        false,
    );
    std::fs::rename(d.join("a-ft.safetensors.neg"), d.join("a-ft.safetensors")).unwrap();
    let p = plan(&yaml("{neg_prune: true}"), d).unwrap();
    let err = run(&p, d.join("never"), &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(names[1]) && err.contains("negative"), "{err}");
    assert!(!d.join("never").exists());
}

/// `tokenizer_source: union`, worked by hand: each model's rows are taken by token, not by id
/// (a model that numbers a token differently gives that token's row), a token only one model
/// has gets that model's row in every model, and the output tokenizer, config and rows agree.
#[test]
fn union_vocabulary_aligns_rows_by_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Tokenizers: the base has 4 tokens; `a` numbers `_tok_3` 4 and has a plain token `x` at
    // 3; `b` has the base's 4 and an added token `<y>` at 4.
    let tokenizer = |model: &str, rows: usize, vocab: &[&str], added: Option<&str>| {
        common::write_model(&d.join(model), rows as u64, 0.05, rows, Dtype::F32, false);
        let vocab: serde_json::Map<String, serde_json::Value> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i.into()))
            .collect();
        let added: Vec<_> = added
            .map(|t| led_merging_io::plain_added_token(t, rows as u32 - 1))
            .into_iter()
            .collect();
        let tok = serde_json::json!({
            "version": "1.0", "added_tokens": added,
            "model": {"type": "BPE", "vocab": vocab, "merges": []},
        });
        std::fs::write(d.join(model).join("tokenizer.json"), tok.to_string()).unwrap();
    };
    tokenizer("base", 4, &["<unk>", "<s>", "</s>", "_tok_3"], None);
    tokenizer("a", 5, &["<unk>", "<s>", "</s>", "x", "_tok_3"], None);
    tokenizer("b", 5, &["<unk>", "<s>", "</s>", "_tok_3"], Some("<y>"));
    let yaml = format!(
        "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0}}\n  - model: {}\n    parameters: {{weight: 1.0}}\ntokenizer_source: union\n",
        d.join("base").display(),
        d.join("a").display(),
        d.join("b").display()
    );
    let p = plan(&yaml, d).unwrap();
    assert!(
        p.describe(Detail::Summary, &RunOptions::default())
            .contains("tokenizer: union from"),
        "the dry run names the vocabulary"
    );
    let out = d.join("out");
    run(&p, &out, &RunOptions::default()).unwrap();
    let vocab = led_merging_io::Vocabulary::read(&out).unwrap().unwrap();
    assert_eq!(
        vocab.by_id(),
        [
            ("<unk>", 0),
            ("<s>", 1),
            ("</s>", 2),
            ("_tok_3", 3),
            ("x", 4),
            ("<y>", 5)
        ]
    );
    assert_eq!(led_merging_io::config_vocab_size(&out), Some(6));
    let row = |model: &str, name: &str, r: usize| {
        let c = Checkpoint::open(d.join(model)).unwrap();
        c.read_f32(name).unwrap()[r * common::HIDDEN..(r + 1) * common::HIDDEN].to_vec()
    };
    let merged = Checkpoint::open(&out).unwrap();
    for name in ["model.embed_tokens.weight", "lm_head.weight"] {
        let m = merged.read_f32(name).unwrap();
        assert_eq!(m.len(), 6 * common::HIDDEN);
        let out_row = |r: usize| &m[r * common::HIDDEN..(r + 1) * common::HIDDEN];
        // `_tok_3`: a's row 4, b's row 3, the base's row 3.
        let (base, a, b) = (row("base", name, 3), row("a", name, 4), row("b", name, 3));
        for i in 0..common::HIDDEN {
            let want = base[i] + (a[i] - base[i]) + (b[i] - base[i]);
            assert!((out_row(3)[i] - want).abs() < 1e-6, "{name} _tok_3");
        }
        // `x` only in a (its row 3), `<y>` only in b (its row 4): those rows exactly.
        assert_eq!(out_row(4), row("a", name, 3), "{name} x");
        assert_eq!(out_row(5), row("b", name, 4), "{name} <y>");
    }
}

/// The authors' safety priority (`priority: true` on one model) on the worked example, by
/// hand: E_a = {0, 1, 3}, E_b = {2, 3, 6, 7, 8}, shared {3}. τ = 1, λ = (1, 0.5), θ_b = 0.
/// Priority on a: element 3 gets λ_a τ_a = 1 (Disjoint would drop it); on b, λ_b τ_b = 0.5.
/// Two models with priority: refused by the plan, so by the dry run.
#[test]
fn priority_gives_one_model_its_whole_election() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = worked_example(d);
    for (k, (a, b, params, want)) in [
        (
            ", priority: true",
            "",
            "{}",
            [1., 1., 0.5, 1., 0., 0., 0.5, 0.5, 0.5, 0.],
        ),
        (
            ", priority: true",
            "",
            "{disjoint: false}",
            [1., 1., 0.5, 1., 0., 0., 0.5, 0.5, 0.5, 0.],
        ),
        (
            "",
            ", priority: true",
            "{}",
            [1., 1., 0.5, 0.5, 0., 0., 0.5, 0.5, 0.5, 0.],
        ),
        ("", "", "{}", [1., 1., 0.5, 0., 0., 0., 0.5, 0.5, 0.5, 0.]),
    ]
    .into_iter()
    .enumerate()
    {
        let p = plan(&worked_yaml(d, a, b, params), d).unwrap();
        let out = d.join(format!("merged-priority-{k}"));
        run(&p, &out, &RunOptions::default()).unwrap();
        let merged = Checkpoint::open(&out).unwrap();
        for n in names {
            assert_eq!(merged.read_f32(n).unwrap(), want, "{a} {b} {params}: {n}");
        }
    }
    let err = plan(
        &worked_yaml(d, ", priority: true", ", priority: true", "{}"),
        d,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("both have `priority`"), "{err}");
}

/// The energy of each task vector an LED merge keeps, by hand on the worked example (τ = 1 on
/// all 10 elements: ‖τ‖² = 10), and the warning below half of it. At r = (0.3, 0.5) with
/// Disjoint, a keeps {0, 1} (20 %), b {2, 6, 7, 8} (40 %): both warned. At r = (1, 1) without
/// Disjoint, a keeps its positive-score elements {0..5} (60 %), b {2..9} (80 %): no warning.
#[test]
fn too_little_of_a_task_vector_kept_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    worked_example(d);
    let energies = |yaml: &str| {
        let p = plan(yaml, d).unwrap();
        let stats = led_election(&p, &RunOptions::default()).unwrap();
        let total = TensorStats::sum(stats.values()).unwrap();
        let kept: Vec<(f64, f64)> = total
            .tasks
            .iter()
            .map(|t| (t.energy, t.kept_energy))
            .collect();
        // The merge reports what the election alone reports.
        let report = run(&p, d.join("never-kept"), &RunOptions::default()).unwrap();
        assert_eq!(report.reports::<TensorStats>(), stats);
        std::fs::remove_dir_all(d.join("never-kept")).unwrap();
        (kept, led_merging_merge::kept_energy_warnings(&p, &stats))
    };
    // Two tensors of 10 elements each.
    let (kept, warnings) = energies(&worked_yaml(d, "", "", "{}"));
    assert_eq!(kept, [(20.0, 4.0), (20.0, 8.0)]);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("models[0]") && warnings[0].contains("20.0 %"));
    assert!(warnings[1].contains("models[1]") && warnings[1].contains("40.0 %"));
    let loose = worked_yaml(d, "", "", "{disjoint: false}")
        .replace("density: 0.3", "density: 1.0")
        .replace("density: 0.5", "density: 1.0");
    let (kept, warnings) = energies(&loose);
    assert_eq!(kept, [(20.0, 12.0), (20.0, 16.0)]);
    assert!(warnings.is_empty(), "{warnings:?}");
}
