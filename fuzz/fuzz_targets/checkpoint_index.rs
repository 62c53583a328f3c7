//! Any bytes as `model.safetensors.index.json` beside one valid shard: opening the checkpoint and
//! reading every tensor it lists must return, never panic, never read outside the directory.
#![no_main]

use std::sync::OnceLock;

fn shard() -> &'static [u8] {
    static SHARD: OnceLock<Vec<u8>> = OnceLock::new();
    SHARD.get_or_init(|| {
        let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}}"#;
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header);
        v.extend_from_slice(&[0; 10]);
        v
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model-00001-of-00001.safetensors"), shard()).expect("shard");
    std::fs::write(dir.path().join("model.safetensors.index.json"), data).expect("index");
    if let Ok(ckpt) = led_merging_io::Checkpoint::open(dir.path()) {
        for t in ckpt.tensors() {
            let _ = ckpt.read_f32(&t.name);
        }
    }
});
