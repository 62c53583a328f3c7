//! The Slurm path of docs/scale-out.md on a real Slurm: this test starts `munged`, `slurmctld`
//! and `slurmd` (Debian's `munge` and `slurm-wlm`; `.ci/run` installs them) with a one-node
//! configuration in a temporary directory, submits the doc's job array and its `afterok` sum —
//! the doc's own script text, with the model, data and scratch paths pointed here, 16 samples and
//! the CPU — waits for them, compares the summed scores with one unsharded `led locate`, and
//! stops the daemons.
//!
//! Where Slurm cannot start (not installed, not root), the test says why and passes, unless
//! `CI` is set: under CI a skip is a failure, so every CI run exercises the path.
#![cfg(feature = "attribution")]

#[path = "../../led-merging-attribution/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use led_merging_io::Checkpoint;

/// Why Slurm cannot run here, if it cannot.
fn missing() -> Option<String> {
    for tool in ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "{tool} not found (Debian: apt-get install slurm-wlm munge)"
            ));
        }
    }
    // slurmd starts jobs as their user: it runs as root.
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
    {
        return Some("slurmd must run as root".into());
    }
    None
}

/// The daemons, stopped (and waited for) when dropped.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free TCP port on this machine.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// This machine's short host name, as slurmd names its node.
fn hostname() -> String {
    let o = Command::new("hostname").arg("-s").output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// Start munge and a one-node Slurm under `d`; `SLURM_CONF` for the clients.
fn start_slurm(d: &Path) -> (Daemons, PathBuf) {
    let host = hostname();
    let key = d.join("munge.key");
    let mut random = [0u8; 1024];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut random,
    )
    .unwrap();
    std::fs::write(&key, random).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let socket = d.join("munge.sock");
    let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
    let mut daemons = Daemons(Vec::new());
    daemons.0.push(
        Command::new("munged")
            .args(["--foreground", "--force"])
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", d.join("munged.pid").display()))
            .arg(format!("--log-file={}", d.join("munged.log").display()))
            .arg(format!("--seed-file={}", d.join("munged.seed").display()))
            .stdout(log("munged.out"))
            .stderr(log("munged.err"))
            .spawn()
            .unwrap(),
    );
    wait_for(|| socket.exists(), 30, "munged's socket", d);
    // Eight GPUs for the doc's `--gres=gpu:1` (files, not devices: jobs run on the CPU).
    let gpus = d.join("gpus");
    std::fs::create_dir_all(&gpus).unwrap();
    for i in 0..8 {
        std::fs::write(gpus.join(format!("gpu{i}")), "").unwrap();
    }
    let (ctld_port, d_port) = (free_port(), free_port());
    for sub in ["state", "spool"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let at = |p: &str| d.join(p).display().to_string();
    // The node claims the memory and GPUs the doc's jobs ask for (`config_overrides`): nothing
    // enforces them (no cgroups), and each shard here needs about 2 GB. Daemons talk over
    // 127.0.0.1, whatever the host name resolves to.
    let conf = format!(
        "ClusterName=ledtest\nSlurmctldHost={host}(127.0.0.1)\nSlurmUser=root\nSlurmdUser=root\n\
         SlurmctldPort={ctld_port}\nSlurmdPort={d_port}\nAuthType=auth/munge\n\
         AuthInfo=socket={socket}\nCredType=cred/munge\nStateSaveLocation={state}\n\
         SlurmdSpoolDir={spool}\nSlurmctldPidFile={cpid}\nSlurmdPidFile={dpid}\n\
         SlurmctldLogFile={clog}\nSlurmdLogFile={dlog}\nProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
         MpiDefault=none\nReturnToService=2\nSchedulerType=sched/backfill\n\
         SchedulerParameters=bf_interval=1\nJobCompType=jobcomp/none\n\
         AccountingStorageType=accounting_storage/none\nSlurmdParameters=config_overrides\n\
         GresTypes=gpu\nNodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=70000 Gres=gpu:8 \
         State=UNKNOWN\n\
         PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
        socket = socket.display(),
        state = at("state"),
        spool = at("spool"),
        cpid = at("slurmctld.pid"),
        dpid = at("slurmd.pid"),
        clog = at("slurmctld.log"),
        dlog = at("slurmd.log"),
    );
    let conf_file = d.join("slurm.conf");
    std::fs::write(&conf_file, conf).unwrap();
    std::fs::write(
        d.join("gres.conf"),
        format!(
            "NodeName={host} Name=gpu File={}/gpu[0-7]\n",
            gpus.display()
        ),
    )
    .unwrap();
    for (daemon, out) in [("slurmctld", "slurmctld.out"), ("slurmd", "slurmd.out")] {
        daemons.0.push(
            Command::new(daemon)
                .arg("-D")
                .arg("-f")
                .arg(&conf_file)
                .stdout(log(out))
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let idle = || {
        Command::new("sinfo")
            .args(["-h", "-o", "%t"])
            .env("SLURM_CONF", &conf_file)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
    };
    wait_for(idle, 60, "the node to be idle", d);
    (daemons, conf_file)
}

/// Wait up to `seconds` for `done`; else fail with the daemons' logs under `d`.
fn wait_for(mut done: impl FnMut() -> bool, seconds: u64, what: &str, d: &Path) {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > Duration::from_secs(seconds) {
            let mut logs = String::new();
            for name in ["munged.log", "slurmctld.log", "slurmd.log"] {
                let text = std::fs::read_to_string(d.join(name)).unwrap_or_default();
                logs += &format!("== {name}\n{text}\n");
            }
            panic!("waited {seconds} s for {what}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The `sh` blocks of docs/scale-out.md's Slurm section, in order: the job script, the submit.
fn doc_scripts() -> (String, String) {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scale-out.md"),
    )
    .unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Slurm"))
        .expect("docs/scale-out.md has a Slurm section");
    let blocks: Vec<String> = section
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_owned())
        .collect();
    assert_eq!(blocks.len(), 2, "the job script and the submit commands");
    (blocks[0].clone(), blocks[1].clone())
}

/// The doc's paths and sizes pointed at this test's model, data and directories.
fn pointed_here(script: &str, model: &Path, data: &Path, d: &Path) -> String {
    let replaced = [
        ("/models/llama-3-8b", model.display().to_string()),
        ("/data/gsm8k.jsonl", data.display().to_string()),
        ("/scratch/parts", d.join("parts").display().to_string()),
        ("/scores", d.join("scores").display().to_string()),
        ("--samples 4096", "--samples 16".to_owned()),
        ("--device cuda", "--device cpu".to_owned()),
    ];
    let mut text = script.to_owned();
    for (from, to) in replaced {
        text = text.replace(from, &to);
    }
    text
}

#[test]
fn the_docs_job_array_and_sum_run_on_slurm() {
    if let Some(why) = missing() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Slurm test: {why}"
        );
        eprintln!("SKIPPED the Slurm test: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = common::smollm2();
    let data = d.join("data.jsonl");
    let records: String = (0..16)
        .map(|i| {
            format!(
                "{{\"question\": \"What is {i} + {i}?\", \"answer\": \"{}\"}}\n",
                2 * i
            )
        })
        .collect();
    std::fs::write(&data, records).unwrap();
    for sub in ["parts", "scores", "jobs"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let (job, submit) = doc_scripts();
    assert!(job.contains("/models/llama-3-8b") && submit.contains("/scratch/parts"));
    let (job, submit) = (
        pointed_here(&job, &model, &data, d),
        pointed_here(&submit, &model, &data, d),
    );
    // The doc's scripts name what the replacements expect (else the doc changed: follow it).
    for doc_only in [
        "/models/llama-3-8b",
        "/data/gsm8k.jsonl",
        "/scratch/parts",
        "--samples 4096",
        "--device cuda",
    ] {
        assert!(
            !job.contains(doc_only) && !submit.contains(doc_only),
            "{doc_only:?} left in the doc's scripts:\n{job}\n{submit}"
        );
    }
    let jobs = d.join("jobs");
    std::fs::write(jobs.join("locate.sbatch"), &job).unwrap();
    std::fs::write(jobs.join("submit.sh"), &submit).unwrap();

    let (daemons, conf) = start_slurm(d);
    let led_dir = Path::new(env!("CARGO_BIN_EXE_led")).parent().unwrap();
    let path = format!(
        "{}:{}",
        led_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .args(["-euo", "pipefail", "submit.sh"])
        .current_dir(&jobs)
        .env("SLURM_CONF", &conf)
        .env("PATH", &path)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "submit: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let queue_empty = || {
        Command::new("squeue")
            .arg("-h")
            .env("SLURM_CONF", &conf)
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii().is_empty())
    };
    wait_for(queue_empty, 600, "the jobs to finish", d);
    drop(daemons);
    let summed = d.join("scores/base-gsm8k.safetensors");
    if !summed.exists() {
        let mut outs = String::new();
        for e in std::fs::read_dir(&jobs).unwrap() {
            let p = e.unwrap().path();
            outs += &format!(
                "== {}\n{}\n",
                p.display(),
                std::fs::read_to_string(&p).unwrap()
            );
        }
        panic!("no summed scores; the jobs' output:\n{outs}");
    }
    let parts = std::fs::read_dir(d.join("parts")).unwrap().count();
    assert_eq!(parts, 8, "one part per array task");

    // One unsharded run of the same request.
    let one = d.join("one.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_led"))
        .args(["locate", "--samples", "16", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&one)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (
        Checkpoint::open(&summed).unwrap(),
        Checkpoint::open(&one).unwrap(),
    );
    assert_eq!(a.tensors().len(), b.tensors().len());
    let mut worst = 0f32;
    for t in b.tensors() {
        let (x, y) = (a.read_f32(&t.name).unwrap(), b.read_f32(&t.name).unwrap());
        let scale = y
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
            .max(f32::MIN_POSITIVE);
        worst = worst.max(common::max_abs_diff(&x, &y) / scale);
    }
    assert!(
        worst <= 1e-5,
        "summed shards differ from one run by {worst:e}"
    );
    eprintln!(
        "Slurm: 8 array tasks and the afterok sum ran; {} tensors within {worst:.1e} of one run",
        b.tensors().len()
    );
}
