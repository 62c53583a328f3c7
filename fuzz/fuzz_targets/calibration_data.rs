//! Any bytes as a calibration-data file (JSONL or CSV, chosen by the first byte), read and
//! tokenised with optional field names, subset, truncation, skip-bad and a chat template taken
//! from the input: loading must return, never panic or hang.
#![no_main]

use std::sync::OnceLock;

use led_merging_attribution::{ChatTemplate, DataOptions, load_samples};
use tokenizers::Tokenizer;

/// A word-level tokenizer that adds a BOS, as Llama's do.
fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
          "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},
          "post_processor":{"type":"TemplateProcessing",
            "single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
            "pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],
            "special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}},
          "decoder":null,
          "model":{"type":"WordLevel","vocab":{"<unk>":0,"<s>":1,"what":2,"is":3,"2":4,"+":5,"=":6,"4":7,"no":8},"unk_token":"<unk>"}}"#;
        Tokenizer::from_bytes(json.as_bytes()).expect("tokenizer")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ext = if flags & 1 == 0 { "jsonl" } else { "csv" };
    let path = dir.path().join(format!("data.{ext}"));
    // With flag 2 the input's last line is a chat template, the rest the data.
    let (body, template) = match rest.iter().rposition(|&b| b == b'\n') {
        Some(i) if flags & 2 != 0 => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    std::fs::write(&path, body).expect("data");
    let options = DataOptions {
        prompt_field: (flags & 4 != 0).then(|| "q".to_owned()),
        answer_field: (flags & 8 != 0).then(|| "a".to_owned()),
        samples: usize::from(flags >> 4) + 1,
        subset_seed: (flags & 16 != 0).then_some(7),
        max_answer_tokens: (flags & 32 != 0).then_some(2),
        skip_bad: flags & 64 != 0,
        chat_template: template.map(|t| ChatTemplate {
            source: String::from_utf8_lossy(t).into_owned(),
            bos_token: "<s>".into(),
            eos_token: "</s>".into(),
        }),
    };
    let _ = load_samples(&path, tokenizer(), &options);
});
