//! Hugging Face tensor-name conventions shared by every crate.

/// The decoder layer of tensor `name` (`model.layers.N.rest`) and the rest of its name
/// (`""` when nothing follows the index); `None` outside the decoder layers.
pub fn decoder_layer(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("model.layers.")?;
    let (index, tail) = rest.split_once('.').unwrap_or((rest, ""));
    Some((index.parse().ok()?, tail))
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
    }
}
