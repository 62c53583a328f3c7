//! Hub repo ids resolved from a Hugging Face cache laid out as huggingface_hub lays it out
//! (blobs, snapshot links, refs), offline (docs/models.md): the merge of a config naming repo
//! ids is the merge of the same models by local path, found through `HF_HUB_CACHE`, `HF_HOME`
//! and `@revision`; huggingface_hub itself resolves the same snapshots; what cannot resolve is a
//! clear error that writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use led_merging_io::Checkpoint;

mod fixtures;
#[path = "../../../tests/support/hf_cache.rs"]
mod hf_cache;
mod peers;

use fixtures::{same_tensors, ties};

/// `led` offline, with nothing from the machine's own cache or settings.
fn led() -> Command {
    let mut c = fixtures::led();
    c.env("HF_HUB_OFFLINE", "1");
    c
}

use peers::text;

use hf_cache::cache_model;

const COMMIT_BASE: &str = "1111111111111111111111111111111111111111";
const COMMIT_SAFETY: &str = "2222222222222222222222222222222222222222";
const COMMIT_MATH: &str = "3333333333333333333333333333333333333333";
const COMMIT_MATH_V1: &str = "4444444444444444444444444444444444444444";

/// The synthetic demo's family, cached as `test-org/{base,safety,math}`; `test-org/math@v1`
/// is the safety model's files (a revision that differs from `main`).
fn family_and_cache(d: &Path, cache: &Path) -> PathBuf {
    let demo = d.join("demo");
    let run = led()
        .args(["demo", "--synthetic", "--out"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    cache_model(
        cache,
        "test-org/base",
        COMMIT_BASE,
        &["main"],
        &demo.join("base"),
    );
    cache_model(
        cache,
        "test-org/safety",
        COMMIT_SAFETY,
        &["main"],
        &demo.join("safety"),
    );
    cache_model(
        cache,
        "test-org/math",
        COMMIT_MATH,
        &["main"],
        &demo.join("math"),
    );
    cache_model(
        cache,
        "test-org/math",
        COMMIT_MATH_V1,
        &["v1", "refs/pr/1"],
        &demo.join("safety"),
    );
    demo
}

fn merge(d: &Path, name: &str, yaml: &str, env: &[(&str, &Path)]) -> (PathBuf, Output) {
    let mut c = led();
    c.envs(env.iter().copied());
    fixtures::merge(&mut c, d, name, yaml)
}

/// What `led merge --dry-run CFG OUT` prints with the cache `cache`; it must succeed.
fn dry_run(cfg: &Path, out: &Path, cache: &Path) -> String {
    let o = led()
        .args(["merge", "--dry-run"])
        .arg(cfg)
        .arg(out)
        .env("HF_HUB_CACHE", cache)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

#[test]
fn repo_ids_resolve_from_the_cache_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hf_home = d.join("hf-home");
    let cache = hf_home.join("hub");
    let demo = family_and_cache(d, &cache);
    let local = |m: &str| demo.join(m).display().to_string();

    let (want, o) = merge(
        d,
        "local",
        &ties(&local("base"), &local("safety"), &local("math")),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let by_id = ties("test-org/base", "test-org/safety", "test-org/math");
    // Through HF_HUB_CACHE, and through HF_HOME (its `hub/`).
    for (name, env) in [
        ("via-hub-cache", ("HF_HUB_CACHE", cache.as_path())),
        ("via-hf-home", ("HF_HOME", hf_home.as_path())),
    ] {
        let (got, o) = merge(d, name, &by_id, &[env]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        same_tensors(&got, &want);
        // The output records the config as written: repo ids.
        let card = std::fs::read_to_string(got.join("README.md")).unwrap();
        assert!(card.contains("test-org/safety"), "{card}");
    }
    // `@revision` (a tag, a `refs/pr/N` ref, a commit hash) picks that snapshot: v1 is the
    // safety model's files.
    let (want_v1, o) = merge(
        d,
        "local-v1",
        &ties(&local("base"), &local("safety"), &local("safety")),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    for rev in ["v1", "refs/pr/1", COMMIT_MATH_V1] {
        let name = format!("rev-{}", rev.replace('/', "-"));
        let yaml = ties(
            "test-org/base",
            "test-org/safety",
            &format!("test-org/math@{rev}"),
        );
        let (got, o) = merge(d, &name, &yaml, &[("HF_HUB_CACHE", &cache)]);
        assert!(o.status.success(), "{rev}: {}", text(&o));
        same_tensors(&got, &want_v1);
    }
    // The dry run says where each reference resolved.
    let said = dry_run(&d.join("via-hub-cache.yaml"), &d.join("never"), &cache);
    let snapshot = cache
        .join("models--test-org--math/snapshots")
        .join(COMMIT_MATH);
    assert!(
        said.contains(&format!(
            "models[1].model: test-org/math resolved: test-org/math@main → {} (commit {COMMIT_MATH})",
            snapshot.display()
        )),
        "{said}"
    );
    assert!(!d.join("never").exists());
    huggingface_hub_agrees(&cache);
}

/// huggingface_hub (what transformers resolves through), offline, finds the snapshots led
/// finds. Skipped without the project's virtualenv unless `LED_REQUIRE_PEERS` is set.
fn huggingface_hub_agrees(cache: &Path) {
    let Some(python) = peers::python("the huggingface_hub check") else {
        return;
    };
    let refs = [
        ("test-org/base", "main"),
        ("test-org/math", "main"),
        ("test-org/math", "v1"),
        ("test-org/math", "refs/pr/1"),
        ("test-org/math", COMMIT_MATH_V1),
    ];
    let found = peers::huggingface_hub_resolves(&python, cache, &refs);
    for ((repo, rev), (path, config)) in refs.iter().zip(found) {
        let mine = led_merging_io::resolve_in(cache, repo, Some(rev)).unwrap();
        assert_eq!(path, mine.path, "{repo}@{rev}");
        assert_eq!(config, mine.path.join("config.json"), "{repo}@{rev}");
    }
}

#[test]
fn what_does_not_resolve_is_an_error_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("hub");
    family_and_cache(d, &cache);
    let refused = |name: &str, yaml: &str, needles: &[&str]| {
        let (out, o) = merge(d, name, yaml, &[("HF_HUB_CACHE", &cache)]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        let said = text(&o);
        for n in needles {
            assert!(said.contains(n), "{name}: {n:?} not in {said}");
        }
        assert!(!out.exists(), "{name}: output written");
    };
    // Not cached (offline: nothing downloaded): the repo id and the command that fetches it.
    refused(
        "absent",
        &ties("test-org/base", "test-org/safety", "other-org/absent"),
        &[
            "models[1].model",
            "other-org/absent",
            "huggingface-cli download other-org/absent",
        ],
    );
    // A revision the cache does not hold.
    refused(
        "no-revision",
        &ties("test-org/base", "test-org/safety", "test-org/math@v9"),
        &["test-org/math@v9", "revision \"v9\" is not in the cache"],
    );
    // A revision climbing out of refs/.
    refused(
        "traversal-revision",
        &ties("test-org/base", "test-org/safety", "test-org/math@../../x"),
        &["is not a branch, tag or commit"],
    );
    // A repo id with a path-traversal component is not a repo id, and no such path exists.
    refused(
        "traversal-repo",
        &ties("test-org/base", "test-org/safety", "test-org/../math"),
        &["models[1].model", "test-org/../math"],
    );
    // A refs file that does not hold a commit hash.
    let refs = cache.join("models--test-org--math/refs/broken");
    std::fs::write(&refs, "not-a-commit\n").unwrap();
    refused(
        "bad-ref",
        &ties("test-org/base", "test-org/safety", "test-org/math@broken"),
        &["not a commit hash", "refs/broken"],
    );
    // A snapshot link to a blob that is gone (an interrupted download).
    let snapshot = cache
        .join("models--test-org--safety/snapshots")
        .join(COMMIT_SAFETY);
    let link = std::fs::read_dir(&snapshot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    std::fs::remove_file(snapshot.join(std::fs::read_link(&link).unwrap())).unwrap();
    refused(
        "missing-blob",
        &ties("test-org/base", "test-org/safety", "test-org/math"),
        &["test-org/safety", "which is missing"],
    );
}

/// `led locate --model org/name` writes exactly what it writes for the snapshot directory.
#[cfg(feature = "attribution")]
#[test]
fn locate_reads_a_repo_id_as_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("hub");
    family_and_cache(d, &cache);
    let snapshot = cache
        .join("models--test-org--math/snapshots")
        .join(COMMIT_MATH_V1);
    let locate = |model: &str, out: &str| {
        let o = led()
            .args(["locate", "--scorer", "random", "--model", model, "--out"])
            .arg(d.join(out))
            .env("HF_HUB_CACHE", &cache)
            .output()
            .unwrap();
        assert!(o.status.success(), "{model}: {}", text(&o));
        text(&o)
    };
    let said = locate("test-org/math@v1", "by-id.safetensors");
    assert!(
        said.contains(&format!("(commit {COMMIT_MATH_V1})")),
        "{said}"
    );
    locate(snapshot.to_str().unwrap(), "by-path.safetensors");
    assert_eq!(
        std::fs::read(d.join("by-id.safetensors")).unwrap(),
        std::fs::read(d.join("by-path.safetensors")).unwrap()
    );
    // Not cached: an error naming the repo id, nothing written.
    let o = led()
        .args([
            "locate",
            "--scorer",
            "random",
            "--model",
            "test-org/absent",
            "--out",
        ])
        .arg(d.join("never.safetensors"))
        .env("HF_HUB_CACHE", &cache)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("test-org/absent"), "{}", text(&o));
    assert!(!d.join("never.safetensors").exists());
}

/// A LoRA adapter for the demo's base: rank 2 on layer 0's q_proj (PEFT's file layout).
fn demo_adapter(demo: &Path, dir: &Path) {
    use led_merging_io::{CheckpointWriter, Dtype, TensorSpec, WriterOptions};
    let base = Checkpoint::open(demo.join("base")).unwrap();
    let shape = &base
        .info("model.layers.0.self_attn.q_proj.weight")
        .unwrap()
        .shape;
    let (out, inp) = (shape[0], shape[1]);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#,
    )
    .unwrap();
    let prefix = "base_model.model.model.layers.0.self_attn.q_proj";
    let (a, b) = (
        format!("{prefix}.lora_A.weight"),
        format!("{prefix}.lora_B.weight"),
    );
    let w = CheckpointWriter::create_file(
        dir.join("adapter_model.safetensors"),
        vec![
            TensorSpec::new(&a, Dtype::F32, vec![2, inp]),
            TensorSpec::new(&b, Dtype::F32, vec![out, 2]),
        ],
        WriterOptions::default(),
    )
    .unwrap();
    let ramp = |n: usize| (0..n).map(|i| (i % 7) as f32 * 0.01).collect::<Vec<_>>();
    w.write_f32(&a, &ramp(2 * inp)).unwrap();
    w.write_f32(&b, &ramp(out * 2)).unwrap();
    w.finish().unwrap();
}

/// `org/base+org/adapter` resolves each side in the cache: the merge is the one of the same
/// directories given by path, and the dry run says where both resolved.
#[test]
fn an_adapter_resolves_from_the_cache_like_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("hub");
    let demo = family_and_cache(d, &cache);
    let adapter = d.join("adapter");
    demo_adapter(&demo, &adapter);
    let commit = "5555555555555555555555555555555555555555";
    let snapshot = cache_model(&cache, "test-org/adapter", commit, &["main"], &adapter);
    let local = format!("{}+{}", demo.join("base").display(), adapter.display());
    // The adapter changes the tensor it targets.
    let q = "model.layers.0.self_attn.q_proj.weight";
    let plain = Checkpoint::open(demo.join("base")).unwrap();
    assert_ne!(
        Checkpoint::open(&local).unwrap().read_f32(q).unwrap(),
        plain.read_f32(q).unwrap()
    );
    let math = demo.join("math").display().to_string();
    let (want, o) = merge(d, "adapter-local", &ties(&math, &local, &math), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let by_id = ties(
        "test-org/math",
        "test-org/base+test-org/adapter",
        "test-org/math",
    );
    let (got, o) = merge(d, "adapter-by-id", &by_id, &[("HF_HUB_CACHE", &cache)]);
    assert!(o.status.success(), "{}", text(&o));
    same_tensors(&got, &want);
    let said = dry_run(&d.join("adapter-by-id.yaml"), &d.join("never"), &cache);
    assert!(
        said.contains(&format!(
            "+ LoRA adapter test-org/adapter@main → {} (commit {commit})",
            snapshot.display()
        )),
        "{said}"
    );
}
