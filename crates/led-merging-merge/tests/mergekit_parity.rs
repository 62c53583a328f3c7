//! Parity with mergekit itself (PyPI `mergekit`, installed into the project's virtualenv by
//! `make test`): the same YAML, f32, on tiny random Llama checkpoints; every tensor must agree
//! to 1e-5 × its largest magnitude.

mod common;

use std::path::Path;

use led_merging_io::{Checkpoint, Dtype};
use led_merging_merge::{MergeConfig, MergePlan, RunOptions, run};

fn compare(ours: &Path, theirs: &Path, method: &str) {
    let tensors = common::differences(ours, theirs, method);
    let mut worst = 0f32;
    for t in &tensors {
        assert_eq!(t.dtype, Dtype::F32, "{method}: {}", t.name);
        worst = worst.max(t.relative);
        assert!(
            t.relative <= 1e-5,
            "{method}: tensor {}: max |ours − mergekit| / max |mergekit| = {:e}",
            t.name,
            t.relative
        );
    }
    eprintln!(
        "{method}: {} tensors agree, worst relative difference {worst:e}",
        tensors.len()
    );
}

#[test]
fn same_output_as_mergekit() {
    let Some(exe) = common::mergekit() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = |name: &str, seed: u64, scale: f32| {
        common::write_model(&d.join(name), seed, scale, common::VOCAB, Dtype::F32, false)
    };
    let (base, a, b, c) = (
        model("base", 0, 0.0),
        model("a", 1, 0.02),
        model("b", 2, 0.05),
        model("c", 3, 0.01),
    );
    let (base, a, b, c) = (base.display(), a.display(), b.display(), c.display());
    let configs = [
        (
            "linear",
            format!(
                "merge_method: linear\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.3}}\n  - model: {c}\n    parameters: {{weight: 0.2}}\ndtype: float32\n"
            ),
        ),
        (
            "task_arithmetic",
            format!(
                "merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.7}}\n  - model: {b}\n    parameters: {{weight: 0.5}}\n  - model: {c}\n    parameters: {{weight: 0.3}}\nparameters: {{lambda: 0.9}}\ndtype: float32\n"
            ),
        ),
        (
            "ties",
            format!(
                "merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters:\n      weight: 1.0\n      density: [{{filter: mlp, value: 0.3}}, {{value: 0.6}}]\n  - model: {b}\n    parameters: {{weight: 0.5, density: 0.5}}\n  - model: {c}\n    parameters: {{weight: 0.8, density: 0.9}}\ndtype: float32\n"
            ),
        ),
        (
            "breadcrumbs",
            format!(
                "merge_method: breadcrumbs\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0, density: 0.8, gamma: 0.05}}\n  - model: {b}\n    parameters: {{weight: 0.5, density: 0.9, gamma: 0.1}}\ndtype: float32\n"
            ),
        ),
        // mergekit's gradients (interpolated over the layers) and top-level parameters as
        // per-model defaults.
        (
            "task_arithmetic_gradient",
            format!(
                "merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: [0.2, 1.0]}}\n  - model: {b}\n  - model: {c}\n    parameters: {{weight: [{{filter: mlp, value: [1.0, 0.0, 0.5]}}, {{value: 0.3}}]}}\nparameters: {{weight: 0.5}}\ndtype: float32\n"
            ),
        ),
        (
            "ties_global_density",
            format!(
                "merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0}}\n  - model: {b}\n    parameters: {{weight: 0.5, density: 0.9}}\nparameters: {{density: 0.5}}\ndtype: float32\n"
            ),
        ),
        (
            "model_stock",
            format!(
                "merge_method: model_stock\nbase_model: {base}\nmodels:\n  - model: {a}\n  - model: {b}\n  - model: {c}\ndtype: float32\n"
            ),
        ),
        (
            "slerp",
            format!(
                "merge_method: slerp\nbase_model: {base}\nmodels:\n  - model: {base}\n  - model: {b}\nparameters:\n  t: [{{filter: self_attn, value: 0.3}}, {{filter: mlp, value: 0.8}}, {{value: 0.5}}]\ndtype: float32\n"
            ),
        ),
        (
            "nearswap",
            format!(
                "merge_method: nearswap\nbase_model: {base}\nmodels:\n  - model: {base}\n  - model: {b}\nparameters: {{t: 0.02}}\ndtype: float32\n"
            ),
        ),
        (
            "sce",
            format!(
                "merge_method: sce\nbase_model: {base}\nmodels:\n  - model: {a}\n  - model: {b}\n  - model: {c}\nparameters: {{select_topk: 0.5}}\ndtype: float32\n"
            ),
        ),
        (
            "nuslerp",
            format!(
                "merge_method: nuslerp\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.3}}\n  - model: {b}\n    parameters: {{weight: 0.7}}\ndtype: float32\n"
            ),
        ),
        (
            "nuslerp_rows",
            format!(
                "merge_method: nuslerp\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.6}}\n  - model: {c}\n    parameters: {{weight: 0.4}}\nparameters: {{nuslerp_flatten: false}}\ndtype: float32\n"
            ),
        ),
        (
            "nuslerp_columns",
            format!(
                "merge_method: nuslerp\nbase_model: {base}\nmodels:\n  - model: {b}\n    parameters: {{weight: 0.5}}\n  - model: {c}\n    parameters: {{weight: 0.5}}\nparameters: {{nuslerp_flatten: false, nuslerp_row_wise: true}}\ndtype: float32\n"
            ),
        ),
        (
            "multislerp",
            format!(
                "merge_method: multislerp\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.3}}\n  - model: {c}\n    parameters: {{weight: 0.2}}\ndtype: float32\n"
            ),
        ),
        (
            "multislerp_no_base",
            format!(
                "merge_method: multislerp\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0}}\n  - model: {c}\n    parameters: {{weight: 2.0}}\ndtype: float32\n"
            ),
        ),
        (
            // The base is not listed: both tools merge it as a third model.
            "karcher",
            format!(
                "merge_method: karcher\nbase_model: {base}\nmodels:\n  - model: {a}\n  - model: {c}\nparameters: {{max_iter: 20, tol: 1e-7}}\ndtype: float32\n"
            ),
        ),
        (
            "karcher_no_base",
            format!(
                "merge_method: karcher\nmodels:\n  - model: {a}\n  - model: {b}\n  - model: {c}\ndtype: float32\n"
            ),
        ),
        // mergekit's layer surgery: a frankenmerge of two models' layers (3 output layers),
        // a per-source `scale` with filters, and methods over slices whose gradients run per
        // slice, with slice-level parameters over the top-level ones.
        (
            "passthrough_stack",
            format!(
                "merge_method: passthrough\nslices:\n  - sources:\n      - model: {a}\n        layer_range: [0, 2]\n  - sources:\n      - model: {b}\n        layer_range: [1, 2]\ndtype: float32\n"
            ),
        ),
        (
            "passthrough_scale",
            format!(
                "merge_method: passthrough\nslices:\n  - sources:\n      - model: {a}\n        layer_range: [1, 2]\n  - sources:\n      - model: {c}\n        layer_range: [0, 2]\n        parameters:\n          scale: [{{filter: o_proj, value: 0.0}}, {{filter: down_proj, value: 0.5}}, {{value: 1.0}}]\ndtype: float32\n"
            ),
        ),
        (
            "slerp_slices",
            format!(
                "merge_method: slerp\nbase_model: {base}\nslices:\n  - sources:\n      - model: {base}\n        layer_range: [0, 2]\n      - model: {a}\n        layer_range: [0, 2]\n  - sources:\n      - model: {base}\n        layer_range: [0, 1]\n      - model: {b}\n        layer_range: [1, 2]\n    parameters: {{t: [{{filter: mlp, value: 0.9}}, {{value: 0.2}}]}}\nparameters: {{t: [0.1, 0.8]}}\ndtype: float32\n"
            ),
        ),
        (
            "ties_slices",
            format!(
                "merge_method: ties\nbase_model: {base}\nslices:\n  - sources:\n      - model: {base}\n        layer_range: [0, 2]\n      - model: {a}\n        layer_range: [0, 2]\n        parameters: {{weight: [0.3, 1.0], density: 0.5}}\n      - model: {c}\n        layer_range: [0, 2]\n        parameters: {{weight: 0.6}}\n  - sources:\n      - model: {base}\n        layer_range: [1, 2]\n      - model: {b}\n        layer_range: [0, 1]\n        parameters: {{weight: 0.8}}\n      - model: {c}\n        layer_range: [1, 2]\n        parameters: {{weight: 0.4}}\n    parameters: {{density: 0.7}}\nparameters: {{density: 0.4}}\ndtype: float32\n"
            ),
        ),
        (
            "arcee_fusion",
            format!(
                "merge_method: arcee_fusion\nbase_model: {base}\nmodels:\n  - model: {base}\n  - model: {b}\ndtype: float32\n"
            ),
        ),
    ];
    // One mergekit process per method, all started at once.
    let handles: Vec<_> = configs
        .iter()
        .map(|(method, yaml)| {
            let cfg = d.join(format!("{method}.yaml"));
            std::fs::write(&cfg, yaml).unwrap();
            let out = d.join(format!("{method}-mergekit"));
            let child = common::spawn_mergekit(&exe, &cfg, &out);
            (method, cfg, out, child)
        })
        .collect();
    let mut outputs = Vec::new();
    for (method, cfg, theirs, result) in handles {
        let output = result.wait_with_output().expect("mergekit-yaml runs");
        assert!(
            output.status.success(),
            "mergekit failed on {method}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let plan = MergePlan::new(MergeConfig::from_file(&cfg).unwrap()).unwrap();
        let ours = d.join(format!("{method}-ours"));
        run(&plan, &ours, &RunOptions::default()).unwrap();
        compare(&ours, &theirs, method);
        let layers = |dir: &Path| {
            let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["num_hidden_layers"].clone()
        };
        assert_eq!(
            layers(&ours),
            layers(&theirs),
            "{method}: num_hidden_layers"
        );
        outputs.push(ours.clone());
        // A selection that moved nothing would agree trivially: arcee_fusion must move some.
        if *method == "arcee_fusion" {
            let (merged, base) = (
                Checkpoint::open(&ours).unwrap(),
                Checkpoint::open(d.join("base")).unwrap(),
            );
            let moved: usize = merged
                .tensors()
                .iter()
                .map(|t| {
                    let (m, b) = (
                        merged.read_f32(&t.name).unwrap(),
                        base.read_f32(&t.name).unwrap(),
                    );
                    m.iter().zip(&b).filter(|(x, y)| x != y).count()
                })
                .sum();
            assert!(moved > 0, "arcee_fusion moved no weight");
            println!("arcee_fusion: {moved} weights moved to the model's values");
        }
    }
    // transformers loads every output with no missing or unexpected tensor.
    common::transformers_loads_and_runs(&exe, &outputs);
}
