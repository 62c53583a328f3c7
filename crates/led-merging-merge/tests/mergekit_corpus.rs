//! mergekit's own configurations (`tests/mergekit_corpus/`, see its README) through both tools:
//! each file says what to expect, `same` (the tensors agree within the output dtype's rounding
//! and transformers loads ours), `runs` (random methods: both run, the same tensors), either
//! followed by ` where mergekit writes` (mergekit leaves tensors out; those it writes agree),
//! `refused: TEXT` (led refuses, saying TEXT) or `alone: TEXT` (mergekit fails, led runs with a
//! warning saying TEXT). Prints one line per configuration and a summary.

mod common;
#[path = "../../../tests/support/hf_cache.rs"]
mod hf_cache;

use std::path::{Path, PathBuf};

use led_merging_io::Dtype;
use led_merging_merge::{MergeConfig, MergePlan, MultiMerge, RunOptions, run};

#[derive(Debug, PartialEq)]
enum Expect {
    /// `partial`: mergekit leaves tensors out (a mergekit bug: its output does not load);
    /// the ones it writes agree.
    Same {
        partial: bool,
    },
    Runs {
        partial: bool,
    },
    Refused(String),
    /// mergekit fails; led runs, with a warning containing this.
    Alone(String),
}

fn expectation(text: &str, file: &Path) -> Expect {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{}: no `# expect:` line", file.display()));
    match line.trim() {
        "same" => Expect::Same { partial: false },
        "runs" => Expect::Runs { partial: false },
        "same where mergekit writes" => Expect::Same { partial: true },
        "runs where mergekit writes" => Expect::Runs { partial: true },
        other if other.starts_with("alone: ") => Expect::Alone(other[7..].to_owned()),
        other => Expect::Refused(
            other
                .strip_prefix("refused: ")
                .unwrap_or_else(|| panic!("{}: unknown expectation {other:?}", file.display()))
                .to_owned(),
        ),
    }
}

/// Largest |ours − theirs| over max |theirs| in any tensor, and mergekit's output dtype; names
/// and shapes must agree (mergekit writes some methods' results in f32 whatever `dtype` says).
fn worst_difference(ours: &Path, theirs: &Path, name: &str, partial: bool) -> (f32, Dtype, usize) {
    let (tensors, left_out) = common::differences_where_written(ours, theirs, name);
    assert_eq!(
        partial,
        !left_out.is_empty(),
        "{name}: mergekit leaves out {left_out:?}"
    );
    let worst = tensors.iter().fold(0f32, |m, t| m.max(t.relative));
    (worst, tensors[0].their_dtype, left_out.len())
}

/// Two units in the last place of `dtype` at the largest magnitude: mergekit computes in the
/// config's `dtype`, led in f32 and rounds once.
fn rounding(dtype: Dtype) -> f32 {
    match dtype {
        Dtype::BF16 => 2.0 * 2f32.powi(-7),
        Dtype::F16 => 2.0 * 2f32.powi(-10),
        _ => 1e-5,
    }
}

/// `text` with a top-level `dtype: D` (and no `out_dtype`) made `dtype: float32` and
/// `out_dtype: D`: mergekit computing in f32 and writing D, as led does.
fn computing_in_f32(text: &str) -> String {
    if text.lines().any(|l| l.starts_with("out_dtype:")) {
        return text.to_owned();
    }
    text.lines()
        .map(|l| match l.strip_prefix("dtype:") {
            Some(d) => format!("dtype: float32\nout_dtype:{d}"),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The output tokenizers hold the same tokens at the same ids, and config.json the same
/// `vocab_size` (the row count); the chat templates agree unless the config names one (led
/// writes its own template of a named format). Only when the inputs have a tokenizer (led's
/// output then has one).
fn same_vocabulary(ours: &Path, theirs: &Path, name: &str, config: &str) {
    let read = |d: &Path| led_merging_io::Vocabulary::read(d).unwrap().map(|v| v.ids);
    // Given inputs without a tokenizer, mergekit makes one up from the architecture.
    if read(ours).is_none() {
        return;
    }
    assert_eq!(read(ours), read(theirs), "{name}: the tokenizers differ");
    let named = config
        .lines()
        .any(|l| l.starts_with("chat_template:") && !l.contains('{') && !l.contains("auto"));
    let template = led_merging_io::chat_template_of(ours);
    if named {
        assert!(template.is_some(), "{name}: no chat template written");
    } else {
        assert_eq!(
            template,
            led_merging_io::chat_template_of(theirs),
            "{name}: the chat templates differ"
        );
    }
    assert_eq!(
        led_merging_io::config_vocab_size(ours),
        led_merging_io::config_vocab_size(theirs),
        "{name}: vocab_size differs"
    );
}

#[test]
fn mergekit_configurations_run_alike() {
    let Some(exe) = common::mergekit() else {
        return;
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mergekit_corpus");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = |name: &str, seed: u64, scale: f32| {
        common::write_model(&d.join(name), seed, scale, common::VOCAB, Dtype::F32, false)
            .display()
            .to_string()
    };
    // mergekit's tokenizer test models: a base, a model with two added tokens (and rows for
    // them), one whose four added tokens are beyond its rows.
    let tokenized = |name: &str, seed: u64, rows: usize, added: &[&str]| {
        let dir = common::write_model(&d.join(name), seed, 0.02, rows, Dtype::F32, false);
        common::write_tokenizer(&dir, 64, added);
        dir.display().to_string()
    };
    let vlm = |name: &str, seed: u64| {
        common::write_llava(&exe, &d.join(name), seed)
            .display()
            .to_string()
    };
    let paths = [
        ("{base}", model("base", 0, 0.0)),
        ("{a}", model("a", 1, 0.02)),
        ("{b}", model("b", 2, 0.05)),
        ("{c}", model("c", 3, 0.01)),
        (
            "{gpt2}",
            common::write_gpt2(&d.join("gpt2"), 7, 0.02)
                .display()
                .to_string(),
        ),
        (
            "{granite_a}",
            common::write_granite(&d.join("granite_a"), 8, 0.02)
                .display()
                .to_string(),
        ),
        (
            "{granite_b}",
            common::write_granite(&d.join("granite_b"), 9, 0.03)
                .display()
                .to_string(),
        ),
        ("{vlm_a}", vlm("vlm_a", 1)),
        ("{vlm_b}", vlm("vlm_b", 2)),
        ("{vlm_c}", vlm("vlm_c", 3)),
        ("{tbase}", tokenized("tbase", 4, 64, &[])),
        (
            "{tchatml}",
            tokenized("tchatml", 5, 66, &["<|im_start|>", "<|im_end|>"]),
        ),
        (
            "{tpadded}",
            tokenized(
                "tpadded",
                6,
                64,
                &["<UNUSED_0>", "<UNUSED_1>", "<UNUSED_2>", "<UNUSED_3>"],
            ),
        ),
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "corpus has {} configurations",
        files.len()
    );
    // `LED_CORPUS=tokenizer` runs the configurations whose file name contains `tokenizer`.
    if let Some(only) = std::env::var_os("LED_CORPUS") {
        let only = only.to_string_lossy().into_owned();
        files.retain(|f| f.file_name().unwrap().to_string_lossy().contains(&only));
    }
    let mut outputs = Vec::new();
    let mut summary = Vec::new();
    // A few mergekit processes at a time (each loads torch).
    for batch in files.chunks(4) {
        let jobs: Vec<_> = batch
            .iter()
            .map(|file| {
                let name = file.file_stem().unwrap().to_string_lossy().into_owned();
                let mut text = std::fs::read_to_string(file).unwrap();
                for (key, path) in &paths {
                    text = text.replace(key, path);
                }
                // Configs that name Hub repo ids keep them: led reads them from a cache that
                // holds the test's models under those ids; mergekit gets the local paths.
                let ids = repo_ids(&text);
                let cfg = d.join(format!("{name}.yml"));
                let hub_cache = (!ids.is_empty()).then(|| {
                    let cache = d.join(format!("{name}-hub"));
                    let ours = d.join(format!("{name}-by-id.yml"));
                    std::fs::write(&ours, &text).unwrap();
                    for (id, path) in &ids {
                        hf_cache::cache_model(
                            &cache,
                            id,
                            CORPUS_COMMIT,
                            &["main"],
                            Path::new(path),
                        );
                        text = text.replace(id.as_str(), path);
                    }
                    (cache, ours)
                });
                std::fs::write(&cfg, &text).unwrap();
                let theirs = d.join(format!("{name}-mergekit"));
                // mergekit once as written (it computes in `dtype`), once computing in f32 and
                // writing `dtype`, as led does: the second is what led must match.
                let f32_text = computing_in_f32(&text);
                let cfg32 = d.join(format!("{name}-f32.yml"));
                std::fs::write(&cfg32, &f32_text).unwrap();
                let theirs32 = d.join(format!("{name}-mergekit-f32"));
                // Several documents: mergekit-multi, with its intermediate merges in a folder;
                // the final output is where it writes the final merge.
                let (child, theirs, theirs32) = match final_name(&cfg) {
                    None => (
                        (
                            common::spawn_mergekit(&exe, &cfg, &theirs),
                            common::spawn_mergekit(&exe, &cfg32, &theirs32),
                        ),
                        theirs,
                        theirs32,
                    ),
                    Some(last) => {
                        let multi = exe.with_file_name("mergekit-multi");
                        let (inter, inter32) = (
                            d.join(format!("{name}-mergekit-inter")),
                            d.join(format!("{name}-mergekit-f32-inter")),
                        );
                        let at = |inter: &Path, out: PathBuf| match &last {
                            Some(n) => inter.join(n),
                            None => out,
                        };
                        (
                            (
                                common::spawn_mergekit_multi(&multi, &cfg, &inter, &theirs),
                                common::spawn_mergekit_multi(&multi, &cfg32, &inter32, &theirs32),
                            ),
                            at(&inter, theirs),
                            at(&inter32, theirs32),
                        )
                    }
                };
                (
                    name,
                    expectation(&text, file),
                    (cfg, hub_cache),
                    (theirs, theirs32),
                    child,
                )
            })
            .collect();
        for (name, expect, (cfg, hub_cache), (theirs_dir, theirs32), (child, child32)) in jobs {
            let (theirs, theirs32_out) = (
                child.wait_with_output().unwrap(),
                child32.wait_with_output().unwrap(),
            );
            let (theirs_ran, theirs32_ran) =
                (theirs.status.success(), theirs32_out.status.success());
            // The last line mergekit wrote, for a failure message.
            let said = |o: &std::process::Output| {
                let text = String::from_utf8_lossy(&o.stderr);
                text.lines().last().unwrap_or_default().to_owned()
            };
            let mergekit_said = if theirs_ran {
                said(&theirs32_out)
            } else {
                said(&theirs)
            };
            let ours = d.join(format!("{name}-ours"));
            // Repo ids resolve offline in this config's cache (the only test of this binary,
            // and led plans on this thread: nothing reads the environment meanwhile).
            let cfg = match &hub_cache {
                Some((cache, by_id)) => {
                    unsafe {
                        std::env::set_var("HF_HUB_CACHE", cache);
                        std::env::set_var("HF_HUB_OFFLINE", "1");
                    }
                    by_id.clone()
                }
                None => cfg,
            };
            let planned = plan_final(&cfg, &d.join(format!("{name}-ours-inter")), &ours);
            let line = match (&expect, planned) {
                (Expect::Refused(why), Err(e)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(why.as_str()),
                        "{name}: expected {why:?} in: {msg}"
                    );
                    format!(
                        "refused ({why}); mergekit {}",
                        if theirs_ran { "runs it" } else { "fails too" }
                    )
                }
                (Expect::Refused(why), Ok(_)) => {
                    panic!("{name}: expected a refusal ({why}), led plans it")
                }
                (_, Err(e)) => panic!("{name}: led refuses: {e}"),
                (Expect::Alone(warning), Ok(plan)) => {
                    assert!(!theirs_ran, "{name}: mergekit runs it: expect `same`");
                    let report = run(&plan, &ours, &RunOptions::default())
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(
                        report.warnings.iter().any(|w| w.contains(warning.as_str())),
                        "{name}: expected a warning with {warning:?}: {:?}",
                        report.warnings
                    );
                    outputs.push(ours);
                    format!("led runs it, warning ({warning}); mergekit fails: {mergekit_said}")
                }
                (Expect::Same { partial } | Expect::Runs { partial }, Ok(plan)) => {
                    assert!(
                        theirs_ran && theirs32_ran,
                        "{name}: mergekit fails on it: {mergekit_said}"
                    );
                    run(&plan, &ours, &RunOptions::default())
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    same_vocabulary(
                        &ours,
                        &theirs32,
                        &name,
                        &std::fs::read_to_string(&cfg).unwrap(),
                    );
                    let dtype = plan.tensors()[0].dtype;
                    let partial = *partial;
                    let (worst, their_dtype, left_out) =
                        worst_difference(&ours, &theirs32, &name, partial);
                    let (as_written, _, _) = worst_difference(&ours, &theirs_dir, &name, partial);
                    outputs.push(ours);
                    let written = if their_dtype == dtype {
                        format!("{dtype}")
                    } else {
                        format!("{dtype}; mergekit writes {their_dtype}")
                    };
                    let tolerance = rounding(dtype).max(rounding(their_dtype));
                    let partly = if partial {
                        format!(
                            "; mergekit leaves out {left_out} tensors (its output does not load)"
                        )
                    } else {
                        String::new()
                    };
                    if matches!(expect, Expect::Same { .. }) {
                        assert!(
                            worst <= tolerance,
                            "{name}: worst relative difference {worst:e} over the rounding {tolerance:e} ({written})"
                        );
                        format!(
                            "same ({written}, worst relative difference {worst:.1e}; {as_written:.1e} to mergekit computing in `dtype`{partly})"
                        )
                    } else {
                        format!("runs ({written}, random drops; same tensors{partly})")
                    }
                }
            };
            let line = if hub_cache.is_some() {
                format!("{line}; led read repo ids from a Hugging Face cache")
            } else {
                line
            };
            eprintln!("{name}: {line}");
            summary.push(line);
        }
    }
    common::transformers_loads_and_runs(&exe, &outputs);
    let count = |prefix: &str| summary.iter().filter(|l| l.starts_with(prefix)).count();
    eprintln!(
        "{} configurations: {} same, {} run (random), {} run by led alone, {} refused ({} of them run by mergekit); {} read by Hub repo id",
        summary.len(),
        count("same"),
        count("runs"),
        count("led runs"),
        count("refused"),
        summary.iter().filter(|l| l.ends_with("runs it")).count(),
        summary
            .iter()
            .filter(|l| l.ends_with("Hugging Face cache"))
            .count()
    );
}

/// The commit every repo id of the corpus resolves to in the test's caches.
const CORPUS_COMMIT: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";

/// The `# models: ID=PATH ...` line of a config (its placeholders already replaced by paths):
/// the Hub repo ids mergekit's original names, and the test model each stands for.
fn repo_ids(text: &str) -> Vec<(String, String)> {
    text.lines()
        .find_map(|l| l.strip_prefix("# models: "))
        .map(|ids| {
            ids.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(id, path)| (id.to_owned(), path.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// For a config of several documents: the `name` of its final merge (`None` inside: the final
/// document has none, and mergekit-multi writes it to `--out-path`); `None` for one document.
fn final_name(cfg: &Path) -> Option<Option<String>> {
    let text = std::fs::read_to_string(cfg).unwrap();
    let docs = MergeConfig::documents(&text, cfg).ok()?;
    if docs.len() < 2 {
        return None;
    }
    let out = Path::new("<final>");
    let m = MultiMerge::new(docs, Path::new("<inter>"), out).ok()?;
    Some(m.steps.into_iter().find(|s| s.out == out)?.name)
}

/// The plan of `cfg`'s (final) merge into `out`: with several documents, every other merge
/// run first into `inter`, as `led merge --intermediate-dir` does.
fn plan_final(cfg: &Path, inter: &Path, out: &Path) -> led_merging_merge::Result<MergePlan> {
    if final_name(cfg).is_none() {
        return MergeConfig::from_file(cfg).and_then(MergePlan::new);
    }
    let multi = MultiMerge::from_file(cfg, inter, out)?;
    let mut last = None;
    for step in multi.steps {
        let plan = MergePlan::new(step.config)?;
        if step.out == out {
            last = Some(plan);
        } else {
            run(&plan, &step.out, &RunOptions::default())?;
        }
    }
    Ok(last.expect("a final merge"))
}
