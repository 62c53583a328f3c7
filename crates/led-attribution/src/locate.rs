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

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::Data(path.to_path_buf(), e.to_string()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
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
    for n in &grad_names {
        let _ = net.params[n].set_requires_grad(true);
    }
    let mut grads: BTreeMap<&str, Tensor> = grad_names
        .iter()
        .map(|n| {
            (
                n.as_str(),
                Tensor::zeros(net.params[n].size(), (Kind::Float, device)),
            )
        })
        .collect();
    let mut acts = Activations::default();
    let bar = if options.progress {
        ProgressBar::new(samples.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} samples {per_sec} {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message(options.scorer.as_str());
    let mut tokens = 0usize;
    let loop_start = Instant::now();
    for s in &samples {
        if options
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Err(Error::Interrupted);
        }
        if wanda {
            let mut mask = vec![0f32; s.ids.len()];
            mask[s.prompt_len..].iter_mut().for_each(|m| *m = 1.0);
            acts.mask = Some(Tensor::from_slice(&mask).to_device(device));
        }
        let loss = net.answer_loss(&s.ids, s.prompt_len, wanda.then_some(&mut acts))?;
        loss.backward();
        tch::no_grad(|| {
            for (name, acc) in grads.iter_mut() {
                let p = &net.params[*name];
                let mut g = p.grad();
                if g.defined() {
                    let _ = acc.f_add_(&g.abs().to_kind(Kind::Float));
                    // The gradient shares the parameter's grad storage: zero it in place.
                    let _ = g.f_zero_();
                }
            }
        });
        tokens += s.ids.len();
        bar.inc(1);
    }
    bar.finish_and_clear();
    let scoring_seconds = loop_start.elapsed().as_secs_f64();
    let mut scores = Vec::with_capacity(net.params.len());
    tch::no_grad(|| -> Result<()> {
        for (name, w) in &net.params {
            let absw = w.abs().to_kind(Kind::Float);
            let s = if let Some(g) = grads.get(name.as_str()) {
                absw * g
            } else if let Some(sumsq) = acts.sums.get(name) {
                // Linear [out, in]: broadcast the input norms over rows; RMSNorm [h]: elementwise.
                absw * sumsq.sqrt()
            } else {
                return Err(Error::Model(
                    net.path.clone(),
                    format!("no score for tensor {name:?}: it saw no input"),
                ));
            };
            let values = to_f32_vec(&s).map_err(torch_err(&net.path, name))?;
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
