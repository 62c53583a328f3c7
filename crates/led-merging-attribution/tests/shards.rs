//! Scale-out of Locate: sample shards summed equal one run (SNIP and Wanda), and `sum` refuses
//! what is not every shard of one request, naming the shard; a model placed over several
//! devices gives the scores of one device.

mod common;

use common::max_abs_diff;

use led_merging_attribution::{DataOptions, DeviceChoice, LocateOptions, Scorer, locate, shards};
use led_merging_io::{Checkpoint, ScoreMetadata};

/// The reference data's three samples, on the CPU (f32).
fn three_samples_on_cpu(scorer: Scorer) -> LocateOptions {
    LocateOptions {
        scorer,
        data: DataOptions {
            samples: 3,
            ..Default::default()
        },
        device: DeviceChoice::Cpu,
        ..Default::default()
    }
}

#[test]
fn shards_summed_equal_one_run() {
    let refs = tempfile::tempdir().unwrap();
    common::reference("make_reference.py", &[refs.path()]);
    let root = refs.path();
    for case in ["llama_gqa", "llama3_tied"] {
        let dir = root.join(case);
        let data = dir.join("data.jsonl");
        for scorer in [Scorer::Snip, Scorer::Wanda] {
            let options = three_samples_on_cpu(scorer);
            let tag = format!("{case}-{}", scorer.as_str());
            let whole = root.join(format!("{tag}.safetensors"));
            locate(&dir, Some(&data), &whole, &options).unwrap();
            let whole = Checkpoint::open(&whole).unwrap();
            for n in [2usize, 3] {
                let parts: Vec<_> = (0..n)
                    .map(|i| {
                        let p = root.join(format!("{tag}.{i}of{n}.safetensors"));
                        let shard = LocateOptions {
                            shard: Some((i, n)),
                            ..options.clone()
                        };
                        let report = locate(&dir, Some(&data), &p, &shard).unwrap();
                        assert_eq!(report.samples, (i + 1) * 3 / n - i * 3 / n);
                        p
                    })
                    .collect();
                let summed = root.join(format!("{tag}.sum{n}.safetensors"));
                let report = shards::sum(&parts, &summed, false).unwrap();
                assert_eq!(report.shards, n);
                let summed = Checkpoint::open(&summed).unwrap();
                // The same record as one run: `led merge` and `led locate` treat it as one.
                let record =
                    |c: &Checkpoint| ScoreMetadata::from_map(c.path(), c.metadata()).unwrap();
                assert!(record(&summed).same_request(&record(&whole)), "{tag}");
                assert_eq!(summed.tensors().len(), whole.tensors().len());
                for t in whole.tensors() {
                    let want = whole.read_f32(&t.name).unwrap();
                    let got = summed.read_f32(&t.name).unwrap();
                    assert_eq!(summed.info(&t.name).unwrap().shape, t.shape);
                    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let d = max_abs_diff(&got, &want);
                    assert!(
                        d <= 1e-6 * scale.max(1e-12),
                        "{tag}, {n} shards: {} differs by {d} (max {scale})",
                        t.name
                    );
                }
            }
            // Not every shard, a shard twice, or shards of two requests: errors naming them.
            let part = |i: usize, n: usize| root.join(format!("{tag}.{i}of{n}.safetensors"));
            let out = root.join("never.safetensors");
            let err = shards::sum(&[part(0, 3), part(2, 3)], &out, false)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("shard(s) 1/3") && err.contains("missing"),
                "{err}"
            );
            let err = shards::sum(&[part(0, 2), part(0, 2), part(1, 2)], &out, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains("shard 0/2 is given twice"), "{err}");
            let err = shards::sum(&[part(0, 2), part(1, 3)], &out, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a shard of the same request"), "{err}");
            let err = shards::sum(&[root.join(format!("{tag}.safetensors"))], &out, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a shard"), "{err}");
            assert!(!out.exists());
        }
    }
    // More shards than samples: the empty one is an error, not an empty file.
    let dir = root.join("qwen2");
    let options = LocateOptions {
        data: DataOptions {
            samples: 3,
            ..Default::default()
        },
        device: DeviceChoice::Cpu,
        shard: Some((0, 4)),
        ..Default::default()
    };
    let err = locate(
        &dir,
        Some(&dir.join("data.jsonl")),
        &root.join("e.safetensors"),
        &options,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("is empty: use at most 3 shards"), "{err}");
}

#[test]
fn layers_over_several_devices_give_the_scores_of_one() {
    let refs = tempfile::tempdir().unwrap();
    common::reference("make_reference.py", &[refs.path()]);
    let root = refs.path();
    for case in ["llama_gqa", "llama3_tied"] {
        let dir = root.join(case);
        let data = dir.join("data.jsonl");
        for scorer in [Scorer::Snip, Scorer::Wanda] {
            let one = three_samples_on_cpu(scorer);
            let tag = format!("{case}-{}", scorer.as_str());
            let a = root.join(format!("{tag}-one.safetensors"));
            locate(&dir, Some(&data), &a, &one).unwrap();
            // Three CPU "devices" with equal memory: embedding + layer 0 | layer 1 | head.
            let three = LocateOptions {
                more_devices: vec![DeviceChoice::Cpu, DeviceChoice::Cpu],
                ..one.clone()
            };
            let b = root.join(format!("{tag}-three.safetensors"));
            let report = locate(&dir, Some(&data), &b, &three).unwrap();
            assert_eq!(
                report.device.matches("Cpu:").count(),
                3,
                "{}",
                report.device
            );
            let (a, b) = (Checkpoint::open(&a).unwrap(), Checkpoint::open(&b).unwrap());
            for t in a.tensors() {
                let want = a.read_f32(&t.name).unwrap();
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = max_abs_diff(&b.read_f32(&t.name).unwrap(), &want);
                assert!(
                    d <= 1e-6 * scale.max(1e-12),
                    "{tag}: {} differs by {d} over three devices",
                    t.name
                );
            }
        }
    }
}

/// `--score-dtype bf16`: the f32 scores rounded to nearest even, element for element, from one
/// run and from shards summed (the parts keep f32); recorded, so an f32 request does not reuse
/// a bf16 file.
#[test]
fn bf16_score_files_are_the_f32_scores_rounded() {
    use led_merging_attribution::{SCORE_DTYPE_OPTION, ScoreDtype};
    use led_merging_io::Dtype;
    let refs = tempfile::tempdir().unwrap();
    common::reference("make_reference.py", &[refs.path()]);
    let root = refs.path();
    let dir = root.join("llama_gqa");
    let data = dir.join("data.jsonl");
    for scorer in [Scorer::Snip, Scorer::Wanda] {
        let f32_options = three_samples_on_cpu(scorer);
        let bf16_options = LocateOptions {
            score_dtype: ScoreDtype::Bf16,
            ..f32_options.clone()
        };
        let tag = scorer.as_str();
        let (full, half) = (
            root.join(format!("{tag}-f32.safetensors")),
            root.join(format!("{tag}-bf16.safetensors")),
        );
        locate(&dir, Some(&data), &full, &f32_options).unwrap();
        locate(&dir, Some(&data), &half, &bf16_options).unwrap();
        let parts: Vec<_> = (0..3)
            .map(|i| {
                let p = root.join(format!("{tag}-bf16.{i}of3.safetensors"));
                let shard = LocateOptions {
                    shard: Some((i, 3)),
                    ..bf16_options.clone()
                };
                locate(&dir, Some(&data), &p, &shard).unwrap();
                let part = Checkpoint::open(&p).unwrap();
                assert!(
                    part.tensors().iter().all(|t| t.dtype == Dtype::F32),
                    "parts keep f32"
                );
                p
            })
            .collect();
        let summed = root.join(format!("{tag}-bf16-sum.safetensors"));
        shards::sum(&parts, &summed, false).unwrap();
        let full = Checkpoint::open(&full).unwrap();
        for file in [&half, &summed] {
            let got = Checkpoint::open(file).unwrap();
            assert_eq!(
                ScoreMetadata::from_map(got.path(), got.metadata())
                    .unwrap()
                    .options
                    .get(SCORE_DTYPE_OPTION)
                    .map(String::as_str),
                Some("bf16")
            );
            for t in full.tensors() {
                assert_eq!(got.info(&t.name).unwrap().dtype, Dtype::BF16, "{}", t.name);
                let want: Vec<f32> = full
                    .read_f32(&t.name)
                    .unwrap()
                    .iter()
                    .map(|&v| half::bf16::from_f32(v).to_f32())
                    .collect();
                let got = got.read_f32(&t.name).unwrap();
                if *file == half {
                    assert_eq!(got, want, "{tag}: {}", t.name);
                } else {
                    // Summed in another order than one run: within one bf16 step.
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= w.abs() / 128.0,
                            "{tag}: {} {g} {w}",
                            t.name
                        );
                    }
                }
            }
        }
        // The f32 request does not take the bf16 file for its answer.
        let err = locate(&dir, Some(&data), &half, &f32_options)
            .unwrap_err()
            .to_string();
        assert!(err.contains("score_dtype"), "{err}");
    }
}

/// `--scorer grad`: Σ|∇W| alone, so SNIP's score is it times |W| (one f32 product, the same
/// rounding); its shards sum like SNIP's.
#[test]
fn gradient_only_scores_times_the_weights_are_snip() {
    let refs = tempfile::tempdir().unwrap();
    common::reference("make_reference.py", &[refs.path()]);
    let root = refs.path();
    let dir = root.join("llama_gqa");
    let data = dir.join("data.jsonl");
    let (snip, grad) = (root.join("snip.safetensors"), root.join("grad.safetensors"));
    locate(
        &dir,
        Some(&data),
        &snip,
        &three_samples_on_cpu(Scorer::Snip),
    )
    .unwrap();
    let grad_options = three_samples_on_cpu(Scorer::Grad);
    locate(&dir, Some(&data), &grad, &grad_options).unwrap();
    let (snip, grad, model) = (
        Checkpoint::open(&snip).unwrap(),
        Checkpoint::open(&grad).unwrap(),
        Checkpoint::open(&dir).unwrap(),
    );
    assert_eq!(
        ScoreMetadata::from_map(grad.path(), grad.metadata())
            .unwrap()
            .scorer,
        "grad"
    );
    for t in snip.tensors() {
        let w = model.read_f32(&t.name).unwrap();
        let g = grad.read_f32(&t.name).unwrap();
        let want: Vec<f32> = g.iter().zip(&w).map(|(g, w)| g * w.abs()).collect();
        assert_eq!(snip.read_f32(&t.name).unwrap(), want, "{}", t.name);
        assert!(g.iter().all(|v| *v >= 0.0));
    }
    let parts: Vec<_> = (0..2)
        .map(|i| {
            let p = root.join(format!("grad.{i}of2.safetensors"));
            let shard = LocateOptions {
                shard: Some((i, 2)),
                ..grad_options.clone()
            };
            locate(&dir, Some(&data), &p, &shard).unwrap();
            p
        })
        .collect();
    let summed = root.join("grad-sum.safetensors");
    shards::sum(&parts, &summed, false).unwrap();
    let summed = Checkpoint::open(&summed).unwrap();
    for t in grad.tensors() {
        let (a, b) = (
            summed.read_f32(&t.name).unwrap(),
            grad.read_f32(&t.name).unwrap(),
        );
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        assert!(max_abs_diff(&a, &b) <= 1e-6 * scale, "{}", t.name);
    }
}
