//! `led scores sum`: combine the shards of one `led locate` request into its score file.

use std::path::PathBuf;

use anyhow::Result;

/// `led scores` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Sum the shards of one request (`led locate --shard I/N`) into the score file one run
    /// writes; every shard must be given once, all of the same request.
    #[command(
        after_help = "Examples:\n  led scores sum --out scores/base-gsm8k.safetensors parts/base-gsm8k.*.safetensors"
    )]
    Sum {
        /// The score file to write.
        #[arg(long)]
        out: PathBuf,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
        /// The shard files, in any order.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
    },
}

#[cfg(feature = "attribution")]
pub fn run(command: &Command) -> Result<()> {
    let Command::Sum { out, force, parts } = command;
    let report = led_merging_attribution::shards::sum(parts, out, *force)?;
    println!(
        "wrote {} ({} {} scores of {} tensors from {} shards)",
        out.display(),
        report.scorer,
        if report.scorer == "wanda" {
            "(finalised)"
        } else {
            "summed"
        },
        report.tensors,
        report.shards
    );
    Ok(())
}

#[cfg(not(feature = "attribution"))]
pub fn run(_command: &Command) -> Result<()> {
    anyhow::bail!(
        "this `led` was built without libtorch: build it with `make build` (feature `attribution`) to run `led scores`"
    )
}
