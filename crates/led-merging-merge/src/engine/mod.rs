//! Running a plan: tensor by tensor (in parallel across tensors), part by part within large
//! tensors (`part.rs`), reading inputs as f32, merging, and writing through `led-merging-io`'s atomic
//! streaming writer, with provenance (`card.rs`).

mod card;
mod part;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use indicatif::ProgressBar;
use led_merging_io::{CheckpointWriter, TensorSpec, WriterOptions, Written};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::{TensorNote, TensorReport};
use crate::options::RunOptions;
use crate::parts::{row_parts, rows_of, rows_per_part};
use crate::plan::{Action, MergePlan, TensorPlan};
use part::for_each_part;

/// The method's report ([`TensorNote::Report`]) per tensor, by tensor name.
pub type Reports = BTreeMap<String, Box<dyn TensorReport>>;

/// What a merge did.
#[derive(Debug)]
pub struct MergeReport {
    /// The output.
    pub written: Written,
    /// Warnings (planning and per tensor).
    pub warnings: Vec<String>,
    /// The method's report per tensor (LED's election statistics); read them typed with
    /// [`MergeReport::reports`].
    pub tensor_reports: Reports,
}

impl MergeReport {
    /// The per-tensor reports of type `T` (for `led`: [`led_merging_mask::TensorStats`]), by
    /// tensor name.
    pub fn reports<T: TensorReport + Clone>(&self) -> BTreeMap<String, T> {
        reports_of(&self.tensor_reports)
    }
}

/// The reports of type `T` among `reports`, by tensor name.
pub fn reports_of<T: TensorReport + Clone>(reports: &Reports) -> BTreeMap<String, T> {
    reports
        .iter()
        .filter_map(|(name, r)| Some((name.clone(), r.downcast::<T>()?.clone())))
        .collect()
}

/// Merge (or copy) tensor `t` into `writer`, advancing `bar` by the bytes of each part written.
fn merge_tensor(
    plan: &MergePlan,
    t: &TensorPlan,
    writer: &CheckpointWriter,
    options: &RunOptions,
    bar: &ProgressBar,
) -> Result<Vec<TensorNote>> {
    let part_bytes =
        |rows: &Range<usize>| (rows.len() * rows_of(&t.shape).1 * t.dtype.size()) as u64;
    // The base when it holds the tensor, else the first model that does.
    let reference = plan
        .base
        .as_ref()
        .filter(|b| b.get(&t.name).is_some())
        .or_else(|| t.inputs.first().map(|&k| &plan.models[k]))
        .unwrap_or(&plan.models[0]);
    let row = rows_of(&t.shape).1;
    if t.action == Action::Copy {
        let per = rows_per_part(&t.shape, options.part_elements(plan.models.len() + 1));
        for r in row_parts(&t.shape, per) {
            let bytes = reference
                .ckpt
                .read_bytes_range(reference.source(&t.name), r.start * row..r.end * row)?;
            writer.write_bytes_chunk(&t.name, r.start * row, &bytes)?;
            bar.inc(part_bytes(&r));
        }
        return Ok(Vec::new());
    }
    for_each_part(plan, t, options, true, |job, r| {
        let mut out = vec![0f32; r.len() * row];
        let part_notes = if job.models.is_empty()
            && let Some(base) = job.base
        {
            // No model holds this tensor: keep the base's values.
            out.copy_from_slice(base);
            Vec::new()
        } else if job.models.is_empty() {
            reference.ckpt.read_f32_range_into(
                reference.source(&t.name),
                r.start * row..r.end * row,
                &mut out,
            )?;
            Vec::new()
        } else {
            plan.method.merge(job, &mut out)?
        };
        // A fold without early exit vectorises; the position is searched for only on failure.
        if !out.iter().fold(true, |ok, x| ok & x.is_finite())
            && let Some(bad) = out.iter().position(|x| !x.is_finite())
        {
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
        Ok(part_notes)
    })
}

/// The reports ([`TensorNote::Report`]) of the plan's method for every merged tensor, as [`run`]
/// would give them in [`MergeReport::reports`] ([`crate::ops::MergeMethod::survey`]): the
/// weights and scores are read part by part, as a merge reads them; nothing is written.
pub fn survey(plan: &MergePlan, options: &RunOptions) -> Result<Reports> {
    let pool = thread_pool(options)?;
    let reports = Mutex::new(Reports::new());
    pool.install(|| {
        plan.tensors
            .par_iter()
            .with_max_len(1)
            .filter(|t| t.action == Action::Merge && !t.inputs.is_empty())
            .try_for_each(|t| {
                let notes =
                    for_each_part(plan, t, options, true, |job, _| plan.method.survey(job))?;
                for n in notes {
                    if let TensorNote::Report(r) = n {
                        reports
                            .lock()
                            .expect("not poisoned")
                            .insert(t.name.clone(), r);
                    }
                }
                Ok::<_, Error>(())
            })
    })?;
    Ok(reports.into_inner().expect("not poisoned"))
}

fn thread_pool(options: &RunOptions) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| Error::Unsupported(format!("thread pool: {e}")))
}

/// Run `plan` into the directory `out`.
pub fn run(plan: &MergePlan, out: impl AsRef<Path>, options: &RunOptions) -> Result<MergeReport> {
    let out = out.as_ref();
    let yaml = plan.config.to_yaml();
    let metadata = card::metadata(plan, &yaml);
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
            overwrite: options.overwrite,
            metadata,
        },
    )?;
    let bar = led_merging_io::progress::bar(
        plan.output_bytes(),
        "merging",
        "{binary_bytes}/{binary_total_bytes}, {binary_bytes_per_sec}",
        options.progress,
    );
    let notes = Mutex::new(Vec::new());
    let pool = thread_pool(options)?;
    // Large tensors the method needs whole are merged one after another (each still parallel
    // inside), after the rest: threads never multiply the largest tensors' memory.
    let (whole, rest): (Vec<&TensorPlan>, Vec<&TensorPlan>) = plan
        .tensors
        .iter()
        .partition(|t| t.action == Action::Merge && plan.layout(t, options).oversized);
    let merge_one = |t: &TensorPlan| {
        tracing::debug!(tensor = %t.name, "merging");
        let n = merge_tensor(plan, t, &writer, options, &bar)?;
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
    led_merging_io::progress::finish(&bar);
    let out_dtype = plan
        .tensors
        .iter()
        .find(|t| t.action == Action::Merge)
        .map(|t| t.dtype);
    writer.copy_model_files(&plan.donor, out_dtype)?;
    if let Some(v) = &plan.vocab {
        // The donor's tokenizer, just copied, is the one to edit unless another is given.
        let from = Some(v.tokenizer_dir.as_path())
            .filter(|dir| !crate::inputs::same_path(dir, &plan.donor));
        writer.set_vocabulary(from, v.keep_below, &v.added, v.rows)?;
    }
    if let Some(stack) = &plan.stack {
        writer.restack_config(&stack.layer_sources)?;
    }
    let mut template_warning = None;
    if let Some(template) = &plan.chat_template
        && !writer.set_chat_template(template)?
    {
        template_warning = Some(format!(
            "chat_template not saved: {} has no tokenizer to give it to",
            plan.donor.display()
        ));
    }
    writer.add_file("README.md", card::model_card(plan, &yaml).as_bytes())?;
    // A model transformers cannot load is never moved into place.
    writer.check_loadable()?;
    let written = writer.finish()?;
    let mut warnings = plan.warnings.clone();
    warnings.extend(template_warning);
    let mut reports = Reports::new();
    let mut notes = notes.into_inner().expect("not poisoned");
    notes.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, list) in notes {
        for note in list {
            match note {
                TensorNote::Warning(w) => warnings.push(format!("tensor {name:?}: {w}")),
                TensorNote::Report(r) => {
                    reports.insert(name.clone(), r);
                }
            }
        }
    }
    Ok(MergeReport {
        written,
        warnings,
        tensor_reports: reports,
    })
}
