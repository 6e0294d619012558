//! The GPU pathway measured from a fake root, as `--host-root` gives one:
//! proc files, device nodes and driver libraries written into a temporary
//! folder, including links that leave it and files that cannot be read.
//! No test needs a GPU, and none is skipped without one.

use std::path::Path;

use modelgate::node::gpu::NO_GPU;
use modelgate::node::{GpuFacts, gpu_facts};
use modelgate::policy::Policy;
use sha2::{Digest, Sha256};

const BANNER: &str =
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024";
const H100: &str = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: \t\t 0\nGPU UUID: \t GPU-6c3f0c8e-1d2a-4b5c-9e8f-0a1b2c3d4e5f\nVideo BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t 0000:1b:00.0\nDevice Minor: \t 0\nGPU Excluded:\t No\n";

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, bytes).unwrap();
}

fn symlink(root: &Path, path: &str, target: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, full).unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A node as the NVIDIA container toolkit leaves it: driver 550.54.15, one
/// H100, the usual devices, libcuda with its links, merged /usr.
fn gpu_node(root: &Path) {
    write(
        root,
        "proc/driver/nvidia/version",
        format!("{BANNER}\nGCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n")
            .as_bytes(),
    );
    write(
        root,
        "proc/driver/nvidia/gpus/0000:1b:00.0/information",
        H100.as_bytes(),
    );
    for dev in [
        "nvidia0",
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-uvm-tools",
        "nvidia-modeset",
        "nvidia-caps/nvidia-cap1",
        "null",
        "dri/card0",
    ] {
        write(root, &format!("dev/{dev}"), b"");
    }
    write(root, "usr/lib64/libcuda.so.550.54.15", b"libcuda");
    symlink(root, "usr/lib64/libcuda.so.1", "libcuda.so.550.54.15");
    // An absolute link means the file in the root, not on the verifier's side.
    symlink(root, "usr/lib64/libcuda.so", "/usr/lib64/libcuda.so.1");
    write(root, "usr/lib64/libnvidia-ml.so.550.54.15", b"libnvidia-ml");
    symlink(
        root,
        "usr/lib64/libnvidia-ml.so.1",
        "libnvidia-ml.so.550.54.15",
    );
    write(root, "usr/lib64/libcudart.so.12", b"not a driver library");
    write(root, "usr/lib/x86_64-linux-gnu/libnvidia-cfg.so.1", b"cfg");
    // Merged /usr: the same folder under a second name is read once.
    symlink(root, "lib64", "usr/lib64");
}

#[test]
fn a_gpu_node_is_measured_completely() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    gpu_node(root);
    let facts = gpu_facts(root);
    assert!(facts.errors.is_empty(), "{:#?}", facts.errors);
    assert!(facts.present);
    assert_eq!(facts.reason, None);
    assert_eq!(facts.driver_version.as_deref(), Some("550.54.15"));
    assert_eq!(facts.driver_banner.as_deref(), Some(BANNER));

    let devices: Vec<(&str, bool)> = facts
        .devices
        .iter()
        .map(|d| (d.path.as_str(), d.char_device))
        .collect();
    assert_eq!(
        devices,
        [
            ("/dev/nvidia-caps/nvidia-cap1", false),
            ("/dev/nvidia-modeset", false),
            ("/dev/nvidia-uvm", false),
            ("/dev/nvidia-uvm-tools", false),
            ("/dev/nvidia0", false),
            ("/dev/nvidiactl", false),
        ]
    );

    assert_eq!(facts.gpus.len(), 1);
    assert_eq!(facts.gpus[0].bus_id, "0000:1b:00.0");
    assert_eq!(facts.gpus[0].model(), Some("NVIDIA H100 80GB HBM3"));
    assert_eq!(facts.gpus[0].information["Bus Location"], "0000:1b:00.0");

    let cuda = sha256(b"libcuda");
    let libs: Vec<(&str, Option<&str>, Option<&str>)> = facts
        .libraries
        .iter()
        .map(|l| (l.path.as_str(), l.target.as_deref(), l.sha256.as_deref()))
        .collect();
    assert_eq!(
        libs,
        [
            (
                "/usr/lib/x86_64-linux-gnu/libnvidia-cfg.so.1",
                None,
                Some(sha256(b"cfg").as_str())
            ),
            (
                "/usr/lib64/libcuda.so",
                Some("/usr/lib64/libcuda.so.1"),
                Some(cuda.as_str())
            ),
            (
                "/usr/lib64/libcuda.so.1",
                Some("libcuda.so.550.54.15"),
                Some(cuda.as_str())
            ),
            ("/usr/lib64/libcuda.so.550.54.15", None, Some(cuda.as_str())),
            (
                "/usr/lib64/libnvidia-ml.so.1",
                Some("libnvidia-ml.so.550.54.15"),
                Some(sha256(b"libnvidia-ml").as_str())
            ),
            (
                "/usr/lib64/libnvidia-ml.so.550.54.15",
                None,
                Some(sha256(b"libnvidia-ml").as_str())
            ),
        ]
    );
    assert_eq!(facts.libraries[3].size, Some(7));
}

#[test]
fn the_measurement_is_camel_case_json() {
    let dir = tempfile::tempdir().unwrap();
    gpu_node(dir.path());
    let json = serde_json::to_value(gpu_facts(dir.path())).unwrap();
    assert_eq!(json["present"], true);
    assert_eq!(json["driverVersion"], "550.54.15");
    assert_eq!(json["driverBanner"], BANNER);
    assert_eq!(json["devices"][0]["charDevice"], false);
    assert_eq!(json["gpus"][0]["busId"], "0000:1b:00.0");
    assert_eq!(
        json["gpus"][0]["information"]["GPU UUID"],
        "GPU-6c3f0c8e-1d2a-4b5c-9e8f-0a1b2c3d4e5f"
    );
    assert_eq!(json["libraries"][0]["size"], 3);
    assert_eq!(json["errors"], serde_json::json!([]));
    assert!(json.get("reason").is_none());
}

#[test]
fn links_that_leave_the_root_are_recorded_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
    gpu_node(&root);
    write(&outside, "libnvidia-nvvm.so.4", b"outside the root");
    let absolute = outside.join("libnvidia-nvvm.so.4");
    symlink(
        &root,
        "usr/lib64/libnvidia-nvvm.so",
        absolute.to_str().unwrap(),
    );
    symlink(
        &root,
        "usr/lib64/libnvidia-nvvm.so.4",
        "../../../outside/libnvidia-nvvm.so.4",
    );
    let facts = gpu_facts(&root);
    assert!(facts.errors.is_empty(), "{:#?}", facts.errors);
    let evil = sha256(b"outside the root");
    for (name, target) in [
        ("libnvidia-nvvm.so", absolute.to_str().unwrap()),
        (
            "libnvidia-nvvm.so.4",
            "../../../outside/libnvidia-nvvm.so.4",
        ),
    ] {
        let lib = facts
            .libraries
            .iter()
            .find(|l| l.name() == name)
            .unwrap_or_else(|| panic!("{name} not recorded: {:#?}", facts.libraries));
        assert_eq!(lib.target.as_deref(), Some(target));
        assert_eq!(lib.sha256, None, "{name} was followed outside the root");
        assert!(
            lib.note
                .as_deref()
                .unwrap()
                .contains("does not exist inside the root"),
            "{lib:?}"
        );
    }
    assert!(
        facts
            .libraries
            .iter()
            .all(|l| l.sha256.as_ref() != Some(&evil))
    );
}

#[test]
fn what_exists_but_cannot_be_read_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Tests may run as root, where chmod 000 stops nothing: a folder where
    // a file belongs, and a FIFO (which must not hang the reader), do.
    std::fs::create_dir_all(root.join("proc/driver/nvidia/version")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib64/libcuda.so.1")).unwrap();
    std::fs::create_dir_all(root.join("proc/driver/nvidia/gpus/0000:1b:00.0/information")).unwrap();
    let fifo = root.join("usr/lib64/libnvidia-ml.so.1");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    symlink(root, "usr/lib64/libnvidia-cfg.so.1", "libnvidia-ml.so.1");
    let facts = gpu_facts(root);
    assert!(
        facts.present,
        "an unreadable version file is still a driver"
    );
    assert_eq!(facts.driver_version, None);
    let errors = facts.errors.join("\n");
    for expected in [
        "cannot read /proc/driver/nvidia/version: ",
        "cannot read /proc/driver/nvidia/gpus/0000:1b:00.0/information: ",
        "/usr/lib64/libcuda.so.1: it is a folder, not a library file",
        "/usr/lib64/libnvidia-ml.so.1: it is a FIFO, not a library file",
        "/usr/lib64/libnvidia-cfg.so.1 -> libnvidia-ml.so.1: it is a FIFO, not a regular file",
    ] {
        assert!(errors.contains(expected), "{expected:?} not in:\n{errors}");
    }
    assert_eq!(facts.errors.len(), 5, "{errors}");
}

#[test]
fn without_a_gpu_the_measurement_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "dev/null", b"");
    let facts = gpu_facts(dir.path());
    assert_eq!(
        facts,
        GpuFacts {
            present: false,
            reason: Some(NO_GPU.into()),
            ..GpuFacts::default()
        }
    );
    assert_eq!(
        NO_GPU,
        "no /proc/driver/nvidia/version and no /dev/nvidia* device: no NVIDIA GPU is visible to this container"
    );
    let missing = gpu_facts(&dir.path().join("absent"));
    assert!(!missing.present);
    assert!(
        missing.errors[0].starts_with("cannot open the root "),
        "{:?}",
        missing.errors
    );
}

/// A policy with one rule for every model and `gpu` as `spec.gpu`.
fn policy(dir: &Path, gpu: &str) -> Policy {
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/keys/test-signer.pub.pem"
        ),
        dir.join("k.pub"),
    )
    .unwrap();
    let text = format!(
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nspec:\n  models:\n    - name: all\n      match:\n        names: [\"*\"]\n      authorities:\n        - name: k\n          key:\n            path: k.pub\n  gpu:\n{gpu}"
    );
    std::fs::write(dir.join("p.yaml"), text).unwrap();
    Policy::from_file(&dir.join("p.yaml")).unwrap()
}

#[test]
fn a_policy_checks_the_measured_node() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    gpu_node(&root);
    let facts = gpu_facts(&root);
    let pinned = format!(
        "    required: true\n    driverVersion: {{min: \"535.0\", max: \"560.0\"}}\n    libraries:\n      - name: libcuda.so.1\n        sha256: {}\n",
        sha256(b"libcuda")
    );
    let gpu = policy(dir.path(), &pinned).gpu.unwrap();
    gpu.check(&facts).unwrap();

    // The same policy on a node without a GPU fails closed.
    let empty = tempfile::tempdir().unwrap();
    let failures = gpu.check(&gpu_facts(empty.path())).unwrap_err();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with(
            "the policy requires an NVIDIA GPU, and none is visible: no /proc/driver/nvidia/version"
        ),
        "{failures:?}"
    );

    // Another libcuda build behind the same name.
    std::fs::write(root.join("usr/lib64/libcuda.so.550.54.15"), b"patched").unwrap();
    let failures = gpu.check(&gpu_facts(&root)).unwrap_err();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].starts_with(&format!(
            "/usr/lib64/libcuda.so.1: sha256 {}, the policy allows {}",
            sha256(b"patched"),
            sha256(b"libcuda")
        )),
        "{failures:?}"
    );

    // Optional GPU, driver range too low for the node.
    let optional = policy(
        dir.path(),
        "    required: false\n    driverVersion: {max: \"550.0\"}\n",
    )
    .gpu
    .unwrap();
    optional.check(&gpu_facts(empty.path())).unwrap();
    let failures = optional.check(&facts).unwrap_err();
    assert!(
        failures[0].starts_with("driver 550.54.15 is outside the allowed range [any, 550.0)"),
        "{failures:?}"
    );
}
