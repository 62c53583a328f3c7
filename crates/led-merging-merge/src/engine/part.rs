//! Reading one part of a tensor from every input (finite values only, vocabulary rows aligned
//! to the reference), and walking a tensor part by part: the method's stream first, if it has
//! one, then each part as the job the method merges.

use std::ops::Range;

use led_merging_io::Checkpoint;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::{ModelTensor, Params, Reads, ScorePair, TensorJob, TensorNote};
use crate::options::RunOptions;
use crate::parts::{Layout, part_shape, rows_of};
use crate::plan::{Input, MergePlan, TensorParams, TensorPlan};
use crate::vocab::Aligned;
use led_merging_io::is_vocab_tensor;

/// Read rows `rows` of `name` from `ckpt` as f32, aligned to the reference's `shape`
/// (vocabulary rule, docs/merging.md, "What the engine checks"): rows the input lacks come from
/// `fill` (the base's values for the same rows), or are zeros for scores; extra rows are never
/// read.
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

/// Rows `rows` of tensor `t` from `input`'s weights, aligned to the reference as [`read_rows`]
/// does; a NaN or infinite value is an error naming the input, the tensor and the element (a
/// selection by magnitude would otherwise drop or keep it silently).
fn read_input(
    plan: &MergePlan,
    (key, input): (usize, &Input),
    t: &TensorPlan,
    rows: Range<usize>,
    fill: Option<&[f32]>,
    aligned: Option<&Aligned>,
) -> Result<Vec<f32>> {
    let start = rows.start * rows_of(&t.shape).1;
    let values = match aligned {
        Some(a) => a.read(key, input, rows)?,
        None => read_rows(&input.ckpt, input.source(&t.name), &t.shape, rows, fill)?,
    };
    // A fold without early exit vectorises; the position is searched for only on failure.
    if values.iter().fold(true, |ok, x| ok & x.is_finite()) {
        return Ok(values);
    }
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

/// Vocabulary tensor `t` aligned to the plan's output vocabulary, when it has one.
fn aligned<'p>(plan: &'p MergePlan, t: &TensorPlan) -> Result<Option<Aligned<'p>>> {
    let Some(vocab) = plan.vocab.as_ref().filter(|_| is_vocab_tensor(&t.name)) else {
        return Ok(None);
    };
    let holders: Vec<(usize, &Input)> = plan
        .base
        .iter()
        .filter(|b| b.get(&t.name).is_some())
        .map(|b| (0, b))
        .chain(
            t.inputs
                .iter()
                .map(|&k| (plan.input_key(k), &plan.models[k])),
        )
        .collect();
    vocab
        .align(&t.name, &holders, rows_of(&t.shape).1)
        .map(Some)
}

/// One part of a tensor as read: what the job borrows.
struct Part {
    rows: Range<usize>,
    shape: Vec<usize>,
    base: Option<Vec<f32>>,
    /// Per model holding the tensor (empty when weights are not read).
    values: Vec<Vec<f32>>,
    /// Per model: (model, base) scores, when read and present.
    scores: Vec<Option<(Vec<f32>, Vec<f32>)>>,
}

/// What to read of each part.
#[derive(Clone, Copy)]
struct Wanted {
    weights: bool,
    scores: bool,
}

impl Part {
    /// Rows `rows` of tensor `t` from the base (if any) and every model holding it (rows a
    /// model lacks are the base's), and their scores, as `wanted`.
    fn read(
        plan: &MergePlan,
        t: &TensorPlan,
        global: &Params,
        rows: Range<usize>,
        wanted: Wanted,
        aligned: Option<&Aligned>,
    ) -> Result<Self> {
        let (base, values) = if wanted.weights {
            let base = match &plan.base {
                Some(b) => Some(read_input(plan, (0, b), t, rows.clone(), None, aligned)?),
                None => None,
            };
            let values = t
                .inputs
                .iter()
                .map(|&k| {
                    let input = (plan.input_key(k), &plan.models[k]);
                    read_input(plan, input, t, rows.clone(), base.as_deref(), aligned)
                })
                .collect::<Result<_>>()?;
            (base, values)
        } else {
            (None, vec![Vec::new(); t.inputs.len()])
        };
        // Scores as the method ranks them (LED's `neg_prune` reverses their order).
        let read_scores = |c: &Checkpoint| -> Result<Vec<f32>> {
            let mut s = read_rows(c, &t.name, &t.shape, rows.clone(), None)?;
            plan.method.prepare_scores(&t.name, global, &mut s)?;
            Ok(s)
        };
        let mut scores = Vec::with_capacity(t.inputs.len());
        for &k in &t.inputs {
            scores.push(match &plan.models[k].scores {
                Some(files) if wanted.scores && files.cover(&t.name) => {
                    Some((read_scores(&files.model)?, read_scores(&files.base)?))
                }
                _ => None,
            });
        }
        Ok(Part {
            shape: part_shape(&t.shape, rows.len()),
            rows,
            base,
            values,
            scores,
        })
    }

    /// The job a method gets for this part.
    fn job<'a>(
        &'a self,
        plan: &MergePlan,
        t: &'a TensorPlan,
        params: &'a TensorParams,
        seed: u64,
    ) -> TensorJob<'a> {
        let models = t
            .inputs
            .iter()
            .enumerate()
            .map(|(j, &k)| ModelTensor {
                index: plan.models[k].index.unwrap_or(k),
                values: &self.values[j],
                params: &params.models[j],
                scores: self.scores[j]
                    .as_ref()
                    .map(|(model, base)| ScorePair { model, base }),
            })
            .collect();
        TensorJob {
            name: &t.name,
            shape: &self.shape,
            base: self.base.as_deref(),
            models,
            global: &params.global,
            seed,
            offset: self.rows.start * rows_of(&t.shape).1,
            streamed: None,
        }
    }
}

/// Add one part's notes to a tensor's: reports summed into the first one, each warning once.
fn absorb(notes: &mut Vec<TensorNote>, part: Vec<TensorNote>) {
    for note in part {
        match note {
            TensorNote::Report(r) => match notes.iter_mut().find_map(|n| match n {
                TensorNote::Report(acc) => Some(acc),
                TensorNote::Warning(_) => None,
            }) {
                Some(acc) => acc.absorb(&*r),
                None => notes.push(TensorNote::Report(r)),
            },
            TensorNote::Warning(w) => {
                if !notes
                    .iter()
                    .any(|n| matches!(n, TensorNote::Warning(v) if *v == w))
                {
                    notes.push(TensorNote::Warning(w));
                }
            }
        }
    }
}

/// Hand merged tensor `t` to `visit`, part by part (whole when it is small or the method needs
/// it whole), as the job the method gets, with the part's rows; returns the notes of every
/// part, in part order. Parts of an element-by-element method are visited in parallel. When
/// the method streams over the parts, every pass of its stream runs first, and each part gets
/// what the stream hands it. Without `weights` only the scores are read (the job's weights
/// are empty): enough for [`crate::ops::MergeMethod::survey`].
pub(super) fn for_each_part(
    plan: &MergePlan,
    t: &TensorPlan,
    options: &RunOptions,
    weights: bool,
    visit: impl Fn(&TensorJob<'_>, Range<usize>) -> Result<Vec<TensorNote>> + Sync,
) -> Result<Vec<TensorNote>> {
    let seed = plan.config.random_seed.unwrap_or(0);
    let params = plan.tensor_params(t);
    let setup = params.setup(t);
    let layout = Layout::of(&*plan.method, &setup, options);
    let wanted = Wanted {
        weights,
        scores: plan.method.needs_scores(),
    };
    let aligned = aligned(plan, t)?;
    let aligned = aligned.as_ref();
    let mut notes = Vec::new();
    if layout.parallel {
        let per_part = layout
            .parts
            .par_iter()
            .map(|r| {
                let part = Part::read(plan, t, &params.global, r.clone(), wanted, aligned)?;
                visit(&part.job(plan, t, &params, seed), r.clone())
            })
            .collect::<Result<Vec<_>>>()?;
        per_part.into_iter().for_each(|n| absorb(&mut notes, n));
        return Ok(notes);
    }
    let mut stream = layout.stream(&*plan.method, &setup)?;
    if let Some(stream) = stream.as_mut() {
        let reads = match stream.reads() {
            Reads::Weights => Wanted {
                weights: true,
                scores: false,
            },
            Reads::Scores => Wanted {
                weights: false,
                scores: true,
            },
        };
        while stream.needs_pass() {
            for r in &layout.parts {
                let part = Part::read(plan, t, &params.global, r.clone(), reads, aligned)?;
                stream.feed(&part.job(plan, t, &params, seed))?;
            }
            stream.end_pass()?;
        }
    }
    for r in layout.parts {
        let part = Part::read(plan, t, &params.global, r.clone(), wanted, aligned)?;
        let job = part.job(plan, t, &params, seed);
        let handed = match stream.as_mut() {
            Some(s) => Some(s.hand_out(&job)?),
            None => None,
        };
        let job = TensorJob {
            streamed: handed.as_deref(),
            ..job
        };
        absorb(&mut notes, visit(&job, r)?);
    }
    Ok(notes)
}
