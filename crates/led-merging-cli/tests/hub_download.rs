//! Downloads of repo ids the Hugging Face cache lacks (docs/models.md, "Downloads"), against a
//! local server that answers the Hub's file endpoints as the Hub does
//! (`tests/hub_download/hub_server.py`, Python's standard library): only the files a merge reads
//! land in the cache, in huggingface_hub's layout (huggingface_hub and transformers then resolve
//! the same snapshots offline); a cached model needs no request; tokens; nothing written when
//! offline, unreachable or refused; a killed download leaves no half file in a snapshot and is
//! resumed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod fixtures;
mod peers;

use peers::text;

use fixtures::{led, same_tensors, ties};

const MAIN: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const MATH_V1: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const TOKEN: &str = "hf_test_token";

/// A hosted repository: its id, its token (gated), its `(ref, commit, directory)`s.
type Hosted<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, &'a str, PathBuf)>);

/// The local Hub: a server process, its address, its request log.
struct Hub {
    child: Child,
    endpoint: String,
    log: PathBuf,
    stall: PathBuf,
}

impl Hub {
    /// Serve `repos` (`(repo, token, [(ref, commit, directory)])`) from `d`.
    fn start(d: &Path, repos: &[Hosted]) -> Hub {
        let mut manifest = serde_json::json!({"repos": {}, "stall": d.join("stall")});
        for (repo, token, revisions) in repos {
            let mut entry = serde_json::json!({"refs": {}, "commits": {}, "token": token});
            for (r, commit, dir) in revisions {
                entry["refs"][*r] = (*commit).into();
                entry["commits"][*commit] = dir.display().to_string().into();
            }
            manifest["repos"][*repo] = entry;
        }
        let manifest_file = d.join("manifest.json");
        std::fs::write(&manifest_file, manifest.to_string()).unwrap();
        let (port_file, log) = (d.join("port"), d.join("requests.log"));
        let child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hub_download/hub_server.py"))
            .args([&manifest_file, &port_file, &log])
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 (the standard library's HTTP server) for the local Hub");
        let started = Instant::now();
        while !port_file.exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "no local Hub");
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&port_file).unwrap();
        Hub {
            child,
            endpoint: format!("http://127.0.0.1:{}", port.trim()),
            log,
            stall: d.join("stall"),
        }
    }

    /// The requests served so far, and forget them.
    fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        text.lines().map(str::to_owned).collect()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo family (`base`, `safety`, `math`: sharded safetensors with an index), and for each
/// a copy as its Hub repository holds it, with files a merge does not read beside the weights.
fn family(d: &Path) -> (PathBuf, PathBuf) {
    let demo = d.join("demo");
    let o = led()
        .args(["demo", "--synthetic", "--out"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let hosted = d.join("hosted");
    for m in ["base", "safety", "math"] {
        let repo = hosted.join(m);
        std::fs::create_dir_all(repo.join("onnx")).unwrap();
        for e in std::fs::read_dir(demo.join(m)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, repo.join(p.file_name().unwrap())).unwrap();
        }
        // What a merge does not read: a README, training state, other formats (a single .bin,
        // and .bin shards with their index), a subfolder, and a single-file copy of the weights
        // beside the shards (as Mistral's repos hold).
        std::fs::write(repo.join("README.md"), "# model card\n").unwrap();
        std::fs::write(repo.join("training_args.bin"), [7u8; 100]).unwrap();
        std::fs::write(repo.join("pytorch_model.bin"), [9u8; 1000]).unwrap();
        std::fs::write(repo.join("pytorch_model-00001-of-00001.bin"), [8u8; 1000]).unwrap();
        std::fs::write(
            repo.join("pytorch_model.bin.index.json"),
            r#"{"weight_map": {"lm_head.weight": "pytorch_model-00001-of-00001.bin"}}"#,
        )
        .unwrap();
        std::fs::write(repo.join("consolidated.safetensors"), [1u8; 1000]).unwrap();
        std::fs::write(repo.join("onnx/model.onnx"), [3u8; 100]).unwrap();
    }
    (demo, hosted)
}

fn merge(d: &Path, name: &str, yaml: &str, env: &[(&str, &str)]) -> (PathBuf, Output) {
    fixtures::merge(led().envs(env.iter().copied()), d, name, yaml)
}

/// The files of a snapshot directory, each a relative link into `blobs/` holding what
/// `source` holds under that name.
fn snapshot_files(snapshot: &Path, source: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(snapshot).unwrap() {
        let p = e.unwrap().path();
        let target = std::fs::read_link(&p).expect("a snapshot file is a link");
        assert!(target.starts_with("../../blobs"), "{}", target.display());
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(source.join(&name)).unwrap(),
            "{name}"
        );
        names.push(name);
    }
    names.sort();
    names
}

fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

#[test]
fn downloads_what_a_merge_reads_into_the_shared_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (demo, hosted) = family(d);
    let hub = Hub::start(
        d,
        &[
            (
                "test-org/base",
                None,
                vec![("main", MAIN, hosted.join("base"))],
            ),
            (
                "test-org/safety",
                None,
                vec![("main", MAIN, hosted.join("safety"))],
            ),
            (
                "test-org/math",
                None,
                vec![
                    ("main", MAIN, hosted.join("math")),
                    ("v1", MATH_V1, hosted.join("safety")),
                ],
            ),
        ],
    );
    let local = |m: &str| demo.join(m).display().to_string();
    let (want, o) = merge(
        d,
        "local",
        &ties(&local("base"), &local("safety"), &local("safety")),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));

    let cache = d.join("cache");
    let cache_s = cache.display().to_string();
    let env = [
        ("HF_HUB_CACHE", cache_s.as_str()),
        ("HF_ENDPOINT", hub.endpoint.as_str()),
    ];
    let yaml = ties("test-org/base", "test-org/safety", "test-org/math@v1");
    let (got, o) = merge(d, "by-id", &yaml, &env);
    assert!(o.status.success(), "{}", text(&o));
    same_tensors(&got, &want);

    // Only what a merge reads, in huggingface_hub's layout: the config, the index and exactly
    // the shards it lists; refs for the branch and the tag.
    let mut wanted: Vec<String> = std::fs::read_dir(demo.join("base"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    wanted.sort();
    for (repo, commit, source) in [
        ("test-org/base", MAIN, hosted.join("base")),
        ("test-org/math", MATH_V1, hosted.join("safety")),
    ] {
        let snapshot = repo_dir(&cache, repo).join("snapshots").join(commit);
        assert_eq!(snapshot_files(&snapshot, &source), wanted, "{repo}");
    }
    let refs = repo_dir(&cache, "test-org/math").join("refs");
    assert_eq!(std::fs::read_to_string(refs.join("v1")).unwrap(), MATH_V1);
    assert!(!refs.join("main").exists(), "only v1 was asked for");

    // A cached model needs no request, with the network allowed.
    hub.requests();
    let (again, o) = merge(d, "again", &yaml, &env);
    assert!(o.status.success(), "{}", text(&o));
    same_tensors(&again, &want);
    assert_eq!(hub.requests(), Vec::<String>::new());

    // A commit asked for by hash: its snapshot, and no ref named after it (as huggingface_hub).
    let o = led()
        .args(["inspect", &format!("test-org/math@{MAIN}")])
        .envs(env)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!refs.join(MAIN).exists());
    assert!(
        repo_dir(&cache, "test-org/math")
            .join("snapshots")
            .join(MAIN)
            .join("config.json")
            .exists()
    );

    // huggingface_hub and transformers, offline, resolve what led downloaded.
    if let Some(python) = peers::python("the huggingface_hub check of downloads") {
        let refs = [
            ("test-org/base", "main"),
            ("test-org/safety", "main"),
            ("test-org/math", "v1"),
            ("test-org/math", MAIN),
        ];
        let found = peers::huggingface_hub_resolves(&python, &cache, &refs);
        for ((repo, rev), (path, config)) in refs.iter().zip(found) {
            let mine = led_merging_io::resolve_in(&cache, repo, Some(rev)).unwrap();
            assert_eq!(path, mine.path, "{repo}@{rev}");
            assert_eq!(config, mine.path.join("config.json"));
        }
    }
}

/// A refused run: exit 1, each needle in what it says, no output, nothing of the repository
/// `absent` in the cache.
fn refused(o: &Output, out: &Path, absent: &Path, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    for n in needles {
        assert!(text(o).contains(n), "{n:?} not in {}", text(o));
    }
    assert!(!out.exists(), "output written");
    assert!(!absent.exists(), "{} written", absent.display());
}

#[test]
fn tokens_offline_and_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, hosted) = family(d);
    let hub = Hub::start(
        d,
        &[
            (
                "test-org/base",
                Some(TOKEN),
                vec![("main", MAIN, hosted.join("base"))],
            ),
            (
                "test-org/safety",
                None,
                vec![("main", MAIN, hosted.join("safety"))],
            ),
        ],
    );
    let yaml = ties("test-org/base", "test-org/safety", "test-org/safety");
    let cache = d.join("cache");
    let gated = repo_dir(&cache, "test-org/base");
    let cache_s = cache.display().to_string();
    let at = |endpoint: &str| {
        vec![
            ("HF_HUB_CACHE", cache_s.clone()),
            ("HF_ENDPOINT", endpoint.to_owned()),
        ]
    };
    let run = |name: &str, env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        merge(d, name, &yaml, &env)
    };

    // Gated: without a token, refused before anything is written, saying what to set.
    let (out, o) = run("no-token", &at(&hub.endpoint));
    refused(
        &o,
        &out,
        &gated,
        &["base_model", "test-org/base", "401", "HF_TOKEN"],
    );
    // Offline: not one request, the command that fetches it.
    hub.requests();
    let mut offline = at(&hub.endpoint);
    offline.push(("HF_HUB_OFFLINE", "1".into()));
    let (out, o) = run("offline", &offline);
    refused(
        &o,
        &out,
        &gated,
        &[
            "test-org/base",
            "offline",
            "huggingface-cli download test-org/base",
        ],
    );
    assert_eq!(hub.requests(), Vec::<String>::new());
    // Unreachable (a port nothing listens on): the repo id, why, what fetches it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (out, o) = run("unreachable", &at(&dead));
    refused(
        &o,
        &out,
        &gated,
        &[
            "test-org/base",
            "cannot be reached",
            "huggingface-cli download test-org/base",
        ],
    );
    // A repository the Hub does not have.
    let (out, o) = merge(
        d,
        "unknown",
        &ties("test-org/safety", "test-org/safety", "test-org/nowhere"),
        &[("HF_HUB_CACHE", &cache_s), ("HF_ENDPOINT", &hub.endpoint)],
    );
    refused(
        &o,
        &out,
        &repo_dir(&cache, "test-org/nowhere"),
        &["models[1].model", "test-org/nowhere", "401"],
    );

    // HF_TOKEN, and the token file under HF_HOME (what `huggingface-cli login` writes).
    let mut with_token = at(&hub.endpoint);
    with_token.push(("HF_TOKEN", TOKEN.into()));
    let (out, o) = run("hf-token", &with_token);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("config.json").exists());
    std::fs::remove_dir_all(&cache).unwrap();
    let hf_home = d.join("hf-home");
    std::fs::create_dir_all(&hf_home).unwrap();
    std::fs::write(hf_home.join("token"), format!("{TOKEN}\n")).unwrap();
    let mut token_file = at(&hub.endpoint);
    token_file.push(("HF_HOME", hf_home.display().to_string()));
    let (out, o) = run("token-file", &token_file);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("config.json").exists());
}

#[test]
fn a_killed_download_leaves_no_half_file_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (demo, hosted) = family(d);
    let hub = Hub::start(
        d,
        &[(
            "test-org/base",
            None,
            vec![("main", MAIN, hosted.join("base"))],
        )],
    );
    let cache = d.join("cache");
    let blobs = repo_dir(&cache, "test-org/base").join("blobs");
    let inspect = || {
        let mut c = led();
        c.args(["inspect", "test-org/base"])
            .env("HF_HUB_CACHE", &cache)
            .env("HF_ENDPOINT", &hub.endpoint);
        c
    };
    // The server sends half of the first weights file and hangs; kill led once half is there.
    std::fs::write(&hub.stall, "").unwrap();
    let mut child = inspect()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let part = loop {
        let part = std::fs::read_dir(&blobs).ok().and_then(|r| {
            // A weights file's blob is named by its sha256 (64 digits; other files' by git's
            // 40-digit sha1): the download that stalls.
            r.map(|e| e.unwrap().path()).find(|p| {
                p.extension().is_some_and(|e| e == "part")
                    && p.file_stem().is_some_and(|s| s.len() == 64)
            })
        });
        if let Some(p) = part.filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)) {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no download started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();

    // No snapshot file is half written: each one there is whole; the half lives in the `.part`.
    let snapshot = repo_dir(&cache, "test-org/base")
        .join("snapshots")
        .join(MAIN);
    let held = snapshot_files(&snapshot, &demo.join("base"));
    assert!(
        !held.iter().any(|f| f.ends_with(".safetensors")),
        "{held:?}"
    );
    let half = std::fs::metadata(&part).unwrap().len();
    assert!(half > 0);
    // Offline, the incomplete snapshot is refused, naming what is missing.
    let o = inspect().env("HF_HUB_OFFLINE", "1").output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));

    // Online again: the download resumes from the `.part` and completes.
    std::fs::remove_file(&hub.stall).unwrap();
    hub.requests();
    let o = inspect().output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let resumed = format!("bytes={half}-");
    assert!(
        hub.requests().iter().any(|r| r.ends_with(&resumed)),
        "no request resumed at {half}"
    );
    assert!(!part.exists());
    assert_eq!(snapshot_files(&snapshot, &demo.join("base")), {
        let mut all: Vec<String> = std::fs::read_dir(demo.join("base"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        all.sort();
        all
    });
}
