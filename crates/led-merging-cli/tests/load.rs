//! Load: a merge of 10 000 tensors spread over 50 shards per input, and (ignored by default:
//! 12 GiB of sparse inputs, 4 GiB written) merges of one tensor of 2^31 elements (task
//! arithmetic, TIES, LED, breadcrumbs, slerp, model stock), each run
//! as a real `led merge` process whose peak RSS is reported. Numbers: docs/RELIABILITY.md.
//!
//! ```sh
//! LOAD_DIR=/tmp cargo test --release -p led-merging-cli --test load -- --include-ignored --nocapture
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use led_merging_io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};

/// Run `led ARGS` to success, returning (peak RSS in MiB, seconds).
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also returns its rusage"
)]
fn led_with_peak_rss(args: &[&str]) -> (f64, f64) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_led"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: plain POSIX call on our own child; `rusage` is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "led {args:?} failed: status {status}"
    );
    (
        usage.ru_maxrss as f64 / 1024.0,
        started.elapsed().as_secs_f64(),
    )
}

fn value(model: usize, tensor: usize, i: usize) -> f32 {
    ((model * 7 + tensor * 3 + i) % 17) as f32 * 0.125 - 1.0
}

#[test]
fn ten_thousand_tensors_in_fifty_shards() {
    const TENSORS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let specs: Vec<TensorSpec> = (0..TENSORS)
        .map(|t| TensorSpec::new(format!("blocks.{t}.weight"), Dtype::BF16, [4, 64]))
        .collect();
    let per_model = (TENSORS * 4 * 64 * 2) as u64;
    for (k, name) in ["base", "a", "b"].iter().enumerate() {
        let w = CheckpointWriter::create_dir(
            d.join(name),
            specs.clone(),
            WriterOptions {
                max_shard_size: per_model / 50,
                ..Default::default()
            },
        )
        .unwrap();
        for (t, s) in specs.iter().enumerate() {
            let v: Vec<f32> = (0..s.numel()).map(|i| value(k, t, i)).collect();
            w.write_f32(&s.name, &v).unwrap();
        }
        let written = w.finish().unwrap();
        assert!(written.shards.len() >= 50, "{}", written.shards.len());
    }
    let cfg = d.join("ta.yaml");
    std::fs::write(
        &cfg,
        format!(
            "merge_method: task_arithmetic\nbase_model: {b}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {c}\n    parameters: {{weight: 0.25}}\n",
            b = d.join("base").display(),
            a = d.join("a").display(),
            c = d.join("b").display()
        ),
    )
    .unwrap();
    let out = d.join("merged");
    let shard = (per_model / 50).to_string();
    let (rss, secs) = led_with_peak_rss(&[
        "merge",
        cfg.to_str().unwrap(),
        out.to_str().unwrap(),
        "--max-shard-size",
        &shard,
    ]);
    eprintln!("10 000 tensors × 3 inputs × 50 shards: {secs:.2} s, peak RSS {rss:.0} MiB");
    let ckpt = Checkpoint::open(&out).unwrap();
    assert_eq!(ckpt.tensors().len(), TENSORS);
    for t in [0, 4321, TENSORS - 1] {
        let got = ckpt.read_f32(&format!("blocks.{t}.weight")).unwrap();
        for (i, g) in got.iter().enumerate() {
            let (b, a, c) = (value(0, t, i), value(1, t, i), value(2, t, i));
            let want = half::bf16::from_f32(b + 0.5 * (a - b) + 0.25 * (c - b)).to_f32();
            assert_eq!(*g, want, "tensor {t} element {i}");
        }
    }
}

/// Elements of the large tensor: 2^31, as rows of 4096.
const BIG_ROWS: usize = 1 << 19;
const BIG_COLS: usize = 4096;
/// Where the sparse files hold data: the first, a middle and the last 64 Ki elements.
const WINDOWS: [usize; 3] = [
    0,
    (BIG_ROWS / 2 + 3) * BIG_COLS,
    BIG_ROWS * BIG_COLS - (1 << 16),
];

/// A single-tensor safetensors file whose data is a hole except for `WINDOWS`, filled by `f`.
fn sparse_file(path: &Path, dtype: Dtype, f: impl Fn(usize) -> f32) {
    let numel = BIG_ROWS * BIG_COLS;
    let size = dtype.size();
    let header = format!(
        r#"{{"w":{{"dtype":"{dtype}","shape":[{BIG_ROWS},{BIG_COLS}],"data_offsets":[0,{}]}}}}"#,
        numel * size
    );
    let mut header = header.into_bytes();
    while (8 + header.len()) % 8 != 0 {
        header.push(b' ');
    }
    let file = File::create(path).unwrap();
    let start = (8 + header.len()) as u64;
    file.set_len(start + (numel * size) as u64).unwrap();
    file.write_all_at(&(header.len() as u64).to_le_bytes(), 0)
        .unwrap();
    file.write_all_at(&header, 8).unwrap();
    for &w in &WINDOWS {
        let bytes: Vec<u8> = (w..w + (1 << 16))
            .flat_map(|i| match dtype {
                Dtype::BF16 => half::bf16::from_f32(f(i)).to_le_bytes().to_vec(),
                _ => f(i).to_le_bytes().to_vec(),
            })
            .collect();
        file.write_all_at(&bytes, start + (w * size) as u64)
            .unwrap();
    }
}

#[test]
#[ignore = "12 GiB of sparse inputs, 4 GiB written per merge, minutes: run by hand (see docs/RELIABILITY.md)"]
fn one_tensor_of_two_to_the_thirty_one_elements() {
    let dir =
        tempfile::tempdir_in(std::env::var("LOAD_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let d = dir.path();
    for (k, name) in ["base", "a", "b"].iter().enumerate() {
        std::fs::create_dir(d.join(name)).unwrap();
        sparse_file(&d.join(name).join("model.safetensors"), Dtype::BF16, |i| {
            ((i + k * 5) % 11) as f32 * 0.25
        });
    }
    // Task a's scores are positive on even elements of the windows, task b's on odd ones: the
    // elections are disjoint, so LED adds a's task vector on even elements, b's on odd ones.
    for (name, seed, parity) in [("sa", 1, 0), ("ba", 2, 0), ("sb", 3, 1), ("bb", 4, 1)] {
        sparse_file(
            &d.join(format!("{name}.safetensors")),
            Dtype::F32,
            move |i| {
                if i % 2 == parity {
                    1.0 + ((i * seed) % 101) as f32
                } else {
                    0.0
                }
            },
        );
    }
    let yaml = |method: &str| {
        let scores = |m: &str, b: &str| {
            if method == "ties" || method == "breadcrumbs" {
                ", density: 0.5".to_owned()
            } else if method == "led" {
                format!(
                    ", density: 0.5}}\n    scores: {{model: {}, base: {}",
                    d.join(format!("{m}.safetensors")).display(),
                    d.join(format!("{b}.safetensors")).display()
                )
            } else {
                String::new()
            }
        };
        let (base, a, b) = (d.join("base"), d.join("a"), d.join("b"));
        match method {
            "slerp" => format!(
                "merge_method: slerp\nbase_model: {}\nmodels: [{{model: {}}}]\nparameters: {{t: 0.3}}\n",
                base.display(),
                a.display()
            ),
            "model_stock" => format!(
                "merge_method: model_stock\nbase_model: {}\nmodels: [{{model: {}}}, {{model: {}}}]\n",
                base.display(),
                a.display(),
                b.display()
            ),
            _ => format!(
                "merge_method: {method}\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0{}}}\n  - model: {}\n    parameters: {{weight: 0.5{}}}\n",
                base.display(),
                a.display(),
                scores("sa", "ba"),
                b.display(),
                scores("sb", "bb"),
            ),
        }
    };
    let inputs: Vec<Checkpoint> = ["base", "a", "b"]
        .iter()
        .map(|n| Checkpoint::open(d.join(n)).unwrap())
        .collect();
    let read = |c: &Checkpoint, w: usize| c.read_f32_range("w", w..w + (1 << 16)).unwrap();
    // Sums over the whole tensor, from the windows alone (the hole adds exact zeros), in index
    // order as the merge sums them: slerp's ‖θ_b‖², ‖θ_a‖², θ_b·θ_a; model stock's ‖δ_a‖²,
    // ‖δ_b‖², δ_a·δ_b.
    let (mut slerp, mut stock) = ([0f64; 3], [0f64; 3]);
    for &w in &WINDOWS {
        let (b, a, c) = (
            read(&inputs[0], w),
            read(&inputs[1], w),
            read(&inputs[2], w),
        );
        for i in 0..b.len() {
            let (x, y) = (f64::from(b[i]), f64::from(a[i]));
            slerp[0] += x * x;
            slerp[1] += y * y;
            slerp[2] += x * y;
            let (p, q) = (f64::from(a[i] - b[i]), f64::from(c[i] - b[i]));
            stock[0] += p * p;
            stock[1] += q * q;
            stock[2] += p * q;
        }
    }
    // As the merge computes them (t = 0.3).
    let (wa, wb) = {
        let dot = slerp[2] * (1.0 / slerp[0].sqrt()) * (1.0 / slerp[1].sqrt());
        assert!(dot.abs() < 0.9995, "{dot}");
        let (t, omega) = (0.3, dot.acos());
        (
            ((1.0 - t) * omega).sin() / omega.sin(),
            (t * omega).sin() / omega.sin(),
        )
    };
    let ratio = {
        let cos = (stock[2] / (stock[0].sqrt() * stock[1].sqrt())).clamp(-1.0, 1.0);
        (2.0 * cos / (1.0 + cos)) as f32
    };
    eprintln!("slerp weights {wa:.6} {wb:.6}, model stock ratio {ratio:.6}");
    let methods = [
        "task_arithmetic",
        "ties",
        "led",
        "breadcrumbs",
        "slerp",
        "model_stock",
    ];
    for method in methods {
        let cfg = d.join(format!("{method}.yaml"));
        std::fs::write(&cfg, yaml(method)).unwrap();
        let out = d.join(format!("out-{method}"));
        let dry = Command::new(env!("CARGO_BIN_EXE_led"))
            .args([
                "merge",
                cfg.to_str().unwrap(),
                out.to_str().unwrap(),
                "--dry-run",
            ])
            .output()
            .unwrap();
        let plan = String::from_utf8_lossy(&dry.stdout);
        assert!(plan.contains("in 64 parts"), "{plan}");
        let (rss, secs) =
            led_with_peak_rss(&["merge", cfg.to_str().unwrap(), out.to_str().unwrap()]);
        eprintln!("{method}: one 2^31-element BF16 tensor: {secs:.1} s, peak RSS {rss:.0} MiB");
        let ckpt = Checkpoint::open(&out).unwrap();
        for &w in &WINDOWS {
            let got = read(&ckpt, w);
            let (b, a, c) = (
                read(&inputs[0], w),
                read(&inputs[1], w),
                read(&inputs[2], w),
            );
            for i in 0..got.len() {
                let want = match method {
                    "task_arithmetic" => b[i] + (a[i] - b[i]) + 0.5 * (c[i] - b[i]),
                    // Every nonzero delta is in the top half (the rest of the tensor is
                    // zeros), then TIES's sign election with normalisation.
                    "ties" => {
                        let deltas = [(1.0, a[i] - b[i]), (0.5, 0.5 * (c[i] - b[i]))];
                        let sign = if deltas[0].1 + deltas[1].1 >= 0.0 {
                            1.0
                        } else {
                            -1.0
                        };
                        let (mut sum, mut div) = (0.0f32, 0.0f32);
                        for (w, d) in deltas {
                            if d != 0.0 && d.signum() == sign {
                                sum += d;
                                div += w;
                            }
                        }
                        b[i] + if div == 0.0 { sum } else { sum / div }
                    }
                    // γ = 0.01 drops the top 2^31 / 100 magnitudes: every nonzero δ (the
                    // windows) and the zeros of highest index; what is kept is all zeros.
                    "breadcrumbs" => b[i],
                    "slerp" => (wa * f64::from(b[i]) + wb * f64::from(a[i])) as f32,
                    "model_stock" => ratio * ((a[i] + c[i]) / 2.0) + (1.0 - ratio) * b[i],
                    _ if (w + i) % 2 == 0 => b[i] + (a[i] - b[i]),
                    _ => b[i] + 0.5 * (c[i] - b[i]),
                };
                assert_eq!(
                    got[i],
                    half::bf16::from_f32(want).to_f32(),
                    "{method}: element {}",
                    w + i
                );
            }
        }
        // Elements of the hole stay zero.
        assert!(read(&ckpt, 1 << 29).iter().all(|&x| x == 0.0));
        std::fs::remove_dir_all(&out).unwrap();
    }
}
