//! Locate (docs/how-led-works.md, "Locate"): score every parameter of a model on a task dataset with SNIP (the method),
//! Wanda or random scores (the ablations), and write a score checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use led_merging_io::{Checkpoint, Dtype, ScoreMetadata, TensorSpec};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use crate::data::{DataOptions, DataReport, load_samples, load_tokenizer};
use crate::model::{Activations, Model};
use crate::score_file::{ScoreSink, score_writer};
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
    /// Σ_k |∇_W L_k|: SNIP without the |W| factor (ablation: how much of an election the
    /// weights' magnitudes decide).
    Grad,
}

impl Scorer {
    /// Parse `snip`, `wanda`, `random` or `grad`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "snip" => Some(Scorer::Snip),
            "wanda" => Some(Scorer::Wanda),
            "random" => Some(Scorer::Random),
            "grad" => Some(Scorer::Grad),
            _ => None,
        }
    }

    /// The name recorded in score files.
    pub fn as_str(self) -> &'static str {
        match self {
            Scorer::Snip => "snip",
            Scorer::Wanda => "wanda",
            Scorer::Random => "random",
            Scorer::Grad => "grad",
        }
    }
}

/// The dtype of the scores in a score file (`--score-dtype`, docs/formats.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoreDtype {
    /// f32: the default; what the elections were measured on.
    #[default]
    F32,
    /// bfloat16 (as the authors store scores): half the bytes, scores rounded to 8 significant
    /// bits (round to nearest even), so more of them tie at a tensor's threshold.
    Bf16,
}

/// The score-file option that records a bf16 score file (absent for f32).
pub const SCORE_DTYPE_OPTION: &str = "score_dtype";

impl ScoreDtype {
    /// `f32` or `bf16`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "f32" | "float32" => Some(Self::F32),
            "bf16" | "bfloat16" => Some(Self::Bf16),
            _ => None,
        }
    }

    /// The tensor dtype written.
    pub fn dtype(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::Bf16 => Dtype::BF16,
        }
    }

    /// The dtype a score file's record asks for (f32 unless it says bf16).
    pub fn of_record(record: &ScoreMetadata) -> Self {
        match record.options.get(SCORE_DTYPE_OPTION).map(String::as_str) {
            Some("bf16") => Self::Bf16,
            _ => Self::F32,
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
    /// Progress on stderr: a bar on a terminal, else a line every 5 s (`led_merging_io::progress`).
    pub progress: bool,
    /// Set to stop early (Ctrl-C): the run fails and leaves no score file.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Further devices: with any, the model's layers are placed over `device` and these in
    /// contiguous ranges sized from each device's memory ([`crate::placement`]), in one pass.
    pub more_devices: Vec<DeviceChoice>,
    /// Score only shard `I` of `N` (`Some((I, N))`): the I-th of N contiguous, disjoint blocks of
    /// the selected samples, into a partial score file that `led scores sum`
    /// ([`crate::shards::sum`]) combines with the others into what one run writes.
    pub shard: Option<(usize, usize)>,
    /// Device memory budget in bytes: parameters are scored in layer groups that fit it
    /// (several passes over the samples). `None`: on CUDA, 90 % of the device's free memory as
    /// CUDA reports it; on the CPU, one pass with every gradient.
    pub max_memory: Option<u64>,
    /// The dtype of the scores written. A shard's part keeps f32 (its partial sums are added
    /// by `led scores sum`, which then writes this dtype, recorded in the parts).
    pub score_dtype: ScoreDtype,
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
    /// Seconds of the forward/backward passes alone (device work finished), without loading
    /// the model or forming and writing scores.
    pub scoring_seconds: f64,
    /// Seconds loading the model onto the device.
    pub load_seconds: f64,
    /// Seconds the scores added after the forward/backward passes: forming them, copying them to
    /// the host, and waiting for the writer thread to write what was left.
    pub write_seconds: f64,
    /// Seconds the writer thread spent writing scores, mostly while the model computed (or
    /// formed the next tensor's scores).
    pub writer_seconds: f64,
    /// Of `write_seconds`, the wait for the writer thread once everything was computed.
    pub drain_seconds: f64,
    /// Data loading details.
    pub data: DataReport,
    /// Device used.
    pub device: String,
    /// Parameter groups, each scored in its own pass over the samples.
    pub groups: usize,
    /// The device memory the run was planned to need at most, in bytes
    /// ([`MemoryPlan::peak`]).
    pub planned_peak: u64,
    /// The memory budget the groups were planned for (`None`: one pass, no budget).
    pub budget: Option<u64>,
}

/// Lower-case hex of a digest.
fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::Data(path.to_path_buf(), e.to_string()))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// The record a score file for this request carries.
pub fn request(
    model: &Path,
    data: Option<&Path>,
    options: &LocateOptions,
) -> Result<ScoreMetadata> {
    let model_abs = model.canonicalize().unwrap_or_else(|_| model.to_path_buf());
    let config = led_merging_io::model_dir(model).join("config.json");
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
    if let Some((i, n)) = options.shard {
        opts.insert(crate::shards::SHARD_OPTION.into(), format!("{i}/{n}"));
    }
    // Scores stored rounded are another file: recorded, so an f32 request never reuses one.
    if options.score_dtype == ScoreDtype::Bf16 {
        opts.insert(SCORE_DTYPE_OPTION.into(), "bf16".into());
    }
    // Where and in which precision: rounding differs between modes (random scores do not).
    if options.scorer != Scorer::Random {
        let device = compute_device(&devices(options)?);
        opts.insert("compute".into(), crate::compute_mode(device).into());
    }
    // The same path and config can hold new weights (a model trained again): fingerprint them.
    opts.insert(
        led_merging_io::meta::WEIGHTS_FINGERPRINT_OPTION.into(),
        led_merging_io::weights_fingerprint(&Checkpoint::open(model)?)?,
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

fn torch_err(path: &Path, tensor: &str) -> impl Fn(tch::TchError) -> Error {
    let (path, tensor) = (path.to_path_buf(), tensor.to_owned());
    move |error| Error::Torch {
        path: path.clone(),
        tensor: tensor.clone(),
        error,
    }
}

/// Free and total memory of CUDA device `n` in bytes, from the CUDA runtime libtorch loaded
/// (`cudaMemGetInfo`, as `torch.cuda.mem_get_info`): `n` is the index CUDA itself uses, after
/// `CUDA_VISIBLE_DEVICES`, and a MIG slice reports its own memory.
#[cfg(unix)]
fn cuda_memory(n: usize) -> std::result::Result<(u64, u64), String> {
    type GetDevice = unsafe extern "C" fn(*mut i32) -> i32;
    type SetDevice = unsafe extern "C" fn(i32) -> i32;
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> i32;
    let sym = |name: &std::ffi::CStr| {
        // SAFETY: dlsym with a NUL-terminated name; a null result is handled below.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        (!p.is_null())
            .then_some(p)
            .ok_or_else(|| format!("{name:?} not found: libtorch's CUDA runtime is not loaded"))
    };
    // SAFETY: the symbols are the CUDA runtime's functions of these C signatures.
    unsafe {
        let get: GetDevice = std::mem::transmute(sym(c"cudaGetDevice")?);
        let set: SetDevice = std::mem::transmute(sym(c"cudaSetDevice")?);
        let info: MemGetInfo = std::mem::transmute(sym(c"cudaMemGetInfo")?);
        let mut previous = 0i32;
        let call = |what: &str, code: i32| match code {
            0 => Ok(()),
            e => Err(format!("{what} failed with CUDA error {e}")),
        };
        call("cudaGetDevice", get(&mut previous))?;
        call("cudaSetDevice", set(n as i32))?;
        let (mut free, mut total) = (0usize, 0usize);
        let got = call("cudaMemGetInfo", info(&mut free, &mut total));
        call("cudaSetDevice", set(previous))?;
        got?;
        Ok((free as u64, total as u64))
    }
}

#[cfg(not(unix))]
fn cuda_memory(_n: usize) -> std::result::Result<(u64, u64), String> {
    Err("reading CUDA memory is implemented on Unix only".into())
}

/// The device memory a Locate run needs besides its gradients, in bytes, and how the
/// parameters fall into groups that fit a budget (docs/cli.md, "Memory").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The model's weights in the compute dtype.
    pub weights: u64,
    /// Activations kept for the backward pass of the longest sample, the head's logits over
    /// the longest answer (tokens × vocabulary) included.
    pub activations: u64,
    /// The largest temporary: an f32 copy of the largest parameter (Wanda's scores of a tensor;
    /// it also covers SNIP's |W| and a tied embedding's two gradients summed, in the compute
    /// dtype).
    pub temporary: u64,
    /// Parameter names per group, in model order; each group is one pass over the samples.
    pub groups: Vec<Vec<String>>,
    /// Gradients and f32 accumulators of the largest group.
    pub largest_group: u64,
}

impl MemoryPlan {
    /// The device memory the run is planned to need at most: weights, activations, the
    /// temporary and the largest group.
    pub fn peak(&self) -> u64 {
        self.weights + self.activations + self.temporary + self.largest_group
    }

    /// Plan a run over parameters `params` (name, element count) of a model with `config`,
    /// weights in `kind`, gradients needed for `grad_names`, samples of at most `max_tokens`
    /// tokens and `max_answer` answer tokens, under `budget` bytes (`None`: one group).
    pub fn new(
        config: &crate::ModelConfig,
        params: &[(String, u64)],
        kind: Kind,
        grad_names: &[String],
        (max_tokens, max_answer): (usize, usize),
        budget: Option<u64>,
    ) -> std::result::Result<Self, String> {
        let b = element_bytes(kind);
        let numel: BTreeMap<&str, u64> = params.iter().map(|(n, e)| (n.as_str(), *e)).collect();
        let weights: u64 = numel.values().map(|e| e * b).sum();
        let (h, i) = (config.hidden_size as u64, config.intermediate_size as u64);
        // Per token and layer: the inputs and outputs autograd keeps (norms in f32, q/k/v and
        // their rotations, attention output, gate/up/SwiGLU), an upper estimate; per answer
        // token: logits in the compute dtype, their f32 log-softmax and its gradient.
        let per_layer = b * (12 * h + 6 * i) + 16 * h;
        let activations = max_tokens as u64 * config.num_layers as u64 * per_layer
            + max_answer as u64 * config.vocab_size as u64 * (b + 12);
        let temporary = numel.values().max().copied().unwrap_or(0) * 4;
        // The gradient (compute dtype) and its f32 accumulator.
        let cost = |names: &[String]| -> u64 {
            names
                .iter()
                .map(|n| numel.get(n.as_str()).copied().unwrap_or(0) * (b + 4))
                .sum()
        };
        let mut plan = MemoryPlan {
            weights,
            activations,
            temporary,
            groups: vec![],
            largest_group: 0,
        };
        let Some(budget) = budget else {
            plan.groups = vec![grad_names.to_vec()];
            plan.largest_group = cost(grad_names);
            return Ok(plan);
        };
        let fixed = weights + activations + temporary;
        let available = budget.saturating_sub(fixed);
        // Units: the embedding, each decoder layer, and the final norm with the head.
        let mut units: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for n in grad_names {
            units
                .entry(crate::placement::unit_of(n, config.num_layers))
                .or_default()
                .push(n.clone());
        }
        let mut used = 0u64;
        for names in units.into_values() {
            let cost = cost(&names);
            if cost > available {
                return Err(format!(
                    "--max-memory {budget} bytes is too small: weights {weights}, activations \
                     {activations}, largest temporary {temporary}, and {:?}… alone needs {cost} \
                     more for its gradients and accumulators",
                    names[0]
                ));
            }
            if plan.groups.is_empty() || used + cost > available {
                plan.groups.push(Vec::new());
                used = 0;
            }
            used += cost;
            plan.largest_group = plan.largest_group.max(used);
            plan.groups.last_mut().expect("pushed").extend(names);
        }
        Ok(plan)
    }
}

/// Bytes of one element in the compute dtype `kind` (f32 on the CPU, bf16 on CUDA).
fn element_bytes(kind: Kind) -> u64 {
    if kind == Kind::Float { 4 } else { 2 }
}

/// The device whose compute mode a run over `devices` has: the first GPU, else the first
/// device (bf16 as soon as one device is a GPU; [`crate::compute_mode`]).
fn compute_device(devices: &[tch::Device]) -> tch::Device {
    devices
        .iter()
        .copied()
        .find(|d| d.is_cuda())
        .unwrap_or(devices[0])
}

/// Every device of a run: `device`, then `more_devices`.
fn devices(options: &LocateOptions) -> Result<Vec<tch::Device>> {
    std::iter::once(options.device)
        .chain(options.more_devices.iter().copied())
        .map(DeviceChoice::resolve)
        .collect()
}

/// Memory budget of `device` in bytes: `max_memory`, else 90 % of its free memory (CUDA's
/// count for a GPU, `MemAvailable` for the CPU). `None` for the CPU when it cannot be read.
fn budget_of(device: tch::Device, max_memory: Option<u64>) -> Result<Option<u64>> {
    if let Some(b) = max_memory {
        return Ok(Some(b));
    }
    match device {
        tch::Device::Cuda(n) => {
            let (free, _) = cuda_memory(n).map_err(|why| {
                Error::Device(
                    format!("cuda:{n}"),
                    format!("cannot read its free memory ({why}): pass --max-memory"),
                )
            })?;
            Ok(Some(free / 10 * 9))
        }
        _ => Ok(std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024 / 10 * 9)
        })),
    }
}

/// The typed error of a failed step while scoring `group` on `device`: out-of-memory is named
/// as such (with the budget to shrink), anything else keeps libtorch's message.
fn step_error(e: Error, device: tch::Device, group: &[String], budget: Option<u64>) -> Error {
    match e {
        Error::Torch { error, .. } if error.to_string().contains("out of memory") => {
            Error::OutOfMemory {
                device: format!("{device:?}"),
                group: match group {
                    [] => "nothing".into(),
                    [one] => one.clone(),
                    [first, .., last] => format!("{first} … {last}"),
                },
                budget: budget.map_or("unset".into(), |b| format!("{b} bytes")),
                detail: error.to_string(),
            }
        }
        e => e,
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
    if reusable(out, &record, options)? {
        return Ok(LocateReport {
            reused: true,
            ..Default::default()
        });
    }
    let started = Instant::now();
    if options.scorer == Scorer::Random {
        return locate_random(model, out, &record, options, started);
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
    let samples = match options.shard {
        Some((i, n)) => crate::shards::block(&samples, i, n)
            .map_err(|why| Error::Data(data.to_path_buf(), why))?,
        None => samples,
    };
    let all_devices = devices(options)?;
    let device = all_devices[0];
    let kind = crate::compute_kind(compute_device(&all_devices));
    // On CUDA without a budget: 90 % of the device's free memory before the weights are loaded,
    // so that layer groups kick in only when one pass with every gradient would not fit.
    let budget = match (options.max_memory, device) {
        (None, tch::Device::Cpu) => None,
        _ => budget_of(device, options.max_memory)?,
    };
    let placement = placement(model, &all_devices, kind, options)?;
    let load_start = Instant::now();
    let net = match &placement {
        Some((p, layers)) => Model::load_placed(model, kind, |n| p.device_of(n, *layers))?,
        None => Model::load(model, device, kind)?,
    };
    let load_seconds = load_start.elapsed().as_secs_f64();
    let wanda = options.scorer == Scorer::Wanda;
    let grad_names = gradients_needed(&net, wanda);
    let plan = memory_plan(
        &net,
        kind,
        &grad_names,
        &samples,
        // Over several devices the placement sized the run: one pass.
        if placement.is_some() { None } else { budget },
    )?;
    let planned_peak = plan.peak();
    let groups = plan.groups;
    tracing::info!(
        "{} parameter group(s), each one pass over the samples; planned peak {planned_peak} bytes",
        groups.len()
    );
    // A Wanda shard keeps its sums of squares instead of scores (summed, then finalised, by
    // `led scores sum`).
    let partial_wanda = wanda && options.shard.is_some();
    let specs = score_specs(&net, &grad_names, partial_wanda, written_dtype(options));
    let mut pass = Pass {
        net: &net,
        samples: &samples,
        options,
        devices: &all_devices,
        budget,
        sink: ScoreSink::new(score_writer(out, &record, options.overwrite, specs)?, out),
        wanda,
        bar: led_merging_io::progress::bar(
            (samples.len() * groups.len()) as u64,
            options.scorer.as_str(),
            "{pos}/{len} sample passes, {per_sec}",
            options.progress,
        ),
    };
    let mut acts = Activations::default();
    let mut times = Times::default();
    for (gi, group) in groups.iter().enumerate() {
        pass.score_group(gi, group, &grad_names, &mut acts, &mut times)?;
    }
    led_merging_io::progress::finish(&pass.bar);
    let write_start = Instant::now();
    pass.write_wanda(&grad_names, &acts, partial_wanda)?;
    let sink = pass.sink.finish()?;
    times.write_seconds += write_start.elapsed().as_secs_f64();
    Ok(LocateReport {
        reused: false,
        samples: samples.len(),
        tokens: times.tokens,
        seconds: started.elapsed().as_secs_f64(),
        scoring_seconds: times.scoring_seconds,
        load_seconds,
        write_seconds: times.write_seconds,
        writer_seconds: sink.busy,
        drain_seconds: sink.drain,
        data: data_report,
        device: match &placement {
            Some((p, _)) => p.describe(),
            None => format!("{device:?}"),
        },
        groups: groups.len(),
        planned_peak,
        budget,
    })
}

/// The dtype of the scores written: a shard's part keeps f32 (its sums are added later).
fn written_dtype(options: &LocateOptions) -> Dtype {
    match options.shard {
        Some(_) => Dtype::F32,
        None => options.score_dtype.dtype(),
    }
}

/// The parameters whose gradients the scorer needs: SNIP (and grad) every one; Wanda only the
/// embedding's and the biases' (scored by SNIP).
fn gradients_needed(net: &Model, wanda: bool) -> Vec<String> {
    net.names()
        .filter(|n| !wanda || n.contains("embed_tokens") || n.ends_with(".bias"))
        .cloned()
        .collect()
}

/// Whether a score file at `out` already answers `record`; an error when a different file is
/// there and `overwrite` is off.
fn reusable(out: &Path, record: &ScoreMetadata, options: &LocateOptions) -> Result<bool> {
    if !out.exists() {
        return Ok(false);
    }
    let existing = Checkpoint::open(out)?;
    match ScoreMetadata::from_map(out, existing.metadata()) {
        Ok(found) if found.same_request(record) => Ok(true),
        _ if options.overwrite => Ok(false),
        Ok(found) => Err(Error::ScoreFileMismatch {
            path: out.to_path_buf(),
            differences: found.differences(record).join("; "),
        }),
        Err(_) => Err(Error::Io(led_merging_io::Error::TargetExists {
            path: out.to_path_buf(),
        })),
    }
}

/// The random scorer: uniform scores keyed by (seed, tensor name), no model run.
fn locate_random(
    model: &Path,
    out: &Path,
    record: &ScoreMetadata,
    options: &LocateOptions,
    started: Instant,
) -> Result<LocateReport> {
    if options.shard.is_some() {
        return Err(Error::Data(
            out.to_path_buf(),
            "--shard splits samples; the random scorer uses none: run it once".into(),
        ));
    }
    let ckpt = Checkpoint::open(model)?;
    let floats: Vec<_> = ckpt
        .tensors()
        .iter()
        .filter(|t| t.dtype.is_float())
        .collect();
    let specs = floats
        .iter()
        .map(|t| TensorSpec::new(&t.name, options.score_dtype.dtype(), t.shape.clone()))
        .collect();
    let mut sink = ScoreSink::new(score_writer(out, record, options.overwrite, specs)?, out);
    for t in floats {
        sink.send(&t.name, random_scores(options.seed, &t.name, t.numel()))?;
    }
    let times = sink.finish()?;
    Ok(LocateReport {
        // No compute to overlap: what the scores add is the wait for the writer.
        write_seconds: times.drain,
        writer_seconds: times.busy,
        drain_seconds: times.drain,
        seconds: started.elapsed().as_secs_f64(),
        device: "none".into(),
        ..Default::default()
    })
}

/// Several devices: contiguous layer ranges sized from each one's budget, one pass (with the
/// model's layer count). `None` on one device.
fn placement(
    model: &Path,
    all_devices: &[tch::Device],
    kind: Kind,
    options: &LocateOptions,
) -> Result<Option<(crate::placement::Placement, usize)>> {
    if all_devices.len() <= 1 {
        return Ok(None);
    }
    let config = crate::ModelConfig::from_dir(model)?;
    let b = element_bytes(kind);
    let mut costs = vec![0u64; config.num_layers + 2];
    for (name, shape) in Model::parameter_shapes(&config) {
        let numel: i64 = shape.iter().product();
        costs[crate::placement::unit_of(&name, config.num_layers)] += numel as u64 * (2 * b + 4);
    }
    let budgets = all_devices
        .iter()
        .map(|&d| Ok(budget_of(d, options.max_memory)?.unwrap_or(u64::MAX / 64)))
        .collect::<Result<Vec<_>>>()?;
    let p = crate::placement::Placement::new(all_devices, &budgets, &costs)
        .map_err(|why| Error::Model(model.to_path_buf(), why))?;
    tracing::info!("placement: {}", p.describe());
    Ok(Some((p, config.num_layers)))
}

/// The memory plan of scoring `net` on `samples` within `budget`.
fn memory_plan(
    net: &Model,
    kind: Kind,
    grad_names: &[String],
    samples: &[crate::data::Sample],
    budget: Option<u64>,
) -> Result<MemoryPlan> {
    let sizes: Vec<(String, u64)> = net
        .params
        .iter()
        .map(|(n, t)| (n.clone(), t.numel() as u64))
        .collect();
    let longest = samples.iter().map(|s| s.ids.len()).max().unwrap_or(0);
    let longest_answer = samples
        .iter()
        .map(|s| s.ids.len() - s.prompt_len)
        .max()
        .unwrap_or(0);
    MemoryPlan::new(
        &net.config,
        &sizes,
        kind,
        grad_names,
        (longest, longest_answer),
        budget,
    )
    .map_err(|why| Error::Model(net.path.clone(), why))
}

/// The score file's tensors: one f32 score per parameter, or, for a Wanda shard, the sums of
/// squares of the inputs of the tensors Wanda scores.
fn score_specs(
    net: &Model,
    grad_names: &[String],
    partial_wanda: bool,
    dtype: Dtype,
) -> Vec<TensorSpec> {
    net.params
        .iter()
        .map(|(n, t)| {
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            if partial_wanda && !grad_names.contains(n) {
                let last = shape.last().copied().unwrap_or(1);
                TensorSpec::new(crate::shards::sumsq_name(n), Dtype::F32, vec![last])
            } else {
                TensorSpec::new(n, dtype, shape)
            }
        })
        .collect()
}

/// Time spent, and tokens seen, over the passes.
#[derive(Default)]
struct Times {
    tokens: usize,
    scoring_seconds: f64,
    write_seconds: f64,
}

/// One scoring run: the model, its samples and the score file being written.
struct Pass<'a> {
    net: &'a Model,
    samples: &'a [crate::data::Sample],
    options: &'a LocateOptions,
    devices: &'a [tch::Device],
    budget: Option<u64>,
    /// The score file, written by its own thread while the next group computes.
    sink: ScoreSink,
    wanda: bool,
    bar: indicatif::ProgressBar,
}

impl Pass<'_> {
    /// CUDA runs asynchronously: a timer stops after the device's queued work has finished.
    fn finished(&self) -> Instant {
        for d in self.devices {
            if let tch::Device::Cuda(n) = d {
                tch::Cuda::synchronize(*n as i64);
            }
        }
        Instant::now()
    }

    /// One pass over the samples with gradients for `group` only (group `gi`), whose scores
    /// then go to the file: device memory holds one group's gradients at a time.
    fn score_group(
        &mut self,
        gi: usize,
        group: &[String],
        grad_names: &[String],
        acts: &mut Activations,
        times: &mut Times,
    ) -> Result<()> {
        let (net, device) = (self.net, self.devices[0]);
        let fail = |e: Error| step_error(e, device, group, self.budget);
        for n in grad_names {
            drop(
                net.params[n]
                    .f_set_requires_grad(group.contains(n))
                    .map_err(torch_err(&net.path, n))?,
            );
        }
        let inputs: Vec<&Tensor> = group.iter().map(|n| &net.params[n]).collect();
        let mut acc = Vec::with_capacity(inputs.len());
        for (p, name) in inputs.iter().zip(group) {
            acc.push(
                Tensor::f_zeros(p.size(), (Kind::Float, p.device()))
                    .map_err(torch_err(&net.path, name))
                    .map_err(fail)?,
            );
        }
        let pass_start = self.finished();
        for s in self.samples {
            if self
                .options
                .interrupt
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
            {
                return Err(Error::Interrupted);
            }
            // Wanda's activation norms are gathered once, in the first group's pass.
            let record = self.wanda && gi == 0;
            if record {
                let mut mask = vec![0f32; s.ids.len()];
                mask[s.prompt_len..].iter_mut().for_each(|m| *m = 1.0);
                acts.mask = Some(
                    Tensor::f_from_slice(&mask)
                        .and_then(|m| m.f_to_device(device))
                        .map_err(torch_err(&net.path, "answer mask"))?,
                );
            }
            let loss = net
                .answer_loss(&s.ids, s.prompt_len, record.then_some(&mut *acts))
                .map_err(fail)?;
            // Gradients of this group only, returned rather than accumulated into `.grad`, so
            // nothing but this group's gradients is ever held. |g| in place: no temporary.
            let grads = Tensor::f_run_backward(&[&loss], &inputs, false, false)
                .map_err(torch_err(&net.path, &group[0]))
                .map_err(fail)?;
            tch::no_grad(|| -> Result<()> {
                for ((a, mut g), name) in acc.iter_mut().zip(grads).zip(group) {
                    drop(
                        g.f_abs_()
                            .and_then(|g| a.f_add_(&g))
                            .map_err(torch_err(&net.path, name))?,
                    );
                }
                Ok(())
            })
            .map_err(fail)?;
            if gi == 0 {
                times.tokens += s.ids.len();
            }
            self.bar.inc(1);
        }
        let write_start = self.finished();
        times.scoring_seconds += (write_start - pass_start).as_secs_f64();
        for (name, mut g) in group.iter().zip(acc) {
            // |W| ⊙ Σ|∇W| into the f32 accumulator; the only temporary is |W|. Copied to the
            // host and queued: the writer thread writes it while the next one is formed (and
            // the next group computes).
            let values = tch::no_grad(|| {
                if self.options.scorer == Scorer::Grad {
                    return to_f32_vec(&g);
                }
                net.params[name]
                    .f_abs()
                    .and_then(|w| g.f_mul_(&w))
                    .and_then(|score| to_f32_vec(&score))
            })
            .map_err(torch_err(&net.path, name))
            .map_err(fail)?;
            self.sink.send(name, values)?;
        }
        times.write_seconds += write_start.elapsed().as_secs_f64();
        Ok(())
    }

    /// Wanda's scores (or, for a shard, its sums of squares) of the tensors scored by their
    /// inputs' norms, into the file.
    fn write_wanda(
        &mut self,
        grad_names: &[String],
        acts: &Activations,
        partial_wanda: bool,
    ) -> Result<()> {
        let net = self.net;
        // Wanda: Linear [out, in] × input norms broadcast over rows; RMSNorm [h]: elementwise.
        for (name, w) in net.params.iter().filter(|(n, _)| !grad_names.contains(n)) {
            let sumsq = acts.sums.get(name).ok_or_else(|| {
                Error::Model(
                    net.path.clone(),
                    format!("no score for tensor {name:?}: it saw no input"),
                )
            })?;
            if partial_wanda {
                let values = to_f32_vec(sumsq).map_err(torch_err(&net.path, name))?;
                self.sink.send(&crate::shards::sumsq_name(name), values)?;
                continue;
            }
            // One f32 tensor, worked in place: the plan's temporary.
            let values = tch::no_grad(|| {
                w.f_to_kind(Kind::Float)
                    .and_then(|mut a| {
                        drop(a.f_abs_()?);
                        a.f_mul_(&sumsq.f_sqrt()?)
                    })
                    .and_then(|s| to_f32_vec(&s))
            })
            .map_err(torch_err(&net.path, name))?;
            self.sink.send(name, values)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Llama-3-8B's widths (vocabulary 128256, hidden 4096, intermediate 14336, 32 layers,
    /// 8 KV heads), bf16, samples of 256 tokens with 128 answer tokens: the plan's numbers
    /// worked by hand, and the groups an 80 GB budget gives.
    #[test]
    fn memory_plan_of_an_8b_model() {
        let config = crate::ModelConfig::parse(
            r#"{"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
                "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                "num_key_value_heads": 8}"#,
            Path::new("config.json"),
        )
        .unwrap();
        let params: Vec<(String, u64)> = Model::parameter_shapes(&config)
            .into_iter()
            .map(|(n, s)| (n, s.iter().product::<i64>() as u64))
            .collect();
        let elements: u64 = params.iter().map(|(_, e)| e).sum();
        assert_eq!(elements, 8_030_261_248, "Llama-3-8B's parameter count");
        let names: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
        let plan =
            |budget| MemoryPlan::new(&config, &params, Kind::BFloat16, &names, (256, 128), budget);
        let p = plan(None).unwrap();
        assert_eq!(p.weights, 2 * elements);
        // 256 tokens × 32 layers × (2 × (12·4096 + 6·14336) + 16·4096) bytes, plus
        // 128 answer tokens × 128256 × (2 + 12) bytes of logits, log-softmax and its gradient.
        let per_layer = 2 * (12 * 4096 + 6 * 14336) + 16 * 4096;
        assert_eq!(per_layer, 335_872);
        assert_eq!(p.activations, 256 * 32 * per_layer + 128 * 128_256 * 14);
        // The largest tensor: the embedding (or the head), 128256 × 4096, in f32.
        assert_eq!(p.temporary, 128_256 * 4096 * 4);
        assert_eq!(p.groups, vec![names.clone()]);
        assert_eq!(p.largest_group, 6 * elements);
        assert_eq!(p.peak(), 8 * elements + p.activations + p.temporary);
        // 80 GB (an H100): weights 16.06 GB, activations 2.98 GB and the temporary 2.10 GB leave
        // 58.9 GB, more than every gradient + accumulator (6 bytes an element: 48.2 GB): one
        // pass. 60 GB leave 38.9 GB: two groups.
        assert_eq!(plan(Some(80_000_000_000)).unwrap().groups.len(), 1);
        let g = plan(Some(60_000_000_000)).unwrap().groups;
        assert_eq!(g.len(), 2);
        assert_eq!(g.concat().len(), names.len());
        assert!(g[0].contains(&"model.embed_tokens.weight".to_string()));
        assert!(g[1].contains(&"lm_head.weight".to_string()));
        // A layer is never split: every group boundary falls between units.
        let unit = |n: &str| n.split('.').take(3).collect::<Vec<_>>().join(".");
        assert_ne!(unit(g[0].last().unwrap()), unit(&g[1][0]));
        // 20 GB cannot hold the weights, activations and one layer's gradients.
        let err = plan(Some(20_000_000_000)).unwrap_err();
        assert!(
            err.contains("too small") && err.contains("activations"),
            "{err}"
        );
    }
}
