//! `modelgate watch` run as the kubelet runs a native sidecar: an empty
//! environment but the container's `env`, the probes asked over HTTP as a
//! kubelet asks them. Each kind of drift must turn `/readyz` to 503 with
//! the file named, within a bound generous enough for a loaded 2-core
//! machine (benches/watch.sh measures the real latency); restoring the
//! signed bytes makes it ready again. Every watcher is a `Process`, killed
//! when the test ends.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::registry::free_port;
use crate::common::*;

/// The bound every wait is held to.
const BOUND: Duration = Duration::from_secs(20);

/// A signed model, its trust, and a measurement folder.
struct Pod {
    dir: tempfile::TempDir,
    model: PathBuf,
    keys: Keys,
    sig: PathBuf,
    run: PathBuf,
}

impl Pod {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        write_files(
            &model,
            &[
                ("config.json", b"{\"layers\": 2}"),
                ("weights/w.bin", &bytes(300_000, 7)),
                ("weights/deep/tokenizer.json", b"{\"vocab\": []}"),
            ],
        );
        let keys = keypair("P-256");
        let sig = dir.path().join("model.sig");
        attest(&model, &keys.private, &sig);
        let run = dir.path().join("run");
        fs::create_dir(&run).unwrap();
        Self {
            dir,
            model,
            keys,
            sig,
            run,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.model.join(name)
    }

    /// `modelgate watch` as the kubelet starts the sidecar: only the
    /// container's env, the probes on `port`.
    fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
        cmd.arg("watch")
            .env_clear()
            .env("MODELGATE_SOURCE", &self.model)
            .env("MODELGATE_SIGNATURE", &self.sig)
            .env("MODELGATE_KEY", &self.keys.public)
            .env("MODELGATE_MEASUREMENT", self.run.join("measurement.json"))
            .env(
                "MODELGATE_MEASUREMENT_LOG",
                self.run.join("measurements.log"),
            )
            .env("MODELGATE_WATCH_LISTEN", format!("127.0.0.1:{port}"))
            .env("MODELGATE_WATCH_INTERVAL", "1s")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `modelgate watch` with these settings besides the common
    /// ones, and waits until the model verified.
    fn watch(&self, extra: &[(&str, &str)]) -> Watcher {
        let watcher = self.start(extra);
        watcher.until("the first verification", |w| w.ready().0 == 200);
        watcher
    }

    /// Starts `modelgate watch`, waiting for nothing.
    fn start(&self, extra: &[(&str, &str)]) -> Watcher {
        let port = free_port();
        let log = self.dir.path().join(format!("watch-{port}.log"));
        let out = fs::File::create(&log).unwrap();
        let mut cmd = self.command(port);
        cmd.env("MODELGATE_LOG_FORMAT", "json")
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Watcher {
            process: Process::spawn(&mut cmd),
            port,
            log,
        }
    }

    fn measurement(&self) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.run.join("measurement.json")).unwrap()).unwrap()
    }

    fn log_entries(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.run.join("measurements.log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A running watcher and where it listens and logs.
struct Watcher {
    process: Process,
    port: u16,
    log: PathBuf,
}

impl Watcher {
    /// `GET path`: the status and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new());
        };
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
        if tcp.write_all(request.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut response = String::new();
        let _ = tcp.read_to_string(&mut response);
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn ready(&self) -> (u16, String) {
        self.get("/readyz")
    }

    fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `done` holds, or fails naming `what` with the logs.
    #[track_caller]
    fn until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < BOUND,
                "{what}: not within {BOUND:?}; /readyz says {:?}\nlogs:\n{}",
                self.ready(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        run(Command::new("kill").args(["-TERM", &self.process.id().to_string()])).expect_code(0);
    }

    /// Waits for the process to end by itself; its exit code.
    #[track_caller]
    fn exit_code(mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < BOUND,
                "still running after {BOUND:?}\nlogs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a 503 whose body has `needle`, then for a 200 after
    /// `restore`.
    #[track_caller]
    fn drift_then_restore(&self, kind: &str, needle: &str, restore: impl FnOnce()) {
        self.until(&format!("{kind}: not ready"), |w| {
            let (status, body) = w.ready();
            status == 503 && body.contains(needle)
        });
        restore();
        self.until(&format!("{kind}: ready again once restored"), |w| {
            w.ready().0 == 200
        });
    }
}

/// Whether this machine lets the suite make mount namespaces (root, or
/// CAP_SYS_ADMIN); says so when it does not.
fn mount_namespaces() -> bool {
    let allowed = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        eprintln!("skipped: unshare -m is not allowed here");
    }
    allowed
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn each_kind_of_drift_turns_readyz_503_naming_the_file_and_the_signed_bytes_make_it_ready() {
    let pod = Pod::new();
    let w = pod.watch(&[]);
    assert_eq!(
        w.ready(),
        (200, "verified: the model is the signed one\n".into())
    );
    assert_eq!(w.get("/livez"), (200, "alive\n".into()));
    let weights = pod.path("weights/w.bin");
    let signed = fs::read(&weights).unwrap();
    let put_back = || fs::write(&weights, &signed).unwrap();

    // A write in place.
    let mut f = fs::OpenOptions::new().write(true).open(&weights).unwrap();
    f.write_all(b"evil").unwrap();
    drop(f);
    w.drift_then_restore(
        "write",
        "weights/w.bin: modified: expected digest",
        put_back,
    );
    // The drift was recorded: the measurement, a log entry naming the file.
    let entries = pod.log_entries();
    let drift = entries
        .iter()
        .find(|e| e["entry"]["watch"]["event"] == "drift")
        .expect("a drift entry");
    assert_eq!(drift["entry"]["verdict"], "rejected");
    assert_eq!(
        drift["entry"]["watch"]["files"],
        serde_json::json!(["weights/w.bin"])
    );
    let restored = entries.last().unwrap();
    assert_eq!(restored["entry"]["verdict"], "verified");
    assert_eq!(restored["entry"]["watch"]["event"], "restored");
    assert!(w.logs().contains(
        r#""message":"the model drifted from its signature after it verified: not ready","event":"drift","files":"weights/w.bin""#
    ), "{}", w.logs());
    modelgate(
        ["measurement", "verify"]
            .iter()
            .map(|s| s.to_string())
            .chain([pod.run.join("measurements.log").display().to_string()]),
    )
    .expect_code(0);

    // A truncation.
    fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_len(10)
        .unwrap();
    w.drift_then_restore("truncation", "weights/w.bin: modified", put_back);

    // A file replaced by a rename over it.
    let config = pod.path("config.json");
    let staged = pod.path("weights/.config.tmp");
    fs::write(&staged, b"{\"layers\": 3}").unwrap();
    fs::rename(&staged, &config).unwrap();
    w.drift_then_restore("rename-replace", "config.json: modified", || {
        fs::write(&config, b"{\"layers\": 2}").unwrap()
    });

    // A file added.
    let added = pod.path("weights/deep/extra.py");
    fs::write(&added, b"import os").unwrap();
    w.drift_then_restore("file added", "weights/deep/extra.py", || {
        fs::remove_file(&added).unwrap()
    });

    // A file removed.
    let tokenizer = pod.path("weights/deep/tokenizer.json");
    fs::remove_file(&tokenizer).unwrap();
    w.drift_then_restore("file removed", "weights/deep/tokenizer.json", || {
        fs::write(&tokenizer, b"{\"vocab\": []}").unwrap()
    });

    // A mode change.
    let mode = fs::metadata(&config).unwrap().permissions().mode() & 0o7777;
    chmod(&config, 0o666);
    w.drift_then_restore(
        "chmod",
        &format!("config.json: mode changed from {mode:04o} to 0666 after it verified"),
        || chmod(&config, mode),
    );

    // A write through a hard link made outside the model: no event in the
    // model's folders, found by the sweep.
    let outside = pod.dir.path().join("outside-link");
    fs::hard_link(&weights, &outside).unwrap();
    w.until("a new hard link changes only the ctime", |w| {
        w.ready().0 == 200
    });
    fs::OpenOptions::new()
        .append(true)
        .open(&outside)
        .unwrap()
        .write_all(b"!")
        .unwrap();
    w.drift_then_restore("hard link from outside", "weights/w.bin: modified", || {
        fs::remove_file(&outside).unwrap();
        put_back();
    });

    // A folder replaced by a link to a copy of itself somewhere else.
    let deep = pod.path("weights/deep");
    let elsewhere = pod.dir.path().join("elsewhere");
    fs::rename(&deep, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &deep).unwrap();
    w.drift_then_restore(
        "folder replaced by a link",
        "weights/deep: is a symbolic link",
        || {
            fs::remove_file(&deep).unwrap();
            fs::rename(&elsewhere, &deep).unwrap();
        },
    );
    assert_eq!(w.get("/livez"), (200, "alive\n".into()));
}

#[test]
fn a_change_from_another_mount_namespace_is_found() {
    if !mount_namespaces() {
        return;
    }
    let pod = Pod::new();
    let w = pod.watch(&[]);
    let mount = pod.dir.path().join("other-ns");
    fs::create_dir(&mount).unwrap();
    let script = format!(
        "mount --bind {} {} && printf evil >> {}/config.json",
        pod.model.display(),
        mount.display(),
        mount.display()
    );
    let done = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .status()
        .unwrap();
    assert!(done.success());
    w.drift_then_restore("other mount namespace", "config.json: modified", || {
        fs::write(pod.path("config.json"), b"{\"layers\": 2}").unwrap()
    });
}

#[test]
fn reads_atime_updates_and_open_files_are_no_drift() {
    let pod = Pod::new();
    let w = pod.watch(&[]);
    let entries = pod.log_entries().len();
    // Open files held as a server holds them, read again and again (the
    // first read moves atime: the files were just written).
    let held: Vec<fs::File> = ["config.json", "weights/w.bin"]
        .iter()
        .map(|n| fs::File::open(pod.path(n)).unwrap())
        .collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        for name in [
            "config.json",
            "weights/w.bin",
            "weights/deep/tokenizer.json",
        ] {
            fs::read(pod.path(name)).unwrap();
        }
        fs::read_dir(pod.path("weights")).unwrap().for_each(drop);
        assert_eq!(w.ready().0, 200, "{}", w.logs());
    }
    drop(held);
    // Past two sweeps: still nothing.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(w.ready().0, 200);
    assert!(!w.logs().contains("changed on disk"), "{}", w.logs());
    assert_eq!(pod.log_entries().len(), entries);
}

#[test]
fn an_inotify_overflow_and_a_watch_limit_fall_back_to_sweeps_and_say_so() {
    let pod = Pod::new();
    // Three folders, one watch allowed.
    let w = pod.watch(&[("MODELGATE_WATCH_MAX_INOTIFY", "1")]);
    w.until("the limit is logged", |w| {
        w.logs().contains("inotify watches 1 of 3 folders: MODELGATE_WATCH_MAX_INOTIFY=1 is lower than the number of folders; changes in the others are found by the stat sweep every 1s (raise the limit to see them at once); sweeping the whole model now")
    });
    // A change in a folder inotify does not watch is still found.
    let tokenizer = pod.path("weights/deep/tokenizer.json");
    fs::write(&tokenizer, b"{\"vocab\": [1]}").unwrap();
    w.drift_then_restore(
        "unwatched folder",
        "weights/deep/tokenizer.json: modified",
        || fs::write(&tokenizer, b"{\"vocab\": []}").unwrap(),
    );

    // Overflow: the watcher stopped while more events than the kernel
    // queues are made, then let go.
    let w = pod.watch(&[]);
    let queued: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .map_or(16384, |s| s.trim().parse().unwrap_or(16384));
    let pid = w.process.id().to_string();
    run(Command::new("kill").args(["-STOP", &pid])).expect_code(0);
    let files = ["config.json", "weights/w.bin"].map(|n| pod.path(n));
    for i in 0..(queued * 2) {
        // Alternating files: the kernel merges only identical neighbours.
        let f = fs::File::open(&files[i % 2]).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
    }
    run(Command::new("kill").args(["-CONT", &pid])).expect_code(0);
    w.until("the overflow is logged", |w| {
        w.logs().contains("the inotify queue overflowed (more changes at once than fs.inotify.max_queued_events): events were lost, sweeping the whole model now")
    });
    // Only timestamps changed: hashed again, and ready.
    w.until("ready after the sweep", |w| w.ready().0 == 200);
}

#[test]
fn restart_fails_livez_too_and_the_restored_model_is_ready_again() {
    let pod = Pod::new();
    let w = pod.watch(&[("MODELGATE_WATCH_ON_DRIFT", "restart")]);
    assert_eq!(w.get("/livez"), (200, "alive\n".into()));
    let config = pod.path("config.json");
    fs::write(&config, b"{\"layers\": 9}").unwrap();
    w.until("livez fails", |w| {
        let (status, body) = w.get("/livez");
        status == 503
            && body.starts_with(
                "restart: the model drifted after the server read it; restart the server\n",
            )
    });
    w.drift_then_restore("restart", "config.json: modified", || {
        fs::write(&config, b"{\"layers\": 2}").unwrap()
    });
    assert!(w.logs().contains(r#""on_drift":"restart""#));
}

#[test]
fn a_scheduled_rehash_holds_its_budget_and_finds_every_file_signed() {
    let pod = Pod::new();
    // 300 KB at 100 KB/s: about three seconds.
    let w = pod.watch(&[
        ("MODELGATE_WATCH_REHASH_INTERVAL", "1s"),
        ("MODELGATE_WATCH_MAX_RATE", "100K"),
    ]);
    w.until("a re-hash ends", |w| {
        w.logs()
            .contains("full re-hash: every file matches its signed digest")
    });
    let line = w
        .logs()
        .lines()
        .find(|l| l.contains("full re-hash: every file matches"))
        .unwrap()
        .to_string();
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
    let rate = doc["rate"].as_u64().unwrap();
    assert_eq!(doc["max_rate"], 100_000);
    assert!(rate <= 110_000, "{line}");
    assert!(doc["bytes"].as_u64().unwrap() >= 300_000, "{line}");
    assert_eq!(w.ready().0, 200);
}

#[test]
fn a_model_that_does_not_verify_or_a_bad_setting_ends_the_sidecar_as_init_would() {
    let pod = Pod::new();
    fs::write(pod.path("config.json"), b"{\"layers\": 5}").unwrap();
    let env = |extra: &[(&str, String)]| {
        let mut cmd = pod.command(free_port());
        cmd.env("MODELGATE_LOG_FORMAT", "text");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        run(with_run_marker(&mut cmd))
    };
    env(&[])
        .expect_code(1)
        .expect_stderr("config.json: modified: expected digest");
    env(&[("MODELGATE_WATCH_ON_DRIFT", "reboot".into())])
        .expect_code(2)
        .expect_stderr("MODELGATE_WATCH_ON_DRIFT=\"reboot\": use quarantine (not ready until the model is restored) or restart (the server is restarted too)");
    env(&[("MODELGATE_WATCH_INTERVL", "5s".into())])
        .expect_code(2)
        .expect_stderr("MODELGATE_WATCH_INTERVL is not a modelgate setting (did you mean MODELGATE_WATCH_INTERVAL?)");
    env(&[(
        "MODELGATE_TARGET",
        pod.dir.path().join("t").display().to_string(),
    )])
    .expect_code(2)
    .expect_stderr("watch verifies a folder where the server reads it");
}

#[test]
fn sigterm_while_watching_is_a_clean_exit_and_the_deadline_no_longer_applies() {
    let pod = Pod::new();
    let w = pod.watch(&[("MODELGATE_TIMEOUT", "1s")]);
    // Past MODELGATE_TIMEOUT: it bounds the first verification only.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(w.ready().0, 200, "{}", w.logs());
    w.terminate();
    let log = w.log.clone();
    assert_eq!(w.exit_code(), 0);
    let logs = fs::read_to_string(log).unwrap();
    assert!(
        logs.contains(
            "stopped by SIGTERM (the pod is being deleted or the run cancelled) while watching: the watch ends"
        ),
        "{logs}"
    );
    assert!(!logs.contains("the deadline passed"), "{logs}");
    assert_eq!(pod.measurement()["verdict"], "verified");
}

#[test]
fn a_deadline_or_sigterm_before_the_model_verified_ends_the_sidecar_as_init_would() {
    let pod = Pod::new();
    // A modelcar that never comes: waited for, not ready, until the end.
    let absent = [
        ("MODELGATE_SOURCE", "/models"),
        ("MODELGATE_WATCH_CONTAINER", "no-such-modelcar"),
    ];
    let w = pod.start(&[absent[0], absent[1], ("MODELGATE_TIMEOUT", "3s")]);
    w.until("waiting, not ready", |w| {
        let (status, body) = w.ready();
        status == 503 && body.contains("verifying")
    });
    let log = w.log.clone();
    assert_eq!(w.exit_code(), 2);
    let logs = fs::read_to_string(log).unwrap();
    for said in [
        "waiting for the model's container: MODELGATE_WATCH_CONTAINER=no-such-modelcar: no process of that name in another container holds /models",
        "the deadline passed: MODELGATE_TIMEOUT=3s; nothing was placed; do not start the workload",
    ] {
        assert!(logs.contains(said), "{said}\n{logs}");
    }
    assert_eq!(pod.measurement()["verdict"], "error");

    let w = pod.start(&absent);
    w.until("waiting", |w| {
        w.logs().contains("waiting for the model's container")
    });
    w.terminate();
    let log = w.log.clone();
    assert_eq!(w.exit_code(), 2);
    let logs = fs::read_to_string(log).unwrap();
    assert!(logs.contains("stopped by SIGTERM"), "{logs}");
    assert!(!logs.contains("while watching"), "{logs}");
    let m = pod.measurement();
    assert_eq!(m["verdict"], "error");
    let reason = m["reasons"][0]["message"].as_str().unwrap();
    assert!(reason.starts_with("stopped by SIGTERM"), "{m}");
}

#[test]
fn a_model_in_another_container_is_read_through_its_process_root_and_followed() {
    if !mount_namespaces() {
        return;
    }
    let pod = Pod::new();
    let dir = pod.dir.path();
    // The modelcar: a process of its own name in a mount namespace of its
    // own, where the model is a tmpfs at a path that is empty here.
    let name = format!("mcar{}", std::process::id() % 100_000);
    let exe = dir.join(&name);
    fs::copy(
        run_ok(Command::new("sh").args(["-c", "command -v sleep"])).trim(),
        &exe,
    )
    .unwrap();
    chmod(&exe, 0o755);
    let models = dir.join("models");
    fs::create_dir(&models).unwrap();
    let script = format!(
        "mount -t tmpfs none {m} && cp -a {src}/. {m}/ && exec {exe} 1000",
        m = models.display(),
        src = pod.model.display(),
        exe = exe.display()
    );
    let modelcar = Process::spawn(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    let pid = modelcar.id();
    let started = Instant::now();
    while fs::read_to_string(format!("/proc/{pid}/comm")).map_or(true, |c| c.trim() != name) {
        assert!(started.elapsed() < BOUND, "the modelcar did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let source = models.display().to_string();
    let w = pod.watch(&[
        ("MODELGATE_SOURCE", &source),
        ("MODELGATE_WATCH_CONTAINER", &name),
    ]);
    assert!(
        fs::read_dir(&models).unwrap().next().is_none(),
        "empty here"
    );
    assert!(
        w.logs().contains(&format!(
            r#""message":"watching","model":"/proc/{pid}/root{source}""#
        )),
        "{}",
        w.logs()
    );
    // The first verification names it so too, never /proc/self/fd/N.
    let shown = format!("/proc/{pid}/root{source}");
    let first = pod.measurement();
    assert_eq!(first["verdict"], "verified");
    assert_eq!(first["model"]["path"], shown.as_str(), "{first}");
    assert_eq!(
        pod.log_entries()[0]["entry"]["model"]["path"],
        shown.as_str()
    );
    assert!(!w.logs().contains("/proc/self/fd"), "{}", w.logs());
    let inside = |shell: &str| {
        run(Command::new("nsenter").args(["-t", &pid.to_string(), "-m", "sh", "-c", shell]))
            .expect_code(0);
    };
    inside(&format!("printf evil >> {source}/config.json"));
    w.drift_then_restore("inside the modelcar", "config.json: modified", || {
        inside(&format!(
            "printf '{{\"layers\": 2}}' > {source}/config.json"
        ))
    });
    // The container gone: not ready, and why.
    drop(modelcar);
    w.until("the modelcar gone", |w| {
        let (status, body) = w.ready();
        status == 503
            && body.contains(&format!(
                "MODELGATE_WATCH_CONTAINER={name}: no process of that name in another container holds {source}"
            ))
    });
}
