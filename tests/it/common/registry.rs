//! A real OCI registry for the tests: Debian's `docker-registry` (CNCF
//! distribution) started on 127.0.0.1 on a free port with temporary storage,
//! over plain HTTP, TLS with a CA made here, htpasswd basic auth, or bearer
//! tokens from a token server started beside it (tests/support/token_server.py).
//! It is stopped (with its token server) when the value is dropped.

use std::ffi::OsString;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Process, Run, modelgate, repo, venv};

/// How the registry is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, anonymous.
    Plain,
    /// HTTPS with a certificate from a CA made for the test, anonymous.
    Tls,
    /// Plain HTTP with htpasswd basic auth (user `alice`, password
    /// [`PASSWORD`]).
    Htpasswd,
    /// Plain HTTP with `auth: token`: clients get a bearer token (ES256 JWT,
    /// x5c header, per-repository access) from tests/support/token_server.py,
    /// which takes the same user and password by HTTP basic auth.
    Token,
    /// HTTPS (a CA made for the test) with `auth: token`, whose token
    /// service is plain HTTP: credentials must not be sent to it.
    TlsToken,
}

/// The `service` and issuer the token-auth registry is configured with.
pub const TOKEN_SERVICE: &str = "modelgate-test";
pub const TOKEN_ISSUER: &str = "modelgate-test-token-issuer";

/// The password of the htpasswd user: long and unusual, so a test can
/// search every output for it.
pub const PASSWORD: &str = "Zq8-never-print-this-9xK";
/// The htpasswd user.
pub const USER: &str = "alice";

/// A running registry.
pub struct Registry {
    // The processes first: fields drop in order, and the registry must stop
    // before its storage folder is removed.
    child: Process,
    /// The token server (token mode), stopped when the registry is dropped.
    _token: Option<Process>,
    pub dir: TempDir,
    pub host: String,
    pub mode: Mode,
}

impl Registry {
    /// Starts a registry in `mode`.
    pub fn start(mode: Mode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The token server first: the registry's config names its port and
        // reads the certificate bundle it writes.
        // Owned from here on: a panic below stops it.
        let token =
            matches!(mode, Mode::Token | Mode::TlsToken).then(|| start_token_server(dir.path()));
        for _ in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let config = write_config(dir.path(), &host, mode);
            // Both streams go to the log: the access log is on stdout, the
            // per-request lines on stderr; tests count requests in it.
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            // (spawn panics if docker-registry is missing: scripts/test.sh
            // installs it.)
            let mut child = Process::spawn(
                Command::new("docker-registry")
                    .arg("serve")
                    .arg(&config)
                    .stdout(Stdio::from(log.try_clone().unwrap()))
                    .stderr(Stdio::from(log)),
            );
            if wait_for(&host, &mut child) {
                return Self {
                    child,
                    _token: token,
                    dir,
                    host,
                    mode,
                };
            }
            child.stop();
        }
        drop(token);
        panic!(
            "docker-registry did not start: {}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// `oci://HOST/REPO:TAG`.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("oci://{}/{repo_and_tag}", self.host)
    }

    /// The CA that signed the TLS certificate (TLS mode).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Where the registry stores the blob `sha256:<hex>`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// A Docker config file with `password` for the htpasswd user.
    pub fn docker_config(&self, password: &str) -> PathBuf {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
        let path = self
            .dir
            .path()
            .join(format!("config-{}.json", password.len()));
        std::fs::write(
            &path,
            format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, self.host),
        )
        .unwrap();
        path
    }

    /// The flags modelgate needs to reach this registry.
    pub fn flags(&self) -> Vec<String> {
        match self.mode {
            Mode::Plain => vec!["--insecure-registry".into(), self.host.clone()],
            Mode::Tls => vec!["--ca-file".into(), self.ca().display().to_string()],
            Mode::TlsToken => vec![
                "--ca-file".into(),
                self.ca().display().to_string(),
                "--registry-config".into(),
                self.docker_config(PASSWORD).display().to_string(),
            ],
            Mode::Htpasswd | Mode::Token => vec![
                "--insecure-registry".into(),
                self.host.clone(),
                "--registry-config".into(),
                self.docker_config(PASSWORD).display().to_string(),
            ],
        }
    }

    /// The registry's log so far (for assertions that it saw no request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops the registry now (a test of a registry that goes away). The
    /// token server, if any, stops when the value is dropped, as the
    /// registry does if it was not stopped before: both are [`Process`]es.
    pub fn stop(&mut self) {
        self.child.stop();
    }
}

impl Registry {
    /// The token server's URL, `http://127.0.0.1:PORT/token` (token mode).
    pub fn token_realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", token_port(self.dir.path()))
    }

    /// The token server's log so far: one JSON object per request (path,
    /// service, scopes, account, status, granted access; no credentials).
    pub fn token_requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("token.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A bearer token for `scope` (e.g. `repository:models/tiny:pull,push`)
    /// from the token server, with the right credentials (token mode).
    pub fn bearer_token(&self, scope: &str) -> String {
        let out = super::run_ok(
            Command::new(venv().join("bin/python"))
                .arg("-c")
                .arg(format!(
                    "{TOKEN_CLIENT}\nprint(token(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]))"
                ))
                .arg(&self.host)
                .arg(scope)
                .args([USER, PASSWORD]),
        );
        out.trim().to_string()
    }
}

/// Starts tests/support/token_server.py with the user and password, its
/// files in `dir`: `token-root.pem` (the registry's rootcertbundle),
/// `token-port`, `token.jsonl` (its request log) and `token-server.out`.
fn start_token_server(dir: &Path) -> Process {
    let out = std::fs::File::create(dir.join("token-server.out")).unwrap();
    let mut child = Process::spawn(
        Command::new(venv().join("bin/python"))
            .arg(repo("tests/support/token_server.py"))
            .args([
                "--user",
                USER,
                "--password",
                PASSWORD,
                "--issuer",
                TOKEN_ISSUER,
            ])
            .arg("--cert-out")
            .arg(dir.join("token-root.pem"))
            .arg("--port-file")
            .arg(dir.join("token-port"))
            .arg("--log")
            .arg(dir.join("token.jsonl"))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out)),
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if dir.join("token-port").exists()
            && TcpStream::connect(("127.0.0.1", token_port(dir))).is_ok()
        {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "token_server.py exited with {status}: {}",
                std::fs::read_to_string(dir.join("token-server.out")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.stop();
    panic!(
        "token_server.py did not start: {}",
        std::fs::read_to_string(dir.join("token-server.out")).unwrap_or_default()
    );
}

fn token_port(dir: &Path) -> u16 {
    std::fs::read_to_string(dir.join("token-port"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Python (requests) that gets a bearer token for a scope the way a Docker
/// client does: the registry's challenge names the realm and service, and
/// the token server is asked with basic auth. Defines `token(host, scope,
/// user, password)`; `sys` and `requests` are imported.
const TOKEN_CLIENT: &str = r#"
import sys, requests, urllib.request
def token(host, scope, user, password):
    challenge = requests.get(f"http://{host}/v2/").headers["Www-Authenticate"]
    params = dict(urllib.request.parse_keqv_list(urllib.request.parse_http_list(challenge[len("Bearer "):])))
    r = requests.get(params["realm"], params={"service": params["service"], "scope": scope}, auth=(user, password))
    r.raise_for_status()
    return r.json()["token"]
"#;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(host: &str, child: &mut Process) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(host).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn write_config(dir: &Path, host: &str, mode: Mode) -> PathBuf {
    let data = dir.join("data");
    let mut config = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
        data.display()
    );
    match mode {
        Mode::Plain => {}
        Mode::Tls => {
            make_tls(dir);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ));
        }
        Mode::Token | Mode::TlsToken => {
            if mode == Mode::TlsToken {
                make_tls(dir);
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.join("server.pem").display(),
                    dir.join("server.key").display()
                ));
            }
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                token_port(dir),
                dir.join("token-root.pem").display()
            ));
        }
        Mode::Htpasswd => {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd runs (apache2-utils)");
            assert!(out.status.success());
            std::fs::write(dir.join("htpasswd"), out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
    }
    let path = dir.join("config.yml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A CA and a server certificate for 127.0.0.1 and localhost, by openssl.
pub fn make_tls(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=modelgate test CA",
        "-days",
        "2",
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

// ---- pushing, pulling and checking, shared by the OCI tests ----

pub const TINY: &str = "fixtures/tiny-model";

/// The reference-signed tiny model, pushed with oras (one layer per file,
/// named by org.opencontainers.image.title) as REPO:TAG. (oras-py cannot
/// log in to a registry whose basic-auth realm is not a URL, so behind
/// htpasswd the same layout goes through the distribution API. Behind token
/// auth oras-py is handed a pull+push token up front: it keeps the first token
/// it gets, which for its first request is pull-only.)
pub fn oras_push(reg: &Registry, model: &Path, repo_tag: &str) {
    if reg.mode == Mode::Htpasswd {
        let (repo, tag) = repo_tag.split_once(':').unwrap();
        let layers: Vec<Value> = std::fs::read_dir(model)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "file": e.path(),
                    "annotations": {"org.opencontainers.image.title": e.file_name().to_str().unwrap()},
                })
            })
            .collect();
        push_spec(
            reg,
            repo,
            tag,
            &json!({"config": {"mediaType": "application/vnd.unknown.config.v1+json", "content": "{}"}, "layers": layers}),
        );
        return;
    }
    let mut files: Vec<String> = std::fs::read_dir(model)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let script = format!(
        r#"
import os, oras.client, sys
os.chdir(sys.argv[1])
kw = dict(hostname=sys.argv[2], insecure=sys.argv[3] == "http")
if sys.argv[3] == "tls":
    kw["tls_verify"] = False
c = oras.client.OrasClient(**kw)
if len(sys.argv) > 5:
    c.auth.set_token_auth(sys.argv[5])
r = c.push(target=sys.argv[2] + "/" + sys.argv[4], files={files:?})
assert r.status_code == 201, r.text
"#
    );
    let scheme = match reg.mode {
        Mode::Tls => "tls",
        _ => "http",
    };
    let mut cmd = std::process::Command::new(venv().join("bin/python"));
    cmd.arg("-c")
        .arg(script)
        .arg(model)
        .arg(&reg.host)
        .arg(scheme)
        .arg(repo_tag);
    if reg.mode == Mode::Token {
        let repo = repo_tag.split_once(':').unwrap().0;
        cmd.arg(reg.bearer_token(&format!("repository:{repo}:pull,push")));
    }
    super::run_ok(&mut cmd);
}

/// Pushes an artifact described by `spec` (see push_artifact.py). Behind
/// token auth, push_artifact.py runs with every request carrying a pull+push
/// bearer token for `repo`.
pub fn push_spec(reg: &Registry, repo: &str, tag: &str, spec: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, serde_json::to_vec(spec).unwrap()).unwrap();
    if reg.mode == Mode::Token {
        let script = format!(
            r#"{TOKEN_CLIENT}
import runpy
bearer = "Bearer " + token(sys.argv[1], "repository:" + sys.argv[2] + ":pull,push", sys.argv[3], sys.argv[4])
plain = requests.api.request
def request(method, url, **kw):
    kw["headers"] = {{**(kw.get("headers") or {{}}), "Authorization": bearer}}
    return plain(method, url, **kw)
requests.api.request = request
sys.argv = ["push_artifact.py", "--registry", sys.argv[1], "--repo", sys.argv[2], "--tag", sys.argv[5], sys.argv[6]]
runpy.run_path({artifact:?}, run_name="__main__")
"#,
            artifact = super::repo("tests/support/push_artifact.py")
                .display()
                .to_string()
        );
        let stdout = super::run_ok(
            std::process::Command::new(venv().join("bin/python"))
                .arg("-c")
                .arg(script)
                .args([&reg.host, repo, USER, PASSWORD, tag])
                .arg(&path),
        );
        return stdout.trim().to_string();
    }
    let stdout = super::run_ok(
        std::process::Command::new(venv().join("bin/python"))
            .arg(super::repo("tests/support/push_artifact.py"))
            .args(["--registry", &reg.host, "--repo", repo, "--tag", tag])
            .args(if reg.mode == Mode::Htpasswd {
                vec!["--user", USER, "--password", PASSWORD]
            } else {
                vec![]
            })
            .arg(&path),
    );
    stdout.trim().to_string()
}

pub fn tiny_files() -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(repo(TINY))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), e.path())
        })
        .collect();
    files.sort();
    files
}

/// `pull REF DEST --signature tiny-model.sig --key test-signer.pub.pem`
pub fn pull_args(reference: impl Into<OsString>, dest: impl Into<OsString>) -> Vec<OsString> {
    vec![
        "pull".into(),
        reference.into(),
        dest.into(),
        "--signature".into(),
        repo("fixtures/tiny-model.sig").into(),
        "--key".into(),
        repo("fixtures/keys/test-signer.pub.pem").into(),
    ]
}

/// `modelgate pull REF DEST --signature tiny-model.sig --key ... <registry flags> extra...`
pub fn pull(reg: &Registry, reference: &str, dest: &Path, extra: &[&str]) -> Run {
    let mut args = pull_args(reference, dest);
    args.extend(reg.flags().into_iter().map(OsString::from));
    args.extend(extra.iter().map(OsString::from));
    modelgate(args)
}

/// The destination was never created and no staging folder is left beside it.
#[track_caller]
pub fn nothing_left(dest: &Path) {
    assert!(
        !dest.exists(),
        "{} exists after a failed pull",
        dest.display()
    );
    let parent = dest.parent().unwrap();
    let left: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".modelgate-pull-"))
        .collect();
    assert!(left.is_empty(), "staging folders left: {left:?}");
}

pub fn same_files(a: &Path, b: &Path) {
    for (name, path) in tiny_files() {
        assert_eq!(
            std::fs::read(path).unwrap(),
            std::fs::read(b.join(&name)).unwrap(),
            "{name} differs from {}",
            a.display()
        );
    }
    assert_eq!(std::fs::read_dir(b).unwrap().count(), tiny_files().len());
}

/// Waits until a pull staged in `folder` has received bytes of `file`;
/// returns how many (fewer than all, for a large enough file).
#[track_caller]
pub fn wait_for_staged_bytes(folder: &Path, file: &str) -> u64 {
    let start = Instant::now();
    loop {
        let staged = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".modelgate-pull-")
            });
        let len = staged
            .and_then(|d| std::fs::metadata(d.join(file)).ok())
            .map_or(0, |m| m.len());
        if len > 0 {
            return len;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the pull never started"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A Python proxy from tests/support in front of a registry: it prints the
/// port it listens on (127.0.0.1) and logs requests to a file. Killed when
/// dropped.
pub struct Proxy {
    _child: Process,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Its request log.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `tests/support/<script> <registry host> <log> <args>...` with
    /// the extra environment `env`.
    pub fn start(script: &str, reg: &Registry, args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("proxy.log");
        // Owned before its first line is read: a proxy that fails to start
        // is stopped by the panic.
        let mut child = Process::spawn(
            Command::new(venv().join("bin/python"))
                .arg(repo(&format!("tests/support/{script}")))
                .arg(&reg.host)
                .arg(&log)
                .args(args)
                .envs(env.iter().copied())
                .stdout(Stdio::piped()),
        );
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(!line.trim().is_empty(), "{script} did not start");
        Self {
            _child: child,
            host: format!("127.0.0.1:{}", line.trim()),
            log,
            _dir: dir,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
