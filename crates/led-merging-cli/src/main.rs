//! `led`: the LED-Merging command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

use commands::{analyze, demo, inspect, locate, merge, scores};

/// Merge fine-tuned LLMs without losing safety (LED-Merging: Locate, Elect, Disjoint).
#[derive(Parser)]
#[command(name = "led", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  led demo\n  led analyze --scores safety=s.safetensors math=m.safetensors --top 0.2 --out fig4/\n  led analyze --config led.yaml --out election/\n  led merge merge.yaml merged/ --dry-run\n  led merge merge.yaml merged/ --threads 4\n  led inspect models/llama-3-8b\n  led inspect scores/safety.safetensors --json"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Show the tensors, dtypes, shapes, sizes, shards and metadata of a checkpoint or score file.
    Inspect(inspect::Args),
    /// Jaccard overlap of the top-r sets of score checkpoints, per layer and tensor kind (paper Fig. 4).
    Analyze(analyze::Args),
    /// Score every weight of a model on a task dataset (LED's Locate step) into a score file.
    Locate(locate::Args),
    /// Work on score files: `led scores sum` combines the shards of a `led locate --shard` run.
    #[command(subcommand)]
    Scores(scores::Command),
    /// Merge models as a mergekit-style YAML config says (led, ties, task_arithmetic, ...).
    Merge(merge::Args),
    /// Run the embedded end-to-end demo on generated models (nothing is downloaded).
    Demo(demo::Args),
}

/// mimalloc keeps the merge's per-part buffers for reuse instead of handing them back to the
/// system after every part (glibc's malloc did: page faults were a third of a merge's time;
/// docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Past a file-size limit (RLIMIT_FSIZE), get EFBIG from the write and fail cleanly (the
    // writer then removes its temporary output) instead of being killed by SIGXFSZ.
    // SAFETY: setting a signal to SIG_IGN at start-up, before any thread exists.
    // And like other command-line tools, end quietly when the reader of stdout goes away
    // (`led inspect … | head`) instead of panicking on EPIPE.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Analyze(args) => analyze::run(&args),
        Command::Locate(args) => locate::run(&args),
        Command::Scores(command) => scores::run(&command),
        Command::Merge(args) => merge::run(&args, cli.verbose > 0),
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
