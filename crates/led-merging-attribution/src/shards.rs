//! Sample shards of one Locate request (`led locate --shard I/N`), and their sum into exactly
//! what one run writes (`led scores sum`; docs/scale-out.md).
//!
//! Shard I of N holds samples `[I·S/N, (I+1)·S/N)` of the S selected samples (first-N or
//! `--subset`, in order). SNIP is linear in the samples, |W| ⊙ Σₖ|∇ₖ|, so a shard's file holds its
//! partial scores and the sum adds them. Wanda's |W| · ‖X‖₂ is not: a Wanda shard keeps the sums
//! of squares of each input feature (`wanda_sumsq.NAME`, one value per input column), which the
//! sum adds and then finalises with the model's weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use led_merging_io::{Checkpoint, ScoreMetadata, TensorSpec};

use crate::{Error, Result};

/// The score option recording a shard: `I/N`.
pub const SHARD_OPTION: &str = "shard";

/// Prefix of a Wanda shard's sums of squares.
const SUMSQ_PREFIX: &str = "wanda_sumsq.";

/// The name under which a Wanda shard keeps tensor `name`'s sums of squares.
pub fn sumsq_name(name: &str) -> String {
    format!("{SUMSQ_PREFIX}{name}")
}

/// Parse `I/N` (0 ≤ I < N).
pub fn parse(text: &str) -> Option<(usize, usize)> {
    let (i, n) = text.split_once('/')?;
    let (i, n) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
    (i < n).then_some((i, n))
}

/// Shard `i` of `n` of `items`: a contiguous block, the blocks in order covering `items`.
pub fn block<T: Clone>(items: &[T], i: usize, n: usize) -> std::result::Result<Vec<T>, String> {
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: expected I/N with 0 <= I < N"));
    }
    let (lo, hi) = (i * items.len() / n, (i + 1) * items.len() / n);
    if lo == hi {
        return Err(format!(
            "shard {i}/{n} of {} samples is empty: use at most {} shards",
            items.len(),
            items.len()
        ));
    }
    Ok(items[lo..hi].to_vec())
}

/// What summing shards did.
#[derive(Debug, Clone)]
pub struct SumReport {
    /// The number of shards.
    pub shards: usize,
    /// Tensors written.
    pub tensors: usize,
    /// The scorer.
    pub scorer: String,
}

/// Shard files by shard index.
type Shards = BTreeMap<usize, (PathBuf, Checkpoint)>;

/// Every shard of one request, by index, with the request's record and shard count; an error
/// naming the file for a foreign, repeated or missing shard.
fn open_shards(parts: &[PathBuf], out: &Path) -> Result<(Shards, ScoreMetadata, usize)> {
    let bad = |p: &Path, why: String| Error::Data(p.to_path_buf(), why);
    let mut shards: BTreeMap<usize, (PathBuf, Checkpoint)> = BTreeMap::new();
    let mut request: Option<(PathBuf, ScoreMetadata, usize)> = None;
    for p in parts {
        let ckpt = Checkpoint::open(p)?;
        let mut record = ScoreMetadata::from_map(p, ckpt.metadata())?;
        let shard = record.options.remove(SHARD_OPTION);
        let (i, n) = shard.as_deref().and_then(parse).ok_or_else(|| {
            bad(
                p,
                "not a shard: it records no `shard` option (made by `led locate --shard I/N`)"
                    .into(),
            )
        })?;
        match &request {
            None => request = Some((p.clone(), record, n)),
            Some((first, want, total)) => {
                let differences = want.differences(&record);
                if !differences.is_empty() || n != *total {
                    let mut d = differences;
                    if n != *total {
                        d.push(format!("shards: {total} ≠ {n}"));
                    }
                    return Err(bad(
                        p,
                        format!(
                            "not a shard of the same request as {}: {}",
                            first.display(),
                            d.join("; ")
                        ),
                    ));
                }
            }
        }
        if let Some((other, _)) = shards.get(&i) {
            return Err(bad(
                p,
                format!("shard {i}/{n} is given twice: also {}", other.display()),
            ));
        }
        shards.insert(i, (p.clone(), ckpt));
    }
    let (_, record, n) = request.expect("at least one part");
    let missing: Vec<String> = (0..n)
        .filter(|i| !shards.contains_key(i))
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(bad(
            out,
            format!(
                "shard(s) {} of this request are missing (given: {})",
                missing.join(", "),
                shards
                    .values()
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok((shards, record, n))
}

/// The tensors the shards hold (every shard the same ones).
fn tensor_names(parts: &[&(PathBuf, Checkpoint)]) -> Result<Vec<String>> {
    let names: Vec<String> = parts[0]
        .1
        .tensors()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    for (p, c) in &parts[1..] {
        let theirs: Vec<&String> = c.tensors().iter().map(|t| &t.name).collect();
        if !theirs.iter().copied().eq(names.iter()) {
            return Err(Error::Data(
                p.clone(),
                format!(
                    "holds other tensors than {} (a damaged or foreign shard)",
                    parts[0].0.display()
                ),
            ));
        }
    }
    Ok(names)
}

/// Wanda shards (sums of squares): the model they were computed on, checked unchanged, to
/// finalise them with. `None` for SNIP shards.
fn wanda_model(record: &ScoreMetadata, names: &[String]) -> Result<Option<Checkpoint>> {
    Ok(if names.iter().any(|n| n.starts_with(SUMSQ_PREFIX)) {
        let model = Checkpoint::open(&record.model)?;
        let print = led_merging_io::weights_fingerprint(&model)?;
        if record
            .options
            .get(led_merging_io::meta::WEIGHTS_FINGERPRINT_OPTION)
            != Some(&print)
        {
            return Err(Error::Data(
                PathBuf::from(&record.model),
                "its weights changed since the shards were computed: compute them again".into(),
            ));
        }
        Some(model)
    } else {
        None
    })
}

/// Sum the shard files `parts` (every shard of one request, in any order) into the score file
/// `out`, equal to what one unsharded `led locate` writes: same tensors, same metadata.
pub fn sum(parts: &[PathBuf], out: &Path, overwrite: bool) -> Result<SumReport> {
    let bad = |p: &Path, why: String| Error::Data(p.to_path_buf(), why);
    if parts.is_empty() {
        return Err(bad(out, "no shard files given".into()));
    }
    let (shards, record, n) = open_shards(parts, out)?;
    let parts: Vec<&(PathBuf, Checkpoint)> = shards.values().collect();
    let names = tensor_names(&parts)?;
    let model = wanda_model(&record, &names)?;
    let bf16 = record.options.get("compute").map(String::as_str) == Some("cuda-bf16");
    // The parts hold f32 (exact partial sums); the sum is written in the dtype asked for.
    let dtype = crate::ScoreDtype::of_record(&record).dtype();
    let out_name = |n: &str| n.strip_prefix(SUMSQ_PREFIX).unwrap_or(n).to_owned();
    let specs = names
        .iter()
        .map(|n| {
            let name = out_name(n);
            let shape = match &model {
                Some(m) if n.starts_with(SUMSQ_PREFIX) => m.info(&name)?.shape.clone(),
                _ => parts[0].1.info(n)?.shape.clone(),
            };
            Ok(TensorSpec::new(name, dtype, shape))
        })
        .collect::<Result<Vec<_>>>()?;
    let writer = crate::score_file::score_writer(out, &record, overwrite, specs)?;
    for n in &names {
        let mut total = parts[0].1.read_f32(n)?;
        for (_, c) in &parts[1..] {
            for (t, v) in total.iter_mut().zip(c.read_f32(n)?) {
                *t += v;
            }
        }
        let name = out_name(n);
        let values = match &model {
            Some(m) if n.starts_with(SUMSQ_PREFIX) => {
                // |W| · sqrt(Σ x²), broadcast over rows, with W as the run held it (bf16 on CUDA).
                let norms: Vec<f32> = total.iter().map(|s| s.sqrt()).collect();
                let mut w = m.read_f32(&name)?;
                for (k, x) in w.iter_mut().enumerate() {
                    let v = if bf16 {
                        half::bf16::from_f32(*x).to_f32()
                    } else {
                        *x
                    };
                    *x = v.abs() * norms[k % norms.len()];
                }
                w
            }
            _ => total,
        };
        crate::score_file::write_score(&writer, out, &name, &values)?;
    }
    writer.finish()?;
    Ok(SumReport {
        shards: n,
        tensors: names.len(),
        scorer: record.scorer,
    })
}
