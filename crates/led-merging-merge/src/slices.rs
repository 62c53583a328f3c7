//! mergekit's `slices:` (layer surgery, docs/merging.md, "Slices"): the output's decoder layers
//! are the slices' layers one after another; output layer `start + k` of a slice is merged from
//! layer `layer_range[0] + k` of each of its sources. Tensors outside the layers come from the
//! first slice's sources (the embeddings) or the last slice's (final norm, `lm_head`), as in
//! mergekit. Each source becomes one input of the plan that sees its layers under their output
//! names ([`view`]); the engine does not know about slices.

use std::collections::BTreeMap;
use std::path::Path;

use led_merging_io::Checkpoint;

use crate::config::{MergeConfig, ModelEntry, Parameters, position};
use crate::error::{Error, Result};
use crate::inputs::same_path;

/// Where one source's layers land in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Its first layer.
    pub from: usize,
    /// Layers taken.
    pub len: usize,
    /// The output layer its first layer becomes.
    pub to: usize,
    /// Whether it gives the tensors before the layers (it is in the first slice).
    pub first: bool,
    /// Whether it gives the tensors after the layers (it is in the last slice).
    pub last: bool,
}

/// One output slice.
#[derive(Debug, Clone)]
pub struct StackSlice {
    /// Its first output layer.
    pub start: usize,
    /// Its number of layers.
    pub len: usize,
    /// Its `parameters`, over the top-level ones.
    pub parameters: Parameters,
}

/// The output's layers, slice by slice.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The slices in output order.
    pub slices: Vec<StackSlice>,
    /// For each output layer, the layer of its slice's first source it comes from (config.json's
    /// per-layer lists follow it).
    pub layer_sources: Vec<usize>,
}

/// Whether tensor `name`, outside the decoder layers, comes before them (the token and
/// position embeddings).
fn before_layers(name: &str) -> bool {
    name.contains("embed") || name.ends_with("wte.weight") || name.ends_with("wpe.weight")
}

impl Stack {
    /// The slice tensor `name` belongs to: its layer's, or the first slice for the embeddings,
    /// the last one for the other tensors outside the layers.
    pub fn slice_of(&self, name: &str) -> &StackSlice {
        let last = self.slices.len() - 1;
        let i = match led_merging_io::decoder_layer(name) {
            Some((l, _)) => self
                .slices
                .iter()
                .position(|s| l < s.start + s.len)
                .unwrap_or(last),
            None if before_layers(name) => 0,
            None => last,
        };
        &self.slices[i]
    }

    /// Gradient position of tensor `name`: over its slice's layers, as mergekit computes it
    /// (`k / (len − 1)`, 1 for a one-layer slice, 0 outside the layers).
    pub fn t(&self, name: &str) -> f64 {
        match led_merging_io::decoder_layer(name) {
            Some((l, _)) => {
                let s = self.slice_of(name);
                position(l - s.start, s.len)
            }
            None => 0.0,
        }
    }

    /// Output decoder layers.
    pub fn layers(&self) -> usize {
        self.layer_sources.len()
    }
}

/// A source of the plan: what the config's `models` entry would be, where it lands, and how
/// errors name it.
#[derive(Debug, Clone)]
pub struct Source {
    /// `slices[i].sources[j]`.
    pub label: String,
    /// The model and its parameters.
    pub entry: ModelEntry,
    /// Its layers in the output.
    pub placement: Placement,
    /// Its slice.
    pub slice: usize,
}

/// A `slices:` config, checked as far as it can be without opening the models.
#[derive(Debug)]
pub struct Lowered {
    /// Every source that is not the base, in config order.
    pub sources: Vec<Source>,
    /// The base's placements, one per slice (empty without `base_model`).
    pub base: Vec<Placement>,
    /// The output's layers.
    pub stack: Stack,
}

impl Lowered {
    /// Sources besides the base in each slice: what a method's model count applies to.
    pub fn models_per_slice(&self) -> Vec<usize> {
        let mut n = vec![0; self.stack.slices.len()];
        for s in &self.sources {
            n[s.slice] += 1;
        }
        n
    }
}

/// Check `config.slices` (read from `path`) and lay them out; the base, when given, must be a
/// source of every slice (its layers there are the base of that slice's merge) and is left
/// out of the sources when `base_separate` (the method treats the base apart).
pub fn lower(config: &MergeConfig, path: &Path, base_separate: bool) -> Result<Lowered> {
    let err = |key: String, reason: String| Error::Config {
        path: path.into(),
        key,
        reason,
    };
    if !config.models.is_empty() {
        return Err(err(
            "slices".into(),
            "give either `models` or `slices`, not both".into(),
        ));
    }
    let mut problems = Vec::new();
    let (mut sources, mut base, mut slices, mut layer_sources) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let n = config.slices.len();
    for (i, slice) in config.slices.iter().enumerate() {
        let at = format!("slices[{i}]");
        if let Some(b) = &slice.base_model
            && !config
                .base_model
                .as_deref()
                .is_some_and(|g| same_path(g, b))
        {
            problems.push(format!(
                "{at}.base_model: a base per slice is not supported: give one top-level `base_model` (a source of every slice)"
            ));
        }
        let Some(first) = slice.sources.first() else {
            problems.push(format!("{at}.sources: a slice needs at least one source"));
            continue;
        };
        let len = first.layer_range[1].saturating_sub(first.layer_range[0]);
        let start = layer_sources.len();
        let mut has_base = false;
        for (j, s) in slice.sources.iter().enumerate() {
            let [from, end] = s.layer_range;
            if end <= from {
                problems.push(format!(
                    "{at}.sources[{j}].layer_range: [{from}, {end}] holds no layer (the end is exclusive)"
                ));
                continue;
            }
            if end - from != len {
                problems.push(format!(
                    "{at}.sources[{j}].layer_range: [{from}, {end}] has {} layer(s) but sources[0]'s has {len}: every source of a slice gives the same number of layers",
                    end - from
                ));
                continue;
            }
            let placement = Placement {
                from,
                len,
                to: start,
                first: i == 0,
                last: i + 1 == n,
            };
            let is_base = config
                .base_model
                .as_deref()
                .is_some_and(|b| same_path(b, &s.model));
            if is_base {
                if has_base {
                    problems.push(format!(
                        "{at}.sources[{j}]: base_model is a source of this slice twice"
                    ));
                }
                has_base = true;
                base.push(placement);
                if base_separate {
                    continue;
                }
            }
            sources.push(Source {
                label: format!("{at}.sources[{j}]"),
                entry: ModelEntry {
                    model: s.model.clone(),
                    parameters: s.parameters.clone(),
                    scores: None,
                    location: None,
                },
                placement,
                slice: i,
            });
        }
        if let Some(b) = &config.base_model
            && !has_base
        {
            problems.push(format!(
                "{at}.sources: base_model {} is not a source of this slice: with `slices`, the base's layers must be given in every slice",
                b.display()
            ));
        }
        layer_sources.extend(first.layer_range[0]..first.layer_range[0] + len);
        slices.push(StackSlice {
            start,
            len,
            parameters: slice.parameters.clone(),
        });
    }
    if !problems.is_empty() {
        return Err(err("slices".into(), problems.join("; ")));
    }
    Ok(Lowered {
        sources,
        base,
        stack: Stack {
            slices,
            layer_sources,
        },
    })
}

/// The tensors of `ckpt` that `placements` put in the output: output name → name in `ckpt`.
/// A layer range past the model's last layer is an error naming `label` and `path`.
pub fn view(
    ckpt: &Checkpoint,
    path: &Path,
    label: &str,
    placements: &[Placement],
) -> std::result::Result<BTreeMap<String, String>, String> {
    let layers = ckpt
        .tensors()
        .iter()
        .filter_map(|t| led_merging_io::decoder_layer(&t.name).map(|(l, _)| l + 1))
        .max()
        .unwrap_or(0);
    let mut names = BTreeMap::new();
    for p in placements {
        if p.from + p.len > layers {
            return Err(format!(
                "{label}: layer_range [{}, {}] goes past {}'s {layers} layer(s)",
                p.from,
                p.from + p.len,
                path.display()
            ));
        }
        for t in ckpt.tensors() {
            let out = match led_merging_io::decoder_layer(&t.name) {
                Some((l, _)) if (p.from..p.from + p.len).contains(&l) => {
                    led_merging_io::in_layer(&t.name, l - p.from + p.to).expect("a layer's tensor")
                }
                Some(_) => continue,
                None if (p.first && before_layers(&t.name))
                    || (p.last && !before_layers(&t.name)) =>
                {
                    t.name.clone()
                }
                None => continue,
            };
            names.insert(out, t.name.clone());
        }
    }
    Ok(names)
}
