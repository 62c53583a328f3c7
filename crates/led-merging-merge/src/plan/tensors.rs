//! Stage 3: the output's tensors: every input's tensors checked against the reference's
//! (names, shapes, dtypes, score shapes), the vocabulary plan, the score files checked (stage
//! 4, `scores.rs`), the output's layer stacks, and the method's own check of every tensor's
//! resolved parameters: what the merge would refuse, the plan refuses.

use std::collections::BTreeMap;
use std::path::Path;

use led_merging_io::{Dtype, TensorInfo, is_vocab_tensor};

use super::open::Opened;
use super::params::Resolver;
use super::{Action, Input, ScoreFiles, TensorPlan, config_err};
use crate::config::MergeConfig;
use crate::error::{Error, Result};
use crate::ops::MergeMethod;
use crate::vocab::VocabPlan;

/// The output's tensors, as planned.
pub(super) struct Tensors {
    /// Output tensors, sorted by name.
    pub tensors: Vec<TensorPlan>,
    /// The output's stacks of numbered layers and their layer counts.
    pub layers: BTreeMap<String, usize>,
    /// The output vocabulary, with `tokenizer_source` or the `tokenizer` block.
    pub vocab: Option<VocabPlan>,
    /// Score files checked against their models.
    pub scores_checked: usize,
}

/// Plan every output tensor of `inputs` for `method`, written as `out_dtype` (else each
/// tensor's own dtype); warnings (those of stage 1, `ignored`,
/// among them, in the order the plan reports them) go to `warnings`.
pub(super) fn plan(
    config: &MergeConfig,
    method: &dyn MergeMethod,
    inputs: &Opened,
    out_dtype: Option<Dtype>,
    ignored: Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Tensors> {
    let path = config.source();
    let Opened {
        base,
        models,
        stack,
    } = inputs;
    let reference = base.as_ref().unwrap_or(&models[0]);
    let reference_tensors = match stack {
        // Every output tensor, as its first holder has it.
        Some(_) => {
            let mut all = BTreeMap::new();
            for input in base.iter().chain(models) {
                for (name, info) in input.tensors() {
                    all.entry(name).or_insert(info);
                }
            }
            all
        }
        None => reference.tensors().into_iter().collect(),
    };
    let all: Vec<&Input> = base.iter().chain(models).collect();
    let vocab = VocabPlan::new(config, config.base_model.as_deref(), &all, warnings)
        .map_err(|(key, reason)| config_err(path, key, reason))?;
    if vocab.is_some() && method.needs_scores() {
        return Err(config_err(
            path,
            "tokenizer_source",
            format!(
                "{} scores every model's own embedding rows: merge with the base's vocabulary (no `tokenizer_source`)",
                method.name()
            ),
        ));
    }
    let (mut tensors, found, mut problems) = plan_tensors(
        &reference_tensors,
        &reference.path,
        models,
        out_dtype,
        vocab.is_some(),
    );
    warnings.extend(found);
    if let Some(v) = &vocab {
        for t in tensors.iter_mut().filter(|t| is_vocab_tensor(&t.name)) {
            t.shape[0] = v.rows;
        }
    }
    warnings.extend(ignored);
    let found =
        super::scores::check_files(method, base.as_ref(), models, &tensors, &config.parameters)?;
    problems.extend(found.problems);
    warnings.extend(found.warnings);
    let layers = layer_counts(&tensors);
    let resolver = Resolver {
        method,
        config,
        models,
        stack: stack.as_ref(),
        layers: &layers,
    };
    problems.extend(method_checks(&resolver, &tensors));
    if !problems.is_empty() {
        return Err(Error::Incompatible { problems });
    }
    Ok(Tensors {
        tensors,
        layers,
        vocab,
        scores_checked: found.checked,
    })
}

/// The output dtype: `out_dtype`, else `dtype`, else each tensor's own.
pub(super) fn out_dtype(config: &MergeConfig) -> Result<Option<Dtype>> {
    let path = config.source();
    Ok(match (&config.out_dtype, &config.dtype) {
        (Some(t), _) => Some(parse_dtype(path, "out_dtype", t)?),
        (None, Some(t)) => Some(parse_dtype(path, "dtype", t)?),
        _ => None,
    })
}

/// The output's stacks of numbered layers (the decoder's `model.layers.`, a vision tower's,
/// ...) and their layer counts.
fn layer_counts(tensors: &[TensorPlan]) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    for t in tensors {
        if let Some((stack, l)) = led_merging_io::stack_layer(&t.name) {
            let count = layers.entry(stack.to_owned()).or_insert(0);
            *count = (*count).max(l + 1);
        }
    }
    layers
}

/// The method's own checks of every merged tensor's resolved parameters (DELLA's density ±
/// epsilon, ...), once per problem.
fn method_checks(resolver: &Resolver<'_>, tensors: &[TensorPlan]) -> Vec<String> {
    let method = resolver.method;
    let mut refused = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for t in tensors.iter().filter(|t| t.action == Action::Merge) {
        let (global, params) = resolver.tensor(&t.name, &t.inputs);
        if let Err(why) = method.check_tensor(&global, &params) {
            // Indices in the message are the tensor's inputs; name the config's entries.
            if refused.insert(why.clone()) {
                problems.push(format!("tensor {:?}: {}: {why}", t.name, method.name()));
            }
        }
    }
    problems
}

fn parse_dtype(path: &Path, key: &str, text: &str) -> Result<Dtype> {
    match Dtype::parse(text) {
        Some(d) if d.writable_from_f32() => Ok(d),
        _ => Err(config_err(
            path,
            key,
            format!("{text:?} is not an output dtype (bfloat16, float16, float32, float64)"),
        )),
    }
}

fn describe(info: &TensorInfo) -> String {
    format!("{} {:?}", info.dtype, info.shape)
}

/// Check every tensor of every input against the reference's (`ref_names`, output name →
/// tensor, from the model at `reference`): the tensors' plans, warnings and every problem found.
fn plan_tensors(
    ref_names: &BTreeMap<&str, &TensorInfo>,
    reference: &Path,
    models: &[Input],
    out_dtype: Option<Dtype>,
    aligned: bool,
) -> (Vec<TensorPlan>, Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for m in models {
        for (name, _) in m.tensors() {
            if !ref_names.contains_key(name) {
                if name == "lm_head.weight" {
                    warnings.push(format!(
                        "{}: lm_head.weight ignored: the base ties it to the embeddings, and the output stays tied",
                        m.path.display()
                    ));
                } else {
                    problems.push(format!(
                        "{}: tensor {name:?} is not in the base {}",
                        m.path.display(),
                        reference.display()
                    ));
                }
            }
        }
    }
    let mut tensors = Vec::with_capacity(ref_names.len());
    for (&name, &info) in ref_names {
        let float = info.dtype.is_float() && info.dtype.readable_as_f32();
        let mut inputs = Vec::new();
        for (k, m) in models.iter().enumerate() {
            let Some(t) = m.get(name) else {
                continue;
            };
            let rows_only = is_vocab_tensor(name)
                && t.shape.len() == info.shape.len()
                && !t.shape.is_empty()
                && t.shape[1..] == info.shape[1..];
            if t.shape != info.shape && !rows_only {
                problems.push(format!(
                    "{}: tensor {name:?} is {} but the base has {}",
                    m.path.display(),
                    describe(t),
                    describe(info)
                ));
                continue;
            }
            if !aligned && t.shape != info.shape && t.shape[0] > info.shape[0] {
                warnings.push(format!(
                    "{}: tensor {name:?}: rows {}..{} beyond the base's vocabulary are dropped",
                    m.path.display(),
                    info.shape[0],
                    t.shape[0]
                ));
            }
            if float != (t.dtype.is_float() && t.dtype.readable_as_f32()) {
                problems.push(format!(
                    "{}: tensor {name:?} is {} but the base's is {}",
                    m.path.display(),
                    t.dtype,
                    info.dtype
                ));
                continue;
            }
            if let Some(ScoreFiles {
                model: ms,
                base: bs,
            }) = &m.scores
            {
                for (ckpt, whose, shape) in [(ms, "model", &t.shape), (bs, "base", &info.shape)] {
                    match ckpt.get(name) {
                        Some(s) if &s.shape != shape => problems.push(format!(
                            "{}: scores for tensor {name:?} have shape {:?} but the {whose} tensor has {:?}",
                            ckpt.path().display(),
                            s.shape,
                            shape
                        )),
                        Some(s) if !s.dtype.readable_as_f32() => {
                            problems.push(format!("{}: scores for tensor {name:?} are {}", ckpt.path().display(), s.dtype))
                        }
                        _ => {}
                    }
                }
            }
            inputs.push(k);
        }
        let (dtype, action) = if float {
            (out_dtype.unwrap_or(info.dtype), Action::Merge)
        } else {
            (info.dtype, Action::Copy)
        };
        tensors.push(TensorPlan {
            name: name.to_owned(),
            shape: info.shape.clone(),
            dtype,
            action,
            inputs,
        });
    }
    (tensors, warnings, problems)
}
