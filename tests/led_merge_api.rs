//! The facade's few-lines API gives the same merge as the equivalent YAML through the engine.

use std::path::Path;

use led_merging::io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};
use led_merging::merge::{LedMerge, Scores, Task};
use led_merging::merge::{MergeConfig, MergePlan, RunOptions, run};

fn write(path: &Path, file: bool, seed: u32) {
    let specs = vec![
        TensorSpec::new("model.layers.0.mlp.up_proj.weight", Dtype::F32, [8, 16]),
        TensorSpec::new("model.norm.weight", Dtype::F32, [16]),
    ];
    let w = if file {
        CheckpointWriter::create_file(path, specs.clone(), WriterOptions::default())
    } else {
        CheckpointWriter::create_dir(path, specs.clone(), WriterOptions::default())
    }
    .unwrap();
    for s in &specs {
        let v: Vec<f32> = (0..s.numel())
            .map(|i| {
                ((i as u32 + 7)
                    .wrapping_mul(seed + 3)
                    .wrapping_mul(2654435761u32)
                    % 1000) as f32
                    / 1000.0
            })
            .collect();
        w.write_f32(&s.name, &v).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn builder_equals_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("base"), false, 0);
    write(&d.join("a"), false, 1);
    write(&d.join("b"), false, 2);
    for (name, seed) in [("sa", 10), ("sba", 11), ("sb", 12), ("sbb", 13)] {
        write(&d.join(format!("{name}.safetensors")), true, seed);
    }
    let files = |m: &str, b: &str| Scores::Files {
        model: d.join(format!("{m}.safetensors")),
        base: d.join(format!("{b}.safetensors")),
    };
    let merge = LedMerge::new(d.join("base"))
        .task(Task::new(d.join("a"), files("sa", "sba")).density(0.3))
        .task(
            Task::new(d.join("b"), files("sb", "sbb"))
                .weight(0.5)
                .density(0.6),
        );
    let report = merge.run(d.join("api")).unwrap();
    assert_eq!(report.tensor_reports.len(), 2);

    let yaml = merge.config().to_yaml();
    assert!(yaml.contains("merge_method: led"), "{yaml}");
    let cfg = d.join("merge.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let plan = MergePlan::new(MergeConfig::from_file(&cfg).unwrap()).unwrap();
    run(&plan, d.join("yaml"), &RunOptions::default()).unwrap();
    let (x, y) = (
        Checkpoint::open(d.join("api")).unwrap(),
        Checkpoint::open(d.join("yaml")).unwrap(),
    );
    for t in x.tensors() {
        assert_eq!(
            x.read_f32(&t.name).unwrap(),
            y.read_f32(&t.name).unwrap(),
            "{}",
            t.name
        );
    }
    // Without disjoint, more weights move.
    let loose = merge.clone().disjoint(false).run(d.join("loose")).unwrap();
    let kept = |r: &led_merging::merge::MergeReport| {
        r.reports::<led_merging::mask::TensorStats>()
            .values()
            .map(|s| s.tasks.iter().map(|t| t.kept).sum::<usize>())
            .sum::<usize>()
    };
    assert!(kept(&loose) >= kept(&report));
    // Safety priority on task a: its whole election kept, the config says so.
    let first = LedMerge::new(d.join("base"))
        .task(
            Task::new(d.join("a"), files("sa", "sba"))
                .density(0.3)
                .priority(),
        )
        .task(
            Task::new(d.join("b"), files("sb", "sbb"))
                .weight(0.5)
                .density(0.6),
        );
    assert!(first.config().to_yaml().contains("priority: true"));
    let prioritized = first.run(d.join("priority")).unwrap();
    let stats = led_merging::mask::TensorStats::sum(
        prioritized
            .reports::<led_merging::mask::TensorStats>()
            .values(),
    )
    .unwrap();
    assert_eq!(stats.tasks[0].kept, stats.tasks[0].elected);
    assert_eq!(stats.tasks[0].removed, 0);
}
