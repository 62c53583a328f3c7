//! Damaged and hostile inputs give clear errors that name the file and tensor, never panics.

use std::path::{Path, PathBuf};

use led_merging_io::{Checkpoint, Error};

/// A safetensors file from a header text and a data section, as a hostile writer would make it.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Cut the last `by` bytes off `file`.
fn shorten(file: &Path, by: u64) {
    let len = std::fs::metadata(file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.set_len(len - by).unwrap();
}

fn open_err(path: &Path) -> Error {
    Checkpoint::open(path).expect_err("must be rejected")
}

/// The error's message names the file and, where given, the tensor.
fn assert_names(err: &Error, file: &str, tensor: Option<&str>) {
    let msg = err.to_string();
    assert!(msg.contains(file), "{msg:?} should name {file}");
    if let Some(t) = tensor {
        assert!(
            msg.contains(&format!("{t:?}")),
            "{msg:?} should name tensor {t}"
        );
    }
}

#[test]
fn too_short_and_header_length_lies() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "short.safetensors", &[1, 2, 3]);
    assert!(matches!(open_err(&p), Error::TooShort { len: 3, .. }));
    let p = write(dir.path(), "empty.safetensors", &[]);
    assert!(matches!(open_err(&p), Error::TooShort { len: 0, .. }));

    // Header length larger than the file.
    let mut bytes = raw("{}", &[]);
    bytes[..8].copy_from_slice(&1000u64.to_le_bytes());
    let p = write(dir.path(), "beyond.safetensors", &bytes);
    let err = open_err(&p);
    assert!(
        matches!(err, Error::HeaderBeyondFile { len: 1000, .. }),
        "{err}"
    );
    assert_names(&err, "beyond.safetensors", None);

    // A huge length (or a "negative" one read as u64) is refused before allocating.
    for n in [u64::MAX, 1 << 40, i64::MIN as u64] {
        let mut bytes = raw("{}", &[]);
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        let p = write(dir.path(), "huge.safetensors", &bytes);
        assert!(matches!(open_err(&p), Error::HeaderTooLarge { .. }));
    }
}

#[test]
fn header_not_json_or_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    for (i, header) in [
        "not json",
        "[1, 2]",
        "{\"a\": 3}",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"extra\": 1}}",
        "{\"__metadata__\": {\"k\": 5}}",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}",
    ]
    .iter()
    .enumerate()
    {
        let p = write(
            dir.path(),
            &format!("h{i}.safetensors"),
            &raw(header, &[0; 4]),
        );
        let err = open_err(&p);
        assert!(
            matches!(err, Error::InvalidHeader { .. }),
            "{header}: {err}"
        );
        assert_names(&err, &format!("h{i}.safetensors"), None);
    }
    let mut bytes = raw("{\"a\": 1}", &[]);
    bytes[10] = 0xFF;
    let p = write(dir.path(), "utf8.safetensors", &bytes);
    assert!(open_err(&p).to_string().contains("UTF-8"));
}

#[test]
fn duplicate_names() {
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#;
    let p = write(dir.path(), "dup.safetensors", &raw(header, &[0; 8]));
    let err = open_err(&p);
    assert!(matches!(err, Error::DuplicateTensor { .. }));
    assert_names(&err, "dup.safetensors", Some("w"));
}

#[test]
fn offsets_out_of_bounds_reversed_overlapping_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "oob",
            r#"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#,
            8,
            "w",
        ),
        (
            "rev",
            r#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#,
            8,
            "w",
        ),
        (
            "big",
            r#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 18446744073709551615]}}"#,
            8,
            "w",
        ),
    ];
    for (name, header, len, tensor) in cases {
        let file = format!("{name}.safetensors");
        let err = open_err(&write(dir.path(), &file, &raw(header, &vec![0; len])));
        assert!(
            matches!(err, Error::OffsetOutOfBounds { .. }),
            "{name}: {err}"
        );
        assert_names(&err, &file, Some(tensor));
    }
    let header = r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#;
    let err = open_err(&write(
        dir.path(),
        "overlap.safetensors",
        &raw(header, &[0; 12]),
    ));
    assert!(matches!(err, Error::OverlappingTensors { .. }), "{err}");
    assert_names(&err, "overlap.safetensors", Some("a"));
    assert_names(&err, "overlap.safetensors", Some("b"));

    // A valid file cut short: the last tensor now points past the end.
    let dir2 = tempfile::tempdir().unwrap();
    let target = dir2.path().join("m");
    let specs = vec![
        led_merging_io::TensorSpec::new("a", led_merging_io::Dtype::F32, [64]),
        led_merging_io::TensorSpec::new("z", led_merging_io::Dtype::F32, [64]),
    ];
    let w =
        led_merging_io::CheckpointWriter::create_dir(&target, specs, Default::default()).unwrap();
    w.write_f32("a", &[1.0; 64]).unwrap();
    w.write_f32("z", &[2.0; 64]).unwrap();
    w.finish().unwrap();
    shorten(&target.join("model.safetensors"), 10);
    let err = open_err(&target);
    assert!(matches!(err, Error::OffsetOutOfBounds { .. }), "{err}");
    assert_names(&err, "model.safetensors", Some("z"));
    assert!(err.to_string().contains("truncated"));
}

#[test]
fn a_file_shortened_after_opening_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m");
    let spec = led_merging_io::TensorSpec::new("t", led_merging_io::Dtype::F32, [1024]);
    let w = led_merging_io::CheckpointWriter::create_dir(&target, vec![spec], Default::default())
        .unwrap();
    w.write_f32("t", &[3.0; 1024]).unwrap();
    w.finish().unwrap();
    let ckpt = Checkpoint::open(&target).unwrap();
    shorten(&target.join("model.safetensors"), 100);
    let err = ckpt.read_f32("t").unwrap_err();
    assert_names(&err, "model.safetensors", None);
    assert_eq!(ckpt.read_f32_range("t", 0..10).unwrap(), [3.0; 10]);
}

#[test]
fn dtype_and_shape_lies() {
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#;
    let err = open_err(&write(
        dir.path(),
        "shape.safetensors",
        &raw(header, &[0; 8]),
    ));
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                expected: 12,
                actual: 8,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "shape.safetensors", Some("w"));
    let header = r#"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}}"#;
    let err = open_err(&write(
        dir.path(),
        "overflow.safetensors",
        &raw(header, &[0; 8]),
    ));
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let header = r#"{"w": {"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 8]}}"#;
    let err = open_err(&write(
        dir.path(),
        "dtype.safetensors",
        &raw(header, &[0; 8]),
    ));
    assert!(
        matches!(err, Error::UnknownDtype { .. }) && err.to_string().contains("Q4_K"),
        "{err}"
    );
    assert_names(&err, "dtype.safetensors", Some("w"));
}

#[test]
fn misaligned_offsets_still_read_correctly() {
    // Nothing requires alignment: a 2-byte tensor before an F32 one puts it at offset 2.
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"a": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}"#;
    let mut data = vec![0x80, 0x3F];
    data.extend_from_slice(&2.5f32.to_le_bytes());
    let p = write(dir.path(), "mis.safetensors", &raw(header, &data));
    let ckpt = Checkpoint::open(&p).unwrap();
    assert_eq!(ckpt.read_f32("a").unwrap(), [1.0]);
    assert_eq!(ckpt.read_f32("b").unwrap(), [2.5]);
}

fn sharded_dir(dir: &Path, index: &str) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let header = r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#;
    std::fs::write(
        model.join("model-00001-of-00001.safetensors"),
        raw(header, &1.0f32.to_le_bytes()),
    )
    .unwrap();
    std::fs::write(model.join("model.safetensors.index.json"), index).unwrap();
    model
}

#[test]
fn index_shard_paths_must_stay_inside_the_model_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ok = sharded_dir(
        dir.path(),
        r#"{"metadata": {"total_size": 4}, "weight_map": {"a": "model-00001-of-00001.safetensors"}}"#,
    );
    assert_eq!(Checkpoint::open(&ok).unwrap().read_f32("a").unwrap(), [1.0]);

    // A real file outside the model directory, that the hostile index points at.
    let header = r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#;
    let outside = write(dir.path(), "outside.safetensors", &raw(header, &[0; 4]));
    for shard in [
        "../outside.safetensors",
        outside.to_str().unwrap(),
        "sub/../../outside.safetensors",
        "",
    ] {
        let index = serde_json::json!({"weight_map": {"a": shard}}).to_string();
        let model = sharded_dir(dir.path(), &index);
        let err = open_err(&model);
        assert!(matches!(err, Error::ShardEscapes { .. }), "{shard}: {err}");
        assert_names(&err, "model.safetensors.index.json", Some("a"));
    }
    // A symlink inside the directory that leads out of it.
    let model = sharded_dir(dir.path(), r#"{"weight_map": {"a": "link.safetensors"}}"#);
    let _ = std::fs::remove_file(model.join("link.safetensors"));
    std::os::unix::fs::symlink(&outside, model.join("link.safetensors")).unwrap();
    let err = open_err(&model);
    assert!(matches!(err, Error::ShardEscapes { .. }), "{err}");
    // A symlink that stays inside is fine.
    std::fs::remove_file(model.join("link.safetensors")).unwrap();
    std::os::unix::fs::symlink(
        model.join("model-00001-of-00001.safetensors"),
        model.join("link.safetensors"),
    )
    .unwrap();
    assert!(Checkpoint::open(&model).is_ok());
}

/// A Hugging Face cache snapshot links each file to `../../blobs/HASH`, outside the snapshot:
/// those links are followed; a link into another repository's blobs is not.
#[test]
fn cache_snapshot_links_into_the_repos_blobs_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#;
    let index = r#"{"weight_map": {"a": "model-00001-of-00001.safetensors"}}"#;
    let repo = |name: &str| {
        let repo = dir.path().join("hub").join(format!("models--org--{name}"));
        let snap = repo.join("snapshots").join("0123abcd");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        write(
            &repo.join("blobs"),
            "shard-blob",
            &raw(header, &7.0f32.to_le_bytes()),
        );
        write(&repo.join("blobs"), "index-blob", index.as_bytes());
        std::os::unix::fs::symlink(
            "../../blobs/index-blob",
            snap.join("model.safetensors.index.json"),
        )
        .unwrap();
        (repo, snap)
    };
    let (_, snap) = repo("base");
    std::os::unix::fs::symlink(
        "../../blobs/shard-blob",
        snap.join("model-00001-of-00001.safetensors"),
    )
    .unwrap();
    assert_eq!(
        Checkpoint::open(&snap).unwrap().read_f32("a").unwrap(),
        [7.0]
    );

    let (_, other) = repo("other");
    std::os::unix::fs::symlink(
        "../../../models--org--base/blobs/shard-blob",
        other.join("model-00001-of-00001.safetensors"),
    )
    .unwrap();
    let err = open_err(&other);
    assert!(matches!(err, Error::ShardEscapes { .. }), "{err}");
}

#[test]
fn index_problems() {
    let dir = tempfile::tempdir().unwrap();
    let model = sharded_dir(
        dir.path(),
        r#"{"weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00002-of-00002.safetensors"}}"#,
    );
    let err = open_err(&model);
    assert!(matches!(err, Error::MissingShard { .. }), "{err}");
    assert_names(&err, "model-00002-of-00002.safetensors", Some("b"));

    let model = sharded_dir(
        dir.path(),
        r#"{"weight_map": {"a": "model-00001-of-00001.safetensors", "q": "model-00001-of-00001.safetensors"}}"#,
    );
    let err = open_err(&model);
    assert!(matches!(err, Error::NotInShard { .. }), "{err}");
    assert_names(&err, "model-00001-of-00001.safetensors", Some("q"));

    let model = sharded_dir(
        dir.path(),
        r#"{"weight_map": {"a": "model-00001-of-00001.safetensors", "a": "model-00001-of-00001.safetensors"}}"#,
    );
    let err = open_err(&model);
    assert!(matches!(err, Error::DuplicateTensor { .. }), "{err}");
    assert_names(&err, "model.safetensors.index.json", Some("a"));

    for bad in [
        "{",
        "{\"metadata\": {}}",
        "{\"weight_map\": {\"a\": 3}}",
        "[]",
    ] {
        let model = sharded_dir(dir.path(), bad);
        let err = open_err(&model);
        assert!(matches!(err, Error::InvalidIndex { .. }), "{bad}: {err}");
        assert_names(&err, "model.safetensors.index.json", None);
    }

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(open_err(&empty), Error::NoWeights { .. }));
    let err = open_err(&dir.path().join("missing"));
    assert!(matches!(err, Error::Io { .. }) && err.to_string().contains("missing"));
}

#[test]
fn in_memory_validation_agrees_with_opening_files() {
    let header = r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#;
    let good = raw(header, &[0; 8]);
    assert_eq!(
        led_merging_io::validate_safetensors("m.safetensors", &good).unwrap(),
        1
    );
    let truncated = &good[..good.len() - 1];
    let err = led_merging_io::validate_safetensors("m.safetensors", truncated).unwrap_err();
    assert!(
        matches!(err, Error::OffsetOutOfBounds { .. }) && err.to_string().contains("m.safetensors"),
        "{err}"
    );
    assert!(matches!(
        led_merging_io::validate_safetensors("m", &[1, 2]),
        Err(Error::TooShort { .. })
    ));
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        led_merging_io::validate_safetensors("m", &huge),
        Err(Error::HeaderTooLarge { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "t.safetensors", truncated);
    assert!(matches!(open_err(&p), Error::OffsetOutOfBounds { .. }));
}
