//! Helpers shared by the integration tests: run the binary as a user would,
//! run the reference implementation, make keys and model folders.

use std::ffi::{OsStr, OsString};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use tempfile::TempDir;

/// What a process did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it is wrong.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// A process a test started and owns: killed and reaped when dropped, at the
/// end of the test or when it panics. Every process that runs beside a test
/// (a registry, a token server, a proxy, a FUSE mount, a modelgate run in
/// the background) is held by one of these, directly or inside a value that
/// is dropped, never by a `static`, which is never dropped: nothing outlives
/// the suite (scripts/no-leftovers.sh, which scripts/test.sh runs the suite
/// under, fails the run if one is left).
pub struct Process(Option<Child>);

impl Process {
    /// Starts `cmd` with the suite's run marker (see [`RUN_MARKER`]); panics
    /// if it cannot start.
    pub fn spawn(cmd: &mut Command) -> Self {
        let child = with_run_marker(cmd)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        Self(Some(child))
    }

    /// Waits for the process to end by itself and returns what it wrote to
    /// the streams that were piped.
    pub fn wait_with_output(mut self) -> Output {
        let child = self.0.take().expect("the process was stopped");
        let pid = child.id();
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("cannot wait for process {pid}: {e}"))
    }

    /// Kills the process now (if it still runs) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Deref for Process {
    type Target = Child;

    fn deref(&self) -> &Child {
        self.0.as_ref().expect("the process was stopped")
    }
}

impl DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("the process was stopped")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The variable scripts/no-leftovers.sh sets to a value of its own for one
/// run of the suite; every process the suite starts inherits it, and after
/// the run the script looks for processes that still carry it. Not a
/// `MODELGATE_` variable: `modelgate init` refuses unknown ones.
pub const RUN_MARKER: &str = "MGTEST_RUN_ID";

/// Puts the run marker back into `cmd` when it clears its environment
/// (`env_clear`), so that a process started that way is still found if it
/// is left behind.
pub fn with_run_marker(cmd: &mut Command) -> &mut Command {
    if let Some(value) = std::env::var_os(RUN_MARKER) {
        cmd.env(RUN_MARKER, value);
    }
    cmd
}

/// Runs `cmd` to the end and keeps what it did.
pub fn run(cmd: &mut Command) -> Run {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the modelgate binary with text logs (stderr is not a terminal here).
pub fn modelgate<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .args(args)
        .env("MODELGATE_LOG_FORMAT", "text")
        .env_remove("MODELGATE_LOG"))
}

/// The arguments of `modelgate verify MODEL --signature SIG --key KEY`.
pub fn verify_args(
    model: impl AsRef<Path>,
    sig: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Vec<OsString> {
    vec![
        "verify".into(),
        model.as_ref().into(),
        "--signature".into(),
        sig.as_ref().into(),
        "--key".into(),
        key.as_ref().into(),
    ]
}

/// Runs `modelgate verify MODEL --signature SIG --key KEY`.
pub fn verify(model: impl AsRef<Path>, sig: impl AsRef<Path>, key: impl AsRef<Path>) -> Run {
    modelgate(verify_args(model, sig, key))
}

/// Signs `model` with `key` into `sig` (`modelgate attest`), asserting success.
pub fn attest(model: impl AsRef<Path>, key: impl AsRef<Path>, sig: impl AsRef<Path>) {
    let args: [OsString; 6] = [
        "attest".into(),
        model.as_ref().into(),
        "--key".into(),
        key.as_ref().into(),
        "--signature".into(),
        sig.as_ref().into(),
    ];
    modelgate(args).expect_code(0);
}

/// Runs the modelgate binary with extra environment variables.
pub fn modelgate_env<I, S>(env: &[(&str, &str)], args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
    cmd.args(args).env_remove("MODELGATE_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// Runs `program` as the unprivileged user `nobody` (for permission tests,
/// when the suite runs as root), with text logs.
pub fn run_as_nobody(program: &str, args: &[OsString]) -> Run {
    run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .args(args)
        .env("MODELGATE_LOG_FORMAT", "text")
        .env_remove("MODELGATE_LOG"))
}

/// The venv holding the reference implementation (scripts/test.sh makes it).
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("MODELGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    assert!(
        venv.join("bin/model_signing").exists(),
        "the reference implementation is not installed in {}: run scripts/test.sh, which installs it",
        venv.display()
    );
    venv
}

/// kubernetes-validate --strict on one object (JSON), at Kubernetes
/// `version`: it passes, and says so.
pub fn valid_pod(pod: &serde_json::Value, version: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.json");
    std::fs::write(&file, serde_json::to_vec(pod).unwrap()).unwrap();
    let out = run(Command::new(venv().join("bin/kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", version])
        .arg(&file));
    assert!(
        out.code == 0 && out.stdout.contains(" passed for resource "),
        "kubernetes-validate {version}: {}{}",
        out.stdout,
        out.stderr
    );
}

/// Runs tests/support/reference.py (the reference's Python API).
pub fn reference<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/reference.py");
    run(Command::new(venv().join("bin/python"))
        .arg(script)
        .args(args))
}

/// Runs the reference's own CLI, `model_signing`.
pub fn reference_cli<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(venv().join("bin/model_signing")).args(args))
}

/// A test key pair on disk.
pub struct Keys {
    _dir: TempDir,
    pub private: PathBuf,
    pub public: PathBuf,
    /// The same private key as PKCS#8.
    pub pkcs8: PathBuf,
}

/// Makes a key pair with openssl: curve is "P-256", "P-384" or "P-521".
pub fn keypair(curve: &str) -> Keys {
    let name = match curve {
        "P-256" => "prime256v1",
        "P-384" => "secp384r1",
        "P-521" => "secp521r1",
        other => panic!("unknown curve {other}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("key.pem");
    let public = dir.path().join("key.pub");
    let pkcs8 = dir.path().join("key.p8.pem");
    let openssl = |args: &[&OsStr]| run(Command::new("openssl").args(args)).expect_code(0).code;
    openssl(&[
        "ecparam".as_ref(),
        "-name".as_ref(),
        name.as_ref(),
        "-genkey".as_ref(),
        "-noout".as_ref(),
        "-out".as_ref(),
        private.as_os_str(),
    ]);
    openssl(&[
        "ec".as_ref(),
        "-in".as_ref(),
        private.as_os_str(),
        "-pubout".as_ref(),
        "-out".as_ref(),
        public.as_os_str(),
    ]);
    openssl(&[
        "pkcs8".as_ref(),
        "-topk8".as_ref(),
        "-nocrypt".as_ref(),
        "-in".as_ref(),
        private.as_os_str(),
        "-out".as_ref(),
        pkcs8.as_os_str(),
    ]);
    Keys {
        _dir: dir,
        private,
        public,
        pkcs8,
    }
}

/// Writes files (path -> content) under `root`, making folders as needed.
pub fn write_files(root: &Path, files: &[(&str, &[u8])]) {
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

/// Deterministic pseudo-random bytes (no rand dependency needed).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A model folder with what real models have: config and tokenizer files,
/// nested folders, a name with spaces and non-ASCII letters, an empty file, a
/// dotfile, a .git folder (ignored by default) and a README (for ignore tests).
pub fn rich_model() -> TempDir {
    let dir = tempfile::Builder::new().prefix("model-").tempdir().unwrap();
    let weights = bytes(3000, 1);
    let shard = bytes(2048, 2);
    write_files(
        dir.path(),
        &[
            ("config.json", br#"{"model_type":"tiny"}"#),
            ("tokenizer.json", br#"{"version":"1.0"}"#),
            ("sub dir/\u{fc}nicode weights.bin", &weights),
            ("nested/a/b/exact.bin", &shard),
            ("empty.txt", b""),
            (".hidden", b"dotfile"),
            (".git/HEAD", b"ref: refs/heads/main\n"),
            ("README.md", b"# notes, ignored by --ignore-paths\n"),
        ],
    );
    dir
}

/// Path to a file under the repository root.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs tests/support/make_keyless.py (a private Sigstore made in the test)
/// with `args`, asserting success.
pub fn make_keyless<I, S>(args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let run = run(Command::new(venv().join("bin/python"))
        .arg(repo("tests/support/make_keyless.py"))
        .args(args));
    assert_eq!(run.code, 0, "make_keyless.py: {}", run.stderr);
}

/// Flips one bit inside the first RFC 3161 timestamp token of the bundle at
/// `sig`, so that the token no longer verifies.
pub fn tamper_rfc3161_token(sig: &Path) {
    use base64::Engine as _;
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sig).unwrap()).unwrap();
    let token = &mut bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        [0]["signedTimestamp"];
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(token.as_str().unwrap())
        .unwrap();
    let at = raw.len() - 10;
    raw[at] ^= 1;
    *token = base64::engine::general_purpose::STANDARD.encode(raw).into();
    std::fs::write(sig, serde_json::to_vec(&bundle).unwrap()).unwrap();
}
pub mod registry;

/// Runs `cmd`, asserting success (showing its stderr otherwise); returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
