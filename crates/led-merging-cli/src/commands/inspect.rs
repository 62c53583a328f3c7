//! `led inspect`: what a checkpoint or score file holds, from its headers alone.

use std::path::PathBuf;

use anyhow::Result;
use bytesize::ByteSize;
use led_merging_io::Checkpoint;
use serde_json::json;

/// Metadata values longer than this are shortened in the table (a merge's full YAML config).
const MAX_SHOWN: usize = 120;

/// Arguments of `led inspect`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  led inspect models/llama-3-8b\n  led inspect scores/safety.safetensors --json"
)]
pub struct Args {
    /// A model directory or a .safetensors file, or a Hugging Face Hub repo id
    /// (`org/name[@revision]`) read from the local Hugging Face cache, downloaded into it when
    /// absent.
    pub path: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let resolved = led_merging_io::resolve_model(&args.path.to_string_lossy())?;
    let (path, as_json) = (resolved.path.as_path(), args.json);
    if (resolved.hub.is_some() || resolved.adapter.is_some()) && !as_json {
        println!("{resolved}");
    }
    let ckpt = Checkpoint::open(path)?;
    let shards: std::collections::BTreeSet<_> =
        ckpt.tensors().iter().map(|t| t.shard.clone()).collect();
    if as_json {
        let tensors: Vec<_> = ckpt
            .tensors()
            .iter()
            .map(|t| json!({"name": t.name, "dtype": t.dtype.as_safetensors(), "shape": t.shape, "bytes": t.byte_len, "shard": t.shard}))
            .collect();
        let out = json!({
            "path": path,
            "shards": shards,
            "total_bytes": ckpt.total_bytes(),
            "metadata": ckpt.metadata(),
            "tensors": tensors,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let params: usize = ckpt.tensors().iter().map(|t| t.numel()).sum();
    println!("{}", path.display());
    println!(
        "  {} tensors, {} parameters, {} in {} shard(s)",
        ckpt.tensors().len(),
        params,
        ByteSize(ckpt.total_bytes()).display().si(),
        shards.len()
    );
    if !ckpt.metadata().is_empty() {
        println!("  metadata:");
        for (k, v) in ckpt.metadata() {
            let one_line = v.replace('\n', "\\n");
            let shown = if one_line.chars().count() > MAX_SHOWN {
                format!(
                    "{}… ({} bytes)",
                    one_line.chars().take(MAX_SHOWN).collect::<String>(),
                    v.len()
                )
            } else {
                one_line
            };
            println!("    {k}: {shown}");
        }
    }
    let width = ckpt
        .tensors()
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "  {:width$}  {:5}  {:18}  {:>10}  shard",
        "name", "dtype", "shape", "size"
    );
    for t in ckpt.tensors() {
        let shape = format!("{:?}", t.shape);
        println!(
            "  {:width$}  {:5}  {:18}  {:>10}  {}",
            t.name,
            t.dtype.as_safetensors(),
            shape,
            ByteSize(t.byte_len).display().si().to_string(),
            t.shard.display()
        );
    }
    Ok(())
}
