//! A hostile registry (issue 16): a proxy (tests/support/hostile_proxy.py)
//! in front of a real registry (Debian's docker-registry) that means harm
//! rather than breaks: a manifest or referrers answer without end, a
//! signature blob of 600 MiB behind a descriptor of a few KiB, connections
//! that send nothing or a byte a second, token services and registries that
//! echo the credentials they were sent back in a 100 KiB error, a redirect
//! from HTTPS to plain HTTP; and, without a proxy, a container image whose
//! tar layer takes longer to unpack than the deadline allows.
//!
//! Each test asserts the exit code, the message, that nothing is left at
//! the destination, that the run ended in bounded time (every modelgate run
//! here has a wall-clock limit of the test's own, `timeout`, so a client that
//! hangs fails the test instead of holding the suite), and where memory is
//! the attack, the peak RSS of the modelgate process (GNU time's `%M`).
//! Every run also gets an address-space cap (`prlimit --as`, 1 GiB), so a
//! client that reads a hostile answer whole aborts there (exit 134, "memory
//! allocation ... failed") instead of taking the machine's memory, even with
//! the suite's tests running side by side.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::registry::*;
use crate::common::*;

/// The peak resident memory a pull may reach against an answer without end
/// (the 4 MiB manifest bound plus the process's own few MiB, with room).
const RSS_LIMIT_KB: u64 = 64 << 10;

/// The address space (bytes) a modelgate run here may reserve: a safety net
/// for the machine, far above what a bounded client needs (a normal pull of
/// the tiny model runs in 300 MiB of address space, 30 MiB resident; the
/// rest is thread stacks and malloc arenas, which glibc does without when
/// the cap refuses them).
const ADDRESS_SPACE_CAP: u64 = 1 << 30;

/// The modelgate in these tests' public key, for signatures found in the
/// registry.
fn public_key() -> std::path::PathBuf {
    repo("fixtures/keys/test-signer.pub.pem")
}

/// What a bounded modelgate run did: its streams and code (124 or 137: the
/// test's wall-clock limit killed it), how long it ran, and its peak RSS.
struct Bounded {
    run: Run,
    took: Duration,
    rss_kb: u64,
    limit: Duration,
}

impl Bounded {
    /// The run, for messages: code, time, RSS and the end of stderr.
    fn describe(&self) -> String {
        let tail: String = {
            let s = &self.run.stderr;
            let mut at = s.len().saturating_sub(4000);
            while !s.is_char_boundary(at) {
                at += 1;
            }
            s[at..].to_string()
        };
        format!(
            "exit {}{} after {:.1?}, peak RSS {} KiB; stderr (end):\n{tail}",
            self.run.code,
            if matches!(self.run.code, 124 | 137) {
                format!(
                    " (killed by the test's own {}s limit)",
                    self.limit.as_secs()
                )
            } else {
                String::new()
            },
            self.took,
            self.rss_kb
        )
    }

    /// It ended by itself within `bound`.
    #[track_caller]
    fn ended_within(&self, bound: Duration) -> &Self {
        assert!(
            self.took < bound && !matches!(self.run.code, 124 | 137),
            "did not end within {bound:?}: {}",
            self.describe()
        );
        self
    }

    /// Its exit code is `code`.
    #[track_caller]
    fn code(&self, code: i32) -> &Self {
        assert_eq!(self.run.code, code, "exit code: {}", self.describe());
        self
    }

    /// Its stderr holds `needle`.
    #[track_caller]
    fn stderr(&self, needle: &str) -> &Self {
        assert!(
            self.run.stderr.contains(needle),
            "stderr lacks {needle:?}: {}",
            self.describe()
        );
        self
    }

    /// Its peak RSS stayed under [`RSS_LIMIT_KB`].
    #[track_caller]
    fn flat_memory(&self) -> &Self {
        assert!(
            self.rss_kb < RSS_LIMIT_KB,
            "peak RSS {} KiB, over {RSS_LIMIT_KB} KiB: {}",
            self.rss_kb,
            self.describe()
        );
        self
    }
}

/// Runs modelgate with `args`, killed by `timeout` after `limit` (then
/// SIGKILL 5 s later), under GNU time for its peak RSS and an address-space
/// cap. GNU time measures `timeout`, whose children's peak it includes.
fn bounded(what: &str, args: &[OsString], limit: Duration) -> Bounded {
    let started = Instant::now();
    let out = Command::new("prlimit")
        .arg(format!("--as={ADDRESS_SPACE_CAP}"))
        .args([
            "--",
            "/usr/bin/time",
            "-f",
            "MAXRSS_KB=%M",
            "timeout",
            "-k",
            "5",
        ])
        .arg(limit.as_secs().to_string())
        .arg(env!("CARGO_BIN_EXE_modelgate"))
        .args(args)
        .env("MODELGATE_LOG_FORMAT", "text")
        .env_remove("MODELGATE_LOG")
        .output()
        .expect(
            "prlimit, GNU time (/usr/bin/time) and timeout run (scripts/test.sh installs time)",
        );
    let took = started.elapsed();
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // GNU time's lines end stderr: "Command exited with non-zero status N"
    // or "Command terminated by signal N" when so, then the format's.
    let at = stderr
        .rfind("MAXRSS_KB=")
        .unwrap_or_else(|| panic!("{what}: no MAXRSS_KB line from GNU time:\n{stderr}"));
    let rss_kb: u64 = stderr[at + "MAXRSS_KB=".len()..]
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{what}: GNU time's line: {e}:\n{stderr}"));
    stderr.truncate(at);
    for marker in ["Command exited with", "Command terminated by"] {
        if let Some(at) = stderr.rfind(marker)
            && !stderr[at..].trim_end().contains('\n')
        {
            stderr.truncate(at);
        }
    }
    let b = Bounded {
        run: Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        },
        took,
        rss_kb,
        limit,
    };
    // Shown with the test's output when it fails: what this binary did.
    eprintln!(
        "hostile {what}: exit {} after {:.1?}, peak RSS {} KiB",
        b.run.code, b.took, b.rss_kb
    );
    b
}

/// The hostile proxy in `mode` in front of `reg`.
fn hostile(reg: &Registry, mode: &str) -> Proxy {
    Proxy::start("hostile_proxy.py", reg, &[mode], &[])
}

/// A plain-HTTP registry holding the tiny model as `models/tiny:v1`.
fn registry() -> Registry {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    reg
}

/// `pull oci://HOST/models/tiny:v1 DEST` through `host` (plain HTTP), with
/// the tiny model's signature given, or (`discover`) only the key, so that
/// the signatures are looked for in the registry.
fn pull_from(host: &str, dest: &Path, discover: bool, extra: &[&str]) -> Vec<OsString> {
    let reference = format!("oci://{host}/models/tiny:v1");
    let mut args = if discover {
        vec![
            "pull".into(),
            reference.into(),
            dest.into(),
            "--key".into(),
            public_key().into(),
        ]
    } else {
        pull_args(reference, dest)
    };
    args.extend(
        ["--insecure-registry", host]
            .into_iter()
            .chain(extra.iter().copied())
            .map(OsString::from),
    );
    args
}

/// No `.modelgate-*` folder (staging, blobs) is left beside `dest`, which
/// does not exist.
#[track_caller]
fn nothing_beside(dest: &Path) {
    nothing_left(dest);
    let left: Vec<String> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".modelgate-"))
        .collect();
    assert!(left.is_empty(), "left beside the destination: {left:?}");
}

/// The proxy's log shows that it attacked (`what` noted at least once): the
/// harness did its part, so a pass is modelgate's.
#[track_caller]
fn attacked(proxy: &Proxy, what: &str) {
    let log = proxy.log();
    assert!(
        log.lines().any(|l| l.ends_with(&format!(" {what}"))),
        "the proxy never answered {what:?}:\n{log}"
    );
}

#[test]
fn an_endless_manifest_is_cut_off_at_4_mib_in_flat_memory() {
    let reg = registry();
    let proxy = hostile(&reg, "endless-manifest");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    let b = bounded(
        "endless-manifest",
        &pull_from(&proxy.host, &dest, false, &[]),
        Duration::from_secs(45),
    );
    b.ended_within(Duration::from_secs(30))
        .code(1)
        .stderr("more than the 4194304 bytes modelgate reads")
        .flat_memory();
    attacked(&proxy, "endless");
    assert!(
        !proxy.log().contains("/blobs/"),
        "a blob was requested:\n{}",
        proxy.log()
    );
    nothing_beside(&dest);
}

#[test]
fn endless_referrers_are_cut_off_at_4_mib_in_flat_memory() {
    // The model's manifest is honest; the signature look-up never ends: the
    // referrers API answer, or (on a registry without the API) the referrers
    // tag schema's index `sha256-<hex>`.
    let reg = registry();
    let out = tempfile::tempdir().unwrap();
    for mode in ["endless-referrers", "endless-referrers:tag"] {
        let proxy = hostile(&reg, mode);
        let dest = out.path().join(mode.replace(':', "-"));
        let b = bounded(
            mode,
            &pull_from(&proxy.host, &dest, true, &[]),
            Duration::from_secs(45),
        );
        b.ended_within(Duration::from_secs(30))
            .code(1)
            .stderr("more than the 4194304 bytes modelgate reads")
            .flat_memory();
        attacked(&proxy, "endless");
        let log = proxy.log();
        let endless = log.lines().find(|l| l.ends_with(" endless")).unwrap();
        let via = if mode.ends_with(":tag") {
            "/manifests/sha256-"
        } else {
            "/referrers/sha256:"
        };
        assert!(endless.contains(via), "{mode}: {log}");
        assert!(
            !log.contains("/blobs/"),
            "{mode}: a blob was requested:\n{log}"
        );
        nothing_beside(&dest);
    }
}

#[test]
fn a_signature_blob_longer_than_its_descriptor_is_refused_in_flat_memory() {
    // A model pushed by modelgate with its signature as a referrer; the
    // proxy answers the signature's bundle blob with 600 MiB, announced by
    // an honest Content-Length or chunked without one.
    let reg = Registry::start(Mode::Plain);
    modelgate([
        OsString::from("push"),
        repo(TINY).into(),
        reg.reference("models/tiny:v1").into(),
        "--key".into(),
        repo("fixtures/keys/test-signer.key.pem").into(),
        "--insecure-registry".into(),
        reg.host.clone().into(),
    ])
    .expect_code(0);
    let out = tempfile::tempdir().unwrap();
    for framing in ["length", "chunked"] {
        let proxy = hostile(&reg, &format!("fat-signature:{framing}"));
        let dest = out.path().join(framing);
        let b = bounded(
            &format!("fat-signature:{framing}"),
            &pull_from(&proxy.host, &dest, true, &[]),
            Duration::from_secs(45),
        );
        b.ended_within(Duration::from_secs(30))
            .code(1)
            .stderr("longer than the")
            .stderr("bytes its descriptor says")
            .flat_memory();
        attacked(&proxy, "fat");
        nothing_beside(&dest);
    }
}

#[test]
fn a_tar_layer_that_unpacks_past_the_deadline_ends_the_pull_with_nothing_kept() {
    // A container image whose one layer holds 200,000 one-byte files under
    // /models (3 MiB of gzip, quick to fetch, seconds to unpack).
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let blob = work.path().join("wide.tar.gz");
    let made = Instant::now();
    run_ok(
        Command::new(venv().join("bin/python"))
            .arg(repo("tests/support/make_wide_tar.py"))
            .arg(&blob)
            .args(["200000", "/models"]),
    );
    eprintln!(
        "hostile untar-deadline: 200,000 entries made in {:.1?}",
        made.elapsed()
    );
    push_spec(
        &reg,
        "models/wide",
        "v1",
        &serde_json::json!({
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "content": "{}"},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "file": blob}],
        }),
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    let mut args = pull_args(reg.reference("models/wide:v1"), &dest);
    args.extend(
        [
            "--insecure-registry",
            &reg.host,
            "--subpath",
            "/models",
            "--timeout",
            "3",
        ]
        .map(OsString::from),
    );
    let b = bounded("untar-deadline", &args, Duration::from_secs(30));
    b.ended_within(Duration::from_secs(20))
        .code(2)
        .stderr("did not finish within 3s (--timeout); nothing was kept");
    // The layer was fetched in full: the deadline struck while it was
    // unpacked, not while it was downloaded.
    assert!(
        reg.log().lines().any(|l| l.contains("\"modelgate/")
            && l.contains("/blobs/sha256:")
            // Asked for as a range from byte 0: 206 with the whole blob.
            && (l.contains("\" 200 ") || l.contains("\" 206 "))),
        "the layer was never fetched:\n{}",
        reg.log()
    );
    nothing_beside(&dest);
}

#[test]
fn a_connection_that_sends_nothing_ends_at_the_read_timeout() {
    let reg = registry();
    let proxy = hostile(&reg, "stall");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    // No --timeout: only the read timeout can end it (the deadline's
    // default is 15 minutes).
    let b = bounded(
        "stall",
        &pull_from(&proxy.host, &dest, false, &["--read-timeout", "2"]),
        Duration::from_secs(30),
    );
    b.ended_within(Duration::from_secs(15))
        .code(2)
        .stderr(&proxy.host)
        .stderr("nothing arrived for 2 s");
    attacked(&proxy, "stall");
    nothing_beside(&dest);
}

#[test]
fn a_connection_that_trickles_a_byte_a_second_ends_at_the_deadline() {
    let reg = registry();
    let proxy = hostile(&reg, "trickle");
    let out = tempfile::tempdir().unwrap();
    // A byte a second is not silence: a read timeout of 2 s does not end it,
    // the deadline does.
    for (case, extra) in [
        ("deadline", &["--timeout", "4"][..]),
        (
            "deadline-and-read-timeout",
            &["--timeout", "4", "--read-timeout", "2"][..],
        ),
    ] {
        let dest = out.path().join(case);
        let b = bounded(
            &format!("trickle ({case})"),
            &pull_from(&proxy.host, &dest, false, extra),
            Duration::from_secs(30),
        );
        b.ended_within(Duration::from_secs(15))
            .code(2)
            .stderr("did not finish within 4s");
        assert!(
            !b.run.stderr.contains("nothing arrived"),
            "{case}: a trickle is not a stall: {}",
            b.describe()
        );
        nothing_beside(&dest);
    }
    attacked(&proxy, "trickle");
}

#[test]
fn pull_help_documents_the_default_deadline_and_read_timeout() {
    let run = modelgate(["pull", "--help"]);
    run.expect_code(0);
    let help = format!("{}{}", run.stdout, run.stderr);
    // One option's block: from its line to the next line that starts an
    // option.
    let block = |flag: &str| -> String {
        let mut lines = help
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(flag));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("pull --help has no {flag}:\n{help}"));
        let rest = lines.take_while(|l| !l.trim_start().starts_with('-'));
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (flag, default) in [
        ("--timeout", "default: 900"),
        ("--read-timeout", "default: 30"),
    ] {
        let text = block(flag);
        assert!(
            text.contains(default),
            "pull --help says no {default:?} for {flag}:\n{text}"
        );
    }
}

#[test]
fn credentials_echoed_back_by_a_token_service_or_registry_are_never_shown() {
    // A registry behind token auth whose challenges send clients to the
    // proxy: its token service (token-echo), or the registry once a token
    // is issued (bearer-echo), answers 401 with a 100 KiB body repeating the
    // Authorization header the client sent, the user and password decoded
    // from it, and the query string.
    use base64::Engine as _;
    const SECRET: &str = "s3cr3t-hunter2";
    // A JWT as token services issue them (ES256 header, the claims a
    // client may read), with a signature no one made.
    const TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJob3N0aWxlIiwic3ViIjoiYWxpY2UiLCJleHAiOjQxMDI0NDQ4MDAsImp0aSI6Im1ndGVzdC1pc3N1ZWQtYmVhcmVyLXRva2VuIn0.c2lnbmF0dXJlLW1ndGVzdC1iZWFyZXI";
    let reg = Registry::start(Mode::Token);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let out = tempfile::tempdir().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}"));
    for mode in ["token-echo", "bearer-echo"] {
        let proxy = Proxy::start(
            "hostile_proxy.py",
            &reg,
            &[mode],
            &[("HOSTILE_PROXY_TOKEN", TOKEN)],
        );
        let config = out.path().join(format!("{mode}.json"));
        std::fs::write(
            &config,
            format!(
                r#"{{"auths": {{"{}": {{"auth": "{basic}"}}}}}}"#,
                proxy.host
            ),
        )
        .unwrap();
        let dest = out.path().join(mode);
        let measurement = out.path().join(format!("{mode}-out.json"));
        let b = bounded(
            mode,
            &pull_from(
                &proxy.host,
                &dest,
                false,
                &[
                    "--registry-config",
                    config.to_str().unwrap(),
                    "--measurement",
                    measurement.to_str().unwrap(),
                ],
            ),
            Duration::from_secs(40),
        );
        b.ended_within(Duration::from_secs(30)).code(2);
        attacked(&proxy, "echo 401");
        let written = std::fs::read_to_string(&measurement).unwrap_or_default();
        let secrets = [
            SECRET.to_string(),
            format!("{USER}:s3cr3t"),
            basic.clone(),
            TOKEN.to_string(),
            // The token's signature part alone.
            TOKEN.rsplit('.').next().unwrap().to_string(),
        ];
        for secret in &secrets {
            for (stream, text) in [
                ("stderr", &b.run.stderr),
                ("stdout", &b.run.stdout),
                ("the measurement", &written),
            ] {
                assert!(
                    !text.contains(secret.as_str()),
                    "{mode}: {secret:?} in {stream}: {}",
                    b.describe()
                );
            }
        }
        // The echo is cut to an excerpt: the error line stays short, and no
        // other line carries the 100 KiB either.
        let error = b
            .run
            .stderr
            .lines()
            .find(|l| l.contains("ERROR"))
            .unwrap_or_else(|| panic!("{mode}: no ERROR line: {}", b.describe()));
        assert!(
            error.len() < 2000,
            "{mode}: the ERROR line is {} bytes: {}",
            error.len(),
            b.describe()
        );
        let longest = b.run.stderr.lines().map(str::len).max().unwrap_or(0);
        assert!(
            longest < 2000,
            "{mode}: a stderr line of {longest} bytes: {}",
            b.describe()
        );
        nothing_beside(&dest);
    }
}

/// The hostile proxy in `redirect-http` mode in front of the TLS registry
/// `reg` (with the registry's own certificate), its plain-HTTP second host
/// on 127.0.0.2:`plain_port`; and the test CA's file.
fn redirecting_proxy(reg: &Registry, plain_port: u16) -> (Proxy, std::path::PathBuf) {
    let (cert, key, ca) = (
        reg.dir.path().join("server.pem"),
        reg.dir.path().join("server.key"),
        reg.ca(),
    );
    let proxy = Proxy::start(
        "hostile_proxy.py",
        reg,
        &[&format!("redirect-http:{plain_port}")],
        &[
            ("HOSTILE_PROXY_CERT", cert.to_str().unwrap()),
            ("HOSTILE_PROXY_KEY", key.to_str().unwrap()),
            ("HOSTILE_PROXY_UPSTREAM_CA", ca.to_str().unwrap()),
        ],
    );
    (proxy, ca)
}

#[test]
fn a_redirect_from_https_to_plain_http_is_refused_unless_that_host_is_named_insecure() {
    // The proxy speaks TLS with the registry's own certificate (for
    // 127.0.0.1, from the CA the test made) and sends every blob GET to
    // http://127.0.0.2:PORT, a plain-HTTP listener serving the same blob.
    let reg = Registry::start(Mode::Tls);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let plain_port = free_port();
    let plain = format!("127.0.0.2:{plain_port}");
    let (proxy, ca) = redirecting_proxy(&reg, plain_port);
    let out = tempfile::tempdir().unwrap();
    let args = |dest: &Path, extra: &[&str]| -> Vec<OsString> {
        let mut args = pull_args(format!("oci://{}/models/tiny:v1", proxy.host), dest);
        args.extend(
            ["--ca-file", ca.to_str().unwrap()]
                .into_iter()
                .chain(extra.iter().copied())
                .map(OsString::from),
        );
        args
    };
    let refused = out.path().join("refused");
    let b = bounded(
        "redirect-http",
        &args(&refused, &[]),
        Duration::from_secs(40),
    );
    b.ended_within(Duration::from_secs(30))
        .code(2)
        .stderr("redirected from HTTPS to plain HTTP");
    attacked(&proxy, "redirect to plain http");
    assert!(
        !proxy.log().contains("storage GET"),
        "a request went over plain HTTP:\n{}",
        proxy.log()
    );
    nothing_beside(&refused);
    // Plain HTTP named for that host: the redirect is followed, and the
    // bytes from there are checked like any others.
    let allowed = out.path().join("allowed");
    let b = bounded(
        "redirect-http (--insecure-registry)",
        &args(&allowed, &["--insecure-registry", &plain]),
        Duration::from_secs(40),
    );
    b.ended_within(Duration::from_secs(30)).code(0);
    same_files(&repo(TINY), &allowed);
    assert!(
        proxy.log().contains("storage GET"),
        "the redirect was not followed:\n{}",
        proxy.log()
    );
}

/// `push MODEL oci://HOST/models/pushed:v1 --key KEY extra...`
fn push_to(host: &str, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "push".into(),
        repo(TINY).into(),
        format!("oci://{host}/models/pushed:v1").into(),
        "--key".into(),
        repo("fixtures/keys/test-signer.key.pem").into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    args
}

#[test]
fn an_upload_opened_with_an_answer_without_end_fails_the_push_in_flat_memory() {
    let reg = registry();
    let proxy = hostile(&reg, "endless-upload-ack");
    let host = proxy.host.clone();
    let b = bounded(
        "endless-upload-ack",
        &push_to(&host, &["--insecure-registry", &host]),
        Duration::from_secs(60),
    );
    b.ended_within(Duration::from_secs(30))
        .code(2)
        .stderr(&format!(
            "oci://{host}/models/pushed:v1: its answer to opening an upload is more than the 16384 bytes modelgate reads"
        ))
        .flat_memory();
    attacked(&proxy, "endless ack");
    // Nothing was tagged: the model manifest is only put after every blob.
    let tags = std::process::Command::new("curl")
        .args([
            "-s",
            &format!("http://{}/v2/models/pushed/tags/list", reg.host),
        ])
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&tags.stdout);
    assert!(!tags.contains("v1"), "tagged anyway: {tags}");
}

#[test]
fn an_upload_sent_from_https_to_plain_http_is_refused_unless_that_host_is_named_insecure() {
    // The proxy speaks TLS and rewrites every upload's Location to
    // http://127.0.0.2:PORT, a plain-HTTP listener that passes it on.
    let reg = Registry::start(Mode::Tls);
    let plain_port = free_port();
    let plain = format!("127.0.0.2:{plain_port}");
    let (proxy, ca) = redirecting_proxy(&reg, plain_port);
    let ca = ca.to_str().unwrap().to_string();
    let b = bounded(
        "upload to plain http",
        &push_to(&proxy.host, &["--ca-file", &ca]),
        Duration::from_secs(60),
    );
    b.ended_within(Duration::from_secs(30))
        .code(2)
        .stderr(&format!("sent the upload to http://{plain}/v2/models/pushed/blobs/uploads/"))
        .stderr("over plain HTTP; refused: the model's bytes and any credential would travel in cleartext");
    attacked(&proxy, "upload sent to plain http");
    assert!(
        !proxy.log().contains("storage PUT"),
        "bytes went over plain HTTP:\n{}",
        proxy.log()
    );
    // Named insecure: the upload goes there, and no credential goes with
    // it to that other host.
    let b = bounded(
        "upload to plain http (--insecure-registry)",
        &push_to(
            &proxy.host,
            &["--ca-file", &ca, "--insecure-registry", &plain],
        ),
        Duration::from_secs(60),
    );
    b.ended_within(Duration::from_secs(30)).code(0);
    let log = proxy.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("storage PUT")
                && l.ends_with("201 plain-http without a credential")),
        "the upload did not go to the other host, or a credential went with it:\n{log}"
    );
}
