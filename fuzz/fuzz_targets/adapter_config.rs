//! Any bytes as a LoRA adapter's `adapter_config.json`: parsing must return, never panic;
//! an accepted config gives a finite scale for any module name and rank.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("adapter_config.json");
    if let Ok(c) = led_merging_io::LoraConfig::parse(path, data) {
        for (module, rank) in [("model.layers.0.mlp.down_proj", 1), ("q_proj", 64)] {
            let s = c.scale(module, rank);
            assert!(s.is_finite() || !c.lora_alpha.is_finite(), "{s}");
        }
    }
});
