//! Elect and Disjoint at scale (issue: mask algebra).
//!
//! - `threshold/*`: top-r threshold of 10^8 random f32 scores: `select_threshold` against a full
//!   sort and against `select_nth_unstable`, all in the same run.
//! - `led_k3/*`: elect + disjoint + apply for K = 3 tasks over one 10^8-element tensor at
//!   r = (0.1, 0.4, 0.5), per phase.
//! - `and/*`: intersection of two masks of 10^8 elements, dense words vs roaring, at 10 % and 50 %.
//! - `convert/*`: dense → roaring → dense.
//!
//! Mask memory (dense vs roaring) is printed before the timings.
//!
//! Run: `cargo bench -p led-merging-mask --bench mask`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use led_merging_mask::{
    DenseMask, LedTask, Mask, Pattern, TaskUpdate, apply_masks, disjoint, elect, led_masks,
    select_threshold,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const N: usize = 100_000_000;
const RATIOS: [f64; 3] = [0.1, 0.4, 0.5];

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; n];
    out.par_chunks_mut(1 << 20)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((c as u64) << 32));
            chunk.iter_mut().for_each(|x| *x = rng.random::<f32>());
        });
    out
}

fn random_mask(n: usize, density: f64, seed: u64) -> DenseMask {
    let s = random(n, seed);
    DenseMask::from_fn(n, |i| f64::from(s[i]) < density)
}

fn threshold(c: &mut Criterion) {
    let scores = random(N, 1);
    let k = N / 10;
    let mut g = c.benchmark_group("threshold_1e8");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    g.bench_function("select_threshold", |b| {
        b.iter(|| black_box(select_threshold("w", black_box(&scores), 0.1).unwrap()))
    });
    g.bench_function("copy_select_nth_unstable", |b| {
        b.iter(|| {
            let mut v = scores.clone();
            let (_, t, _) = v.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            black_box(*t)
        })
    });
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("copy_full_sort", |b| {
        b.iter(|| {
            let mut v = scores.clone();
            v.sort_unstable_by(|a, b| b.total_cmp(a));
            black_box(v[k - 1])
        })
    });
    g.finish();
}

fn led_k3(c: &mut Criterion) {
    let base = random(N, 10);
    let models: Vec<Vec<f32>> = (0..3).map(|i| random(N, 20 + i)).collect();
    let base_scores: Vec<Vec<f32>> = (0..3).map(|i| random(N, 30 + i)).collect();
    let model_scores: Vec<Vec<f32>> = (0..3).map(|i| random(N, 40 + i)).collect();
    let tasks: Vec<LedTask<'_>> = (0..3)
        .map(|i| LedTask {
            model: &models[i],
            base_scores: &base_scores[i],
            model_scores: &model_scores[i],
            ratio: RATIOS[i],
            lambda: 1.0,
            pattern: Pattern::BothHigh,
            priority: false,
        })
        .collect();

    // Memory of the masks at these densities.
    let (masks, stats) = led_masks("w", N, &tasks, true).unwrap();
    eprintln!(
        "\nmask memory for n = 10^8 (dense = n/8 bytes, roaring = portable serialized size):"
    );
    for (i, (m, s)) in masks.iter().zip(&stats.tasks).enumerate() {
        let r = Mask::from_dense("w", m).unwrap();
        eprintln!(
            "  task {i} r = {}: elected {:.2} %, kept {:.2} % | dense {:.1} MB, roaring {:.1} MB",
            RATIOS[i],
            100.0 * s.elected as f64 / N as f64,
            100.0 * s.kept as f64 / N as f64,
            (N / 8) as f64 / 1e6,
            r.serialized_size() as f64 / 1e6
        );
    }

    let mut g = c.benchmark_group("led_k3_1e8");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    g.bench_function("elect_3_tasks", |b| {
        b.iter(|| {
            for t in &tasks {
                black_box(elect("w", t.base_scores, t.model_scores, t.ratio, t.pattern).unwrap());
            }
        })
    });
    g.bench_function("disjoint_3_masks", |b| {
        b.iter_batched_ref(
            || masks.clone(),
            |m| black_box(disjoint(m)),
            BatchSize::LargeInput,
        )
    });
    let mut out = vec![0f32; N];
    g.bench_function("apply_3_masks", |b| {
        let updates: Vec<TaskUpdate<'_>> = tasks
            .iter()
            .zip(&masks)
            .map(|(t, m)| TaskUpdate {
                model: t.model,
                lambda: t.lambda,
                mask: m,
            })
            .collect();
        b.iter(|| apply_masks("w", &base, &updates, black_box(&mut out)).unwrap())
    });
    g.bench_function("energies_3_tasks", |b| {
        b.iter_batched_ref(
            || stats.clone(),
            |s| led_merging_mask::add_energies("w", s, &base, &tasks, &masks).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("elect_disjoint_apply", |b| {
        b.iter(|| {
            led_merging_mask::led_tensor("w", &base, &tasks, true, black_box(&mut out)).unwrap()
        })
    });
    g.finish();
}

fn and_convert(c: &mut Criterion) {
    let mut g = c.benchmark_group("masks_1e8");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for density in [0.1, 0.5] {
        let (a, b) = (random_mask(N, density, 50), random_mask(N, density, 51));
        let (ra, rb) = (
            Mask::from_dense("a", &a).unwrap(),
            Mask::from_dense("b", &b).unwrap(),
        );
        g.bench_function(format!("and_dense_{density}"), |bch| {
            bch.iter_batched_ref(
                || a.clone(),
                |x| x.and_assign(black_box(&b)),
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("and_roaring_{density}"), |bch| {
            bch.iter(|| black_box(&ra & &rb))
        });
        g.bench_function(format!("dense_to_roaring_{density}"), |bch| {
            bch.iter(|| black_box(Mask::from_dense("a", &a).unwrap()))
        });
        g.bench_function(format!("roaring_to_dense_{density}"), |bch| {
            bch.iter(|| black_box(ra.to_dense()))
        });
    }
    g.finish();
}

criterion_group!(benches, threshold, led_k3, and_convert);
criterion_main!(benches);
