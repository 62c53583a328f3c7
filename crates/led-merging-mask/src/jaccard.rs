//! Overlap analysis (the paper's Fig. 4; docs/cli.md, `led analyze`): Jaccard indices of top-r sets per tensor,
//! pooled by layer index and tensor kind from Hugging Face tensor names.

use std::collections::BTreeMap;
use std::fmt;

use crate::dense::DenseMask;

/// |A ∩ B| / |A ∪ B| from the two counts; 1 when both sets are empty (they are equal).
pub fn jaccard_from_counts(intersection: u64, union: u64) -> f64 {
    if union == 0 {
        1.0
    } else {
        intersection as f64 / union as f64
    }
}

/// (|A ∩ B|, |A ∪ B|) of two dense masks by popcount. Panics on different lengths.
pub fn overlap_counts(a: &DenseMask, b: &DenseMask) -> (u64, u64) {
    assert_eq!(a.len(), b.len(), "masks over tensors of different sizes");
    a.words()
        .iter()
        .zip(b.words())
        .fold((0, 0), |(i, u), (&x, &y)| {
            (
                i + u64::from((x & y).count_ones()),
                u + u64::from((x | y).count_ones()),
            )
        })
}

/// What a tensor is within a decoder layer (or the model), from its Hugging Face name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TensorKind {
    /// Token embedding.
    Embed,
    /// Attention query projection.
    Q,
    /// Attention key projection.
    K,
    /// Attention value projection.
    V,
    /// Attention output projection.
    O,
    /// MLP gate projection.
    Gate,
    /// MLP up projection.
    Up,
    /// MLP down projection.
    Down,
    /// Any RMSNorm / LayerNorm weight.
    Norm,
    /// Output head.
    LmHead,
    /// Anything else.
    Other,
}

impl TensorKind {
    /// Short label for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            TensorKind::Embed => "embed",
            TensorKind::Q => "q",
            TensorKind::K => "k",
            TensorKind::V => "v",
            TensorKind::O => "o",
            TensorKind::Gate => "gate",
            TensorKind::Up => "up",
            TensorKind::Down => "down",
            TensorKind::Norm => "norm",
            TensorKind::LmHead => "lm_head",
            TensorKind::Other => "other",
        }
    }
}

impl fmt::Display for TensorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Layer index (for tensors under `layers.N.`) and kind of a Hugging Face tensor name
/// (Llama, Mistral and Qwen2 naming; biases count with their projection).
pub fn classify(name: &str) -> (Option<usize>, TensorKind) {
    let parts: Vec<&str> = name.split('.').collect();
    let layer = parts
        .windows(2)
        .find(|w| matches!(w[0], "layers" | "h" | "blocks"))
        .and_then(|w| w[1].parse().ok());
    let has = |s: &str| parts.contains(&s);
    let kind = if has("embed_tokens") || has("wte") {
        TensorKind::Embed
    } else if has("lm_head") {
        TensorKind::LmHead
    } else if has("q_proj") {
        TensorKind::Q
    } else if has("k_proj") {
        TensorKind::K
    } else if has("v_proj") {
        TensorKind::V
    } else if has("o_proj") {
        TensorKind::O
    } else if has("gate_proj") {
        TensorKind::Gate
    } else if has("up_proj") {
        TensorKind::Up
    } else if has("down_proj") {
        TensorKind::Down
    } else if parts
        .iter()
        .any(|p| p.ends_with("norm") || p.ends_with("layernorm"))
    {
        TensorKind::Norm
    } else {
        TensorKind::Other
    };
    (layer, kind)
}

/// Pooled intersection and union counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overlap {
    /// Σ |A ∩ B|.
    pub intersection: u64,
    /// Σ |A ∪ B|.
    pub union: u64,
    /// Tensors pooled.
    pub tensors: usize,
}

impl Overlap {
    /// The pooled Jaccard index Σ|A ∩ B| / Σ|A ∪ B|.
    pub fn jaccard(&self) -> f64 {
        jaccard_from_counts(self.intersection, self.union)
    }

    fn add(&mut self, other: Overlap) {
        self.intersection += other.intersection;
        self.union += other.union;
        self.tensors += other.tensors;
    }
}

/// Jaccard indices pooled per (layer, kind) cell; tensors outside layers have layer `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JaccardTable {
    cells: BTreeMap<(Option<usize>, TensorKind), Overlap>,
}

impl JaccardTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one tensor's counts under its name's (layer, kind).
    pub fn add(&mut self, name: &str, intersection: u64, union: u64) {
        let cell = self.cells.entry(classify(name)).or_default();
        cell.add(Overlap {
            intersection,
            union,
            tensors: 1,
        });
    }

    /// Every cell, ordered by layer (`None` first) then kind.
    pub fn cells(&self) -> impl Iterator<Item = (Option<usize>, TensorKind, Overlap)> + '_ {
        self.cells.iter().map(|(&(l, k), &o)| (l, k, o))
    }

    /// Pooled over layers, per kind.
    pub fn by_kind(&self) -> BTreeMap<TensorKind, Overlap> {
        let mut out: BTreeMap<TensorKind, Overlap> = BTreeMap::new();
        for (_, k, o) in self.cells() {
            out.entry(k).or_default().add(o);
        }
        out
    }

    /// Pooled over kinds, per layer.
    pub fn by_layer(&self) -> BTreeMap<Option<usize>, Overlap> {
        let mut out: BTreeMap<Option<usize>, Overlap> = BTreeMap::new();
        for (l, _, o) in self.cells() {
            out.entry(l).or_default().add(o);
        }
        out
    }

    /// Pooled over everything.
    pub fn overall(&self) -> Overlap {
        let mut all = Overlap::default();
        self.cells.values().for_each(|&o| all.add(o));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_classify() {
        assert_eq!(
            classify("model.layers.12.self_attn.q_proj.weight"),
            (Some(12), TensorKind::Q)
        );
        assert_eq!(
            classify("model.layers.0.self_attn.k_proj.bias"),
            (Some(0), TensorKind::K)
        );
        assert_eq!(
            classify("model.layers.3.mlp.down_proj.weight"),
            (Some(3), TensorKind::Down)
        );
        assert_eq!(
            classify("model.layers.3.input_layernorm.weight"),
            (Some(3), TensorKind::Norm)
        );
        assert_eq!(
            classify("model.layers.3.post_attention_layernorm.weight"),
            (Some(3), TensorKind::Norm)
        );
        assert_eq!(classify("model.norm.weight"), (None, TensorKind::Norm));
        assert_eq!(
            classify("model.embed_tokens.weight"),
            (None, TensorKind::Embed)
        );
        assert_eq!(classify("lm_head.weight"), (None, TensorKind::LmHead));
        assert_eq!(
            classify("model.layers.x.mlp.up_proj.weight"),
            (None, TensorKind::Up)
        );
        assert_eq!(classify("rotary.inv_freq"), (None, TensorKind::Other));
    }

    #[test]
    fn table_pools_counts() {
        let mut t = JaccardTable::new();
        t.add("model.layers.0.self_attn.q_proj.weight", 1, 4);
        t.add("model.layers.0.mlp.up_proj.weight", 3, 4);
        t.add("model.layers.1.self_attn.q_proj.weight", 2, 2);
        assert_eq!(t.by_layer()[&Some(0)].jaccard(), 0.5);
        assert_eq!(
            t.by_kind()[&TensorKind::Q],
            Overlap {
                intersection: 3,
                union: 6,
                tensors: 2
            }
        );
        assert_eq!(t.overall().jaccard(), 0.6);
        assert_eq!(t.cells().count(), 3);
        assert_eq!(jaccard_from_counts(0, 0), 1.0);
    }
}
