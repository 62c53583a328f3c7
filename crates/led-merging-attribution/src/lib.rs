//! # led-merging-attribution: LED-Merging's Locate step
//!
//! Where it sits: Locate → Elect → Disjoint → Merge. This crate scores every weight of a model
//! on a task dataset (SNIP, Wanda, random) through libtorch (`tch`), on GPU where present, and
//! writes score checkpoints with `led-merging-io`. It is the only crate of the workspace that links
//! libtorch.
//!
//! - [`Model`]: Llama 2/3, Mistral and Qwen2 decoders from `config.json` + safetensors (loaded
//!   tensor by tensor through `led-merging-io`), with Hugging Face's math.
//! - [`load_samples`]: JSONL/CSV calibration data, tokenised with the model's `tokenizer.json`.
//! - [`locate()`]: SNIP / Wanda / random scores written as a score checkpoint, reused when an
//!   existing file's metadata matches the request.

use std::path::PathBuf;

mod chat;
mod config;
mod data;
mod locate;
mod model;
pub mod placement;
mod score_file;
pub mod shards;
pub mod train;

pub use chat::{ChatTemplate, RENDER_FUEL};
pub use config::{Architecture, Llama3Scaling, ModelConfig};
pub use data::{DataOptions, DataReport, FIELD_PAIRS, Sample, load_samples, load_tokenizer};
pub use locate::{
    LocateOptions, LocateReport, MemoryPlan, SCORE_DTYPE_OPTION, SCORING_RULES, ScoreDtype, Scorer,
    locate, random_scores, request,
};
pub use model::{Activations, Model};

use led_merging_io::Checkpoint;
pub use tch;
use tch::{Device, Kind, Tensor};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the attribution crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Io(#[from] led_merging_io::Error),
    /// libtorch refused an operation on a tensor.
    #[error("{path}: tensor {tensor:?}: libtorch: {error}")]
    Torch {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// libtorch's error (part of the message, so not also a `source`).
        error: tch::TchError,
    },
    /// The device asked for is not available.
    #[error("device {0:?} is not available: {1}")]
    Device(String, String),
    /// A model's `config.json` is invalid or asks for something unsupported.
    #[error("{0}: {1}")]
    Config(PathBuf, String),
    /// A model's weights don't fit its config, or a forward pass can't run.
    #[error("{0}: {1}")]
    Model(PathBuf, String),
    /// Calibration data that can't be read.
    #[error("{0}: {1}")]
    Data(PathBuf, String),
    /// The device ran out of memory; nothing was written.
    #[error(
        "{device} ran out of memory while scoring {group}: {detail}\nPass a smaller --max-memory \
         (now {budget}) to score in more, smaller layer groups, or fewer/shorter samples."
    )]
    OutOfMemory {
        /// The device.
        device: String,
        /// Which parameters were being scored (first and last name of the group).
        group: String,
        /// The memory budget the groups were planned for.
        budget: String,
        /// libtorch's message.
        detail: String,
    },
    /// A score file exists at the output path but was computed for another request.
    #[error(
        "{path}: a score file for another request is already there ({differences}); pass --force \
         (LocateOptions::overwrite) to replace it"
    )]
    ScoreFileMismatch {
        /// The existing score file.
        path: PathBuf,
        /// What differs, as `field: file's value ≠ requested value`.
        differences: String,
    },
    /// Stopped by the user (Ctrl-C); nothing was written.
    #[error("interrupted: no score file was written")]
    Interrupted,
}

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when libtorch sees one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device `n`; an error when absent.
    Cuda(usize),
}

impl DeviceChoice {
    /// Parse `auto`, `cpu`, `cuda` or `cuda:N`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(DeviceChoice::Auto),
            "cpu" => Some(DeviceChoice::Cpu),
            "cuda" => Some(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")?
                .parse()
                .ok()
                .map(DeviceChoice::Cuda),
        }
    }

    /// Resolve to a `tch` device, checking that it exists.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => {
                let count = tch::Cuda::device_count();
                if (n as i64) < count {
                    Ok(Device::Cuda(n))
                } else {
                    Err(Error::Device(
                        format!("cuda:{n}"),
                        format!("libtorch sees {count} CUDA device(s)"),
                    ))
                }
            }
        }
    }
}

/// How scores are computed on `device`, recorded in score files as `led.scores.option.compute`:
/// `cpu-f32` (weights and activations in f32) or `cuda-bf16` (bf16 weights and activations,
/// f32 accumulators). Scores from different modes differ in rounding, so a file computed in one
/// mode never answers a request in another.
pub fn compute_mode(device: Device) -> &'static str {
    if device.is_cuda() {
        "cuda-bf16"
    } else {
        "cpu-f32"
    }
}

/// The weight dtype of a device's compute mode (see [`compute_mode`]).
pub fn compute_kind(device: Device) -> Kind {
    if device.is_cuda() {
        Kind::BFloat16
    } else {
        Kind::Float
    }
}

/// What the linked libtorch offers on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Whether CUDA is usable.
    pub cuda: bool,
    /// Number of CUDA devices.
    pub cuda_devices: usize,
    /// Whether cuDNN is usable.
    pub cudnn: bool,
    /// Number of CPU threads libtorch uses.
    pub cpu_threads: usize,
}

impl Runtime {
    /// Ask libtorch.
    pub fn detect() -> Self {
        Runtime {
            cuda: tch::Cuda::is_available(),
            cuda_devices: tch::Cuda::device_count().max(0) as usize,
            cudnn: tch::Cuda::cudnn_is_available(),
            cpu_threads: tch::get_num_threads().max(0) as usize,
        }
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cuda {
            write!(
                f,
                "libtorch: CUDA with {} device(s), cuDNN {}",
                self.cuda_devices,
                if self.cudnn { "on" } else { "off" }
            )
        } else {
            write!(f, "libtorch: CPU only ({} threads)", self.cpu_threads)
        }
    }
}

/// The directory of the libtorch this crate was built against.
pub fn libtorch_lib_dir() -> Option<&'static str> {
    option_env!("LED_LIBTORCH_LIB")
}

/// Load tensor `name` of `ckpt` as a `tch` tensor of `kind` on `device`, read through `led-merging-io`
/// (bounded memory: one tensor at a time). f32, f16 and bf16 tensors travel to the device in
/// their file's dtype and are cast there (a bf16 checkpoint is never widened on the host); other
/// dtypes are converted to f32 on the host first.
pub fn load_tensor(ckpt: &Checkpoint, name: &str, device: Device, kind: Kind) -> Result<Tensor> {
    let info = ckpt.info(name)?;
    let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
    let file_kind = match info.dtype {
        led_merging_io::Dtype::F32 => Some(Kind::Float),
        led_merging_io::Dtype::F16 => Some(Kind::Half),
        led_merging_io::Dtype::BF16 => Some(Kind::BFloat16),
        _ => None,
    };
    let host = match file_kind {
        // safetensors stores little-endian values, as every platform libtorch runs on.
        Some(k) => Tensor::f_from_data_size(&ckpt.read_bytes(name)?, &shape, k),
        None => Tensor::f_from_slice(&ckpt.read_f32(name)?).and_then(|t| t.f_reshape(&shape)),
    };
    host.and_then(|t| t.f_to_device(device))
        .and_then(|t| t.f_to_kind(kind))
        .map_err(|error| Error::Torch {
            path: ckpt.path().to_path_buf(),
            tensor: name.to_owned(),
            error,
        })
}

/// Copy a `tch` tensor to host `f32` values (for writing scores).
pub fn to_f32_vec(t: &Tensor) -> Result<Vec<f32>, tch::TchError> {
    let flat = t
        .f_to_kind(Kind::Float)?
        .f_to_device(Device::Cpu)?
        .f_flatten(0, -1)?;
    Vec::<f32>::try_from(&flat)
}
