//! `led locate`: LED-Merging's Locate step from the command line.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments of `led locate`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  led locate --model models/instruct --data safety.jsonl --out scores/instruct-safety.safetensors\n  led locate --model models/base --data gsm8k.jsonl --out scores/base-gsm8k.safetensors --samples 64 --device cuda\n  led locate --model models/base --data gsm8k.jsonl --out parts/base-gsm8k.1.safetensors --shard 1/4   # then: led scores sum"
)]
pub struct Args {
    /// Model directory (config.json, tokenizer.json, safetensors), or a Hugging Face Hub repo id
    /// (`org/name[@revision]`) read from the local Hugging Face cache, downloaded into it when
    /// absent (docs/models.md).
    #[arg(long)]
    pub model: PathBuf,
    /// Calibration data: JSONL or CSV with prompt and answer fields (not needed for --scorer random).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Score file to write (.safetensors); an existing one with matching metadata is reused.
    #[arg(long)]
    pub out: PathBuf,
    /// snip (the method), wanda, random or grad (ablations; grad: SNIP without the |W| factor).
    #[arg(long, default_value = "snip")]
    pub scorer: String,
    /// Number of samples.
    #[arg(long, default_value_t = led_merging_io::meta::DEFAULT_SAMPLES)]
    pub samples: usize,
    /// Seed (with --subset and for --scorer random).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use a seeded random subset instead of the first records.
    #[arg(long)]
    pub subset: bool,
    /// auto, cpu, cuda or cuda:N; or a list (cuda:0,cuda:1 or cuda:0,cpu) over which the
    /// model's layers are placed in contiguous ranges sized from each device's memory.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Prompt field name (default: prompt or question).
    #[arg(long)]
    pub prompt_field: Option<String>,
    /// Answer field name (default: answer, response or canonical_solution).
    #[arg(long)]
    pub answer_field: Option<String>,
    /// Truncate answers to this many tokens.
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Skip (and count) records that fail to parse or have empty answers.
    #[arg(long)]
    pub skip_bad: bool,
    /// Render prompts with the model's chat template (off by default: raw text).
    #[arg(long)]
    pub chat_template: bool,
    /// Replace an existing score file whose metadata differs.
    #[arg(long)]
    pub force: bool,
    /// Score only shard I of N (e.g. 0/4): the I-th of N contiguous blocks of the selected
    /// samples, into a partial score file; `led scores sum` combines the N parts into what one
    /// run writes (docs/scale-out.md).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Device memory budget (e.g. 40GB): score layer groups in separate passes to fit it.
    /// Default on CUDA: 90% of the device's free memory as CUDA reports it (groups only when
    /// one pass with every gradient would not fit); on the CPU: one pass.
    #[arg(long)]
    pub max_memory: Option<String>,
    /// Dtype of the scores written: f32 (default) or bf16 (half the bytes, as the authors store
    /// them; scores rounded, so more of them tie at a tensor's threshold: docs/formats.md).
    #[arg(long, default_value = "f32", value_name = "f32|bf16")]
    pub score_dtype: String,
}

#[cfg(feature = "attribution")]
/// The locate options the flags ask for (Ctrl-C wired to stop between samples).
fn options(args: &Args) -> Result<led_merging_attribution::LocateOptions> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use led_merging_attribution::{DataOptions, DeviceChoice, LocateOptions, Scorer};

    let scorer = Scorer::parse(&args.scorer).ok_or_else(|| {
        anyhow::anyhow!(
            "--scorer {:?}: expected snip, wanda, random or grad",
            args.scorer
        )
    })?;
    // One device, or a list over which the model's layers are placed (`cuda:0,cuda:1,cpu`).
    let mut devices = args
        .device
        .split(',')
        .map(|d| {
            DeviceChoice::parse(d.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "--device {:?}: expected auto, cpu, cuda or cuda:N, or a comma-separated list of them",
                    args.device
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let device = devices.remove(0);
    anyhow::ensure!(args.samples > 0, "--samples must be positive");
    let score_dtype =
        led_merging_attribution::ScoreDtype::parse(&args.score_dtype).ok_or_else(|| {
            anyhow::anyhow!("--score-dtype {:?}: expected f32 or bf16", args.score_dtype)
        })?;
    let shard = args
        .shard
        .as_deref()
        .map(|s| {
            led_merging_attribution::shards::parse(s)
                .ok_or_else(|| anyhow::anyhow!("--shard {s:?}: expected I/N with 0 <= I < N"))
        })
        .transpose()?;
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    // Ctrl-C stops between samples; the unfinished score file is never created.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    Ok(LocateOptions {
        scorer,
        data: DataOptions {
            prompt_field: args.prompt_field.clone(),
            answer_field: args.answer_field.clone(),
            samples: args.samples,
            subset_seed: args.subset.then_some(args.seed),
            max_answer_tokens: args.max_tokens,
            skip_bad: args.skip_bad,
            chat_template: if args.chat_template {
                Some(led_merging_attribution::ChatTemplate::from_model_dir(
                    &args.model,
                )?)
            } else {
                None
            },
        },
        seed: args.seed,
        device,
        overwrite: args.force,
        progress: true,
        interrupt: Some(interrupt),
        shard,
        more_devices: devices,
        max_memory: args
            .max_memory
            .as_deref()
            .map(led_merging_io::parse_size)
            .transpose()?,
        score_dtype,
    })
}

#[cfg(feature = "attribution")]
/// A chat model scored on raw text: say what `--chat-template` changes.
fn chat_template_note(args: &Args, scorer: led_merging_attribution::Scorer) {
    if !args.chat_template
        && scorer != led_merging_attribution::Scorer::Random
        && led_merging_attribution::ChatTemplate::from_model_dir(&args.model).is_ok()
    {
        eprintln!(
            "note: {} has a chat template and prompts are scored as raw text. For a chat model, \
             pass --chat-template: prompts are then rendered as a conversation and each answer is \
             the assistant turn up to its end-of-turn token, as the model was trained (raw and \
             chat-template scores select quite different weights). Use the same choice for the \
             base and every fine-tune (docs/getting-started.md).",
            args.model.display()
        );
    }
}

#[cfg(feature = "attribution")]
/// What locating did: data, memory plan, output and timings.
fn print_report(
    args: &Args,
    scorer: led_merging_attribution::Scorer,
    report: &led_merging_attribution::LocateReport,
) {
    if report.data.skipped > 0 || report.data.truncated > 0 {
        println!(
            "data: {} record(s) skipped, {} answer(s) truncated",
            report.data.skipped, report.data.truncated
        );
    }
    println!(
        "memory plan: at most {} on {} ({} parameter group(s){})",
        bytesize::ByteSize(report.planned_peak).display().si(),
        report.device,
        report.groups,
        report
            .budget
            .map(|b| format!(", budget {}", bytesize::ByteSize(b).display().si()))
            .unwrap_or_default()
    );
    println!(
        "wrote {} ({} scores from {} samples, {} tokens on {}, {} parameter group(s))",
        args.out.display(),
        scorer.as_str(),
        report.samples,
        report.tokens,
        report.device,
        report.groups
    );
    println!(
        "time: {:.2} s in all: loading {:.2} s, forward/backward {:.3} s ({:.0} tokens/s), scores formed and written {:.2} s after it ({:.2} s of it waiting for the writer thread, which wrote for {:.2} s in all, overlapping the compute)",
        report.seconds,
        report.load_seconds,
        report.scoring_seconds,
        report.tokens as f64 / report.scoring_seconds.max(1e-9),
        report.write_seconds,
        report.drain_seconds,
        report.writer_seconds
    );
}

#[cfg(feature = "attribution")]
pub fn run(args: &Args) -> Result<()> {
    let resolved = led_merging_io::resolve_model(&args.model.to_string_lossy())?;
    if resolved.hub.is_some() || resolved.adapter.is_some() {
        println!("model: {resolved}");
    }
    let args = &Args {
        model: resolved.path,
        ..args.clone()
    };
    let options = options(args)?;
    chat_template_note(args, options.scorer);
    println!("{}", led_merging_attribution::Runtime::detect());
    let report =
        led_merging_attribution::locate(&args.model, args.data.as_deref(), &args.out, &options)?;
    if report.reused {
        println!(
            "{}: reused (its metadata matches this request)",
            args.out.display()
        );
        return Ok(());
    }
    print_report(args, options.scorer, &report);
    Ok(())
}

#[cfg(not(feature = "attribution"))]
pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!(
        "this `led` was built without libtorch: build it with `make build` (feature `attribution`) to run `led locate`"
    )
}
