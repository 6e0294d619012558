//! Faults on the wire, injected by a proxy (tests/support/fault_proxy.py)
//! between modelgate and a real registry (Debian's docker-registry): a
//! connection reset or cut mid-blob, a stall past the deadline, a body
//! shorter or a Content-Length longer than the blob, 500 and 429 storms with
//! `Retry-After`, redirects to another host (honest and not), a manifest
//! over the spec's 4 MiB.
//!
//! Each test asserts the exit code, the message, how long it took where a
//! deadline is involved, and what is left at the destination: the verified
//! model in full, or nothing at all.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::registry::*;
use crate::common::*;

/// The fault proxy in front of `reg`.
fn proxy(reg: &Registry, fault: &str) -> Proxy {
    Proxy::start("fault_proxy.py", reg, &[fault], &[])
}

/// Pulls the tiny model through `proxy` into `dest`; how long it took.
fn pull_through(proxy: &Proxy, dest: &Path, extra: &[&str]) -> (Run, Duration) {
    let mut args = pull_args(format!("oci://{}/models/tiny:v1", proxy.host), dest);
    args.extend(
        ["--insecure-registry", proxy.host.as_str()]
            .into_iter()
            .chain(extra.iter().copied())
            .map(OsString::from),
    );
    let started = Instant::now();
    let run = modelgate(args);
    (run, started.elapsed())
}

/// A registry holding the tiny model as `models/tiny:v1` (ORAS layout: one
/// raw blob per file).
fn registry(mode: Mode) -> Registry {
    let reg = Registry::start(mode);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    reg
}

/// The pull succeeded and the destination holds exactly the signed model.
#[track_caller]
fn verified(run: &Run, dest: &Path) {
    run.expect_code(0);
    same_files(&repo(TINY), dest);
    assert_eq!(
        std::fs::read_dir(dest).unwrap().count(),
        tiny_files().len(),
        "other files than the model's in {}",
        dest.display()
    );
}

#[test]
fn a_blob_cut_off_mid_body_is_resumed_where_it_stopped_and_verified() {
    let reg = registry(Mode::Plain);
    let out = tempfile::tempdir().unwrap();
    // Once per blob: a TCP reset, or a clean close, after half the body; or
    // a well-formed answer with only half the body.
    for fault in ["reset:1", "truncate:1", "short:1"] {
        let proxy = proxy(&reg, fault);
        let dest = out.path().join(fault.replace(':', "-"));
        let (run, _) = pull_through(&proxy, &dest, &[]);
        verified(&run, &dest);
        let kind = fault.split(':').next().unwrap();
        assert_eq!(
            proxy.log().matches(&format!(" {kind}\n")).count(),
            tiny_files().len(),
            "{fault}: every blob should have been cut once:\n{}",
            proxy.log()
        );
        assert!(
            run.stderr.contains("resuming at byte"),
            "{fault}: no resume logged:\n{}",
            run.stderr
        );
    }
}

#[test]
fn a_blob_cut_off_every_time_fails_after_the_retries_and_leaves_nothing() {
    let reg = registry(Mode::Plain);
    let out = tempfile::tempdir().unwrap();
    // A connection that breaks is the network's or the registry's failure
    // (exit 2); a well-formed answer that is short every time is content
    // that does not match its descriptor (exit 1).
    for (fault, code, message) in [
        ("reset:1000", 2, "broke off after"),
        ("truncate:1000", 2, "broke off after"),
        ("short:1000", 1, "bytes its descriptor says"),
    ] {
        let proxy = proxy(&reg, fault);
        let dest = out.path().join(fault.replace(':', "-"));
        let (run, took) = pull_through(&proxy, &dest, &[]);
        run.expect_code(code).expect_stderr(message);
        assert!(
            run.stderr.contains("attempt=3"),
            "{fault}: not retried three times:\n{}",
            run.stderr
        );
        // The first attempt and three retries, then the pull gives up.
        assert!(took < Duration::from_secs(20), "{fault} took {took:?}");
        nothing_left(&dest);
    }
}

#[test]
fn a_content_length_longer_than_the_blob_is_decided_by_the_digest() {
    // The body is the whole blob, then the connection closes 1000 bytes
    // short of the announced length: every byte arrived, so the digest
    // decides, and it matches.
    let reg = registry(Mode::Plain);
    let out = tempfile::tempdir().unwrap();
    let proxy = proxy(&reg, "long");
    let dest = out.path().join("model");
    let (run, _) = pull_through(&proxy, &dest, &[]);
    verified(&run, &dest);
    run.expect_stderr("checking the digest");
}

#[test]
fn a_registry_that_stalls_mid_blob_is_cut_off_at_the_deadline() {
    let reg = registry(Mode::Plain);
    let out = tempfile::tempdir().unwrap();
    let proxy = proxy(&reg, "stall:600");
    let dest = out.path().join("model");
    let (run, took) = pull_through(&proxy, &dest, &["--timeout", "3"]);
    run.expect_code(2)
        .expect_stderr("the pull did not finish within 3s (--timeout); nothing was kept");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    nothing_left(&dest);
}

#[test]
fn storms_of_500_and_429_are_retried_with_backoff_and_fail_closed_when_they_last() {
    let reg = registry(Mode::Plain);
    let out = tempfile::tempdir().unwrap();
    // Two refusals of each manifest and each blob, then answers: retried,
    // and verified. `Retry-After: 3600` does not hold the pull for an hour:
    // the backoff is modelgate's own (200, 400, 600 ms), within --timeout.
    for fault in ["status:503:2:1", "status:500:2:1", "status:429:2:3600"] {
        let proxy = proxy(&reg, fault);
        let dest = out.path().join(fault.replace(':', "-"));
        let (run, took) = pull_through(&proxy, &dest, &["--timeout", "60"]);
        verified(&run, &dest);
        assert!(took < Duration::from_secs(15), "{fault} took {took:?}");
        let code = fault.split(':').nth(1).unwrap();
        let refused = proxy.log().matches(&format!("status {code}")).count();
        // The manifest (by tag), and every blob, twice each.
        assert_eq!(
            refused,
            2 * (1 + tiny_files().len()),
            "{fault}:\n{}",
            proxy.log()
        );
        assert!(run.stderr.contains("retrying") || run.stderr.contains("resuming"));
    }
    // A storm that does not end: the retries run out, the pull fails with the
    // registry's answer, and nothing is kept.
    for (fault, message) in [
        ("status:500:1000:1", "HTTP 500"),
        ("status:429:1000:1", "TOOMANYREQUESTS"),
    ] {
        let proxy = proxy(&reg, fault);
        let dest = out.path().join(fault.replace(':', "-"));
        let (run, took) = pull_through(&proxy, &dest, &["--timeout", "60"]);
        run.expect_code(2)
            .expect_stderr("cannot fetch the manifest of")
            .expect_stderr(message);
        assert!(took < Duration::from_secs(15), "{fault} took {took:?}");
        // The first request and three retries.
        assert_eq!(proxy.log().matches("status").count(), 4, "{}", proxy.log());
        nothing_left(&dest);
    }
}

#[test]
fn a_redirect_to_another_host_gets_no_credentials_and_its_bytes_are_checked() {
    // Registries send blob GETs to storage on another host (S3, a CDN): the
    // redirect is followed, the credentials are not, and the bytes from
    // there are checked against the digest like any other.
    let reg = registry(Mode::Htpasswd);
    let out = tempfile::tempdir().unwrap();
    for (fault, ok) in [("redirect", true), ("redirect-bad", false)] {
        let auth = base64_basic(USER, PASSWORD);
        // The second host reads the registry on its own authority, as
        // storage behind a presigned URL would.
        let storage_auth = format!("Basic {auth}");
        let proxy = Proxy::start(
            "fault_proxy.py",
            &reg,
            &[fault],
            &[("FAULT_PROXY_UPSTREAM_AUTH", &storage_auth)],
        );
        let config = out.path().join(format!("{fault}.json"));
        std::fs::write(
            &config,
            format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, proxy.host),
        )
        .unwrap();
        let dest = out.path().join(fault);
        let (run, _) = pull_through(
            &proxy,
            &dest,
            &["--registry-config", config.to_str().unwrap()],
        );
        let log = proxy.log();
        assert!(log.contains("storage GET"), "no redirect followed:\n{log}");
        assert!(
            !log.contains("storage GET") || !log.contains(" credentials\n"),
            "credentials were sent to the other host:\n{log}"
        );
        assert!(!run.stderr.contains(PASSWORD) && !run.stdout.contains(PASSWORD));
        if ok {
            verified(&run, &dest);
        } else {
            run.expect_code(1)
                .expect_stderr("arrived with digest sha256:")
                .expect_stderr("the registry served other bytes than the manifest names");
            nothing_left(&dest);
        }
    }
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[test]
fn a_manifest_over_4_mib_is_refused_before_it_is_parsed() {
    let reg = registry(Mode::Plain);
    let out = tempfile::tempdir().unwrap();
    let proxy = proxy(&reg, "huge");
    let dest = out.path().join("model");
    let (run, _) = pull_through(&proxy, &dest, &[]);
    // Read up to the bound and one byte more, never to the end: the
    // answer's size is not known, only that it is over the bound.
    run.expect_code(1).expect_stderr(
        "the manifest is more than the 4194304 bytes modelgate reads (the OCI distribution spec's 4 MiB)",
    );
    assert!(
        !proxy.log().contains("/blobs/"),
        "a blob was requested:\n{}",
        proxy.log()
    );
    nothing_left(&dest);
}
