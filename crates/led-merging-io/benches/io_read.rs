//! Read + convert throughput of `led-merging-io` for a ~256 MB BF16 tensor, next to a plain memory copy
//! of the same number of bytes measured in the same run. The file is in the page cache (just
//! written), so this measures the reader, not the disk.
//!
//! Run: `make bench` (or `cargo bench -p led-merging --bench io_read`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use led_merging_io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};

const ELEMENTS: usize = 128 << 20; // 128 Mi BF16 elements = 256 MiB

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("big");
    let values: Vec<f32> = (0..ELEMENTS)
        .map(|i| (i % 1000) as f32 * 0.001 - 0.5)
        .collect();
    let writer = CheckpointWriter::create_dir(
        &target,
        vec![TensorSpec::new("w", Dtype::BF16, [ELEMENTS / 4096, 4096])],
        WriterOptions::default(),
    )
    .expect("writer");
    writer.write_f32("w", &values).expect("write");
    writer.finish().expect("finish");
    let ckpt = Checkpoint::open(&target).expect("open");
    let bytes = (ELEMENTS * 2) as u64;

    let mut group = c.benchmark_group("io_read_256MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    let src = vec![1u8; bytes as usize];
    let mut dst = vec![0u8; bytes as usize];
    group.bench_function("memcpy_baseline", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    let mut out = vec![0f32; ELEMENTS];
    group.bench_function("read_bf16_as_f32", |b| {
        b.iter(|| {
            ckpt.read_f32_into("w", black_box(&mut out)).expect("read");
            black_box(&out);
        })
    });
    let mut single = vec![0f32; ELEMENTS];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    group.bench_function("read_bf16_as_f32_1_thread", |b| {
        b.iter(|| {
            pool.install(|| {
                ckpt.read_f32_into("w", black_box(&mut single))
                    .expect("read")
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
