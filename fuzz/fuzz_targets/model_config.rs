//! Any bytes as a model's `config.json`: parsing must return, never panic, and an accepted
//! config must have sizes a model can be built from.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) =
            led_merging_attribution::ModelConfig::parse(text, std::path::Path::new("config.json"))
    {
        assert!(config.hidden_size > 0 && config.num_layers > 0 && config.vocab_size > 0);
        assert!(config.num_heads > 0 && config.num_kv_heads > 0);
        assert_eq!(config.num_heads % config.num_kv_heads, 0);
        assert!(config.head_dim > 0 && config.head_dim % 2 == 0);
        assert!(config.rope_theta > 0.0 && config.rms_norm_eps >= 0.0);
    }
});
