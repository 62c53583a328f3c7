//! Hugging Face tensor-name conventions shared by every crate.

/// Where the decoder layers sit, `PREFIX.N.rest`, in the architectures transformers writes:
/// Llama and its kin (Mistral, Qwen, Gemma, Phi-3, Granite, ...), GPT-2 (with and without its
/// `transformer.` prefix), GPT-NeoX, OPT, MPT, Mamba, and the language model of LLaVA-style
/// vision-language models (both layouts).
const LAYER_PREFIXES: &[&str] = &[
    "model.layers.",
    "transformer.h.",
    "h.",
    "gpt_neox.layers.",
    "model.decoder.layers.",
    "transformer.blocks.",
    "backbone.layers.",
    "model.language_model.layers.",
    "language_model.model.layers.",
];

/// The prefix, layer and rest of a decoder-layer tensor name: its stack
/// ([`stack_layer`]) when that is one of [`LAYER_PREFIXES`].
fn layer_parts(name: &str) -> Option<(&str, usize, &str)> {
    let (prefix, layer) = stack_layer(name).filter(|(p, _)| LAYER_PREFIXES.contains(p))?;
    let rest = name[prefix.len()..].split_once('.').map_or("", |(_, r)| r);
    Some((prefix, layer, rest))
}

/// The decoder layer of tensor `name` (`model.layers.N.rest`, `transformer.h.N.rest`, ...)
/// and the rest of its name (`""` when nothing follows the index); `None` outside the
/// decoder layers.
pub fn decoder_layer(name: &str) -> Option<(usize, &str)> {
    layer_parts(name).map(|(_, layer, rest)| (layer, rest))
}

/// Decoder-layer tensor `name` moved to layer `layer` (same prefix and rest); `None` outside
/// the decoder layers.
pub fn in_layer(name: &str, layer: usize) -> Option<String> {
    let (prefix, _, rest) = layer_parts(name)?;
    Some(if rest.is_empty() {
        format!("{prefix}{layer}")
    } else {
        format!("{prefix}{layer}.{rest}")
    })
}

/// The stack of numbered layers tensor `name` sits in, named by its prefix up to the layer
/// index (`model.layers.`, a vision tower's `vision_tower.encoder.layers.`, GPT-2's
/// `transformer.h.`), and its layer there; `None` outside any stack. A stack is a `layers`,
/// `h` or `blocks` segment followed by a number, anywhere in the name.
pub fn stack_layer(name: &str) -> Option<(&str, usize)> {
    let mut start = 0;
    let mut segments = name.split('.').peekable();
    while let Some(segment) = segments.next() {
        start += segment.len() + 1;
        if matches!(segment, "layers" | "h" | "blocks")
            && let Some(index) = segments.peek().and_then(|s| s.parse().ok())
        {
            return Some((&name[..start], index));
        }
    }
    None
}

/// Whether tensor `name` has a row per token (the input embedding or the output head), in the
/// architectures of [`decoder_layer`].
pub fn is_vocab_tensor(name: &str) -> bool {
    name.contains("embed_tokens")
        || name.starts_with("lm_head")
        || name.contains(".lm_head")
        || name.ends_with("wte.weight")
        || name.contains("embed_in.")
        || name.contains("embed_out.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_layers_are_read_from_names() {
        assert_eq!(
            decoder_layer("model.layers.12.mlp.up_proj.weight"),
            Some((12, "mlp.up_proj.weight"))
        );
        assert_eq!(decoder_layer("model.layers.3"), Some((3, "")));
        assert_eq!(decoder_layer("model.layers.x.mlp.weight"), None);
        assert_eq!(decoder_layer("model.embed_tokens.weight"), None);
        assert_eq!(
            decoder_layer("transformer.h.1.attn.c_attn.weight"),
            Some((1, "attn.c_attn.weight"))
        );
        assert_eq!(decoder_layer("h.7.ln_1.bias"), Some((7, "ln_1.bias")));
        assert_eq!(
            decoder_layer("model.language_model.layers.2.mlp.up_proj.weight"),
            Some((2, "mlp.up_proj.weight"))
        );
        assert_eq!(decoder_layer("transformer.wte.weight"), None);
        assert_eq!(
            in_layer("transformer.h.1.attn.c_attn.weight", 5).as_deref(),
            Some("transformer.h.5.attn.c_attn.weight")
        );
        assert_eq!(
            in_layer("model.layers.3", 0).as_deref(),
            Some("model.layers.0")
        );
        assert_eq!(in_layer("lm_head.weight", 0), None);
    }

    #[test]
    fn stacks_of_layers_are_found_anywhere() {
        assert_eq!(
            stack_layer("model.layers.3.mlp.up_proj.weight"),
            Some(("model.layers.", 3))
        );
        assert_eq!(
            stack_layer("vision_tower.encoder.layers.1.mlp.fc1.weight"),
            Some(("vision_tower.encoder.layers.", 1))
        );
        assert_eq!(stack_layer("h.0.ln_1.bias"), Some(("h.", 0)));
        assert_eq!(stack_layer("model.layers"), None);
        assert_eq!(stack_layer("model.norm.weight"), None);
        assert_eq!(stack_layer("vision_tower.post_layernorm.weight"), None);
    }

    #[test]
    fn vocabulary_tensors_are_named() {
        for name in [
            "model.embed_tokens.weight",
            "lm_head.weight",
            "transformer.wte.weight",
            "gpt_neox.embed_in.weight",
            "embed_out.weight",
            "language_model.lm_head.weight",
        ] {
            assert!(is_vocab_tensor(name), "{name}");
        }
        for name in [
            "transformer.wpe.weight",
            "model.norm.weight",
            "h.0.ln_1.weight",
        ] {
            assert!(!is_vocab_tensor(name), "{name}");
        }
    }
}
