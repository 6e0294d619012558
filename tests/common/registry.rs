//! A real OCI registry for the tests: Debian's `docker-registry` (CNCF
//! distribution) started on 127.0.0.1 on a free port with temporary storage,
//! over plain HTTP, TLS with a CA made here, or htpasswd basic auth. It is
//! stopped when the value is dropped.

use std::ffi::OsString;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Run, modelgate, repo, venv};

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
}

/// The password of the htpasswd user: long and unusual, so a test can
/// search every output for it.
pub const PASSWORD: &str = "Zq8-never-print-this-9xK";
/// The htpasswd user.
pub const USER: &str = "alice";

/// A running registry.
pub struct Registry {
    pub dir: TempDir,
    pub host: String,
    pub mode: Mode,
    child: Child,
}

impl Registry {
    /// Starts a registry in `mode`.
    pub fn start(mode: Mode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let config = write_config(dir.path(), &host, mode);
            // Both streams go to the log: the access log is on stdout, the
            // per-request lines on stderr; tests count requests in it.
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("docker-registry runs (scripts/test.sh installs it)");
            if wait_for(&host, &mut child) {
                return Self {
                    dir,
                    host,
                    mode,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
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
            Mode::Htpasswd => vec![
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

    /// Stops the registry now (a test of a registry that goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(host: &str, child: &mut Child) -> bool {
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
fn make_tls(dir: &Path) {
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
/// htpasswd the same layout goes through the distribution API.)
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
    super::run_ok(&mut cmd);
}

/// Pushes an artifact described by `spec` (see push_artifact.py).
pub fn push_spec(reg: &Registry, repo: &str, tag: &str, spec: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, serde_json::to_vec(spec).unwrap()).unwrap();
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
