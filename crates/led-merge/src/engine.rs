//! Running a plan: tensor by tensor (in parallel across tensors), reading inputs as f32,
//! merging, and writing through `led-io`'s atomic streaming writer.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use indicatif::ProgressBar;
use led_io::{Checkpoint, CheckpointWriter, TensorSpec, WriterOptions, Written, meta};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::{Chunking, ModelTensor, TensorJob, TensorNote, TopK};
use crate::plan::{Action, MergePlan, TensorPlan};
use crate::sparsify::select_over_parts;

/// How to run a merge.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Replace an existing output.
    pub force: bool,
    /// Worker threads (tensors merged at once); 0 = all cores. Peak memory grows with it.
    pub threads: usize,
    /// Shard budget in bytes.
    pub max_shard_size: u64,
    /// Progress on stderr: a bar on a terminal, else a line every 5 s (`led_io::progress`).
    pub progress: bool,
    /// Tensors larger than this many elements are merged in parts where the method allows
    /// (see [`DEFAULT_CHUNK_ELEMENTS`]).
    pub chunk_elements: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            force: false,
            threads: 0,
            max_shard_size: led_io::DEFAULT_MAX_SHARD_SIZE,
            progress: false,
            chunk_elements: DEFAULT_CHUNK_ELEMENTS,
        }
    }
}

/// What a merge did.
#[derive(Debug)]
pub struct MergeReport {
    /// The output.
    pub written: Written,
    /// Warnings (planning and per tensor).
    pub warnings: Vec<String>,
    /// LED statistics per tensor.
    pub led: BTreeMap<String, led_mask::TensorStats>,
}

/// Tensors with more elements than this are merged in parts of whole rows when the method
/// allows it ([`Chunking`]), so memory stays bounded whatever a tensor's size: 32 Mi elements,
/// 128 MiB per input as f32.
pub const DEFAULT_CHUNK_ELEMENTS: usize = 1 << 25;

/// Rows (first dimension; a scalar is one row) and elements per row of `shape`.
fn rows_of(shape: &[usize]) -> (usize, usize) {
    let rows = shape.first().copied().unwrap_or(1);
    let numel: usize = shape.iter().product();
    (rows, numel.checked_div(rows).unwrap_or(0))
}

/// Read rows `rows` of `name` from `ckpt` as f32, aligned to the reference's `shape`
/// (vocabulary rule, docs/merging.md, "What the engine checks"): rows the input lacks come from `fill` (the base's values for
/// the same rows), or are zeros for scores; extra rows are never read.
fn read_rows(
    ckpt: &Checkpoint,
    name: &str,
    shape: &[usize],
    rows: Range<usize>,
    fill: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let (_, row) = rows_of(shape);
    let info = ckpt.info(name)?;
    let have = if info.shape == shape {
        rows.end
    } else {
        info.shape[0].min(shape[0])
    };
    let mut out = if rows.start < have {
        ckpt.read_f32_range(name, rows.start * row..rows.end.min(have) * row)?
    } else {
        Vec::new()
    };
    let want = rows.len() * row;
    match fill {
        Some(f) => out.extend_from_slice(&f[out.len()..want]),
        None => out.resize(want, 0.0),
    }
    Ok(out)
}

/// Rows per part of tensor `t` and the parts (row ranges) at that size.
fn row_parts(t: &TensorPlan, per: usize) -> Vec<Range<usize>> {
    let rows = rows_of(&t.shape).0.max(1);
    (0..rows)
        .step_by(per)
        .map(|s| s..(s + per).min(rows))
        .collect()
}

/// Rows per part for tensor `t`: all of them unless it has more than `chunk_elements`.
fn rows_per_part(t: &TensorPlan, chunk_elements: usize) -> usize {
    let (rows, row) = rows_of(&t.shape);
    if t.numel() > chunk_elements && row > 0 {
        (chunk_elements / row).clamp(1, rows)
    } else {
        rows.max(1)
    }
}

/// Tensor `t`'s per-model and global parameters, and how it will be merged: in parts if it
/// is larger than `chunk_elements` and the method allows, else whole.
fn chunking_of(
    plan: &MergePlan,
    t: &TensorPlan,
    chunk_elements: usize,
) -> (Vec<crate::ops::Params>, crate::ops::Params, Chunking) {
    let params: Vec<_> = t
        .inputs
        .iter()
        .map(|&k| plan.model_params(k, &t.name))
        .collect();
    let global = plan.global_params(&t.name);
    let chunking = if rows_per_part(t, chunk_elements) < rows_of(&t.shape).0 && !t.inputs.is_empty()
    {
        match plan.method.chunking(&global, &params) {
            // DELLA ranks within rows of the last dimension: a 1-D tensor is one row.
            Chunking::RandomDrop {
                rank_epsilons: Some(_),
                ..
            } if t.shape.len() < 2 => Chunking::Whole,
            c => c,
        }
    } else {
        Chunking::Elementwise
    };
    (params, global, chunking)
}

/// How many parts tensor `t` is merged in (1: whole) with parts of `chunk_elements`.
pub(crate) fn parts_of(plan: &MergePlan, t: &TensorPlan, chunk_elements: usize) -> usize {
    match chunking_of(plan, t, chunk_elements).2 {
        Chunking::Whole => 1,
        _ => row_parts(t, rows_per_part(t, chunk_elements)).len(),
    }
}

/// Hand merged tensor `t` to `visit`, part by part (whole when it is small or the method needs
/// it whole), as the job the method gets, with the part's rows. Without `weights` only the
/// scores are read (the job's weights are empty): enough for LED's election.
fn for_each_part(
    plan: &MergePlan,
    t: &TensorPlan,
    seed: u64,
    chunk_elements: usize,
    weights: bool,
    mut visit: impl FnMut(&TensorJob<'_>, Range<usize>) -> Result<()>,
) -> Result<()> {
    let numel = t.numel();
    let (rows, row) = rows_of(&t.shape);
    let per = rows_per_part(t, chunk_elements);
    let (params, global, chunking) = chunking_of(plan, t, chunk_elements);
    let parts = row_parts(
        t,
        match chunking {
            Chunking::Whole => rows.max(1),
            _ => per,
        },
    );
    let scored = |k: usize| match &plan.models[k].scores {
        Some((ms, bs)) if ms.contains(&t.name) && bs.contains(&t.name) => Some((ms, bs)),
        _ => None,
    };
    // Scores as the method ranks them (LED's `neg_prune` reverses their order).
    let read_scores = |c: &Checkpoint, r: Range<usize>| -> Result<Vec<f32>> {
        let mut s = read_rows(c, &t.name, &t.shape, r, None)?;
        plan.method.prepare_scores(&t.name, &global, &mut s)?;
        Ok(s)
    };
    // Thresholds over whole score tensors, streamed part by part before merging.
    let thresholds: Vec<Option<_>> = match &chunking {
        Chunking::Thresholds(ratios) if parts.len() > 1 => t
            .inputs
            .iter()
            .zip(ratios)
            .map(|(&k, &ratio)| match scored(k) {
                Some((ms, bs)) => {
                    let select = |c: &Checkpoint| -> Result<_> {
                        let select = led_mask::StreamingThreshold::new(&t.name, numel, ratio)?;
                        Ok(select_over_parts(select, &parts, |r| read_scores(c, r))?.finish())
                    };
                    Ok(Some((select(bs)?, select(ms)?)))
                }
                None => Ok(None),
            })
            .collect::<Result<_>>()?,
        _ => vec![None; t.inputs.len()],
    };
    // TIES: each model's k-th largest |θ_i − θ_b| and the ties at it still to keep, streamed
    // over the parts first; handed out part by part, in index order, as the whole path does.
    let mut top_k: Vec<Option<(f32, usize, usize)>> = match &chunking {
        Chunking::MagnitudeTopK(densities) if parts.len() > 1 && weights => t
            .inputs
            .iter()
            .zip(densities)
            .map(|(&k, &density)| {
                if density >= 1.0 {
                    return Ok(None);
                }
                let select = led_mask::StreamingThreshold::new(&t.name, numel, density)?;
                let (th, greater) =
                    select_over_parts(select, &parts, |r| read_magnitudes(plan, k, t, r))?
                        .finish_with_greater();
                // k = 0 keeps nothing: an infinite threshold admits no element.
                let value = th.value.unwrap_or(f32::INFINITY);
                Ok(Some((value, th.k - greater, th.k)))
            })
            .collect::<Result<_>>()
            .map_err(|e| e.in_weights(plan.method.name()))?,
        _ => vec![None; t.inputs.len()],
    };
    // Breadcrumbs: each model's two cuts of |θ_i − θ_b| ranks, streamed over the parts first;
    // the ties at each cut handed out part by part, in index order, as the whole path ranks them.
    let mut bands: Vec<Option<crate::sparsify::BandBudget>> = match &chunking {
        Chunking::MagnitudeBand(cuts) if parts.len() > 1 && weights => t
            .inputs
            .iter()
            .zip(cuts)
            .map(|(&k, &(density, gamma))| {
                let select = crate::sparsify::BandSelect::new(&t.name, numel, density, gamma)?;
                let select = select_over_parts(select, &parts, |r| read_magnitudes(plan, k, t, r))?;
                Ok(Some(select.finish()))
            })
            .collect::<Result<_>>()
            .map_err(|e| e.in_weights(plan.method.name()))?,
        _ => vec![None; t.inputs.len()],
    };
    // DARE: each model's L1 rescale factor over the whole tensor (the same drops, summed in
    // index order as the whole path does), streamed over the parts first.
    let l1_scales: Vec<Option<f32>> = match &chunking {
        Chunking::RandomDrop {
            densities,
            l1: true,
            rank_epsilons,
        } if parts.len() > 1 && weights => t
            .inputs
            .iter()
            .zip(densities)
            .enumerate()
            .map(|(j, (&k, &density))| {
                if density >= 1.0 {
                    return Ok(None);
                }
                let key = crate::rng::StreamKey {
                    seed,
                    tensor: &t.name,
                    model: plan.models[k].index.unwrap_or(k),
                };
                let (mut original, mut kept) = (0.0, 0.0);
                for r in &parts {
                    let mut delta = read_deltas(plan, k, t, r.clone())?;
                    original = crate::sparsify::l1_norm(original, &delta);
                    let offset = r.start * row;
                    match rank_epsilons {
                        None => crate::sparsify::drop_part(&mut delta, offset, density, key),
                        Some(eps) => {
                            let last = t.shape.last().copied().unwrap_or(1).max(1);
                            crate::sparsify::rank_sample_rows(
                                &mut delta,
                                last,
                                offset / last,
                                density,
                                eps[j],
                                key,
                            );
                        }
                    }
                    kept = crate::sparsify::l1_norm(kept, &delta);
                }
                Ok(Some(
                    crate::sparsify::l1_factor(original, kept).unwrap_or(1.0),
                ))
            })
            .collect::<Result<_>>()?,
        _ => vec![None; t.inputs.len()],
    };
    // Sums over the whole tensor (norms, dot products), the parts fed in order first.
    let stats: Option<Vec<f64>> = match &chunking {
        Chunking::Statistics if parts.len() > 1 && weights => {
            let mut acc = Vec::new();
            for r in &parts {
                let (base, values) = read_weights(plan, t, r.clone())?;
                let shape = part_shape(&t.shape, r.len());
                let job = TensorJob {
                    name: &t.name,
                    shape: &shape,
                    base: base.as_deref(),
                    models: plain_models(plan, t, &values, &params),
                    global: &global,
                    seed,
                    offset: r.start * row,
                    stats: None,
                };
                plan.method.accumulate(&job, &mut acc)?;
            }
            Some(acc)
        }
        _ => None,
    };
    for r in parts {
        let (base, values) = if weights {
            read_weights(plan, t, r.clone())?
        } else {
            (None, vec![Vec::new(); t.inputs.len()])
        };
        let mut scores = Vec::with_capacity(t.inputs.len());
        for &k in &t.inputs {
            scores.push(match scored(k) {
                Some((ms, bs)) => Some((read_scores(ms, r.clone())?, read_scores(bs, r.clone())?)),
                None => None,
            });
        }
        let shape = part_shape(&t.shape, r.len());
        let mut models = plain_models(plan, t, &values, &params);
        for (j, m) in models.iter_mut().enumerate() {
            m.scores = scores[j]
                .as_ref()
                .map(|(m, b)| (m.as_slice(), b.as_slice()));
            m.thresholds = thresholds[j];
            m.l1_scale = l1_scales[j];
            let delta = || {
                values[j]
                    .iter()
                    .zip(base.as_deref().unwrap_or(&[]))
                    .map(|(v, b)| v - b)
            };
            m.band = bands[j].as_mut().map(|band| band.part(delta()));
            m.top_k = top_k[j].as_mut().map(|(threshold, budget, k)| {
                let here = crate::sparsify::count_ties(delta(), *threshold);
                let ties = here.min(*budget);
                *budget -= ties;
                TopK {
                    threshold: *threshold,
                    ties,
                    k: *k,
                }
            });
        }
        let job = TensorJob {
            name: &t.name,
            shape: &shape,
            base: base.as_deref(),
            models,
            global: &global,
            seed,
            offset: r.start * row,
            stats: stats.as_deref(),
        };
        visit(&job, r)?;
    }
    Ok(())
}

/// The models holding tensor `t`, with these values and parameters and nothing else (no
/// scores, nothing streamed).
fn plain_models<'a>(
    plan: &MergePlan,
    t: &TensorPlan,
    values: &'a [Vec<f32>],
    params: &'a [crate::ops::Params],
) -> Vec<ModelTensor<'a>> {
    t.inputs
        .iter()
        .enumerate()
        .map(|(j, &k)| ModelTensor {
            index: plan.models[k].index.unwrap_or(k),
            values: &values[j],
            params: &params[j],
            scores: None,
            thresholds: None,
            top_k: None,
            l1_scale: None,
            band: None,
        })
        .collect()
}

/// Rows `rows` of tensor `t` from `input`'s weights, aligned to the reference as [`read_rows`]
/// does; a NaN or infinite value is an error naming the input, the tensor and the element (a
/// selection by magnitude would otherwise drop or keep it silently).
fn read_input(
    plan: &MergePlan,
    input: &crate::plan::Input,
    t: &TensorPlan,
    rows: Range<usize>,
    fill: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let start = rows.start * rows_of(&t.shape).1;
    let values = read_rows(&input.ckpt, &t.name, &t.shape, rows, fill)?;
    match values.iter().position(|x| !x.is_finite()) {
        None => Ok(values),
        Some(j) => Err(Error::op(
            &t.name,
            plan.method.name(),
            format!(
                "{}: element {} is {}, not finite: a merge needs finite inputs",
                input.path.display(),
                start + j,
                values[j]
            ),
        )),
    }
}

/// `shape` with its first dimension cut to `rows`: the shape of a part.
fn part_shape(shape: &[usize], rows: usize) -> Vec<usize> {
    let mut shape = shape.to_vec();
    if let Some(first) = shape.first_mut() {
        *first = rows;
    }
    shape
}

/// One part's rows of the base (if any) and of each model holding the tensor.
type PartWeights = (Option<Vec<f32>>, Vec<Vec<f32>>);

/// Rows `rows` of tensor `t` from the base (if any) and from every model holding it, aligned
/// (rows a model lacks are the base's).
fn read_weights(plan: &MergePlan, t: &TensorPlan, rows: Range<usize>) -> Result<PartWeights> {
    let base = match &plan.base {
        Some(b) => Some(read_input(plan, b, t, rows.clone(), None)?),
        None => None,
    };
    let values = t
        .inputs
        .iter()
        .map(|&k| read_input(plan, &plan.models[k], t, rows.clone(), base.as_deref()))
        .collect::<Result<_>>()?;
    Ok((base, values))
}

/// θ_k − θ_b over rows `rows` of tensor `t`, model rows aligned to the base's (the TIES,
/// breadcrumbs and DARE pre-passes).
fn read_deltas(plan: &MergePlan, k: usize, t: &TensorPlan, rows: Range<usize>) -> Result<Vec<f32>> {
    let base = plan
        .base
        .as_ref()
        .ok_or_else(|| Error::op(&t.name, plan.method.name(), "needs a base_model"))?;
    let base = read_input(plan, base, t, rows.clone(), None)?;
    let values = read_input(plan, &plan.models[k], t, rows, Some(&base))?;
    Ok(values.iter().zip(&base).map(|(v, b)| v - b).collect())
}

/// |θ_k − θ_b| over rows `rows` of tensor `t` (the TIES and breadcrumbs pre-passes).
fn read_magnitudes(
    plan: &MergePlan,
    k: usize,
    t: &TensorPlan,
    rows: Range<usize>,
) -> Result<Vec<f32>> {
    let mut mags = read_deltas(plan, k, t, rows)?;
    mags.iter_mut().for_each(|x| *x = x.abs());
    Ok(mags)
}

/// Add one part's notes to a tensor's: LED statistics summed, each warning once.
fn absorb(notes: &mut Vec<TensorNote>, part: Vec<TensorNote>) {
    for note in part {
        if let TensorNote::Led(s) = &note
            && let Some(TensorNote::Led(acc)) =
                notes.iter_mut().find(|n| matches!(n, TensorNote::Led(_)))
        {
            acc.add(s);
        } else if !notes.contains(&note) {
            notes.push(note);
        }
    }
}

/// Merge (or copy) tensor `t` into `writer`, advancing `bar` by the bytes of each part written.
fn merge_tensor(
    plan: &MergePlan,
    t: &TensorPlan,
    writer: &CheckpointWriter,
    seed: u64,
    chunk_elements: usize,
    bar: &ProgressBar,
) -> Result<Vec<TensorNote>> {
    let part_bytes =
        |rows: &Range<usize>| (rows.len() * rows_of(&t.shape).1 * t.dtype.size()) as u64;
    let reference = plan.base.as_ref().unwrap_or(&plan.models[0]);
    let row = rows_of(&t.shape).1;
    if t.action == Action::Copy {
        for r in row_parts(t, rows_per_part(t, chunk_elements)) {
            let bytes = reference
                .ckpt
                .read_bytes_range(&t.name, r.start * row..r.end * row)?;
            writer.write_bytes_chunk(&t.name, r.start * row, &bytes)?;
            bar.inc(part_bytes(&r));
        }
        return Ok(Vec::new());
    }
    let mut notes = Vec::new();
    for_each_part(plan, t, seed, chunk_elements, true, |job, r| {
        let mut out = vec![0f32; r.len() * row];
        let part_notes = if job.models.is_empty() {
            // No model holds this tensor: keep the base's (or reference's) values.
            reference
                .ckpt
                .read_f32_range_into(&t.name, r.start * row..r.end * row, &mut out)?;
            Vec::new()
        } else {
            plan.method.merge(job, &mut out)?
        };
        if let Some(bad) = out.iter().position(|x| !x.is_finite()) {
            return Err(Error::op(
                &t.name,
                plan.method.name(),
                format!(
                    "result is not finite at element {}: the inputs hold NaN or infinite values",
                    r.start * row + bad
                ),
            ));
        }
        writer.write_f32_chunk(&t.name, r.start * row, &out)?;
        bar.inc(part_bytes(&r));
        absorb(&mut notes, part_notes);
        Ok(())
    })?;
    Ok(notes)
}

/// LED's election for every merged tensor of `plan`, as [`run`] would report it in
/// [`MergeReport::led`], from the score checkpoints alone: no weight is read, nothing is
/// written. An error for methods other than `led`.
pub fn led_election(
    plan: &MergePlan,
    options: &RunOptions,
) -> Result<BTreeMap<String, led_mask::TensorStats>> {
    if !plan.method.needs_scores() {
        return Err(Error::Unsupported(format!(
            "the election needs merge_method: led, not {}",
            plan.method.name()
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| Error::Unsupported(format!("thread pool: {e}")))?;
    let seed = plan.config.random_seed.unwrap_or(0);
    let stats = Mutex::new(BTreeMap::new());
    pool.install(|| {
        plan.tensors
            .par_iter()
            .with_max_len(1)
            .filter(|t| t.action == Action::Merge && !t.inputs.is_empty())
            .try_for_each(|t| {
                let mut notes = Vec::new();
                for_each_part(plan, t, seed, options.chunk_elements, false, |job, _| {
                    absorb(&mut notes, crate::ops::Led::election(job)?);
                    Ok(())
                })?;
                for n in notes {
                    if let TensorNote::Led(s) = n {
                        stats
                            .lock()
                            .expect("not poisoned")
                            .insert(t.name.clone(), s);
                    }
                }
                Ok::<_, Error>(())
            })
    })?;
    Ok(stats.into_inner().expect("not poisoned"))
}

fn model_card(plan: &MergePlan, yaml: &str) -> String {
    let mut s = String::from("---\ntags:\n- merge\n- led-merging\n---\n# Merged model\n\n");
    s += &format!(
        "Merged with [led-merging]({}) {} using `{}`.\n\n",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION"),
        plan.method.name()
    );
    if let Some(b) = &plan.base {
        s += &format!("Base model: `{}`\n\n", b.path.display());
    }
    s += "Models:\n";
    for m in &plan.models {
        s += &format!("- `{}`\n", m.path.display());
    }
    s += &format!("\n## Configuration\n\n```yaml\n{yaml}```\n");
    s
}

/// Run `plan` into the directory `out`.
pub fn run(plan: &MergePlan, out: &Path, options: &RunOptions) -> Result<MergeReport> {
    let yaml = plan.config.to_yaml();
    let inputs: Vec<String> = plan
        .base
        .iter()
        .chain(&plan.models)
        .map(|i| i.path.display().to_string())
        .collect();
    let mut metadata = BTreeMap::new();
    metadata.insert(meta::TOOL.to_string(), meta::tool_version());
    metadata.insert(meta::KIND.to_string(), meta::KIND_MERGE.to_string());
    metadata.insert(
        meta::MERGE_METHOD.to_string(),
        plan.method.name().to_string(),
    );
    metadata.insert(meta::MERGE_CONFIG.to_string(), yaml.clone());
    metadata.insert(
        meta::MERGE_INPUTS.to_string(),
        serde_json::to_string(&inputs).expect("strings"),
    );
    let specs = plan
        .tensors
        .iter()
        .map(|t| TensorSpec::new(&t.name, t.dtype, t.shape.clone()))
        .collect();
    let writer = CheckpointWriter::create_dir(
        out,
        specs,
        WriterOptions {
            max_shard_size: options.max_shard_size,
            overwrite: options.force,
            metadata,
        },
    )?;
    let seed = plan.config.random_seed.unwrap_or(0);
    let bar = led_io::progress::bar(
        plan.output_bytes(),
        "merging",
        "{binary_bytes}/{binary_total_bytes}, {binary_bytes_per_sec}",
        options.progress,
    );
    let notes = Mutex::new(Vec::new());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| Error::Unsupported(format!("thread pool: {e}")))?;
    // Large tensors the method needs whole are merged one after another (each still parallel
    // inside), after the rest: threads never multiply the largest tensors' memory.
    let (whole, rest): (Vec<&TensorPlan>, Vec<&TensorPlan>) = plan.tensors.iter().partition(|t| {
        t.action == Action::Merge
            && chunking_of(plan, t, options.chunk_elements).2 == Chunking::Whole
    });
    let merge_one = |t: &TensorPlan| {
        tracing::debug!(tensor = %t.name, "merging");
        let n = merge_tensor(plan, t, &writer, seed, options.chunk_elements, &bar)?;
        notes
            .lock()
            .expect("not poisoned")
            .push((t.name.clone(), n));
        Ok::<_, Error>(())
    };
    pool.install(|| {
        rest.par_iter()
            .with_max_len(1)
            .try_for_each(|t| merge_one(t))?;
        whole.iter().try_for_each(|t| merge_one(t))
    })?;
    led_io::progress::finish(&bar);
    let out_dtype = plan
        .tensors
        .iter()
        .find(|t| t.action == Action::Merge)
        .map(|t| t.dtype);
    writer.copy_model_files(&plan.donor, out_dtype)?;
    writer.add_file("README.md", model_card(plan, &yaml).as_bytes())?;
    // A model transformers cannot load is never moved into place.
    writer.check_loadable()?;
    let written = writer.finish()?;
    let mut warnings = plan.warnings.clone();
    let mut led = BTreeMap::new();
    let mut notes = notes.into_inner().expect("not poisoned");
    notes.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, list) in notes {
        for note in list {
            match note {
                TensorNote::Warning(w) => warnings.push(format!("tensor {name:?}: {w}")),
                TensorNote::Led(stats) => {
                    led.insert(name.clone(), stats);
                }
            }
        }
    }
    Ok(MergeReport {
        written,
        warnings,
        led,
    })
}
