//! Every spelling of the model and of an `--ignore-paths` value that names a
//! place inside the model is accepted, the same way for both: relative,
//! absolute, with `.` and `..`, through a symlinked parent. Anything that
//! resolves outside the model is an error (exit 2), never silently dropped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// base/models/m (the model, signed without `ignore-me`, which is added
/// after signing), base/models/other/x.txt, base/a (a sibling folder),
/// base/link -> base/models, and base/outside.txt.
struct Layout {
    _dir: tempfile::TempDir,
    base: PathBuf,
    sig: PathBuf,
    key: PathBuf,
}

fn layout() -> Layout {
    let dir = tempfile::tempdir().unwrap();
    // Resolve the temporary folder itself, so that "absolute" below means
    // the path the kernel reaches.
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let model = base.join("models/m");
    write_files(
        &model,
        &[
            ("config.json", b"{}"),
            ("weights.bin", &bytes(4096, 7)),
            ("sub/tokenizer.json", b"{\"v\":1}"),
        ],
    );
    std::fs::create_dir_all(base.join("a")).unwrap();
    std::fs::write(base.join("outside.txt"), b"not in the model").unwrap();
    write_files(&base.join("models/other"), &[("x.txt", b"another model")]);
    std::os::unix::fs::symlink(base.join("models"), base.join("link")).unwrap();
    let sig = base.join("m.sig");
    attest(&model, repo("fixtures/keys/test-signer.key.pem"), &sig);
    std::fs::write(model.join("ignore-me"), b"added after signing").unwrap();
    std::fs::write(model.join("sub/ignore-me-too"), b"added after signing").unwrap();
    Layout {
        _dir: dir,
        base,
        sig,
        key: repo("fixtures/keys/test-signer.pub.pem"),
    }
}

/// Runs modelgate in `cwd`.
fn modelgate_in(cwd: &Path, args: &[OsString]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .current_dir(cwd)
        .args(args)
        .env("MODELGATE_LOG_FORMAT", "text")
        .env_remove("MODELGATE_LOG")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verify_with(l: &Layout, cwd: &Path, model: &str, ignores: &[&str]) -> Run {
    let mut args: Vec<OsString> = verify_args(model, &l.sig, &l.key);
    for i in ignores {
        args.push("--ignore-paths".into());
        args.push(i.into());
    }
    modelgate_in(cwd, &args)
}

/// Spellings of base/models/m, as seen from base.
fn model_spellings(base: &Path) -> Vec<String> {
    let b = base.display();
    vec![
        "models/m".into(),
        "./models/m".into(),
        "models/m/".into(),
        "models/./m".into(),
        "a/../models/m".into(),
        "link/m".into(),
        "link/../models/m".into(),
        format!("{b}/models/m"),
        format!("{b}/a/../models/m"),
        format!("{b}/./models/../models/m"),
        format!("{b}/link/m"),
    ]
}

#[test]
fn every_spelling_of_the_model_and_of_an_ignored_path_inside_it_verifies() {
    let l = layout();
    let spellings = model_spellings(&l.base);
    for model in &spellings {
        // Without the ignores the added files are extra: the test has teeth.
        verify_with(&l, &l.base, model, &[])
            .expect_code(1)
            .expect_stderr("ignore-me: extra");
        let mut ignores: Vec<String> = vec![
            "ignore-me".into(),
            "./ignore-me".into(),
            "sub/../ignore-me".into(),
            "sub/ignore-me-too".into(),
        ];
        // The ignored path written through every spelling of the model.
        for through in &spellings {
            ignores.push(format!("{}/ignore-me", through.trim_end_matches('/')));
            ignores.push(format!(
                "{}/sub/./ignore-me-too",
                through.trim_end_matches('/')
            ));
        }
        for ignore in &ignores {
            let second = if ignore.contains("ignore-me-too") {
                "ignore-me"
            } else {
                "sub/ignore-me-too"
            };
            let run = verify_with(&l, &l.base, model, &[ignore, second]);
            assert_eq!(
                run.code, 0,
                "model {model:?} with --ignore-paths {ignore:?}:\n{}",
                run.stderr
            );
        }
    }
}

#[test]
fn the_issue_example_with_dotdot_in_both_paths_verifies() {
    let l = layout();
    let b = l.base.display();
    verify_with(
        &l,
        Path::new("/"),
        &format!("{b}/a/../models/m"),
        &[&format!("{b}/a/../models/m/ignore-me"), "sub/ignore-me-too"],
    )
    .expect_code(0);
}

#[test]
fn a_relative_spelling_from_another_folder_and_from_inside_the_model_verifies() {
    let l = layout();
    // From base/a: ../models/m, with ignores spelled from there.
    verify_with(
        &l,
        &l.base.join("a"),
        "../models/m",
        &["../models/m/ignore-me", "../link/m/sub/ignore-me-too"],
    )
    .expect_code(0);
    // From inside the model: the model is ".", ignores relative to it.
    verify_with(
        &l,
        &l.base.join("models/m"),
        ".",
        &["ignore-me", "./sub/ignore-me-too"],
    )
    .expect_code(0);
    // From a subfolder of the model: "ignore-me-too" exists only from here.
    verify_with(
        &l,
        &l.base.join("models/m/sub"),
        "..",
        &["ignore-me-too", "../ignore-me"],
    )
    .expect_code(0);
}

#[test]
fn a_path_outside_the_model_is_an_error_in_every_spelling() {
    let l = layout();
    let b = l.base.display().to_string();
    for outside in [
        "../outside.txt".to_string(),
        "models/m/../../outside.txt".into(),
        format!("{b}/outside.txt"),
        format!("{b}/models/m/../../outside.txt"),
        format!("{b}/link/m/../../outside.txt"),
        format!("{b}/a/x"),
        "/etc/passwd".into(),
        "link/other/x.txt".into(),
    ] {
        let run = verify_with(&l, &l.base, "models/m", &[&outside]);
        run.expect_code(2).expect_stderr(&format!(
            "--ignore-paths {outside}: not a path inside the model models/m"
        ));
    }
    verify_with(&l, &l.base, "models/m", &["a/../models/m"])
        .expect_code(2)
        .expect_stderr("--ignore-paths a/../models/m: names the model itself");
}

#[test]
fn a_relative_path_that_names_two_existing_files_is_ambiguous() {
    let l = layout();
    // From base/models/m/sub, "config.json" could be sub/config.json (from
    // the current folder) or config.json (from the model root): both exist.
    std::fs::write(l.base.join("models/m/sub/config.json"), b"{}").unwrap();
    verify_with(
        &l,
        &l.base.join("models/m/sub"),
        "..",
        &["config.json", "../ignore-me", "ignore-me-too"],
    )
    .expect_code(2)
    .expect_stderr("--ignore-paths config.json: ambiguous: from the current folder it names \"sub/config.json\" in the model, from the model root \"config.json\"");
}

#[test]
fn attest_takes_the_same_spellings_and_signs_the_model_relative_path() {
    let l = layout();
    let b = l.base.display();
    let sig = l.base.join("models/m/model.sig");
    let args: Vec<OsString> = vec![
        "attest".into(),
        format!("{b}/a/../models/m").into(),
        "--key".into(),
        repo("fixtures/keys/test-signer.key.pem").into(),
        // The signature written through a symlinked parent, inside the model.
        "--signature".into(),
        format!("{b}/link/m/model.sig").into(),
        "--ignore-paths".into(),
        "link/../models/m/ignore-me".into(),
        "--ignore-paths".into(),
        format!("{b}/a/../link/m/sub/ignore-me-too").into(),
    ];
    modelgate_in(&l.base, &args).expect_code(0);
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let ignored: Vec<&str> = statement["predicate"]["serialization"]["ignore_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        ignored,
        [
            ".git",
            ".gitattributes",
            ".github",
            ".gitignore",
            "ignore-me",
            "model.sig",
            "sub/ignore-me-too"
        ]
    );
    // The signature inside the model is left out when verifying, through
    // any spelling of it.
    modelgate_in(
        &l.base,
        &verify_args("link/m", "a/../models/m/model.sig", &l.key),
    )
    .expect_code(0);
}
