//! Locate (spec §1): score every parameter of a model on a task dataset with SNIP (the method),
//! Wanda or random scores (the ablations), and write a score checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use led_io::{Checkpoint, CheckpointWriter, Dtype, ScoreMetadata, TensorSpec, WriterOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use crate::data::{DataOptions, DataReport, load_samples, load_tokenizer};
use crate::model::{Activations, Model};
use crate::{DeviceChoice, Error, Result, to_f32_vec};

/// The version of the scoring rules recorded in every score file (`led.scores.option.rules`):
/// 2 = the pad token's embedding row gets no gradient from input positions (transformers'
/// `padding_idx`), and with a chat template the answer is the assistant turn closed by its
/// end-of-turn token (docs/how-led-works.md, "Locate"). Score files without it predate both.
pub const SCORING_RULES: &str = "2";

/// Which attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scorer {
    /// |W| ⊙ Σ_k |∇_W L_k| (the method).
    #[default]
    Snip,
    /// |W_ij| · ‖X_j‖₂ over answer positions (ablation); SNIP for the embedding and biases.
    Wanda,
    /// Uniform scores keyed by (seed, tensor name) (ablation).
    Random,
}

impl Scorer {
    /// Parse `snip`, `wanda` or `random`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "snip" => Some(Scorer::Snip),
            "wanda" => Some(Scorer::Wanda),
            "random" => Some(Scorer::Random),
            _ => None,
        }
    }

    /// The name recorded in score files.
    pub fn as_str(self) -> &'static str {
        match self {
            Scorer::Snip => "snip",
            Scorer::Wanda => "wanda",
            Scorer::Random => "random",
        }
    }
}

/// How to locate.
#[derive(Debug, Clone, Default)]
pub struct LocateOptions {
    /// The scorer.
    pub scorer: Scorer,
    /// Data reading and selection.
    pub data: DataOptions,
    /// Seed (sample subset, random scorer).
    pub seed: u64,
    /// Device.
    pub device: DeviceChoice,
    /// Replace an existing score file whose metadata does not match.
    pub overwrite: bool,
    /// Progress bar on stderr.
    pub progress: bool,
    /// Set to stop early (Ctrl-C): the run fails and leaves no score file.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Device memory budget in bytes: parameters are scored in layer groups that fit it
    /// (several passes over the samples). `None`: one pass with every gradient.
    pub max_memory: Option<u64>,
}

/// What locating did.
#[derive(Debug, Clone, Default)]
pub struct LocateReport {
    /// An existing score file answered the request.
    pub reused: bool,
    /// Samples used.
    pub samples: usize,
    /// Tokens processed.
    pub tokens: usize,
    /// Seconds in all (loading, scoring, writing).
    pub seconds: f64,
    /// Seconds of the forward/backward loop alone.
    pub scoring_seconds: f64,
    /// Data loading details.
    pub data: DataReport,
    /// Device used.
    pub device: String,
}

/// Lower-case hex of a digest.
fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::Data(path.to_path_buf(), e.to_string()))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// sha256 over every weight file's name, size, modification time and safetensors header: any
/// rewrite of the weights changes it, without reading the tensor data.
fn weights_fingerprint(model: &Path) -> Result<String> {
    let ckpt = Checkpoint::open(model)?;
    let mut h = Sha256::new();
    for (path, _) in ckpt.shard_metadata() {
        let meta =
            std::fs::metadata(path).map_err(|e| Error::Data(path.to_path_buf(), e.to_string()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.update(
            path.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update(meta.len().to_le_bytes());
        h.update(mtime.to_le_bytes());
    }
    for t in ckpt.tensors() {
        h.update(t.name.as_bytes());
        h.update(t.dtype.as_safetensors().as_bytes());
        h.update(format!("{:?}{}", t.shape, t.byte_len).as_bytes());
    }
    Ok(hex(&h.finalize()))
}

/// The record a score file for this request carries.
pub fn request(
    model: &Path,
    data: Option<&Path>,
    options: &LocateOptions,
) -> Result<ScoreMetadata> {
    let model_abs = model.canonicalize().unwrap_or_else(|_| model.to_path_buf());
    let config = model.join("config.json");
    let mut opts = BTreeMap::new();
    let d = &options.data;
    if let Some(f) = &d.prompt_field {
        opts.insert("prompt_field".into(), f.clone());
    }
    if let Some(f) = &d.answer_field {
        opts.insert("answer_field".into(), f.clone());
    }
    opts.insert(
        "selection".into(),
        if d.subset_seed.is_some() {
            "seeded_subset".into()
        } else {
            "first".into()
        },
    );
    if let Some(m) = d.max_answer_tokens {
        opts.insert("max_answer_tokens".into(), m.to_string());
    }
    if d.skip_bad {
        opts.insert("skip_bad".into(), "true".into());
    }
    if let Some(t) = &d.chat_template {
        opts.insert(
            "chat_template_sha256".into(),
            hex(&Sha256::digest(t.source.as_bytes())),
        );
    }
    // How scores are computed, versioned: a score file from an earlier rule is not reused.
    opts.insert("rules".into(), SCORING_RULES.into());
    // The same path and config can hold new weights (a model trained again): fingerprint them.
    opts.insert(
        "model_weights_fingerprint".into(),
        weights_fingerprint(model)?,
    );
    Ok(ScoreMetadata {
        scorer: options.scorer.as_str().into(),
        model: model_abs.display().to_string(),
        model_config_sha256: if config.exists() {
            sha256_file(&config)?
        } else {
            String::new()
        },
        dataset: data
            .map(|p| {
                p.canonicalize()
                    .unwrap_or_else(|_| p.to_path_buf())
                    .display()
                    .to_string()
            })
            .unwrap_or_default(),
        dataset_sha256: match data {
            Some(p) => sha256_file(p)?,
            None => String::new(),
        },
        samples: if options.scorer == Scorer::Random {
            0
        } else {
            d.samples as u64
        },
        seed: options.seed,
        options: opts,
        tool: String::new(),
    })
}

/// Random scores: uniform in [0, 1) from a generator keyed by (seed, tensor name) alone.
pub fn random_scores(seed: u64, name: &str, n: usize) -> Vec<f32> {
    let mut h = Sha256::new();
    h.update(b"led-merging/random-scores/v1\0");
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    let mut rng = ChaCha8Rng::from_seed(h.finalize().into());
    (0..n).map(|_| rng.random::<f32>()).collect()
}

fn write_scores(
    out: &Path,
    record: &ScoreMetadata,
    overwrite: bool,
    scores: Vec<(String, Vec<usize>, Vec<f32>)>,
) -> Result<()> {
    let specs = scores
        .iter()
        .map(|(n, s, _)| TensorSpec::new(n, Dtype::F32, s.clone()))
        .collect();
    let writer = CheckpointWriter::create_file(
        out,
        specs,
        WriterOptions {
            overwrite,
            metadata: record.to_map(),
            ..Default::default()
        },
    )?;
    for (name, _, values) in &scores {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Model(
                out.to_path_buf(),
                format!("score of tensor {name:?} is not finite at element {i}"),
            ));
        }
        writer.write_f32(name, values)?;
    }
    writer.finish()?;
    Ok(())
}

fn torch_err(path: &Path, tensor: &str) -> impl Fn(tch::TchError) -> Error {
    let (path, tensor) = (path.to_path_buf(), tensor.to_owned());
    move |error| Error::Torch {
        path: path.clone(),
        tensor: tensor.clone(),
        error,
    }
}

/// Total memory of CUDA device `n` in bytes, as `nvidia-smi` reports it (None without it).
fn gpu_total_memory(n: usize) -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.total",
            "--format=csv,noheader,nounits",
            "-i",
            &n.to_string(),
        ])
        .output()
        .ok()?;
    let mib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(mib << 20)
}

/// Split the parameters that need gradients into groups, each scored in its own pass over
/// the samples, so that weights + one group's gradients and accumulators fit `max_memory`
/// bytes. Units are the embedding, each decoder layer, and the final norm with the head, in
/// model order. Without a budget: one group (one pass, all gradients).
fn plan_groups(
    net: &Model,
    grad_names: &[String],
    max_memory: Option<u64>,
) -> Result<Vec<Vec<String>>> {
    let Some(budget) = max_memory else {
        return Ok(vec![grad_names.to_vec()]);
    };
    let elem = |n: &String| net.params[n].numel() as u64;
    let kind_bytes = if net.kind == Kind::Float { 4 } else { 2 };
    let weights: u64 = net.params.keys().map(|n| elem(n) * kind_bytes).sum();
    // Gradient (model dtype) + f32 accumulator per element; 10 % of the weights for activations.
    let available = budget.saturating_sub(weights + weights / 10);
    let unit_of = |n: &str| -> usize {
        if n.contains("embed_tokens") {
            0
        } else if let Some(rest) = n.strip_prefix("model.layers.") {
            1 + rest
                .split('.')
                .next()
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0)
        } else {
            usize::MAX
        }
    };
    let mut units: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for n in grad_names {
        units.entry(unit_of(n)).or_default().push(n.clone());
    }
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut used = 0u64;
    for names in units.into_values() {
        let cost: u64 = names.iter().map(|n| elem(n) * (kind_bytes + 4)).sum();
        if cost > available {
            return Err(Error::Model(
                net.path.clone(),
                format!(
                    "--max-memory {budget} bytes is too small: the weights take {weights} and {:?}… alone needs {cost} more",
                    names[0]
                ),
            ));
        }
        if groups.is_empty() || used + cost > available {
            groups.push(Vec::new());
            used = 0;
        }
        used += cost;
        groups.last_mut().expect("pushed").extend(names);
    }
    Ok(groups)
}

/// Score `model` on `data` (not needed for the random scorer) into the score file `out`.
/// A file at `out` whose metadata matches the request is reused.
pub fn locate(
    model: &Path,
    data: Option<&Path>,
    out: &Path,
    options: &LocateOptions,
) -> Result<LocateReport> {
    let record = request(model, data, options)?;
    if out.exists() {
        let existing = Checkpoint::open(out)?;
        match ScoreMetadata::from_map(out, existing.metadata()) {
            Ok(found) if found.same_request(&record) => {
                return Ok(LocateReport {
                    reused: true,
                    ..Default::default()
                });
            }
            _ if options.overwrite => {}
            _ => {
                return Err(Error::Io(led_io::Error::TargetExists {
                    path: out.to_path_buf(),
                }));
            }
        }
    }
    let started = Instant::now();
    if options.scorer == Scorer::Random {
        let ckpt = Checkpoint::open(model)?;
        let scores = ckpt
            .tensors()
            .iter()
            .filter(|t| t.dtype.is_float())
            .map(|t| {
                (
                    t.name.clone(),
                    t.shape.clone(),
                    random_scores(options.seed, &t.name, t.numel()),
                )
            })
            .collect();
        write_scores(out, &record, options.overwrite, scores)?;
        return Ok(LocateReport {
            seconds: started.elapsed().as_secs_f64(),
            device: "none".into(),
            ..Default::default()
        });
    }
    let data = data.ok_or_else(|| {
        Error::Data(
            PathBuf::from("<none>"),
            format!("the {} scorer needs a dataset", options.scorer.as_str()),
        )
    })?;
    let tokenizer = load_tokenizer(model)?;
    let mut data_opts = options.data.clone();
    if data_opts.subset_seed.is_some() {
        data_opts.subset_seed = Some(options.seed);
    }
    let (samples, data_report) = load_samples(data, &tokenizer, &data_opts)?;
    let device = options.device.resolve()?;
    let kind = if device.is_cuda() {
        Kind::BFloat16
    } else {
        Kind::Float
    };
    let net = Model::load(model, device, kind)?;
    let wanda = options.scorer == Scorer::Wanda;
    // SNIP needs every gradient; Wanda only the embedding's and the biases' (scored by SNIP).
    let grad_names: Vec<String> = net
        .names()
        .filter(|n| !wanda || n.contains("embed_tokens") || n.ends_with(".bias"))
        .cloned()
        .collect();
    // On a GPU without an explicit budget: 90 % of the device's memory, so that layer groups
    // kick in only when one pass with every gradient would not fit.
    let budget = options.max_memory.or_else(|| match device {
        tch::Device::Cuda(n) => gpu_total_memory(n).map(|total| total / 10 * 9),
        _ => None,
    });
    let groups = plan_groups(&net, &grad_names, budget)?;
    tracing::info!(
        "{} parameter group(s), each one pass over the samples",
        groups.len()
    );
    let mut acts = Activations::default();
    let bar = if options.progress {
        ProgressBar::new((samples.len() * groups.len()) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} sample passes {per_sec} {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message(options.scorer.as_str());
    let mut tokens = 0usize;
    let mut host_scores: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let loop_start = Instant::now();
    for (gi, group) in groups.iter().enumerate() {
        for n in &grad_names {
            let _ = net.params[n].set_requires_grad(group.contains(n));
        }
        let inputs: Vec<&Tensor> = group.iter().map(|n| &net.params[n]).collect();
        let mut acc: Vec<Tensor> = inputs
            .iter()
            .map(|p| Tensor::zeros(p.size(), (Kind::Float, device)))
            .collect();
        for s in &samples {
            if options
                .interrupt
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
            {
                return Err(Error::Interrupted);
            }
            // Wanda's activation norms are gathered once, in the first group's pass.
            let record = wanda && gi == 0;
            if record {
                let mut mask = vec![0f32; s.ids.len()];
                mask[s.prompt_len..].iter_mut().for_each(|m| *m = 1.0);
                acts.mask = Some(Tensor::from_slice(&mask).to_device(device));
            }
            let loss = net.answer_loss(&s.ids, s.prompt_len, record.then_some(&mut acts))?;
            // Gradients of this group only, returned rather than accumulated into `.grad`, so
            // nothing but this group's gradients is ever held.
            let grads = Tensor::run_backward(&[&loss], &inputs, false, false);
            tch::no_grad(|| {
                for (a, g) in acc.iter_mut().zip(&grads) {
                    let _ = a.f_add_(&g.abs().to_kind(Kind::Float));
                }
            });
            if gi == 0 {
                tokens += s.ids.len();
            }
            bar.inc(1);
        }
        // Scores of this group now, on the host: device memory holds one group at a time.
        tch::no_grad(|| -> Result<()> {
            for (name, g) in group.iter().zip(&acc) {
                let score = net.params[name].abs().to_kind(Kind::Float) * g;
                host_scores.insert(
                    name.clone(),
                    to_f32_vec(&score).map_err(torch_err(&net.path, name))?,
                );
            }
            Ok(())
        })?;
    }
    bar.finish_and_clear();
    let scoring_seconds = loop_start.elapsed().as_secs_f64();
    let mut scores = Vec::with_capacity(net.params.len());
    tch::no_grad(|| -> Result<()> {
        for (name, w) in &net.params {
            let values = match host_scores.remove(name) {
                Some(v) => v,
                None => {
                    // Wanda: Linear [out, in] × input norms broadcast over rows; RMSNorm [h]: elementwise.
                    let sumsq = acts.sums.get(name).ok_or_else(|| {
                        Error::Model(
                            net.path.clone(),
                            format!("no score for tensor {name:?}: it saw no input"),
                        )
                    })?;
                    let s = w.abs().to_kind(Kind::Float) * sumsq.sqrt();
                    to_f32_vec(&s).map_err(torch_err(&net.path, name))?
                }
            };
            let shape = w.size().iter().map(|&d| d as usize).collect();
            scores.push((name.clone(), shape, values));
        }
        Ok(())
    })?;
    write_scores(out, &record, options.overwrite, scores)?;
    Ok(LocateReport {
        reused: false,
        samples: samples.len(),
        tokens,
        seconds: started.elapsed().as_secs_f64(),
        scoring_seconds,
        data: data_report,
        device: format!("{device:?}"),
    })
}
