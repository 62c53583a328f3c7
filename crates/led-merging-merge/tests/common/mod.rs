//! Tiny random Llama checkpoints written by the tests themselves.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use led_merging_io::{CheckpointWriter, Dtype, LlamaShape, TensorSpec, WriterOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const VOCAB: usize = 96;
pub const HIDDEN: usize = 32;
pub const INTER: usize = 48;
pub const LAYERS: usize = 2;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;

/// The tiny Llama, with `vocab` rows in the embeddings and head.
pub fn shape(vocab: usize, tied: bool) -> LlamaShape {
    LlamaShape {
        vocab,
        hidden: HIDDEN,
        intermediate: INTER,
        layers: LAYERS,
        heads: HEADS,
        kv_heads: KV_HEADS,
        positions: 64,
        tied,
    }
}

/// The tensors of the tiny Llama.
pub fn specs(vocab: usize, dtype: Dtype, tied: bool) -> Vec<TensorSpec> {
    shape(vocab, tied).specs(dtype)
}

/// Its `config.json` (float32 weights).
pub fn config(vocab: usize, tied: bool) -> String {
    shape(vocab, tied).config(Dtype::F32).to_string()
}

/// Deterministic values for tensor `name` of model `seed`: the base's values plus, for
/// `seed > 0`, a dense perturbation of scale `scale`.
pub fn values(name: &str, numel: usize, seed: u64, scale: f32) -> Vec<f32> {
    let key = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut base = ChaCha8Rng::seed_from_u64(key);
    let mut tune = ChaCha8Rng::seed_from_u64(key ^ (seed << 40) ^ 0x9E37);
    (0..numel)
        .map(|_| {
            let b = base.random::<f32>() * 2.0 - 1.0;
            let d = if seed == 0 {
                0.0
            } else {
                (tune.random::<f32>() * 2.0 - 1.0) * scale
            };
            b * 0.1 + d
        })
        .collect()
}

/// Write a tiny Llama at `dir` (model `seed`, vocab rows, dtype, tied head).
pub fn write_model(
    dir: &Path,
    seed: u64,
    scale: f32,
    vocab: usize,
    dtype: Dtype,
    tied: bool,
) -> PathBuf {
    write_with(
        dir,
        &specs(vocab, dtype, tied),
        &config(vocab, tied),
        seed,
        scale,
    )
}

/// Write the tensors `specs` (model `seed`'s values) and `config` as a model directory.
fn write_with(dir: &Path, specs: &[TensorSpec], config: &str, seed: u64, scale: f32) -> PathBuf {
    let w = CheckpointWriter::create_dir(
        dir,
        specs.to_vec(),
        WriterOptions {
            max_shard_size: 20_000,
            ..Default::default()
        },
    )
    .unwrap();
    for s in specs {
        w.write_f32(&s.name, &values(&s.name, s.numel(), seed, scale))
            .unwrap();
    }
    w.add_file("config.json", config.as_bytes()).unwrap();
    w.finish().unwrap();
    dir.to_path_buf()
}

/// A tiny Granite (Llama's tensors, Granite's config) at `dir`.
pub fn write_granite(dir: &Path, seed: u64, scale: f32) -> PathBuf {
    let mut config: serde_json::Value = serde_json::from_str(&config(VOCAB, false)).unwrap();
    config["architectures"] = serde_json::json!(["GraniteForCausalLM"]);
    config["model_type"] = "granite".into();
    for key in [
        "embedding_multiplier",
        "residual_multiplier",
        "logits_scaling",
    ] {
        config[key] = 1.0.into();
    }
    config["attention_multiplier"] = 0.125.into();
    write_with(
        dir,
        &specs(VOCAB, Dtype::F32, false),
        &config.to_string(),
        seed,
        scale,
    )
}

/// A tiny GPT-2 (`transformer.h.N`, Conv1D weights, biases, position embeddings, the head
/// tied to `transformer.wte`) at `dir`.
pub fn write_gpt2(dir: &Path, seed: u64, scale: f32) -> PathBuf {
    let f = |name: String, shape: Vec<usize>| TensorSpec::new(name, Dtype::F32, shape);
    let mut specs = vec![
        f("transformer.wte.weight".into(), vec![VOCAB, HIDDEN]),
        f("transformer.wpe.weight".into(), vec![64, HIDDEN]),
    ];
    for l in 0..LAYERS {
        for (n, shape) in [
            ("ln_1.weight", vec![HIDDEN]),
            ("ln_1.bias", vec![HIDDEN]),
            ("attn.c_attn.weight", vec![HIDDEN, 3 * HIDDEN]),
            ("attn.c_attn.bias", vec![3 * HIDDEN]),
            ("attn.c_proj.weight", vec![HIDDEN, HIDDEN]),
            ("attn.c_proj.bias", vec![HIDDEN]),
            ("ln_2.weight", vec![HIDDEN]),
            ("ln_2.bias", vec![HIDDEN]),
            ("mlp.c_fc.weight", vec![HIDDEN, 4 * HIDDEN]),
            ("mlp.c_fc.bias", vec![4 * HIDDEN]),
            ("mlp.c_proj.weight", vec![4 * HIDDEN, HIDDEN]),
            ("mlp.c_proj.bias", vec![HIDDEN]),
        ] {
            specs.push(f(format!("transformer.h.{l}.{n}"), shape));
        }
    }
    specs.push(f("transformer.ln_f.weight".into(), vec![HIDDEN]));
    specs.push(f("transformer.ln_f.bias".into(), vec![HIDDEN]));
    let config = serde_json::json!({
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": VOCAB,
        "n_embd": HIDDEN, "n_layer": LAYERS, "n_head": HEADS, "n_positions": 64,
        "n_ctx": 64, "tie_word_embeddings": true, "torch_dtype": "float32",
    });
    write_with(dir, &specs, &config.to_string(), seed, scale)
}

/// Scores for every tensor of `specs`: non-negative, deterministic per (name, seed).
pub fn write_scores(path: &Path, specs: &[TensorSpec], seed: u64) {
    let f32_specs: Vec<TensorSpec> = specs
        .iter()
        .map(|s| TensorSpec::new(&s.name, Dtype::F32, s.shape.clone()))
        .collect();
    let w =
        CheckpointWriter::create_file(path, f32_specs.clone(), WriterOptions::default()).unwrap();
    for s in &f32_specs {
        let v: Vec<f32> = values(&s.name, s.numel(), seed + 100, 1.0)
            .iter()
            .map(|x| x.abs())
            .collect();
        w.write_f32(&s.name, &v).unwrap();
    }
    w.finish().unwrap();
}

/// mergekit's command, or `None` (the test is skipped, saying so) when the project's virtualenv
/// is absent: a plain `cargo test` runs without Python. `make test` sets `LED_REQUIRE_PEERS=1`,
/// which turns a missing mergekit into a failure, so CI never skips it.
pub fn mergekit() -> Option<PathBuf> {
    let venv = std::env::var_os("LED_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let exe = venv.join("bin/mergekit-yaml");
    if exe.exists() {
        return Some(exe);
    }
    let why = format!(
        "{} not found: run the tests with `make test`, which installs mergekit into the project's virtualenv (or set LED_VENV)",
        exe.display()
    );
    assert!(std::env::var_os("LED_REQUIRE_PEERS").is_none(), "{why}");
    // Straight to stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED mergekit parity: {why}");
    None
}

/// Start mergekit's command `exe` on config `cfg`, writing `out` (offline; stderr kept for
/// failures).
pub fn spawn_mergekit(exe: &Path, cfg: &Path, out: &Path) -> std::process::Child {
    Command::new(exe)
        .args([cfg.as_os_str(), out.as_os_str()])
        .args(["--no-write-model-card", "--quiet"])
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Start `mergekit-multi` (`exe`) on the multi-document config `cfg`, its named merges into
/// `inter` and an unnamed final one into `out`.
pub fn spawn_mergekit_multi(
    exe: &Path,
    cfg: &Path,
    inter: &Path,
    out: &Path,
) -> std::process::Child {
    Command::new(exe)
        .arg(cfg)
        .arg("--intermediate-dir")
        .arg(inter)
        .arg("--out-path")
        .arg(out)
        .args(["--no-write-model-card", "--quiet"])
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Assert that transformers (from the virtualenv of mergekit's command `exe`) loads every
/// directory of `outputs` with no missing or unexpected tensor, and that a forward pass of each
/// gives finite logits over its whole vocabulary; its tokenizer, if it has one, loads too and
/// fits the vocabulary.
pub fn transformers_loads_and_runs(exe: &Path, outputs: &[PathBuf]) {
    const TRANSFORMERS_CHECK: &str = r#"
import json, os, sys, torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer
for d in sys.argv[1:]:
    config = json.load(open(os.path.join(d, 'config.json')))
    auto = AutoModelForImageTextToText if 'vision_config' in config else AutoModelForCausalLM
    m, info = auto.from_pretrained(d, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, (d, bad)
    vocab = m.config.get_text_config().vocab_size
    logits = m(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape[-1] == vocab and torch.isfinite(logits).all(), d
    if os.path.exists(os.path.join(d, 'tokenizer.json')):
        t = AutoTokenizer.from_pretrained(d)
        assert len(t) <= vocab, (d, len(t), vocab)
        assert max(t.get_vocab().values()) < vocab, d
print(len(sys.argv) - 1, 'outputs load in transformers and run')
"#;
    let python = exe.parent().unwrap().join("python");
    let check = Command::new(python)
        .arg("-c")
        .arg(TRANSFORMERS_CHECK)
        .args(outputs)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "transformers could not load an output:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&check.stdout).trim());
}

/// One tensor of two checkpoints compared.
pub struct Difference {
    pub name: String,
    /// max |ours − theirs| / max |theirs|.
    pub relative: f32,
    /// Our dtype and theirs.
    pub dtype: Dtype,
    pub their_dtype: Dtype,
}

/// Tensor `name` in transformers 5's layout of LLaVA-style models, which mergekit writes
/// (led keeps its inputs' names: both load): `language_model.model.X` is
/// `model.language_model.X`, `language_model.lm_head` is `lm_head`, and the vision tower and
/// projector sit under `model.`.
fn canonical(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("language_model.model.") {
        format!("model.language_model.{rest}")
    } else if let Some(rest) = name.strip_prefix("language_model.") {
        rest.to_owned()
    } else if name.starts_with("vision_tower.") || name.starts_with("multi_modal_projector.") {
        format!("model.{name}")
    } else {
        name.to_owned()
    }
}

/// Every tensor of `ours` against `theirs` (`what` names the comparison in failures): the same
/// tensor names (up to [`canonical`]) and shapes, or a panic.
pub fn differences(ours: &Path, theirs: &Path, what: &str) -> Vec<Difference> {
    let (found, left_out) = differences_where_written(ours, theirs, what);
    assert!(
        left_out.is_empty(),
        "{what}: tensor names or shapes differ: {left_out:?} only in ours"
    );
    found
}

/// Every tensor of `theirs` against `ours`, and the (canonical) names of the tensors of
/// `ours` that `theirs` lacks; a tensor of `theirs` that `ours` lacks, or of another shape,
/// is a panic.
pub fn differences_where_written(
    ours: &Path,
    theirs: &Path,
    what: &str,
) -> (Vec<Difference>, Vec<String>) {
    let (a, b) = (
        led_merging_io::Checkpoint::open(ours).unwrap(),
        led_merging_io::Checkpoint::open(theirs).unwrap(),
    );
    // Canonical name → (name, shape).
    let names = |c: &led_merging_io::Checkpoint| {
        c.tensors()
            .iter()
            .map(|t| (canonical(&t.name), (t.name.clone(), t.shape.clone())))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (ours_named, theirs_named) = (names(&a), names(&b));
    for (name, (_, shape)) in &theirs_named {
        assert_eq!(
            ours_named.get(name).map(|(_, s)| s),
            Some(shape),
            "{what}: tensor names or shapes differ at {name}"
        );
    }
    let left_out = ours_named
        .keys()
        .filter(|n| !theirs_named.contains_key(*n))
        .cloned()
        .collect();
    let found = b
        .tensors()
        .iter()
        .map(|t| {
            let ours_name = &ours_named[&canonical(&t.name)].0;
            let (x, y) = (a.read_f32(ours_name).unwrap(), b.read_f32(&t.name).unwrap());
            let scale = y
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()))
                .max(f32::MIN_POSITIVE);
            let diff = x
                .iter()
                .zip(&y)
                .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            Difference {
                name: t.name.clone(),
                relative: diff / scale,
                dtype: a.info(ours_name).unwrap().dtype,
                their_dtype: t.dtype,
            }
        })
        .collect();
    (found, left_out)
}

/// A tokenizer as mergekit's tests make one (`make_tokenizer` in its `tests/test_tokenizer.py`),
/// saved into the model directory `dir`: a BPE vocabulary of `vocab` tokens (`<unk>`, `<s>`,
/// `</s>`, `_tok_3`, ...), then `added` as plain added tokens.
pub fn write_tokenizer(dir: &Path, vocab: usize, added: &[&str]) {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    tokens.extend((3..vocab).map(|i| format!("_tok_{i}")));
    tokens.truncate(vocab);
    let model_vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
        .collect();
    let entries: Vec<serde_json::Value> = added
        .iter()
        .enumerate()
        .map(|(i, t)| led_merging_io::plain_added_token(t, (vocab + i) as u32))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": entries,
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": model_vocab, "merges": []},
    });
    let decoder: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let id = e.as_object_mut().unwrap().remove("id").unwrap();
            (id.to_string(), e)
        })
        .collect();
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 64,
        "added_tokens_decoder": decoder,
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

/// A tiny LLaVA (a CLIP vision tower, a projector, a Llama language model: mergekit's
/// `make_picoLlaVa`), written by transformers from the virtualenv of mergekit's command `exe`,
/// with weights drawn from `seed`.
pub fn write_llava(exe: &Path, dir: &Path, seed: u64) -> PathBuf {
    let python = exe.parent().unwrap().join("python");
    let script = r#"
import sys, torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
torch.manual_seed(int(sys.argv[2]))
vision = CLIPVisionConfig(image_size=32, patch_size=4, num_hidden_layers=2,
                          num_attention_heads=2, hidden_size=64, intermediate_size=128)
text = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                   num_attention_heads=16, num_hidden_layers=2)
config = LlavaConfig(vision_config=vision, text_config=text, image_seq_length=16)
LlavaForConditionalGeneration(config).save_pretrained(sys.argv[1])
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(dir)
        .arg(seed.to_string())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "could not write a LLaVA: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}
