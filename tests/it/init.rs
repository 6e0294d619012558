//! `modelgate init` run exactly as kubelet runs an initContainer: as UID
//! 65532, with an empty environment but the container's `env`, the model
//! mounted read-only, an emptyDir target whose parent cannot be written (a
//! mount point under a read-only root), a measurement emptyDir and a
//! termination-message file. Each run asserts the exit code, the target's
//! state, the measurement, the log entry and the termination message.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::registry::*;
use crate::common::*;
use serde_json::Value;

/// A pod's volumes, laid out as kubelet mounts them.
struct Pod {
    _dir: tempfile::TempDir,
    /// The model, read-only (owned by root, no write bits).
    model: PathBuf,
    /// Signature and key, read-only (a ConfigMap).
    trust: PathBuf,
    /// The emptyDir mount point; its parent is not writable.
    target: PathBuf,
    /// The measurement emptyDir.
    run: PathBuf,
    /// The termination-message file.
    termination: PathBuf,
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

impl Pod {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let model = dir.path().join("model");
        fs::create_dir(&model).unwrap();
        for (name, path) in tiny_files() {
            fs::copy(path, model.join(&name)).unwrap();
            chmod(&model.join(name), 0o444);
        }
        chmod(&model, 0o555);
        let trust = dir.path().join("trust");
        fs::create_dir(&trust).unwrap();
        fs::copy(repo("fixtures/tiny-model.sig"), trust.join("model.sig")).unwrap();
        fs::copy(
            repo("fixtures/keys/test-signer.pub.pem"),
            trust.join("release.pub"),
        )
        .unwrap();
        chmod(&trust, 0o555);
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let target = mnt.join("models");
        fs::create_dir(&target).unwrap();
        chmod(&target, 0o777);
        chmod(&mnt, 0o555);
        let run = dir.path().join("run");
        fs::create_dir(&run).unwrap();
        chmod(&run, 0o777);
        let termination = dir.path().join("termination-log");
        fs::write(&termination, "").unwrap();
        chmod(&termination, 0o666);
        Self {
            _dir: dir,
            model,
            trust,
            target,
            run,
            termination,
        }
    }

    /// The container's env for a folder source, the common part.
    fn env(&self) -> Vec<(String, String)> {
        [
            ("MODELGATE_KEY", self.trust.join("release.pub")),
            ("MODELGATE_MEASUREMENT", self.run.join("measurement.json")),
            (
                "MODELGATE_MEASUREMENT_LOG",
                self.run.join("measurements.log"),
            ),
            ("MODELGATE_TERMINATION_LOG", self.termination.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.display().to_string()))
        .chain(
            [
                ("POD_NAME", "vllm-7d9f"),
                ("POD_NAMESPACE", "inference"),
                ("POD_UID", "0b1c6a52-1f3e-4a55-9d7e-1c2d3e4f5a6b"),
                ("NODE_NAME", "gpu-node-3"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .collect()
    }

    fn folder_env(&self) -> Vec<(String, String)> {
        let mut env = self.env();
        env.push(("MODELGATE_SOURCE".into(), self.model.display().to_string()));
        env.push((
            "MODELGATE_SIGNATURE".into(),
            self.trust.join("model.sig").display().to_string(),
        ));
        env
    }

    fn measurement(&self) -> Value {
        serde_json::from_slice(&fs::read(self.run.join("measurement.json")).unwrap()).unwrap()
    }

    fn termination(&self) -> String {
        fs::read_to_string(&self.termination).unwrap()
    }

    fn log_entries(&self) -> Vec<Value> {
        fs::read_to_string(self.run.join("measurements.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The target holds nothing, and its parent no temporary folder.
    #[track_caller]
    fn target_empty(&self) {
        let left: Vec<_> = fs::read_dir(&self.target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "the target holds {left:?}");
        let beside: Vec<_> = fs::read_dir(self.target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "models")
            .collect();
        assert!(beside.is_empty(), "left beside the target: {beside:?}");
    }
}

/// The command kubelet would run: the image's entrypoint as UID 65532,
/// nothing in the environment but `env`.
fn kubelet_command(env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65532", "--regid=65532", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_modelgate"))
        .args(args)
        .env_clear()
        .current_dir("/");
    // Not a variable kubelet sets and not one init reads: it lets
    // scripts/test.sh find this process if the suite ever left it running.
    with_run_marker(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn kubelet(env: &[(String, String)], args: &[&str]) -> Run {
    run(&mut kubelet_command(env, args))
}

/// The JSON log lines on stdout (kubelet's container log).
fn steps(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[track_caller]
fn stdout_has(run: &Run, needle: &str) {
    let messages: Vec<String> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["message"].as_str().map(String::from))
        .collect();
    assert!(
        run.stdout.contains(needle) || messages.iter().any(|m| m.contains(needle)),
        "stdout lacks {needle:?}:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn a_mounted_folder_is_verified_in_place_and_recorded() {
    let pod = Pod::new();
    let run = kubelet(&pod.folder_env(), &["init"]);
    run.expect_code(0);
    let lines = steps(&run);
    let step_of = |s: &str| lines.iter().any(|l| l["step"] == s);
    assert!(
        step_of("config") && step_of("verify") && step_of("measurement"),
        "{}",
        run.stdout
    );
    let m = pod.measurement();
    assert_eq!(m["verdict"], "verified");
    assert_eq!(m["model"]["path"], pod.model.to_str().unwrap());
    assert_eq!(m["pod"]["name"], "vllm-7d9f");
    assert_eq!(m["pod"]["namespace"], "inference");
    assert_eq!(m["pod"]["node"], "gpu-node-3");
    let entries = pod.log_entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["entry"]["verdict"], "verified");
    assert_eq!(
        entries[0]["entry"]["pod"]["uid"],
        "0b1c6a52-1f3e-4a55-9d7e-1c2d3e4f5a6b"
    );
    assert_eq!(
        entries[0]["entry"]["model"]["rootDigest"],
        m["model"]["rootDigest"]
    );
    let termination = pod.termination();
    assert!(
        termination.starts_with("modelgate: verified: tiny-model (root sha256:"),
        "{termination}"
    );
    assert!(termination.contains("signed by: sha256:"), "{termination}");
    // A second start appends; the log verifies, and names an edited entry.
    kubelet(&pod.folder_env(), &["init"]).expect_code(0);
    let log = pod.run.join("measurements.log");
    let verified = modelgate(["measurement".as_ref(), "verify".as_ref(), log.as_os_str()]);
    verified.expect_code(0);
    assert!(
        verified.stdout.starts_with("2 entries, chain "),
        "{}",
        verified.stdout
    );
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let edited = format!(
        "{}\n{}\n",
        lines[0].replace("vllm-7d9f", "vllm-0000"),
        lines[1]
    );
    fs::write(&log, edited).unwrap();
    modelgate(["measurement".as_ref(), "verify".as_ref(), log.as_os_str()])
        .expect_code(1)
        .expect_stderr("line 1: the entry was edited");
}

#[test]
fn each_kind_of_drift_ends_the_pod_with_the_files_named() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str); 4] = [
        (
            "modified",
            |m| fs::write(m.join("config.json"), b"{\"evil\": 1}").unwrap(),
            "config.json: modified",
        ),
        (
            "missing",
            |m| fs::remove_file(m.join("tokenizer.json")).unwrap(),
            "tokenizer.json: missing",
        ),
        (
            "extra",
            |m| fs::write(m.join("backdoor.py"), b"import os").unwrap(),
            "backdoor.py: extra",
        ),
        (
            "symlink",
            |m| {
                fs::remove_file(m.join("config.json")).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", m.join("config.json")).unwrap();
            },
            "config.json: is a symbolic link",
        ),
    ];
    for (kind, damage, message) in cases {
        let pod = Pod::new();
        chmod(&pod.model, 0o755);
        damage(&pod.model);
        chmod(&pod.model, 0o555);
        let run = kubelet(&pod.folder_env(), &["init"]);
        assert_eq!(run.code, 1, "{kind}: {}\n{}", run.stdout, run.stderr);
        stdout_has(&run, message);
        let m = pod.measurement();
        assert_eq!(m["verdict"], "rejected", "{kind}");
        assert!(
            m["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["message"].as_str().unwrap().contains(message)),
            "{kind}: {m}"
        );
        assert_eq!(pod.log_entries()[0]["entry"]["verdict"], "rejected");
        let termination = pod.termination();
        assert!(
            termination.starts_with("modelgate: rejected: "),
            "{kind}: {termination}"
        );
        assert!(termination.contains(message), "{kind}: {termination}");
    }
}

#[test]
fn bad_configuration_is_exit_2_naming_the_variable_before_any_work() {
    let pod = Pod::new();
    let with = |extra: &[(&str, &str)], without: &[&str]| {
        let mut env: Vec<(String, String)> = pod
            .folder_env()
            .into_iter()
            .filter(|(k, _)| !without.contains(&k.as_str()))
            .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let policy = pod.trust.join("model.sig"); // any existing file
    let cases: Vec<(Vec<(String, String)>, String)> = vec![
        (
            with(&[("MODELGATE_KYE", "/x")], &[]),
            "MODELGATE_KYE is not a modelgate setting (did you mean MODELGATE_KEY?)".into(),
        ),
        (
            with(&[], &["MODELGATE_SOURCE"]),
            "MODELGATE_SOURCE is not set".into(),
        ),
        (
            with(&[("MODELGATE_POLICY", policy.to_str().unwrap())], &[]),
            "MODELGATE_POLICY and MODELGATE_KEY are both set".into(),
        ),
        (
            with(&[("MODELGATE_CERTIFICATE_IDENTITY", "ci@example.com")], &["MODELGATE_KEY"]),
            "MODELGATE_CERTIFICATE_IDENTITY is set without MODELGATE_CERTIFICATE_OIDC_ISSUER".into(),
        ),
        (
            with(&[], &["MODELGATE_KEY"]),
            "no trust is configured: set MODELGATE_POLICY".into(),
        ),
        (
            with(&[("MODELGATE_TIMEOUT", "ten minutes")], &[]),
            "MODELGATE_TIMEOUT=\"ten minutes\" is not a duration".into(),
        ),
        (
            with(&[("MODELGATE_SOURCE", "s3://bucket/llama")], &[]),
            "MODELGATE_SOURCE=s3://bucket/llama: modelgate fetches oci:// references and verifies folders, not s3:// URIs".into(),
        ),
        (
            with(&[], &["MODELGATE_SIGNATURE"]),
            "MODELGATE_SIGNATURE is not set: a folder source".into(),
        ),
        (
            with(&[("MODELGATE_SUBPATH", "/models")], &[]),
            "MODELGATE_SUBPATH applies to an oci:// source".into(),
        ),
        (
            with(&[("MODELGATE_KEY", "/nonexistent.pub")], &[]),
            "MODELGATE_KEY=/nonexistent.pub: No such file or directory".into(),
        ),
        (
            with(&[("MODELGATE_KEY", pod.trust.join("model.sig").to_str().unwrap())], &[]),
            "MODELGATE_KEY: ".into(),
        ),
        (
            with(&[("MODELGATE_IGNORE_UNSIGNED_FILES", "maybe")], &[]),
            "MODELGATE_IGNORE_UNSIGNED_FILES=\"maybe\" is not a boolean".into(),
        ),
    ];
    for (env, message) in cases {
        fs::write(&pod.termination, "").unwrap();
        let run = kubelet(&env, &["init"]);
        assert_eq!(run.code, 2, "{message}: {}\n{}", run.stdout, run.stderr);
        stdout_has(&run, &message);
        let termination = pod.termination();
        assert!(
            termination.starts_with("modelgate: error") && termination.contains(&message),
            "{message}: {termination}"
        );
        assert_eq!(pod.measurement()["verdict"], "error", "{message}");
        pod.target_empty();
    }
    // The measurement folder must exist: the pod spec mounts it.
    let mut env = pod.folder_env();
    env.retain(|(k, _)| k != "MODELGATE_MEASUREMENT");
    env.push(("MODELGATE_MEASUREMENT".into(), "/nonexistent/m.json".into()));
    kubelet(&env, &["init"]).expect_code(2);
}

/// `init` env for an oci:// source on `reg` (plain HTTP).
fn oci_env(pod: &Pod, reg: &Registry, repo_tag: &str) -> Vec<(String, String)> {
    let mut env = pod.env();
    env.push(("MODELGATE_SOURCE".into(), reg.reference(repo_tag)));
    env.push(("MODELGATE_TARGET".into(), pod.target.display().to_string()));
    env.push(("MODELGATE_INSECURE_REGISTRY".into(), reg.host.clone()));
    env.push((
        "MODELGATE_SIGNATURE".into(),
        pod.trust.join("model.sig").display().to_string(),
    ));
    env
}

#[test]
fn a_model_from_the_registry_fills_the_empty_dir_and_drift_leaves_it_empty() {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let pod = Pod::new();
    let run = kubelet(&oci_env(&pod, &reg, "models/tiny:v1"), &["init"]);
    run.expect_code(0);
    stdout_has(&run, "\"step\":\"fetch\"");
    same_files(&repo(TINY), &pod.target);
    let m = pod.measurement();
    assert_eq!(m["verdict"], "verified");
    assert_eq!(m["source"]["reference"], reg.reference("models/tiny:v1"));
    assert!(
        m["source"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(pod.termination().contains(&format!(
        "source: {} (sha256:",
        reg.reference("models/tiny:v1")
    )));
    // KServe's invocation: `<uri> <mountPath>`, the rest from env.
    let pod = Pod::new();
    let mut env = oci_env(&pod, &reg, "models/tiny:v1");
    env.retain(|(k, _)| k != "MODELGATE_SOURCE" && k != "MODELGATE_TARGET");
    kubelet(
        &env,
        &[
            &reg.reference("models/tiny:v1"),
            pod.target.to_str().unwrap(),
        ],
    )
    .expect_code(0);
    same_files(&repo(TINY), &pod.target);
    kubelet(&env, &["s3://bucket/llama", pod.target.to_str().unwrap()]).expect_code(2);
    // A tag re-pushed with a changed file: rejected, the emptyDir stays empty.
    let changed = tempfile::tempdir().unwrap();
    for (name, path) in tiny_files() {
        fs::copy(path, changed.path().join(name)).unwrap();
    }
    fs::write(changed.path().join("config.json"), b"{\"evil\": true}").unwrap();
    oras_push(&reg, changed.path(), "models/tiny:v1");
    let pod = Pod::new();
    let run = kubelet(&oci_env(&pod, &reg, "models/tiny:v1"), &["init"]);
    run.expect_code(1);
    stdout_has(
        &run,
        "config.json: the registry's manifest gives its blob digest",
    );
    pod.target_empty();
    assert_eq!(pod.measurement()["verdict"], "rejected");
    assert!(
        pod.termination()
            .contains("config.json: the registry's manifest")
    );
}

#[test]
fn an_unreachable_registry_and_a_deadline_end_the_run_with_nothing_placed() {
    let pod = Pod::new();
    let port = free_port();
    let mut env = pod.env();
    env.push((
        "MODELGATE_SOURCE".into(),
        format!("oci://127.0.0.1:{port}/models/tiny:v1"),
    ));
    env.push(("MODELGATE_TARGET".into(), pod.target.display().to_string()));
    env.push((
        "MODELGATE_INSECURE_REGISTRY".into(),
        format!("127.0.0.1:{port}"),
    ));
    let run = kubelet(&env, &["init"]);
    run.expect_code(2);
    stdout_has(&run, "Connection refused");
    pod.target_empty();
    assert_eq!(pod.measurement()["verdict"], "error");
    // A registry that accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mut env = pod.env();
    env.push((
        "MODELGATE_SOURCE".into(),
        format!("oci://{host}/models/tiny:v1"),
    ));
    env.push(("MODELGATE_TARGET".into(), pod.target.display().to_string()));
    env.push(("MODELGATE_INSECURE_REGISTRY".into(), host));
    env.push(("MODELGATE_TIMEOUT".into(), "2s".into()));
    let start = std::time::Instant::now();
    let run = kubelet(&env, &["init"]);
    run.expect_code(2);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    stdout_has(
        &run,
        "the deadline passed: MODELGATE_TIMEOUT=2s; nothing was placed",
    );
    pod.target_empty();
    assert_eq!(pod.measurement()["verdict"], "error");
    assert!(pod.termination().contains("the deadline passed"));
    drop(silent);
}

#[test]
fn sigterm_mid_pull_leaves_the_target_empty() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("big");
    fs::create_dir(&model).unwrap();
    let file = fs::File::create(model.join("big.bin")).unwrap();
    file.set_len(256 << 20).unwrap();
    drop(file);
    oras_push(&reg, &model, "models/big:v1");
    let sig = work.path().join("big.sig");
    attest(&model, repo("fixtures/keys/test-signer.key.pem"), &sig);
    chmod(work.path(), 0o755);
    chmod(&sig, 0o644);
    let pod = Pod::new();
    let mut env = oci_env(&pod, &reg, "models/big:v1");
    env.retain(|(k, _)| k != "MODELGATE_SIGNATURE");
    env.push(("MODELGATE_SIGNATURE".into(), sig.display().to_string()));
    let child = Process::spawn(kubelet_command(&env, &["init"]).stdout(Stdio::piped()));
    // The pull stages inside the emptyDir (its parent is read-only); wait
    // until bytes arrive there.
    wait_for_staged_bytes(&pod.target, "big.bin");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("stopped by SIGTERM"), "{stdout}");
    pod.target_empty();
    assert_eq!(pod.measurement()["verdict"], "error");
    assert!(pod.termination().contains("stopped by SIGTERM"));
}

/// A node root with an NVIDIA driver as the container toolkit exposes it:
/// the proc files, device nodes (plain files here: no mknod) and the
/// user-space libraries; returns libcuda's SHA-256.
fn gpu_root(root: &Path, version: &str) -> String {
    let write = |path: &str, bytes: &[u8]| {
        let full = root.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, bytes).unwrap();
    };
    write(
        "proc/driver/nvidia/version",
        format!("NVRM version: NVIDIA UNIX x86_64 Kernel Module  {version}  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.2.0\n").as_bytes(),
    );
    write(
        "proc/driver/nvidia/gpus/0000:1b:00.0/information",
        b"Model: \t\t NVIDIA H100 80GB HBM3\nGPU UUID: \t GPU-6c3f0c8e-1d2a-4b5c-9e8f-0a1b2c3d4e5f\nBus Location: \t 0000:1b:00.0\n",
    );
    for dev in ["dev/nvidia0", "dev/nvidiactl", "dev/nvidia-uvm"] {
        write(dev, b"");
    }
    let lib = format!("libcuda.so.{version}");
    let content = format!("libcuda {version} build").into_bytes();
    write(&format!("usr/lib/x86_64-linux-gnu/{lib}"), &content);
    std::os::unix::fs::symlink(&lib, root.join("usr/lib/x86_64-linux-gnu/libcuda.so.1")).unwrap();
    write("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", b"nvml");
    chmod(root, 0o755);
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content))
}

/// A policy trusting the test key for the tiny model, with a GPU block.
fn gpu_policy(pod: &Pod, gpu: &str) -> PathBuf {
    let dir = pod.run.join("policy");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(pod.trust.join("release.pub"), dir.join("release.pub")).unwrap();
    let policy = dir.join("policy.yaml");
    fs::write(
        &policy,
        format!(
            "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata:\n  name: gpu-nodes\nspec:\n  models:\n    - name: any\n      match:\n        names: [\"*\"]\n      authorities:\n        - name: release-key\n          key:\n            path: release.pub\n  gpu:\n{gpu}"
        ),
    )
    .unwrap();
    chmod(&dir, 0o755);
    policy
}

#[test]
fn the_gpu_pathway_is_measured_and_held_to_the_policy() {
    let node = tempfile::tempdir().unwrap();
    let libcuda = gpu_root(node.path(), "550.54.15");
    let env_for = |pod: &Pod, policy: &Path, root: &Path| {
        let mut env: Vec<(String, String)> = pod
            .folder_env()
            .into_iter()
            .filter(|(k, _)| k != "MODELGATE_KEY")
            .collect();
        env.push(("MODELGATE_POLICY".into(), policy.display().to_string()));
        env.push(("MODELGATE_HOST_ROOT".into(), root.display().to_string()));
        env
    };
    // Within the range, the library digest pinned: verified, and recorded.
    let pod = Pod::new();
    let allowed = gpu_policy(
        &pod,
        &format!(
            "    required: true\n    driverVersion: {{min: \"535.0\", max: \"560.0\"}}\n    libraries:\n      - name: libcuda.so.550.54.15\n        sha256: {libcuda}\n"
        ),
    );
    kubelet(&env_for(&pod, &allowed, node.path()), &["init"]).expect_code(0);
    let m = pod.measurement();
    let gpu = &m["node"]["gpu"];
    assert_eq!(gpu["present"], true, "{m}");
    assert_eq!(gpu["driverVersion"], "550.54.15");
    assert_eq!(gpu["gpus"][0]["busId"], "0000:1b:00.0");
    assert!(
        gpu["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["path"] == "/dev/nvidia0")
    );
    let libs = gpu["libraries"].as_array().unwrap();
    assert!(
        libs.iter().any(
            |l| l["path"] == "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15"
                && l["sha256"] == libcuda.as_str()
        ),
        "{libs:?}"
    );
    assert_eq!(pod.log_entries()[0]["entry"]["gpuDriver"], "550.54.15");
    // Each way the node can fail the policy: exit 1 before any work.
    let empty = tempfile::tempdir().unwrap();
    chmod(empty.path(), 0o755);
    let cases = [
        (
            "    required: true\n",
            empty.path(),
            "the policy requires an NVIDIA GPU, and none is visible",
        ),
        (
            "    driverVersion: {min: \"535.0\", max: \"550.0\"}\n",
            node.path(),
            "driver 550.54.15 is outside the allowed range [535.0, 550.0)",
        ),
        (
            "    libraries:\n      - name: libcuda.so.550.54.15\n        sha256: 0000000000000000000000000000000000000000000000000000000000000000\n",
            node.path(),
            &format!(
                "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15: sha256 {libcuda}, the policy allows 0000000000000000000000000000000000000000000000000000000000000000"
            ),
        ),
    ];
    for (gpu, root, message) in cases {
        let pod = Pod::new();
        let policy = gpu_policy(&pod, gpu);
        let run = kubelet(&env_for(&pod, &policy, root), &["init"]);
        assert_eq!(run.code, 1, "{message}: {}", run.stdout);
        stdout_has(&run, message);
        let m = pod.measurement();
        assert_eq!(m["verdict"], "rejected");
        assert!(pod.termination().contains(message), "{}", pod.termination());
    }
    // Without a requirement, a node without a GPU is recorded as such.
    let pod = Pod::new();
    let mut env = pod.folder_env();
    env.push((
        "MODELGATE_HOST_ROOT".into(),
        empty.path().display().to_string(),
    ));
    kubelet(&env, &["init"]).expect_code(0);
    let gpu = &pod.measurement()["node"]["gpu"];
    assert_eq!(gpu["present"], false);
    assert!(
        gpu["reason"]
            .as_str()
            .unwrap()
            .contains("no NVIDIA GPU is visible"),
        "{gpu}"
    );
}
