//! Tar layers in a real registry: KitOps ModelKits and ModelPack tar layers
//! (plain, gzip, zstd) and a folder pushed by oras, unpacked only after
//! their digest is proven, and hostile archives refused entry by entry with
//! nothing left behind.

use std::path::{Path, PathBuf};

use crate::common::registry::*;
use crate::common::*;
use serde_json::{Value, json};

/// Writes a tar of `entries` (see tests/support/make_tar.py) to `out`.
fn make_tar(out: &Path, entries: &Value) {
    let spec = out.with_extension("spec.json");
    std::fs::write(&spec, serde_json::to_vec(entries).unwrap()).unwrap();
    let run = std::process::Command::new(venv().join("bin/python"))
        .arg(repo("tests/support/make_tar.py"))
        .arg(out)
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The tiny model's files as tar entries at the archive's root.
fn tiny_entries() -> Vec<Value> {
    tiny_files()
        .into_iter()
        .map(|(name, path)| json!({"name": name, "content": format!("@{}", path.display())}))
        .collect()
}

/// Pushes one tar layer of `media_type` with `config`, as REPO:TAG.
fn push_tar(
    reg: &Registry,
    tag: &str,
    config: &str,
    media_type: &str,
    blob: &Path,
    annotations: Value,
) {
    push_spec(
        reg,
        "models/tar",
        tag,
        &json!({
            "config": {"mediaType": config, "content": "{}"},
            "layers": [{"mediaType": media_type, "file": blob, "annotations": annotations}],
        }),
    );
}

const KITOPS_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";

#[test]
fn kitops_and_modelpack_tar_layers_are_unpacked_and_verified() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let plain = work.path().join("model.tar");
    let gz = work.path().join("model.tar.gz");
    make_tar(&plain, &json!(tiny_entries()));
    make_tar(&gz, &json!(tiny_entries()));
    let zst = work.path().join("model.tar.zst");
    let out = std::process::Command::new("zstd")
        .args(["-q", "-f", "-o"])
        .arg(&zst)
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: [(&str, &str, &str, &PathBuf, &str); 4] = [
        (
            "kitops-gz",
            KITOPS_CONFIG,
            "application/vnd.kitops.modelkit.model.v1.tar+gzip",
            &gz,
            "kitops",
        ),
        (
            "kitops-tar",
            KITOPS_CONFIG,
            "application/vnd.kitops.modelkit.model.v1.tar",
            &plain,
            "kitops",
        ),
        (
            "modelpack-zstd",
            "application/vnd.cncf.model.config.v1+json",
            "application/vnd.cncf.model.weight.v1.tar+zstd",
            &zst,
            "modelpack",
        ),
        (
            "modelpack-gz",
            "application/vnd.cncf.model.config.v1+json",
            "application/vnd.cncf.model.weight.v1.tar+gzip",
            &gz,
            "modelpack",
        ),
    ];
    for (tag, config, media_type, blob, layout) in cases {
        push_tar(&reg, tag, config, media_type, blob, json!({}));
        let dest = work.path().join(tag);
        pull(
            &reg,
            &reg.reference(&format!("models/tar:{tag}")),
            &dest,
            &[],
        )
        .expect_code(0)
        .expect_stderr(&format!("layout=\"{layout}\""));
        same_files(&repo(TINY), &dest);
        // No tar blob is left beside the model.
        let left: Vec<_> = std::fs::read_dir(work.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".modelgate-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_folder_pushed_by_oras_is_unpacked_under_its_name() {
    // oras packs a folder as one tar+gzip layer, annotated to be unpacked.
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    let inner = model.join("weights");
    std::fs::create_dir_all(&inner).unwrap();
    for (name, path) in tiny_files() {
        std::fs::copy(path, inner.join(name)).unwrap();
    }
    let keys = keypair("P-256");
    let sig = work.path().join("model.sig");
    attest(&model, &keys.private, &sig);
    let script = r#"
import os, oras.client, sys
os.chdir(sys.argv[1])
c = oras.client.OrasClient(hostname=sys.argv[2], insecure=True)
r = c.push(target=sys.argv[2] + "/models/folder:v1", files=["weights"])
assert r.status_code == 201, r.text
"#;
    let out = std::process::Command::new(venv().join("bin/python"))
        .args(["-c", script])
        .arg(&model)
        .arg(&reg.host)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dest = work.path().join("pulled");
    modelgate([
        "pull".as_ref(),
        reg.reference("models/folder:v1").as_ref(),
        dest.as_os_str(),
        "--signature".as_ref(),
        sig.as_os_str(),
        "--key".as_ref(),
        keys.public.as_os_str(),
        "--insecure-registry".as_ref(),
        reg.host.as_ref(),
    ] as [&std::ffi::OsStr; 9])
    .expect_code(0);
    same_files(&repo(TINY), &dest.join("weights"));
}

#[test]
fn hostile_archives_are_refused_entry_by_entry() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let ok = |name: &str| json!({"name": name, "content": "x"});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "dotdot",
            json!([ok("a"), ok("../escape")]),
            "tar entry \"../escape\": has a '..' component",
        ),
        (
            "absolute",
            json!([ok("/etc/cron.d/evil")]),
            "tar entry \"/etc/cron.d/evil\": is an absolute path",
        ),
        (
            "symlink-out",
            json!([{"name": "link", "type": "symlink", "target": "../../../etc/passwd"}]),
            "tar entry \"link\": is a symbolic link to ../../../etc/passwd , which leaves the model",
        ),
        (
            "symlink-absolute",
            json!([{"name": "link", "type": "symlink", "target": "/etc/passwd"}]),
            "which leaves the model",
        ),
        (
            "hardlink-out",
            json!([{"name": "hard", "type": "hardlink", "target": "../../etc/passwd"}]),
            "tar entry \"hard\": is a hard link to \"../../etc/passwd\", which leaves the model",
        ),
        (
            "through-symlink",
            json!([{"name": "sub", "type": "dir"}, {"name": "link", "type": "symlink", "target": "sub"}, ok("link/x")]),
            "tar entry \"link/x\": would be written through the symbolic link link",
        ),
        (
            "device",
            json!([{"name": "dev", "type": "chardev"}]),
            "tar entry \"dev\": is a character device",
        ),
        (
            "fifo",
            json!([{"name": "pipe", "type": "fifo"}]),
            "tar entry \"pipe\": is a FIFO",
        ),
        (
            "setuid",
            json!([{"name": "tool", "content": "x", "mode": 0o4755}]),
            "tar entry \"tool\": has a setuid, setgid or sticky bit",
        ),
        (
            "whiteout",
            json!([ok("dir/.wh.config.json")]),
            "is a whiteout",
        ),
        (
            "twice",
            json!([ok("a"), ok("a")]),
            "tar entry \"a\": names a path the archive already wrote",
        ),
    ];
    for (tag, entries, message) in cases {
        let blob = work.path().join(format!("{tag}.tar.gz"));
        make_tar(&blob, &entries);
        push_tar(
            &reg,
            tag,
            KITOPS_CONFIG,
            "application/vnd.kitops.modelkit.model.v1.tar+gzip",
            &blob,
            json!({}),
        );
        let dest = work.path().join(tag);
        let run = pull(
            &reg,
            &reg.reference(&format!("models/tar:{tag}")),
            &dest,
            &[],
        );
        assert_eq!(run.code, 1, "{tag}:\n{}", run.stderr);
        run.expect_stderr(message);
        nothing_left(&dest);
        assert!(
            !work.path().join("escape").exists()
                && !work.path().parent().unwrap().join("escape").exists()
        );
    }
}

#[test]
fn a_decompression_bomb_is_refused() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let zeros = work.path().join("zeros");
    let file = std::fs::File::create(&zeros).unwrap();
    file.set_len(256 << 20).unwrap();
    drop(file);
    let blob = work.path().join("bomb.tar.gz");
    make_tar(
        &blob,
        &json!([{"name": "weights.bin", "content": format!("@{}", zeros.display())}]),
    );
    let size = std::fs::metadata(&blob).unwrap().len();
    assert!(size < (1 << 20), "the bomb is {size} bytes");
    push_tar(
        &reg,
        "bomb",
        KITOPS_CONFIG,
        "application/vnd.kitops.modelkit.model.v1.tar+gzip",
        &blob,
        json!({}),
    );
    let dest = work.path().join("bomb");
    pull(&reg, &reg.reference("models/tar:bomb"), &dest, &[])
        .expect_code(1)
        .expect_stderr("tar entry \"weights.bin\": the archive unpacks to more than");
    nothing_left(&dest);
}

#[test]
fn an_oras_folder_layer_holds_only_its_folder() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let blob = work.path().join("folder.tar.gz");
    make_tar(
        &blob,
        &json!([{"name": "weights/a.bin", "content": "x"}, {"name": "config.json", "content": "{}"}]),
    );
    push_tar(
        &reg,
        "folder",
        "application/vnd.unknown.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &blob,
        json!({"org.opencontainers.image.title": "weights", "io.deis.oras.content.unpack": "true"}),
    );
    let dest = work.path().join("folder");
    pull(&reg, &reg.reference("models/tar:folder"), &dest, &[])
        .expect_code(1)
        .expect_stderr(
            "tar entry \"config.json\": lies outside the folder \"weights\" that the layer names",
        );
    nothing_left(&dest);
}
