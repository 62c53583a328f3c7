//! Writing and reading checkpoints: every dtype, sharding, index, atomicity, metadata, and
//! agreement with the reference `safetensors` crate.

use std::collections::BTreeMap;
use std::path::Path;

use led_merging_io::{Checkpoint, CheckpointWriter, Dtype, Error, TensorSpec, WriterOptions, meta};
use rayon::prelude::*;

fn opts(max_shard_size: u64) -> WriterOptions {
    WriterOptions {
        max_shard_size,
        ..Default::default()
    }
}

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + seed) * 0.731).sin() * 3.0)
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn float_dtypes_round_trip_with_rounding_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let v = values(1000, 1.0);
    for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64] {
        let target = dir.path().join(format!("m-{dtype}"));
        let w = CheckpointWriter::create_dir(
            &target,
            vec![TensorSpec::new("t", dtype, [10, 100])],
            opts(1 << 30),
        )
        .unwrap();
        w.write_f32("t", &v).unwrap();
        w.finish().unwrap();
        let ckpt = Checkpoint::open(&target).unwrap();
        let info = ckpt.info("t").unwrap();
        assert_eq!(
            (info.dtype, info.shape.as_slice(), info.byte_len),
            (dtype, &[10usize, 100][..], 1000 * dtype.size() as u64)
        );
        let back = ckpt.read_f32("t").unwrap();
        let expect: Vec<f32> = match dtype {
            Dtype::BF16 => v
                .iter()
                .map(|&x| half::bf16::from_f32(x).to_f32())
                .collect(),
            Dtype::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
            _ => v.clone(),
        };
        assert_eq!(back, expect, "{dtype}");
        // Converting an already-rounded tensor again changes nothing.
        let again = target.with_extension("again");
        let w = CheckpointWriter::create_dir(
            &again,
            vec![TensorSpec::new("t", dtype, [10, 100])],
            opts(1 << 30),
        )
        .unwrap();
        w.write_f32("t", &back).unwrap();
        w.finish().unwrap();
        assert_eq!(
            Checkpoint::open(&again).unwrap().read_f32("t").unwrap(),
            back
        );
    }
}

#[test]
fn integer_and_bool_tensors_round_trip_as_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ints");
    let cases: Vec<(&str, Dtype, Vec<u8>, Vec<f32>)> = vec![
        ("b", Dtype::Bool, vec![1, 0, 1], vec![1.0, 0.0, 1.0]),
        ("u8", Dtype::U8, vec![0, 7, 255], vec![0.0, 7.0, 255.0]),
        (
            "i8",
            Dtype::I8,
            vec![0xFF, 0x01, 0x80],
            vec![-1.0, 1.0, -128.0],
        ),
        (
            "i16",
            Dtype::I16,
            [-2i16, 3, 300]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![-2.0, 3.0, 300.0],
        ),
        (
            "u16",
            Dtype::U16,
            [2u16, 3, 65535]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![2.0, 3.0, 65535.0],
        ),
        (
            "i32",
            Dtype::I32,
            [-9i32, 0, 1 << 20]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![-9.0, 0.0, 1048576.0],
        ),
        (
            "u32",
            Dtype::U32,
            [9u32, 0, 5].iter().flat_map(|x| x.to_le_bytes()).collect(),
            vec![9.0, 0.0, 5.0],
        ),
        (
            "i64",
            Dtype::I64,
            [-1i64, 2, 3].iter().flat_map(|x| x.to_le_bytes()).collect(),
            vec![-1.0, 2.0, 3.0],
        ),
        (
            "u64",
            Dtype::U64,
            [1u64, 2, 3].iter().flat_map(|x| x.to_le_bytes()).collect(),
            vec![1.0, 2.0, 3.0],
        ),
        ("f8", Dtype::F8E4M3, vec![0x38, 0x40, 0x00], vec![]),
    ];
    let specs = cases
        .iter()
        .map(|(n, d, _, _)| TensorSpec::new(*n, *d, [3]))
        .collect();
    let w = CheckpointWriter::create_dir(&target, specs, opts(1 << 30)).unwrap();
    for (name, _, bytes, _) in &cases {
        w.write_bytes(name, bytes).unwrap();
    }
    let err = w.write_f32("i32", &[1.0, 2.0, 3.0]).unwrap_err();
    assert!(
        err.to_string().contains("cannot be written from f32"),
        "{err}"
    );
    w.finish().unwrap();
    let ckpt = Checkpoint::open(&target).unwrap();
    for (name, dtype, bytes, want) in &cases {
        assert_eq!(ckpt.info(name).unwrap().dtype, *dtype);
        assert_eq!(&ckpt.read_bytes(name).unwrap(), bytes);
        if dtype.readable_as_f32() {
            assert_eq!(&ckpt.read_f32(name).unwrap(), want, "{name}");
        } else {
            let err = ckpt.read_f32(name).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, Error::UnsupportedDtype { .. })
                    && msg.contains("\"f8\"")
                    && msg.contains("model.safetensors"),
                "{msg}"
            );
        }
    }
}

#[test]
fn ranges_read_only_what_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m");
    let v = values(4096, 2.0);
    let w = CheckpointWriter::create_dir(
        &target,
        vec![TensorSpec::new("t", Dtype::F32, [64, 64])],
        opts(1 << 30),
    )
    .unwrap();
    // Chunks out of order.
    w.write_f32_chunk("t", 2048, &v[2048..]).unwrap();
    w.write_f32_chunk("t", 0, &v[..2048]).unwrap();
    w.finish().unwrap();
    let ckpt = Checkpoint::open(&target).unwrap();
    assert_eq!(ckpt.read_f32_range("t", 100..164).unwrap(), &v[100..164]);
    assert_eq!(ckpt.read_f32_range("t", 7..7).unwrap(), Vec::<f32>::new());
    let mut buf = vec![0.0; 3];
    ckpt.read_f32_range_into("t", 4093..4096, &mut buf).unwrap();
    assert_eq!(buf, &v[4093..]);
    #[allow(clippy::reversed_empty_ranges)]
    for bad in [4000..4097, 10..5] {
        let err = ckpt.read_f32_range("t", bad).unwrap_err();
        assert!(
            matches!(err, Error::BadRange { .. }) && err.to_string().contains("\"t\""),
            "{err}"
        );
    }
    assert!(ckpt.read_f32_range_into("t", 0..4, &mut buf).is_err());
    let err = ckpt.read_f32("nope").unwrap_err();
    assert!(matches!(err, Error::TensorNotFound { .. }) && err.to_string().contains("\"nope\""));
}

#[test]
fn shards_split_at_the_byte_budget_and_the_index_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    // Three F32 tensors of 400, 400 and 1200 bytes.
    let specs = || {
        vec![
            TensorSpec::new("a", Dtype::F32, [100]),
            TensorSpec::new("b", Dtype::F32, [10, 10]),
            TensorSpec::new("c", Dtype::F32, [300]),
        ]
    };
    let write = |name: &str, budget: u64| {
        let target = dir.path().join(name);
        let w = CheckpointWriter::create_dir(&target, specs(), opts(budget)).unwrap();
        for s in specs() {
            w.write_f32(&s.name, &values(s.numel(), s.numel() as f32))
                .unwrap();
        }
        (target.clone(), w.finish().unwrap())
    };
    // Exactly the sum fits one shard: model.safetensors, no index.
    let (t, written) = write("one", 2000);
    assert_eq!(written.shards, ["model.safetensors"]);
    assert_eq!(written.total_size, 2000);
    assert_eq!(entries(&t), ["model.safetensors"]);
    // One byte less: a and b (800) together, c alone.
    let (t, written) = write("two", 1999);
    assert_eq!(
        written.shards,
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"
        ]
    );
    assert_eq!(
        entries(&t),
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json"
        ]
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    assert_eq!(
        index,
        serde_json::json!({
            "metadata": {"total_size": 2000},
            "weight_map": {
                "a": "model-00001-of-00002.safetensors",
                "b": "model-00001-of-00002.safetensors",
                "c": "model-00002-of-00002.safetensors",
            }
        })
    );
    // Budget 800: a+b exactly fill shard 1. Budget 799: every tensor alone; c (1200) is larger
    // than the budget and still gets a shard of its own.
    assert_eq!(write("three", 800).1.shards.len(), 2);
    let (t, written) = write("four", 399);
    assert_eq!(written.shards.len(), 3);
    let ckpt = Checkpoint::open(&t).unwrap();
    let shards: Vec<_> = ckpt
        .tensors()
        .iter()
        .map(|i| i.shard.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        shards,
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors"
        ]
    );
    for s in specs() {
        assert_eq!(
            ckpt.read_f32(&s.name).unwrap(),
            values(s.numel(), s.numel() as f32)
        );
    }
    assert_eq!(ckpt.index_metadata()["total_size"], 2000);
    assert_eq!(ckpt.total_bytes(), 2000);
}

#[test]
fn concurrent_writes_in_any_order_give_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<TensorSpec> = (0..64)
        .map(|i| TensorSpec::new(format!("layer.{i}.w"), Dtype::BF16, [i + 1, 33]))
        .collect();
    let write = |name: &str, reverse: bool| {
        let target = dir.path().join(name);
        let w = CheckpointWriter::create_dir(&target, specs.clone(), opts(20_000)).unwrap();
        let mut order: Vec<&TensorSpec> = specs.iter().collect();
        if reverse {
            order.reverse();
        }
        order.par_iter().for_each(|s| {
            w.write_f32(&s.name, &values(s.numel(), s.shape[0] as f32))
                .unwrap()
        });
        w.finish().unwrap();
        target
    };
    let a = write("a", false);
    let b = write("b", true);
    let names = entries(&a);
    assert!(names.len() > 2, "{names:?}");
    assert_eq!(names, entries(&b));
    for n in names {
        assert_eq!(
            std::fs::read(a.join(&n)).unwrap(),
            std::fs::read(b.join(&n)).unwrap(),
            "{n}"
        );
    }
}

#[test]
fn finish_is_atomic_and_never_overwrites_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let spec = || {
        vec![
            TensorSpec::new("x", Dtype::F32, [2]),
            TensorSpec::new("y", Dtype::F32, [2]),
        ]
    };
    // Dropped before finishing: nothing left, not even the temporary directory.
    {
        let w = CheckpointWriter::create_dir(&target, spec(), opts(1 << 30)).unwrap();
        w.write_f32("x", &[1.0, 2.0]).unwrap();
        assert_eq!(
            entries(dir.path()).len(),
            1,
            "temp dir exists while writing"
        );
        assert!(!target.exists());
    }
    assert!(entries(dir.path()).is_empty());
    // Finishing with a tensor missing fails, names it, and leaves nothing.
    let w = CheckpointWriter::create_dir(&target, spec(), opts(1 << 30)).unwrap();
    w.write_f32("x", &[1.0, 2.0]).unwrap();
    let err = w.finish().unwrap_err();
    assert!(
        matches!(&err, Error::Incomplete { missing, .. } if missing == &["y"]),
        "{err}"
    );
    assert!(entries(dir.path()).is_empty());
    // Half a tensor is not a tensor.
    let w = CheckpointWriter::create_dir(&target, spec(), opts(1 << 30)).unwrap();
    w.write_f32("x", &[1.0, 2.0]).unwrap();
    w.write_f32_chunk("y", 1, &[4.0]).unwrap();
    assert!(matches!(w.finish().unwrap_err(), Error::Incomplete { .. }));
    assert!(entries(dir.path()).is_empty());
    // A complete write lands.
    let w = CheckpointWriter::create_dir(&target, spec(), opts(1 << 30)).unwrap();
    w.write_f32("x", &[1.0, 2.0]).unwrap();
    w.write_f32("y", &[3.0, 4.0]).unwrap();
    w.finish().unwrap();
    assert_eq!(entries(dir.path()), ["out"]);
    // Existing target: an error at creation, unless overwriting.
    let err = CheckpointWriter::create_dir(&target, spec(), opts(1 << 30)).unwrap_err();
    assert!(
        matches!(err, Error::TargetExists { .. }) && err.to_string().contains("out"),
        "{err}"
    );
    let w = CheckpointWriter::create_dir(
        &target,
        spec(),
        WriterOptions {
            overwrite: true,
            ..opts(1 << 30)
        },
    )
    .unwrap();
    w.write_f32("x", &[5.0, 6.0]).unwrap();
    w.write_f32("y", &[7.0, 8.0]).unwrap();
    w.finish().unwrap();
    assert_eq!(entries(dir.path()), ["out"]);
    assert_eq!(
        Checkpoint::open(&target).unwrap().read_f32("x").unwrap(),
        [5.0, 6.0]
    );
}

#[test]
fn writer_rejects_bad_tensors_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let dup = vec![
        TensorSpec::new("x", Dtype::F32, [2]),
        TensorSpec::new("x", Dtype::F32, [3]),
    ];
    let err = CheckpointWriter::create_dir(&target, dup, opts(100)).unwrap_err();
    assert!(
        err.to_string().contains("\"x\"") && err.to_string().contains("twice"),
        "{err}"
    );
    let huge = vec![TensorSpec::new("h", Dtype::F32, [usize::MAX, 4])];
    assert!(
        CheckpointWriter::create_dir(&target, huge, opts(100))
            .unwrap_err()
            .to_string()
            .contains("overflows")
    );
    let w = CheckpointWriter::create_dir(
        &target,
        vec![TensorSpec::new("x", Dtype::F32, [2])],
        opts(100),
    )
    .unwrap();
    for err in [
        w.write_f32("x", &[1.0]).unwrap_err(),
        w.write_f32("z", &[1.0, 2.0]).unwrap_err(),
        w.write_f32_chunk("x", 1, &[1.0, 2.0]).unwrap_err(),
        w.write_f32_chunk("x", usize::MAX, &[1.0]).unwrap_err(),
        w.write_bytes("x", &[0; 7]).unwrap_err(),
    ] {
        assert!(matches!(err, Error::Write { .. }), "{err}");
        assert!(err.to_string().contains("out"), "{err}");
    }
    assert!(w.add_file("../escape", b"no").is_err());
    assert!(w.add_file("model.safetensors", b"no").is_err());
}

#[test]
fn metadata_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let mut metadata = BTreeMap::new();
    metadata.insert(meta::MERGE_METHOD.to_string(), "led".to_string());
    metadata.insert(
        meta::MERGE_CONFIG.to_string(),
        "merge_method: led\n\"quoted\": {}".to_string(),
    );
    let specs = vec![
        TensorSpec::new("a", Dtype::F32, [3]),
        TensorSpec::new("b", Dtype::F32, [3]),
    ];
    let w = CheckpointWriter::create_dir(
        &target,
        specs,
        WriterOptions {
            metadata: metadata.clone(),
            ..opts(12)
        },
    )
    .unwrap();
    w.write_f32("a", &[0.0; 3]).unwrap();
    w.write_f32("b", &[0.0; 3]).unwrap();
    w.add_file("README.md", b"# merged\n").unwrap();
    w.finish().unwrap();
    let ckpt = Checkpoint::open(&target).unwrap();
    metadata.insert("format".into(), "pt".into());
    let shards: Vec<_> = ckpt.shard_metadata().collect();
    assert_eq!(shards.len(), 2);
    for (_, m) in shards {
        assert_eq!(m, &metadata);
    }
    assert_eq!(
        std::fs::read_to_string(target.join("README.md")).unwrap(),
        "# merged\n"
    );
}

#[test]
fn single_file_targets_for_score_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("scores.safetensors");
    let record = led_merging_io::ScoreMetadata {
        scorer: "snip".into(),
        samples: 4,
        ..Default::default()
    };
    let specs = vec![
        TensorSpec::new("w", Dtype::F32, [1000]),
        TensorSpec::new("v", Dtype::F32, [1000]),
    ];
    // No sharding for single files, whatever the budget says.
    let w = CheckpointWriter::create_file(
        &target,
        specs,
        WriterOptions {
            metadata: record.to_map(),
            ..opts(10)
        },
    )
    .unwrap();
    w.write_f32("w", &values(1000, 0.0)).unwrap();
    w.write_f32("v", &values(1000, 1.0)).unwrap();
    assert!(w.add_file("README.md", b"").is_err());
    let written = w.finish().unwrap();
    assert_eq!(written.shards, ["scores.safetensors"]);
    assert_eq!(entries(dir.path()), ["scores.safetensors"]);
    let ckpt = Checkpoint::open(&target).unwrap();
    let back = led_merging_io::ScoreMetadata::from_map(&target, ckpt.metadata()).unwrap();
    assert!(back.same_request(&record));
    assert_eq!(ckpt.read_f32("v").unwrap(), values(1000, 1.0));
}

#[test]
fn model_files_come_from_the_donor_with_dtype_updated() {
    let dir = tempfile::tempdir().unwrap();
    let donor = dir.path().join("donor");
    std::fs::create_dir(&donor).unwrap();
    std::fs::write(
        donor.join("config.json"),
        r#"{"model_type": "llama", "torch_dtype": "float32", "hidden_size": 8}"#,
    )
    .unwrap();
    std::fs::write(donor.join("tokenizer.json"), "{}").unwrap();
    std::fs::write(donor.join("chat_template.jinja"), "{{ x }}").unwrap();
    std::fs::write(donor.join("optimizer.pt"), "not copied").unwrap();
    let target = dir.path().join("out");
    let w = CheckpointWriter::create_dir(
        &target,
        vec![TensorSpec::new("x", Dtype::BF16, [1])],
        opts(100),
    )
    .unwrap();
    w.write_f32("x", &[1.0]).unwrap();
    let copied = w.copy_model_files(&donor, Some(Dtype::BF16)).unwrap();
    assert_eq!(
        copied,
        ["config.json", "tokenizer.json", "chat_template.jinja"]
    );
    w.finish().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(target.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    assert_eq!(config["hidden_size"], 8);
    assert_eq!(
        entries(&target),
        [
            "chat_template.jinja",
            "config.json",
            "model.safetensors",
            "tokenizer.json"
        ]
    );
    std::fs::write(donor.join("config.json"), "[1, 2]").unwrap();
    let err = led_merging_io::copy_model_files(&donor, dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn reference_safetensors_crate_reads_our_files_and_we_read_its() {
    use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ours.safetensors");
    let v = values(12, 3.0);
    let specs = vec![
        TensorSpec::new("bf", Dtype::BF16, [3, 4]),
        TensorSpec::new("f", Dtype::F32, [12]),
        TensorSpec::new("h", Dtype::F16, [2, 6]),
    ];
    let w = CheckpointWriter::create_file(&target, specs, WriterOptions::default()).unwrap();
    for name in ["bf", "f", "h"] {
        w.write_f32(name, &v).unwrap();
    }
    w.finish().unwrap();
    let bytes = std::fs::read(&target).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let bf = st.tensor("bf").unwrap();
    assert_eq!((bf.dtype(), bf.shape()), (StDtype::BF16, &[3usize, 4][..]));
    let want: Vec<u8> = v
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    assert_eq!(bf.data(), want.as_slice());
    assert_eq!(st.tensor("h").unwrap().dtype(), StDtype::F16);
    let (_, m) = SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(m.metadata().as_ref().unwrap()["format"], "pt");

    // And the other way round.
    let f64s: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let i32s: Vec<u8> = [7i32, -7].iter().flat_map(|x| x.to_le_bytes()).collect();
    let views = vec![
        ("d", TensorView::new(StDtype::F64, vec![2], &f64s).unwrap()),
        (
            "i",
            TensorView::new(StDtype::I32, vec![1, 2], &i32s).unwrap(),
        ),
    ];
    let theirs = dir.path().join("theirs.safetensors");
    safetensors::serialize_to_file(views, None, &theirs).unwrap();
    let ckpt = Checkpoint::open(&theirs).unwrap();
    assert_eq!(ckpt.read_f32("d").unwrap(), [1.5, -2.0]);
    assert_eq!(ckpt.read_f32("i").unwrap(), [7.0, -7.0]);
    assert_eq!(ckpt.info("i").unwrap().shape, [1, 2]);
}

#[test]
fn temporaries_of_dead_writers_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    // What a SIGKILLed writer leaves: a hidden temp dir named after a process that is gone.
    let stale = dir.path().join(".out.led-tmp-4194304999-0");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"half written").unwrap();
    // Another target's temporary, and ours from a live process (this one), are left alone.
    let other = dir.path().join(".other.led-tmp-4194304999-0");
    std::fs::create_dir(&other).unwrap();
    let w = CheckpointWriter::create_dir(
        dir.path().join("out"),
        vec![TensorSpec::new("x", Dtype::F32, [1])],
        opts(100),
    )
    .unwrap();
    assert!(!stale.exists());
    assert!(other.exists());
    w.write_f32("x", &[1.0]).unwrap();
    w.finish().unwrap();
    assert_eq!(entries(dir.path()), [".other.led-tmp-4194304999-0", "out"]);
}

#[test]
fn long_ranges_read_across_the_parallel_and_decode_parts() {
    // Over 2^20 elements (read in parallel parts) at an offset that is no part boundary, in
    // f32 (read straight into the output) and bf16/f16 (decoded through a buffer).
    let n = (1 << 21) + 77;
    let v: Vec<f32> = (0..n).map(|i| (i % 251) as f32 - 125.0).collect();
    let dir = tempfile::tempdir().unwrap();
    for dtype in [Dtype::F32, Dtype::BF16, Dtype::F16] {
        let target = dir.path().join(dtype.to_string());
        let w = CheckpointWriter::create_dir(
            &target,
            vec![TensorSpec::new("t", dtype, [n])],
            opts(1 << 30),
        )
        .unwrap();
        w.write_f32_chunk("t", 0, &v).unwrap();
        w.finish().unwrap();
        let ckpt = Checkpoint::open(&target).unwrap();
        assert_eq!(ckpt.read_f32("t").unwrap(), v, "{dtype}");
        let r = 65_537..n - 3;
        assert_eq!(
            ckpt.read_f32_range("t", r.clone()).unwrap(),
            &v[r],
            "{dtype}"
        );
    }
}
