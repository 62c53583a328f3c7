//! A Hugging Face cache as huggingface_hub lays it out, built by tests (included with `#[path]`
//! by the tests that read repo ids: `crates/led-merging-cli/tests/hub_cache.rs`,
//! `crates/led-merging-merge/tests/mergekit_corpus.rs`).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A content hash for blob names (any stable name serves the layout).
pub fn blob_name(bytes: &[u8]) -> String {
    let mut h = [0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4, 7, 11];
    for &b in bytes {
        for (i, x) in h.iter_mut().enumerate() {
            *x = (*x ^ u64::from(b)).wrapping_mul(0x100_0000_01b3 + 2 * i as u64);
        }
    }
    h.iter().map(|x| format!("{x:016x}")).collect()
}

/// Put the files of `model` into `cache` as commit `commit` of `repo`, with `refs` pointing at
/// it: blobs under `blobs/`, relative links under `snapshots/<commit>/`, as huggingface_hub.
pub fn cache_model(cache: &Path, repo: &str, commit: &str, refs: &[&str], model: &Path) -> PathBuf {
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    let snapshot = root.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    for entry in std::fs::read_dir(model).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let blob = blob_name(&bytes);
        std::fs::write(root.join("blobs").join(&blob), &bytes).unwrap();
        symlink(
            Path::new("../../blobs").join(&blob),
            snapshot.join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    for r in refs {
        let file = root.join("refs").join(r);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, commit).unwrap();
    }
    snapshot
}
