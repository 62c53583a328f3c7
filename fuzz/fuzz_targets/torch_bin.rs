//! Any bytes as a `pytorch_model.bin`: with the first byte even, the whole file; odd, the rest
//! as its `data.pkl` inside a valid `torch.save` zip with one 64-byte storage (so mutations
//! reach the pickle machine). Opening it and reading every tensor must return, never panic,
//! never run anything, never read outside the file.
#![no_main]

use std::io::Write;

fn wrapped(pkl: &[u8]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [
        ("archive/data.pkl", pkl),
        ("archive/byteorder", b"little".as_slice()),
        ("archive/data/0", &[0u8; 64][..]),
    ] {
        z.start_file(name, stored).expect("entry");
        z.write_all(bytes).expect("write");
    }
    z.finish().expect("zip").into_inner()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 { rest.to_vec() } else { wrapped(rest) };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pytorch_model.bin");
    std::fs::write(&path, bytes).expect("file");
    if let Ok(ckpt) = led_merging_io::Checkpoint::open(&path) {
        for t in ckpt.tensors() {
            let _ = ckpt.read_f32(&t.name);
            let _ = ckpt.read_bytes(&t.name);
        }
    }
});
