//! The tensors and `config.json` of a Llama-architecture checkpoint of a chosen shape (grouped
//! query attention, SwiGLU MLP, RMS norms): what the demo, the examples, the benchmarks and the
//! tests generate, one definition, loaded by transformers as `LlamaForCausalLM`.

use crate::{Dtype, TensorSpec};

/// The shape of a Llama-architecture model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlamaShape {
    /// Rows of the embedding (and of the head).
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention): `hidden / heads * kv_heads` rows in k and v.
    pub kv_heads: usize,
    /// `max_position_embeddings`.
    pub positions: usize,
    /// Whether the head is the embedding (no `lm_head.weight`).
    pub tied: bool,
}

impl LlamaShape {
    /// The tensors in the order transformers writes them, every one in `dtype`.
    pub fn specs(&self, dtype: Dtype) -> Vec<TensorSpec> {
        let (h, i) = (self.hidden, self.intermediate);
        let kv = h / self.heads * self.kv_heads;
        let mut specs = vec![TensorSpec::new(
            "model.embed_tokens.weight",
            dtype,
            [self.vocab, h],
        )];
        for l in 0..self.layers {
            for (name, shape) in [
                ("self_attn.q_proj.weight", vec![h, h]),
                ("self_attn.k_proj.weight", vec![kv, h]),
                ("self_attn.v_proj.weight", vec![kv, h]),
                ("self_attn.o_proj.weight", vec![h, h]),
                ("mlp.gate_proj.weight", vec![i, h]),
                ("mlp.up_proj.weight", vec![i, h]),
                ("mlp.down_proj.weight", vec![h, i]),
                ("input_layernorm.weight", vec![h]),
                ("post_attention_layernorm.weight", vec![h]),
            ] {
                specs.push(TensorSpec::new(
                    format!("model.layers.{l}.{name}"),
                    dtype,
                    shape,
                ));
            }
        }
        specs.push(TensorSpec::new("model.norm.weight", dtype, [h]));
        if !self.tied {
            specs.push(TensorSpec::new("lm_head.weight", dtype, [self.vocab, h]));
        }
        specs
    }

    /// `config.json` for weights stored in `dtype`.
    pub fn config(&self, dtype: Dtype) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "max_position_embeddings": self.positions,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "hidden_act": "silu",
            "tie_word_embeddings": self.tied,
            "torch_dtype": dtype.torch_name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_grouped_query_attention() {
        let shape = LlamaShape {
            vocab: 10,
            hidden: 8,
            intermediate: 12,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            positions: 16,
            tied: true,
        };
        let specs = shape.specs(Dtype::BF16);
        assert_eq!(specs.len(), 1 + 2 * 9 + 1);
        assert_eq!(specs[2].name, "model.layers.0.self_attn.k_proj.weight");
        assert_eq!(specs[2].shape, [4, 8]);
        assert_eq!(specs[7].shape, [8, 12]);
        assert!(specs.iter().all(|s| s.name != "lm_head.weight"));
        let untied = LlamaShape {
            tied: false,
            ..shape
        }
        .specs(Dtype::F32);
        assert_eq!(untied.last().unwrap().name, "lm_head.weight");
        assert_eq!(untied.last().unwrap().shape, [10, 8]);
        let config = shape.config(Dtype::BF16);
        assert_eq!(config["torch_dtype"], "bfloat16");
        assert_eq!(config["tie_word_embeddings"], true);
    }
}
