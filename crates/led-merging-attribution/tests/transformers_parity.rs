//! Parity with Hugging Face `transformers` (installed into the project's virtualenv by
//! `make test`): logits, loss and SNIP scores on tiny random Llama / Llama-3 (rope scaling,
//! tied, head_dim) / Mistral / Qwen2 models that transformers itself creates.

mod common;

use common::{max_abs_diff, read_i64};

use std::path::PathBuf;

use led_merging_attribution::{
    DataOptions, DeviceChoice, LocateOptions, Model, Scorer, load_samples, load_tokenizer, locate,
    to_f32_vec,
};
use led_merging_io::{Checkpoint, ScoreMetadata};
use tch::{Device, Kind};

const CASES: [&str; 4] = ["llama_gqa", "llama3_tied", "mistral", "qwen2"];

fn references() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    common::reference("make_reference.py", &[dir.path()]);
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[test]
fn logits_loss_and_snip_match_transformers() {
    let (_keep, root) = references();
    for case in CASES {
        let dir = root.join(case);
        let reference = Checkpoint::open(dir.join("reference.safetensors")).unwrap();
        let model = Model::load(&dir, Device::Cpu, Kind::Float).unwrap();

        // Our tokenisation of data.jsonl gives the ids the reference used.
        let tokenizer = load_tokenizer(&dir).unwrap();
        let (samples, _) = load_samples(
            &dir.join("data.jsonl"),
            &tokenizer,
            &DataOptions {
                samples: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(samples.len(), 3);
        let losses = reference.read_f32("losses").unwrap();
        for (k, s) in samples.iter().enumerate() {
            let ids = read_i64(&reference, &format!("ids.{k}"));
            assert_eq!(s.ids, ids, "{case}: sample {k} ids");
            let plen = reference.read_f32(&format!("prompt_len.{k}")).unwrap()[0] as usize;
            assert_eq!(s.prompt_len, plen, "{case}: sample {k} prompt length");
            let loss = tch::no_grad(|| {
                model
                    .answer_loss(&s.ids, s.prompt_len, None)
                    .unwrap()
                    .double_value(&[])
            }) as f32;
            assert!(
                (loss - losses[k]).abs() <= 1e-5,
                "{case}: loss {loss} vs {}",
                losses[k]
            );
        }
        let logits = tch::no_grad(|| model.forward(&samples[0].ids, None).unwrap());
        let d = max_abs_diff(
            &to_f32_vec(&logits).unwrap(),
            &reference.read_f32("logits").unwrap(),
        );
        assert!(d <= 1e-4, "{case}: logits differ by {d}");

        // SNIP through the public entry point, written to a score checkpoint.
        let out = root.join(format!("{case}-snip.safetensors"));
        let options = LocateOptions {
            scorer: Scorer::Snip,
            data: DataOptions {
                samples: 3,
                ..Default::default()
            },
            // f32 parity: the CPU, also on a machine with a GPU (where `auto` means bf16).
            device: DeviceChoice::Cpu,
            ..Default::default()
        };
        let report = locate(&dir, Some(&dir.join("data.jsonl")), &out, &options).unwrap();
        assert_eq!((report.samples, report.reused), (3, false));
        let scores = Checkpoint::open(&out).unwrap();
        let model_ckpt = Checkpoint::open(&dir).unwrap();
        assert_eq!(
            scores.tensors().len(),
            model_ckpt.tensors().len(),
            "{case}: every parameter gets a score"
        );
        for t in model_ckpt.tensors() {
            let ours = scores.read_f32(&t.name).unwrap();
            let theirs = reference.read_f32(&format!("snip.{}", t.name)).unwrap();
            let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = max_abs_diff(&ours, &theirs);
            assert!(
                d <= 1e-4 * scale.max(1e-12),
                "{case}: SNIP {} differs by {d} (max {scale})",
                t.name
            );
            assert_eq!(scores.info(&t.name).unwrap().shape, t.shape);
        }
        let meta = ScoreMetadata::from_map(&out, scores.metadata()).unwrap();
        assert_eq!((meta.scorer.as_str(), meta.samples), ("snip", 3));
        // The same request again reuses the file.
        assert!(
            locate(&dir, Some(&dir.join("data.jsonl")), &out, &options)
                .unwrap()
                .reused
        );
        // Layer groups under a memory budget (several passes) give the same scores. The budget
        // leaves room for half of the gradients + accumulators (f32: 8 bytes an element).
        let sizes: Vec<(String, u64)> = model
            .params
            .iter()
            .map(|(n, t)| (n.clone(), t.numel() as u64))
            .collect();
        let names: Vec<String> = model.names().cloned().collect();
        let longest = samples.iter().map(|s| s.ids.len()).max().unwrap();
        let answer = samples
            .iter()
            .map(|s| s.ids.len() - s.prompt_len)
            .max()
            .unwrap();
        let plan = led_merging_attribution::MemoryPlan::new(
            &model.config,
            &sizes,
            Kind::Float,
            &names,
            (longest, answer),
            None,
        )
        .unwrap();
        let elements: u64 = sizes.iter().map(|(_, e)| e).sum();
        let fixed = plan.weights + plan.activations + plan.temporary;
        let grouped_path = root.join(format!("{case}-grouped.safetensors"));
        let budget = LocateOptions {
            max_memory: Some(fixed + elements * 8 / 2),
            ..options.clone()
        };
        let report = locate(&dir, Some(&dir.join("data.jsonl")), &grouped_path, &budget).unwrap();
        assert!(report.groups >= 2, "{case}: {} group(s)", report.groups);
        let grouped = Checkpoint::open(&grouped_path).unwrap();
        for t in model_ckpt.tensors() {
            let want = scores.read_f32(&t.name).unwrap();
            let d = max_abs_diff(&grouped.read_f32(&t.name).unwrap(), &want);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                d <= 1e-6 * scale.max(1e-12),
                "{case}: grouped SNIP {} differs by {d}",
                t.name
            );
        }
        let tiny = LocateOptions {
            max_memory: Some(fixed),
            overwrite: true,
            ..options.clone()
        };
        let never = root.join("never.safetensors");
        let err = locate(&dir, Some(&dir.join("data.jsonl")), &never, &tiny).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
        assert!(!never.exists());
        eprintln!("{case}: logits, losses and SNIP scores match transformers");
    }
}

#[test]
fn wanda_and_random_scores_cover_every_parameter() {
    let (_keep, root) = references();
    let dir = root.join("qwen2");
    let data = dir.join("data.jsonl");
    for scorer in [Scorer::Wanda, Scorer::Random] {
        let out = root.join(format!("{}.safetensors", scorer.as_str()));
        let options = LocateOptions {
            scorer,
            data: DataOptions {
                samples: 3,
                ..Default::default()
            },
            seed: 5,
            device: DeviceChoice::Cpu,
            ..Default::default()
        };
        locate(&dir, Some(&data), &out, &options).unwrap();
        let scores = Checkpoint::open(&out).unwrap();
        let model = Checkpoint::open(&dir).unwrap();
        for t in model.tensors() {
            let s = scores.read_f32(&t.name).unwrap();
            assert!(s.iter().all(|v| v.is_finite() && *v >= 0.0), "{}", t.name);
            assert!(
                s.iter().any(|v| *v > 0.0),
                "{} has no positive score",
                t.name
            );
        }
        // A different request for the same file is refused without overwrite, naming what
        // differs.
        let other = LocateOptions {
            seed: 6,
            ..options.clone()
        };
        let err = locate(&dir, Some(&data), &out, &other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("another request") && err.contains("seed: 5 ≠ 6"),
            "{err}"
        );
    }
    // New weights at the same path (a model trained again) are not answered by old scores.
    let out = root.join("random.safetensors");
    let options = LocateOptions {
        scorer: Scorer::Random,
        seed: 5,
        ..Default::default()
    };
    assert!(locate(&dir, Some(&data), &out, &options).unwrap().reused);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let weights = dir.join("model.safetensors");
    std::fs::write(&weights, std::fs::read(&weights).unwrap()).unwrap();
    let err = locate(&dir, Some(&data), &out, &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("option.model_weights_fingerprint"), "{err}");
    // Random scores depend on (seed, name) only.
    let a = led_merging_attribution::random_scores(5, "model.norm.weight", 8);
    assert_eq!(
        a,
        led_merging_attribution::random_scores(5, "model.norm.weight", 8)
    );
    assert_ne!(
        a,
        led_merging_attribution::random_scores(6, "model.norm.weight", 8)
    );
}

#[test]
fn calibration_data_formats_and_bad_records() {
    let (_keep, root) = references();
    let tok = load_tokenizer(&root.join("llama_gqa")).unwrap();
    let d = root.join("data");
    std::fs::create_dir_all(&d).unwrap();
    // CSV with question/answer columns (found by themselves), quoted commas.
    std::fs::write(
        d.join("gsm.csv"),
        "question,answer\n\"w1, w2\",w3 w4\nw5,w6\n",
    )
    .unwrap();
    let (samples, report) =
        load_samples(&d.join("gsm.csv"), &tok, &DataOptions::default()).unwrap();
    assert_eq!(
        report.fields,
        ("question".to_string(), "answer".to_string())
    );
    // "<s> w1, w2" — "w1," is unknown to the word-level vocabulary, w2 known; BOS first.
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[1].ids, [1, 8, 9]);
    assert_eq!(samples[1].prompt_len, 2);
    // JSONL with a bad line: an error naming the line, or skipped and counted.
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"prompt\": \"w1\", \"answer\": \"w2\"}\nnot json\n{\"prompt\": \"w3\", \"answer\": \"  \"}\n{\"prompt\": \"w4\", \"answer\": \"w5 w6 w7\"}\n").unwrap();
    let err = load_samples(&bad, &tok, &DataOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.jsonl") && err.contains("line 2"), "{err}");
    let opts = DataOptions {
        skip_bad: true,
        max_answer_tokens: Some(2),
        ..Default::default()
    };
    let (samples, report) = load_samples(&bad, &tok, &opts).unwrap();
    assert_eq!((samples.len(), report.skipped, report.truncated), (2, 2, 1));
    assert_eq!(samples[1].ids.len(), samples[1].prompt_len + 2);
    // Named fields, first N, and a seeded subset that is stable.
    let (first, _) = load_samples(
        &bad,
        &tok,
        &DataOptions {
            skip_bad: true,
            samples: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(first[0].ids, [1, 4, 5]);
    let subset = |seed| {
        load_samples(
            &bad,
            &tok,
            &DataOptions {
                skip_bad: true,
                samples: 1,
                subset_seed: Some(seed),
                ..Default::default()
            },
        )
        .unwrap()
        .0
    };
    assert_eq!(subset(3), subset(3));
    let err = load_samples(
        &bad,
        &tok,
        &DataOptions {
            prompt_field: Some("instruction".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("line 1") || err.to_string().contains("instruction"),
        "{err}"
    );
}
