//! Any bytes as a safetensors file: validation must return, never panic or over-allocate.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = led_merging_io::validate_safetensors("fuzz.safetensors", data);
});
