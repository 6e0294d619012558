//! The static binary and the container image, as a cluster runs them.
//!
//! - `scripts/build-static.sh` builds the fully static release binary
//!   (x86_64-unknown-linux-musl); it has no program interpreter and needs no
//!   shared library, and it verifies a model with an empty environment, as
//!   an unprivileged user, from an empty read-only working directory.
//! - The Dockerfile's `local` stage puts that binary in `scratch`, with its
//!   licence and a CA bundle (which oci-client needs to start); the image
//!   runs the way kubelet runs an initContainer: read-only root, UID 65532,
//!   no capabilities, no new privileges, no network, the model and the trust
//!   material mounted read-only, the target folder and the termination log
//!   mounted writable.
//!
//! Needs a Docker engine (`docker info` must work): without one the image
//! tests fail, unless MODELGATE_TEST_NO_DOCKER=1 says to leave them out.
//! Timings and sizes are printed (run with --nocapture to see them).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{Run, modelgate, repo, run as run_command, run_as_nobody, run_ok};
use serde_json::Value;
use tempfile::TempDir;

/// The UID and GID the image runs as (distroless' "nonroot").
const USER: &str = "65532:65532";

/// The static binary, built (or brought up to date) once per test run by
/// scripts/build-static.sh; cargo's incremental build keeps this fast when
/// nothing changed.
fn static_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new(repo("scripts/build-static.sh"))
            .stdin(Stdio::null())
            .output()
            .expect("cannot run scripts/build-static.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "scripts/build-static.sh failed:\n{stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("scripts/build-static.sh printed no path")
                .trim(),
        );
        assert!(path.is_file(), "{} is not a file", path.display());
        let size = fs::metadata(&path).unwrap().len();
        eprintln!(
            "static binary {}: {size} bytes ({:.1} MiB), build-static.sh took {:.1?}",
            path.display(),
            size as f64 / 1_048_576.0,
            started.elapsed()
        );
        path
    })
}

/// The CA bundle scripts/build-static.sh puts beside the binary.
fn ca_bundle() -> PathBuf {
    static_binary().with_file_name("ca-certificates.crt")
}

// ---------------------------------------------------------------------------
// ELF: what makes a binary static.

/// What the program headers of an ELF64 little-endian file say about linking.
#[derive(Debug)]
struct ElfLinking {
    /// PT_INTERP: the dynamic loader the kernel would start first.
    interpreter: Option<String>,
    /// DT_NEEDED entries of PT_DYNAMIC: shared libraries it would load
    /// (a static-pie has PT_DYNAMIC for its own relocations, with none).
    needed: usize,
}

fn elf_linking(elf: &[u8]) -> ElfLinking {
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    assert_eq!(elf[5], 1, "not a little-endian ELF file");
    assert_eq!(u16_at(0x12), 62, "not an x86-64 ELF file (e_machine)");
    let phoff = u64_at(0x20) as usize;
    let phentsize = u16_at(0x36) as usize;
    let phnum = u16_at(0x38) as usize;
    let mut linking = ElfLinking {
        interpreter: None,
        needed: 0,
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (offset, filesz) = (u64_at(ph + 8) as usize, u64_at(ph + 32) as usize);
        match u32_at(ph) {
            // PT_INTERP
            3 => {
                let name = &elf[offset..offset + filesz];
                linking.interpreter =
                    Some(String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap()).into());
            }
            // PT_DYNAMIC: (d_tag, d_val) pairs up to DT_NULL; DT_NEEDED = 1.
            2 => {
                for entry in (offset..offset + filesz).step_by(16) {
                    match u64_at(entry) {
                        0 => break,
                        1 => linking.needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    linking
}

#[test]
fn the_release_binary_is_static() {
    let bin = static_binary();

    let file = run_ok(Command::new("file").arg("-b").arg(bin));
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "file(1) does not call it static: {file}"
    );
    // ldd exits non-zero on a static binary, saying so (glibc's ldd: "not a
    // dynamic executable"; it says "statically linked" for a static-pie).
    let ldd = Command::new("ldd")
        .arg(bin)
        .output()
        .expect("cannot run ldd");
    let ldd = String::from_utf8_lossy(&ldd.stdout) + String::from_utf8_lossy(&ldd.stderr);
    assert!(
        ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
        "ldd lists libraries: {ldd}"
    );
    assert!(!ldd.contains("=>"), "ldd lists libraries: {ldd}");

    let linking = elf_linking(&fs::read(bin).unwrap());
    assert_eq!(
        linking.interpreter, None,
        "the binary asks for a dynamic loader"
    );
    assert_eq!(linking.needed, 0, "the binary needs shared libraries");

    // The same reading of this test's own (dynamic, glibc) executable finds
    // the loader and the libraries.
    let this = elf_linking(&fs::read(std::env::current_exe().unwrap()).unwrap());
    assert!(
        this.interpreter.is_some() && this.needed > 0,
        "the ELF reading misses a dynamic executable's loader: {this:?}"
    );
}

// ---------------------------------------------------------------------------
// Files the tests mount or run from, readable by any user.

/// Copies the files of `from` (one level: the fixtures are flat) into `to`,
/// readable by everyone.
fn copy_flat(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        assert!(entry.file_type().unwrap().is_file(), "{:?}", entry.path());
        let dest = to.join(entry.file_name());
        fs::copy(entry.path(), &dest).unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o644)).unwrap();
    }
}

/// What a verifying run needs, laid out as an initContainer sees it:
/// `model/` (/model), `trust/` with the signature and the public key
/// (/trust), `run/` writable by anyone (/run/modelgate), and an empty
/// `termination-log` (/dev/termination-log).
struct World {
    dir: TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("modelgate-image-")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let world = World { dir };
        copy_flat(&repo("fixtures/tiny-model"), &world.model());
        let trust = world.trust();
        fs::create_dir(&trust).unwrap();
        fs::set_permissions(&trust, fs::Permissions::from_mode(0o755)).unwrap();
        for (from, name) in [
            ("fixtures/tiny-model.sig", "tiny-model.sig"),
            ("fixtures/keys/test-signer.pub.pem", "test-signer.pub.pem"),
        ] {
            fs::copy(repo(from), trust.join(name)).unwrap();
            fs::set_permissions(trust.join(name), fs::Permissions::from_mode(0o644)).unwrap();
        }
        fs::create_dir(world.run_dir()).unwrap();
        // The container's user (65532) writes here, as to an emptyDir.
        fs::set_permissions(world.run_dir(), fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(world.termination_log(), b"").unwrap();
        fs::set_permissions(world.termination_log(), fs::Permissions::from_mode(0o666)).unwrap();
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn model(&self) -> PathBuf {
        self.path("model")
    }
    fn trust(&self) -> PathBuf {
        self.path("trust")
    }
    fn run_dir(&self) -> PathBuf {
        self.path("run")
    }
    fn termination_log(&self) -> PathBuf {
        self.path("termination-log")
    }

    /// The same model with one byte of its weights changed.
    fn tampered_model(&self) -> PathBuf {
        let tampered = self.path("tampered");
        copy_flat(&self.model(), &tampered);
        let weights = tampered.join("model.safetensors");
        let mut bytes = fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&weights, bytes).unwrap();
        tampered
    }
}

/// The model's root digest as the (debug) binary under test computes it.
fn tiny_model_digest() -> String {
    let run = modelgate(["digest".as_ref(), repo("fixtures/tiny-model").as_os_str()]);
    run.expect_code(0);
    run.stdout.trim().to_string()
}

fn is_root() -> bool {
    // A file this process creates is owned by its effective UID.
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}

#[test]
fn the_static_binary_verifies_with_an_empty_environment_in_a_read_only_directory() {
    let world = World::new();
    let bin = world.path("modelgate");
    fs::copy(static_binary(), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    // The working directory: empty, and nobody may write to it.
    let cwd = world.path("empty");
    fs::create_dir(&cwd).unwrap();
    fs::set_permissions(&cwd, fs::Permissions::from_mode(0o555)).unwrap();

    let args: Vec<OsString> = vec![
        "verify".into(),
        world.model().into(),
        "--signature".into(),
        world.trust().join("tiny-model.sig").into(),
        "--key".into(),
        world.trust().join("test-signer.pub.pem").into(),
    ];
    // `env -i`: no PATH, HOME, TMPDIR, locale or MODELGATE_* at all. As root,
    // a 0555 directory would still be writable: run as nobody (65534) then.
    let mut env_i: Vec<OsString> = vec!["-i".into(), bin.clone().into()];
    env_i.extend(args);
    let started = Instant::now();
    let run = if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg("env")
            .args(&env_i);
        run_command(cmd.current_dir(&cwd))
    } else {
        run_command(Command::new("env").args(&env_i).current_dir(&cwd))
    };
    let took = started.elapsed();
    run.expect_code(0);
    eprintln!("static binary, env -i, as nobody: tiny model verified in {took:.1?}");
    // No terminal, no MODELGATE_LOG_FORMAT: JSON lines on stderr.
    let digest = tiny_model_digest();
    assert!(
        run.stderr.contains(r#""message":"verified""#) && run.stderr.contains(&digest),
        "stderr does not report {digest} verified:\n{}",
        run.stderr
    );
    assert_eq!(run.stdout, "", "verify prints nothing on stdout");
    assert_eq!(
        fs::read_dir(&cwd).unwrap().count(),
        0,
        "the working directory was written to"
    );

    // The same binary rejects a changed model there too.
    let tampered = world.tampered_model();
    let args: Vec<OsString> = vec![
        "verify".into(),
        tampered.into(),
        "--signature".into(),
        world.trust().join("tiny-model.sig").into(),
        "--key".into(),
        world.trust().join("test-signer.pub.pem").into(),
    ];
    let rejected = if is_root() {
        run_as_nobody(bin.to_str().unwrap(), &args)
    } else {
        run_command(Command::new(&bin).args(&args))
    };
    rejected.expect_code(1);
}

// ---------------------------------------------------------------------------
// The image.

/// Whether the image tests run: a Docker engine answers, or the run says
/// explicitly (MODELGATE_TEST_NO_DOCKER=1) that there is none.
fn docker_available() -> bool {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    let why = match info {
        Ok(out) if out.status.success() => return true,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("cannot run docker: {e}"),
    };
    if std::env::var("MODELGATE_TEST_NO_DOCKER").as_deref() == Ok("1") {
        eprintln!("MODELGATE_TEST_NO_DOCKER=1: the image is not tested ({why})");
        return false;
    }
    panic!(
        "no Docker engine: `docker info` failed ({why}).\n\
         The image tests build and run the image; start a Docker engine, or set \
         MODELGATE_TEST_NO_DOCKER=1 to leave them out explicitly."
    );
}

/// An image built from the Dockerfile's `local` stage and the static binary;
/// removed when dropped.
struct Image {
    tag: String,
}

impl Image {
    fn build() -> Self {
        let bin = static_binary();
        // A build context of four files: the Dockerfile, LICENSE, the binary
        // and the CA bundle build-static.sh puts beside it (not the
        // repository, whose target/ is gigabytes).
        let context = tempfile::Builder::new()
            .prefix("modelgate-context-")
            .tempdir()
            .unwrap();
        fs::copy(repo("Dockerfile"), context.path().join("Dockerfile")).unwrap();
        fs::copy(repo("LICENSE"), context.path().join("LICENSE")).unwrap();
        fs::copy(bin, context.path().join("modelgate")).unwrap();
        fs::copy(ca_bundle(), context.path().join("ca-certificates.crt")).unwrap();
        fs::set_permissions(
            context.path().join("modelgate"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let image = Image {
            tag: format!("modelgate-test:{}-{nanos}", std::process::id()),
        };
        let started = Instant::now();
        run_ok(
            Command::new("docker")
                .args(["build", "--target", "local"])
                .args(["--build-arg", "BINARY=modelgate"])
                .args(["--build-arg", "CA_BUNDLE=ca-certificates.crt"])
                .args(["-t", &image.tag])
                .arg(context.path())
                .stdin(Stdio::null()),
        );
        eprintln!(
            "docker build --target local: {} in {:.1?}",
            image.tag,
            started.elapsed()
        );
        image
    }

    /// `docker run` with what kubelet sets for a hardened initContainer
    /// (readOnlyRootFilesystem, runAsUser/runAsGroup 65532, drop ALL,
    /// allowPrivilegeEscalation false), the world's mounts, the environment
    /// `env` and nothing else; `args` replace CMD when given. Returns what
    /// it did and how long `docker run` took from start to exit.
    fn run_as_kubelet(
        &self,
        world: &World,
        model: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> (Run, Duration) {
        let mut cmd = Command::new("docker");
        cmd.args(["run", "--rm", "--read-only", "--user", USER])
            .args(["--cap-drop", "ALL"])
            .args(["--security-opt", "no-new-privileges"])
            .args(["--network", "none"])
            .arg("-v")
            .arg(mount(model, "/model", true))
            .arg("-v")
            .arg(mount(&world.trust(), "/trust", true))
            .arg("-v")
            .arg(mount(&world.run_dir(), "/run/modelgate", false))
            .arg("-v")
            .arg(mount(
                &world.termination_log(),
                "/dev/termination-log",
                false,
            ))
            .stdin(Stdio::null());
        for (key, value) in env {
            cmd.arg("-e").arg(format!("{key}={value}"));
        }
        cmd.arg(&self.tag).args(args);
        let started = Instant::now();
        let run = run_command(&mut cmd);
        (run, started.elapsed())
    }

    fn inspect(&self) -> Value {
        let out = run_ok(Command::new("docker").args(["image", "inspect", &self.tag]));
        let mut all: Value = serde_json::from_str(&out).unwrap();
        all[0].take()
    }

    /// Every entry of the image's file system with its size, as `docker
    /// export` of a created (never started) container gives it.
    fn files(&self) -> Vec<(String, u64, bool)> {
        let id = run_ok(Command::new("docker").args(["create", &self.tag]));
        let id = id.trim();
        let out = Command::new("docker")
            .args(["export", id])
            .output()
            .unwrap();
        run_ok(Command::new("docker").args(["rm", id]));
        assert!(out.status.success(), "docker export failed");
        let mut archive = tar::Archive::new(&out.stdout[..]);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let header = entry.header();
                (path, header.size().unwrap(), header.entry_type().is_file())
            })
            .collect()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.tag])
            .output();
    }
}

fn mount(host: &Path, container: &str, read_only: bool) -> OsString {
    let mut spec = OsString::from(host);
    spec.push(":");
    spec.push(container);
    if read_only {
        spec.push(":ro");
    }
    spec
}

/// `verify` of the model mounted at /model, recording the measurement.
const VERIFY: [&str; 8] = [
    "verify",
    "/model",
    "--signature",
    "/trust/tiny-model.sig",
    "--key",
    "/trust/test-signer.pub.pem",
    "--measurement",
    "/run/modelgate/measurement.json",
];

#[test]
fn the_image_holds_the_binary_its_licence_and_a_ca_bundle_and_runs_as_65532() {
    if !docker_available() {
        return;
    }
    let image = Image::build();

    let config = &image.inspect()["Config"];
    assert_eq!(config["User"], USER, "{config:#}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/modelgate"]));
    assert_eq!(config["Cmd"], serde_json::json!(["init"]));
    assert!(
        config["Env"].as_array().is_none_or(|env| env
            .iter()
            .all(|v| !v.as_str().unwrap().starts_with("MODELGATE_"))),
        "the image sets modelgate's configuration: {config:#}"
    );

    // What docker adds to any container's file system (mount points and
    // the files it bind-mounts over), empty in the export.
    let runtime: BTreeSet<&str> = [
        ".dockerenv",
        "dev/",
        "dev/console",
        "dev/pts/",
        "dev/shm/",
        "etc/",
        "etc/hostname",
        "etc/hosts",
        "etc/mtab",
        "etc/resolv.conf",
        "proc/",
        "sys/",
    ]
    .into();
    // The folders of the CA bundle's path.
    let folders: BTreeSet<&str> = ["etc/ssl/", "etc/ssl/certs/"].into();
    let files = image.files();
    let mut shipped: Vec<(&str, u64)> = Vec::new();
    for (path, size, is_file) in &files {
        if runtime.contains(path.as_str()) {
            assert_eq!(*size, 0, "{path} is not empty in the image");
        } else if !folders.contains(path.as_str()) {
            assert!(*is_file, "{path} is in the image: {files:?}");
            shipped.push((path, *size));
        }
    }
    let size = |path: &Path| fs::metadata(path).unwrap().len();
    let binary_size = size(static_binary());
    shipped.sort();
    assert_eq!(
        shipped,
        [
            ("LICENSE", size(&repo("LICENSE"))),
            ("etc/ssl/certs/ca-certificates.crt", size(&ca_bundle())),
            ("modelgate", binary_size),
        ],
        "the image holds more or less than the binary, its licence and the CA bundle"
    );
    let roots = fs::read_to_string(ca_bundle())
        .unwrap()
        .matches("-----BEGIN CERTIFICATE-----")
        .count();
    assert!(roots >= 100, "the CA bundle holds {roots} certificates");
    eprintln!(
        "image {}: {} bytes (binary {binary_size} bytes)",
        image.tag,
        image.inspect()["Size"]
    );
}

#[test]
fn the_image_verifies_as_a_kubelet_init_container() {
    if !docker_available() {
        return;
    }
    let image = Image::build();
    let world = World::new();

    let (run, took) = image.run_as_kubelet(&world, &world.model(), &[], &VERIFY);
    run.expect_code(0);
    eprintln!("docker run (verify, tiny model): {took:.2?} from start to exit");
    let digest = tiny_model_digest();
    assert!(
        run.stderr.contains(r#""message":"verified""#) && run.stderr.contains(&digest),
        "stderr does not report {digest} verified:\n{}",
        run.stderr
    );
    let measurement_path = world.run_dir().join("measurement.json");
    let owner = fs::metadata(&measurement_path)
        .expect("no measurement written to /run/modelgate")
        .uid();
    assert_eq!(owner, 65532, "the measurement is not written as 65532");
    let measurement: Value = serde_json::from_slice(&fs::read(&measurement_path).unwrap()).unwrap();
    assert_eq!(measurement["verdict"], "verified", "{measurement:#}");
    assert_eq!(measurement["model"]["rootDigest"], digest.as_str());

    // A changed weight: rejected (exit 1), and the measurement says so.
    let tampered = world.tampered_model();
    let (run, took) = image.run_as_kubelet(&world, &tampered, &[], &VERIFY);
    run.expect_code(1);
    eprintln!("docker run (verify, tampered tiny model): {took:.2?} from start to exit");
    assert!(
        !run.stderr.contains(r#""message":"verified""#),
        "{}",
        run.stderr
    );
    let measurement: Value = serde_json::from_slice(&fs::read(&measurement_path).unwrap()).unwrap();
    assert_ne!(measurement["verdict"], "verified", "{measurement:#}");
}

#[test]
fn the_image_runs_init_by_default_configured_by_the_environment() {
    if !docker_available() {
        return;
    }
    let image = Image::build();
    let world = World::new();

    // No arguments and no configuration: CMD is `init`, which names the
    // variable it misses (or succeeds, if it ever needs none).
    let (run, _) = image.run_as_kubelet(&world, &world.model(), &[], &[]);
    assert!(
        run.code == 0 || run.stdout.contains("MODELGATE_") || run.stderr.contains("MODELGATE_"),
        "`docker run IMAGE` does not run init (exit {}):\nstdout:\n{}\nstderr:\n{}",
        run.code,
        run.stdout,
        run.stderr
    );

    // Configured by the environment alone, as deploy/ does: the folder at
    // /model verified in place, the measurement and the termination message
    // written.
    let env = [
        ("MODELGATE_SOURCE", "/model"),
        ("MODELGATE_SIGNATURE", "/trust/tiny-model.sig"),
        ("MODELGATE_KEY", "/trust/test-signer.pub.pem"),
        ("MODELGATE_MEASUREMENT", "/run/modelgate/measurement.json"),
        ("MODELGATE_TERMINATION_LOG", "/dev/termination-log"),
    ];
    let (run, took) = image.run_as_kubelet(&world, &world.model(), &env, &[]);
    run.expect_code(0);
    eprintln!("docker run (init, tiny model): {took:.2?} from start to exit");
    let measurement: Value = serde_json::from_slice(
        &fs::read(world.run_dir().join("measurement.json")).expect("no measurement written"),
    )
    .unwrap();
    assert_eq!(measurement["verdict"], "verified", "{measurement:#}");
    let message = fs::read_to_string(world.termination_log()).unwrap();
    assert!(!message.is_empty(), "no termination message written");

    // The same, of a changed model: exit 1, and the termination message
    // tells kubectl describe why.
    fs::write(world.termination_log(), b"").unwrap();
    let tampered = world.tampered_model();
    let (run, _) = image.run_as_kubelet(&world, &tampered, &env, &[]);
    run.expect_code(1);
    let message = fs::read_to_string(world.termination_log()).unwrap();
    assert!(!message.is_empty(), "no termination message written");

    // Once more as KServe invokes a storage initializer: `<uri> <mountPath>`
    // as the arguments, the rest from the environment. A folder URI is
    // copied to the mount path, verified there, and put in place.
    let kserve_env = [
        ("MODELGATE_SIGNATURE", "/trust/tiny-model.sig"),
        ("MODELGATE_KEY", "/trust/test-signer.pub.pem"),
        ("MODELGATE_MEASUREMENT", "/run/modelgate/measurement.json"),
    ];
    let (run, _) = image.run_as_kubelet(
        &world,
        &world.model(),
        &kserve_env,
        &["/model", "/run/modelgate/models"],
    );
    run.expect_code(0);
    let mut placed: Vec<String> = fs::read_dir(world.run_dir().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    placed.sort();
    let mut expected: Vec<String> = fs::read_dir(world.model())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    expected.sort();
    assert_eq!(placed, expected);
    // A URI KServe downloads itself is refused, naming the scheme.
    let (run, _) = image.run_as_kubelet(
        &world,
        &world.model(),
        &kserve_env,
        &["s3://bucket/llama", "/run/modelgate/other"],
    );
    run.expect_code(2);
    assert!(
        run.stdout.contains("not s3:// URIs"),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(!world.run_dir().join("other").exists());
}

/// `modelgate pull` of a registry at `localhost:1`, in the image run
/// kubelet-style. `localhost` comes from the /etc/hosts docker (like kubelet)
/// mounts; nothing listens on port 1 of the container's own loopback
/// (--network none), so a pull gets as far as a TCP connect: the name
/// resolved without NSS (no /etc/nsswitch.conf, no libnss_*.so, which a
/// static glibc binary would need), and the registry client started with
/// nothing but what the image holds.
#[test]
fn the_image_resolves_registry_names_and_starts_registry_clients() {
    if !docker_available() {
        return;
    }
    let image = Image::build();
    let world = World::new();
    for insecure in [true, false] {
        let mut args = vec![
            "pull",
            "oci://localhost:1/models/tiny:v1",
            "/run/modelgate/model",
            "--key",
            "/trust/test-signer.pub.pem",
        ];
        if insecure {
            args.extend(["--insecure-registry", "localhost:1"]);
        }
        let (run, _) = image.run_as_kubelet(&world, &world.model(), &[], &args);
        assert!(
            run.code == 2
                && run.stderr.contains("tcp connect error")
                && !run.stderr.contains("dns error")
                && !run.stderr.contains("panicked"),
            "plain HTTP {insecure}: wanted exit 2 at the TCP connect (the name resolved), \
             got exit {}:\n{}",
            run.code,
            run.stderr
        );
    }
}
