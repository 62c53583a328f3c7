//! What a newcomer trips over, each now a clear error or a documented behaviour: score files
//! paired with the wrong model, pasted twice or covering part of the model; a dry run that
//! passes where the run would fail; help without examples.

use std::path::Path;
use std::process::{Command, Output};

use led_merging_io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};

/// The demo's score files as its config pairs them, and with safety's and math's swapped.
#[cfg(feature = "attribution")]
const RIGHT: [&str; 4] = [
    "safety.safetensors",
    "base-safety.safetensors",
    "math.safetensors",
    "base-math.safetensors",
];
const SWAPPED: [&str; 4] = [
    "math.safetensors",
    "base-safety.safetensors",
    "safety.safetensors",
    "base-math.safetensors",
];

fn led() -> Command {
    Command::new(env!("CARGO_BIN_EXE_led"))
}

fn demo(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("demo");
    let run = led()
        .args(["demo", "--synthetic", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The demo's LED config with the four score files given.
fn config(d: &Path, name: &str, scores: [&str; 4], extra: &str) -> std::path::PathBuf {
    let s = |f: &str| d.join("scores").join(f).display().to_string();
    let yaml = format!(
        "merge_method: led\nbase_model: {b}\nmodels:\n  - model: {sa}\n    parameters: {{weight: 1.0, density: 0.4}}\n    scores: {{model: {s0}, base: {s1}}}\n  - model: {ma}\n    parameters: {{weight: 1.0, density: 0.5}}\n    scores: {{model: {s2}, base: {s3}}}\nparameters: {{election: \"11\", disjoint: true{extra}}}\n",
        b = d.join("base").display(),
        sa = d.join("safety").display(),
        ma = d.join("math").display(),
        s0 = s(scores[0]),
        s1 = s(scores[1]),
        s2 = s(scores[2]),
        s3 = s(scores[3]),
    );
    let path = d.join("configs").join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

fn merge(cfg: &Path, out: &Path, dry: bool) -> Output {
    let mut c = led();
    c.arg("merge").arg(cfg).arg(out);
    if dry {
        c.arg("--dry-run");
    }
    c.output().unwrap()
}

/// Both the dry run and the run fail with `needle` in the message, and nothing is written.
fn refused(cfg: &Path, out: &Path, needles: &[&str]) {
    for dry in [true, false] {
        let r = merge(cfg, out, dry);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "dry run {dry}: {err}");
        for n in needles {
            assert!(err.contains(n), "dry run {dry}: {n:?} not in {err}");
        }
        assert!(!out.exists());
    }
}

#[test]
fn swapped_or_repeated_score_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    let out = dir.path().join("merged");
    // Safety's and math's score files swapped: each was computed on the other model.
    let swapped = config(&d, "swapped.yaml", SWAPPED, "");
    refused(
        &swapped,
        &out,
        &[
            "models[0].scores.model was computed on",
            "That is models[1]",
            "models[1].scores.model was computed on",
            "That is models[0]",
        ],
    );
    // The same file for both tasks: one file, one role.
    let twice = config(
        &d,
        "twice.yaml",
        [
            "safety.safetensors",
            "base-safety.safetensors",
            "safety.safetensors",
            "base-math.safetensors",
        ],
        "",
    );
    refused(
        &twice,
        &out,
        &["serves models[0].scores.model and models[1].scores.model"],
    );
    // A base's scores given as a model's: computed on the base, not on the fine-tune.
    let base_as_model = config(
        &d,
        "base-as-model.yaml",
        [
            "base-safety.safetensors",
            "base-safety.safetensors",
            "math.safetensors",
            "base-math.safetensors",
        ],
        "",
    );
    refused(&base_as_model, &out, &["That is the base", "serves"]);
}

/// A copy of the score file `src` at `dst`, of the tensors `keep` keeps, with the metadata
/// `set` changed.
fn rewrite_scores(src: &Path, dst: &Path, set: &[(&str, &str)], keep: impl Fn(&str) -> bool) {
    let full = Checkpoint::open(src).unwrap();
    let mut metadata = full.metadata().clone();
    for (k, v) in set {
        metadata.insert((*k).to_owned(), (*v).to_owned());
    }
    let kept: Vec<_> = full.tensors().iter().filter(|t| keep(&t.name)).collect();
    let specs = kept
        .iter()
        .map(|t| TensorSpec::new(&t.name, Dtype::F32, t.shape.clone()))
        .collect();
    let w = CheckpointWriter::create_file(
        dst,
        specs,
        WriterOptions {
            metadata,
            ..Default::default()
        },
    )
    .unwrap();
    for t in kept {
        w.write_f32(&t.name, &full.read_f32(&t.name).unwrap())
            .unwrap();
    }
    w.finish().unwrap();
}

/// One base score file serves two tasks when it was computed on the data (and with the scorer)
/// each task's model scores were: the base is scored once. Otherwise it stays an error.
#[test]
fn one_base_score_file_serves_tasks_scored_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    let out = dir.path().join("merged");
    let scores = d.join("scores");
    let data = |sha: &str| {
        vec![
            ("led.scores.dataset", "shared.jsonl".to_owned()),
            ("led.scores.dataset_sha256", sha.to_owned()),
        ]
    };
    let rewrite = |src: &str, dst: &str, sha: &str| {
        let set = data(sha);
        let set: Vec<(&str, &str)> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
        rewrite_scores(&scores.join(src), &scores.join(dst), &set, |_| true);
    };
    rewrite("safety.safetensors", "safety-shared.safetensors", "aa11");
    rewrite("math.safetensors", "math-shared.safetensors", "aa11");
    rewrite("math.safetensors", "math-other.safetensors", "bb22");
    rewrite("base-math.safetensors", "base-shared.safetensors", "aa11");
    let shared = config(
        &d,
        "shared-base.yaml",
        [
            "safety-shared.safetensors",
            "base-shared.safetensors",
            "math-shared.safetensors",
            "base-shared.safetensors",
        ],
        "",
    );
    for dry in [true, false] {
        let r = merge(&shared, &out, dry);
        assert!(r.status.success(), "dry run {dry}: {}", text(&r.stderr));
    }
    assert!(out.join("config.json").is_file());
    std::fs::remove_dir_all(&out).unwrap();
    // The math task scored on other data: its base scores cannot be the safety task's.
    let other = config(
        &d,
        "shared-base-other-data.yaml",
        [
            "safety-shared.safetensors",
            "base-shared.safetensors",
            "math-other.safetensors",
            "base-shared.safetensors",
        ],
        "",
    );
    refused(
        &other,
        &out,
        &[
            "serves models[0].scores.base and models[1].scores.base",
            "records the same data (content hash) and scorer as each task's model scores",
            "models[1].scores: the model's and the base's scores must come from the same data",
        ],
    );
    // The random scorer reads no data (the demo's scores): one base file serves every task.
    let random = config(
        &d,
        "shared-base-random.yaml",
        [
            "safety.safetensors",
            "base-math.safetensors",
            "math.safetensors",
            "base-math.safetensors",
        ],
        "",
    );
    for dry in [true, false] {
        let r = merge(&random, &out, dry);
        assert!(r.status.success(), "dry run {dry}: {}", text(&r.stderr));
    }
    std::fs::remove_dir_all(&out).unwrap();
    // A scorer that reads data, without recorded data: sharing cannot be shown: refused.
    let unrecorded_data = [
        ("led.scores.scorer", "snip"),
        ("led.scores.dataset_sha256", ""),
    ];
    for (src, dst) in [
        ("safety.safetensors", "safety-snip.safetensors"),
        ("math.safetensors", "math-snip.safetensors"),
        ("base-math.safetensors", "base-snip.safetensors"),
    ] {
        rewrite_scores(
            &scores.join(src),
            &scores.join(dst),
            &unrecorded_data,
            |_| true,
        );
    }
    let unrecorded = config(
        &d,
        "shared-base-unrecorded.yaml",
        [
            "safety-snip.safetensors",
            "base-snip.safetensors",
            "math-snip.safetensors",
            "base-snip.safetensors",
        ],
        "",
    );
    refused(
        &unrecorded,
        &out,
        &["serves models[0].scores.base and models[1].scores.base"],
    );
}

#[test]
fn scores_for_part_of_the_model_are_an_error_unless_the_config_opts_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    let out = dir.path().join("merged");
    // Safety's scores for layer 0 only (as if computed on a shallower model), metadata kept.
    let partial = d.join("scores/safety-partial.safetensors");
    rewrite_scores(
        &d.join("scores/safety.safetensors"),
        &partial,
        &[],
        |name| name.starts_with("model.layers.0."),
    );
    let names = [
        "safety-partial.safetensors",
        "base-safety.safetensors",
        "math.safetensors",
        "base-math.safetensors",
    ];
    let cfg = config(&d, "partial.yaml", names, "");
    refused(
        &cfg,
        &out,
        &[
            "models[0].scores.model has no scores for 30 of the 39 tensors merged",
            "layers 1–3",
            "model.embed_tokens.weight",
            "missing_scores: base",
        ],
    );
    // Opting in: merged, with one warning for all of them (not one per tensor, not twice).
    let opted = config(&d, "opted.yaml", names, ", missing_scores: base");
    let dry = merge(&opted, &out, true);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stdout).contains("tensors without scores follow `missing_scores`"));
    let run = merge(&opted, &out, false);
    let err = text(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert_eq!(
        err.matches("merged as base (missing_scores)").count(),
        1,
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "no terminal colour codes: {err}");
}

#[test]
fn the_dry_run_checks_what_the_run_checks() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    let cfg = d.join("configs/led.yaml");
    let out = dir.path().join("merged");
    let dry = merge(&cfg, &out, true);
    let plan = text(&dry.stdout);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    // A summary, the score check, and no per-tensor lines without -v.
    assert!(
        plan.contains("tensors: 39 merged by led")
            && plan.contains("scores: 4 of 4 score file(s) checked")
            && !plan.contains("model.layers.0.mlp.up_proj.weight"),
        "{plan}"
    );
    std::fs::create_dir(&out).unwrap();
    for dry in [true, false] {
        let r = merge(&cfg, &out, dry);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert!(err.contains("already exists (pass --force"), "{err}");
    }
    // Without a terminal, progress comes as lines (first and final state here: a short run).
    let run = led()
        .arg("merge")
        .arg(&cfg)
        .arg(&out)
        .arg("--force")
        .output()
        .unwrap();
    let err = text(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("merging: (0 %)") && err.contains("merging: (100 %)"),
        "{err}"
    );
    // Every subcommand's help has examples.
    for sub in ["merge", "analyze", "inspect", "demo", "locate"] {
        let help = text(&led().args([sub, "--help"]).output().unwrap().stdout);
        assert!(help.contains("Examples:"), "led {sub} --help: {help}");
    }
}

/// Score files from `led locate` record the weights' fingerprint: a swap is named by it, and
/// rewriting a model's weights after scoring it is caught too.
#[cfg(feature = "attribution")]
/// Random scores of the demo's models into `scores/`, named as `RIGHT` names them, with the
/// further flags `extra`.
fn random_scores(d: &Path, extra: &[&str]) {
    for (name, model) in [
        ("safety", "safety"),
        ("base-safety", "base"),
        ("math", "math"),
        ("base-math", "base"),
    ] {
        let r = led()
            .args(["locate", "--scorer", "random", "--force"])
            .args(extra)
            .arg("--model")
            .arg(d.join(model))
            .arg("--out")
            .arg(d.join(format!("scores/{name}.safetensors")))
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", text(&r.stderr));
    }
}

#[test]
fn located_score_files_are_checked_by_their_weights_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    random_scores(&d, &[]);
    let out = dir.path().join("merged");
    let ok = config(&d, "located.yaml", RIGHT, "");
    let dry = merge(&ok, &out, true);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let swapped = config(&d, "located-swapped.yaml", SWAPPED, "");
    refused(
        &swapped,
        &out,
        &["the weights differ", "It was computed on models[1]"],
    );
    // `led scores sum` takes shards only; the random scorer cannot be sharded.
    let r = led()
        .args(["scores", "sum", "--out"])
        .arg(dir.path().join("sum.safetensors"))
        .arg(d.join("scores/safety.safetensors"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr).contains("not a shard"),
        "{}",
        text(&r.stderr)
    );
    let r = led()
        .args(["locate", "--scorer", "random", "--shard", "0/2", "--model"])
        .arg(d.join("safety"))
        .arg("--out")
        .arg(dir.path().join("part.safetensors"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr).contains("random scorer uses none"),
        "{}",
        text(&r.stderr)
    );
    // The safety model rewritten after it was scored: its old scores no longer answer for it.
    let weights = d.join("safety/model-00001-of-00005.safetensors");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&weights, std::fs::read(&weights).unwrap()).unwrap();
    refused(&ok, &out, &["models[0].scores.model", "the weights differ"]);
}

/// The demo's task-arithmetic config with `extra` top-level YAML.
fn ta_config(d: &Path, name: &str, extra: &str) -> std::path::PathBuf {
    let yaml = format!(
        "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0}}\n{extra}",
        d.join("base").display(),
        d.join("math").display(),
    );
    let path = d.join("configs").join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn no_output_transformers_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    let out = dir.path().join("merged");
    // mergekit's `union` vocabulary is not taken as a path: it needs the models' tokenizers.
    let union = ta_config(&d, "union.yaml", "tokenizer_source: union\n");
    refused(&union, &out, &["tokenizer_source", "has no tokenizer.json"]);
    // A path that is not a model directory.
    let nowhere = ta_config(&d, "nowhere.yaml", "tokenizer_source: /nonexistent/tok\n");
    refused(
        &nowhere,
        &out,
        &[
            "tokenizer_source",
            "/nonexistent/tok",
            "not a model directory",
        ],
    );
    // A model directory without a tokenizer.
    let wider = ta_config(
        &d,
        "wider.yaml",
        &format!("tokenizer_source: {}\n", d.join("math").display()),
    );
    refused(
        &wider,
        &out,
        &["not a model directory with a tokenizer.json"],
    );
    // An input whose config.json disagrees with its own tensors (as transformers would refuse
    // to load it): the dry run fails where the run does, before any tensor is merged.
    let base_config = d.join("base/config.json");
    let base_text = std::fs::read_to_string(&base_config).unwrap();
    std::fs::write(
        &base_config,
        base_text.replace("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 5"),
    )
    .unwrap();
    let ok = ta_config(&d, "ta.yaml", "");
    refused(
        &ok,
        &out,
        &[
            "base_model",
            "config.json disagrees with the tensors",
            "num_hidden_layers is 5 but the tensors hold 4 layer(s)",
        ],
    );
    std::fs::write(&base_config, &base_text).unwrap();
    let math_config = d.join("math/config.json");
    let math_text = std::fs::read_to_string(&math_config).unwrap();
    let hidden = serde_json::from_str::<serde_json::Value>(&math_text).unwrap()["hidden_size"]
        .as_u64()
        .unwrap();
    std::fs::write(
        &math_config,
        math_text.replace(
            &format!("\"hidden_size\": {hidden}"),
            &format!("\"hidden_size\": {}", hidden * 2),
        ),
    )
    .unwrap();
    refused(
        &ok,
        &out,
        &[
            ".model",
            "math",
            &format!(
                "has {hidden} elements but config.json's hidden_size is {}",
                hidden * 2
            ),
        ],
    );
    std::fs::write(&math_config, &math_text).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary output left behind: {left:?}");
}

/// What mergekit users write that led does not do gets a message they can act on, with no
/// Rust API names; what mergekit merely ignores is a warning.
#[test]
fn mergekit_spellings_get_actionable_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    let out = dir.path().join("merged");
    let cases = [
        (
            "multi.yaml",
            format!(
                "merge_method: linear\nmodels:\n  - model: {0}\n---\nmerge_method: linear\nmodels:\n  - model: {0}\n",
                d.join("math").display()
            ),
            "--intermediate-dir",
        ),
        (
            "hub.yaml",
            "merge_method: linear\nmodels:\n  - model: meta-llama/Llama-3-8B\n    parameters: {weight: 1}\n".to_owned(),
            "huggingface-cli download meta-llama/Llama-3-8B",
        ),
        (
            "lora.yaml",
            format!(
                "merge_method: linear\nmodels:\n  - model: {}+{}\n    parameters: {{weight: 1}}\n",
                d.join("math").display(),
                d.join("lora").display()
            ),
            "directory with an adapter_config.json",
        ),
        (
            "setting.yaml",
            format!(
                "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: {{a: 1}}}}\n",
                d.join("math").display()
            ),
            "a gradient list",
        ),
    ];
    for (name, yaml, needle) in cases {
        let cfg = d.join("configs").join(name);
        std::fs::write(&cfg, yaml).unwrap();
        let r = merge(&cfg, &out, true);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(
            !err.contains("from_str") && !err.contains("untagged enum"),
            "{err}"
        );
    }
    // DELLA's density ± epsilon outside (0, 1): refused by the dry run, as by the run.
    let della = d.join("configs/della.yaml");
    std::fs::write(
        &della,
        format!(
            "merge_method: della\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 1, density: 0.9, epsilon: 0.15}}\n",
            d.join("base").display(),
            d.join("math").display()
        ),
    )
    .unwrap();
    refused(
        &della,
        &out,
        &["density − epsilon", "density 0.9, epsilon 0.15"],
    );
    // `density` means nothing to linear: ignored with a warning, as mergekit does; a name no
    // method knows is still an error.
    let cfg = d.join("configs/ignored.yaml");
    std::fs::write(
        &cfg,
        format!(
            "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 1, density: 0.5}}\n",
            d.join("math").display()
        ),
    )
    .unwrap();
    let r = merge(&cfg, &out, true);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(
        text(&r.stdout).contains("models[0].parameters.density is ignored by linear"),
        "{}",
        text(&r.stdout)
    );
    let typo = d.join("configs/typo.yaml");
    std::fs::write(
        &typo,
        format!(
            "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 1, densty: 0.5}}\n",
            d.join("math").display()
        ),
    )
    .unwrap();
    let r = merge(&typo, &out, true);
    assert_eq!(r.status.code(), Some(1));
    assert!(text(&r.stderr).contains("densty"), "{}", text(&r.stderr));
}

/// `location:` entries are scored by `led merge` itself, each task into its own pair of files
/// (two tasks on the same data once shared the base's, which the score check then refused),
/// and a second run reuses all four.
#[cfg(feature = "attribution")]
#[test]
fn location_entries_get_their_own_score_files_and_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    let data = dir.path().join("data.jsonl");
    std::fs::write(&data, "{\"text\": \"hello\"}\n{\"text\": \"world\"}\n").unwrap();
    let location = format!("{{data: {}, samples: 2, scorer: random}}", data.display());
    let cfg = d.join("configs").join("located.yaml");
    std::fs::write(
        &cfg,
        format!(
            "merge_method: led\nbase_model: {b}\nmodels:\n  - model: {s}\n    parameters: {{density: 0.4}}\n    location: {location}\n  - model: {m}\n    parameters: {{density: 0.5}}\n    location: {location}\n",
            b = d.join("base").display(),
            s = d.join("safety").display(),
            m = d.join("math").display(),
        ),
    )
    .unwrap();
    let out = dir.path().join("merged");
    for (run, word) in [(0, "computed"), (1, "reused")] {
        let mut c = led();
        c.arg("merge").arg(&cfg).arg(&out);
        if run == 1 {
            c.arg("--force");
        }
        let r = c.output().unwrap();
        let said = format!("{}{}", text(&r.stdout), text(&r.stderr));
        assert!(r.status.success(), "run {run}: {said}");
        assert_eq!(said.matches(word).count(), 4, "run {run}: {said}");
    }
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("merged.scores"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "models0-base-data-random.safetensors",
            "models0-data-random.safetensors",
            "models1-base-data-random.safetensors",
            "models1-data-random.safetensors",
        ]
    );
    assert!(out.join("config.json").is_file());
}

/// `--score-dtype bf16` writes BF16 score files (half the bytes) that an LED merge takes like
/// f32 ones; a dtype led does not write is a usage error naming the choices.
#[test]
fn bf16_score_files_serve_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    random_scores(&d, &["--score-dtype", "bf16"]);
    for name in ["safety", "base-safety", "math", "base-math"] {
        let scores = Checkpoint::open(d.join(format!("scores/{name}.safetensors"))).unwrap();
        assert!(scores.tensors().iter().all(|t| t.dtype == Dtype::BF16));
    }
    let ok = config(&d, "located-bf16.yaml", RIGHT, "");
    let dry = merge(&ok, &dir.path().join("merged"), true);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let r = led()
        .args([
            "locate",
            "--scorer",
            "random",
            "--score-dtype",
            "f16",
            "--model",
        ])
        .arg(d.join("base"))
        .arg("--out")
        .arg(dir.path().join("never.safetensors"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr).contains("expected f32 or bf16"),
        "{}",
        text(&r.stderr)
    );
    assert!(!dir.path().join("never.safetensors").exists());
}
