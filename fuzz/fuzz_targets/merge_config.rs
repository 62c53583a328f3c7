//! Any text as a merge config: parsing must return, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) =
            led_merging_merge::MergeConfig::from_yaml(text, std::path::Path::new("fuzz.yaml"))
        {
            let _ = config.to_yaml();
        }
    }
});
