//! The GPU pathway: what NVIDIA driver, devices, GPUs and user-space driver
//! libraries a container can see. The driver and the libraries the NVIDIA
//! container toolkit injects run the model as much as the model's own code
//! does, so they are measured like it: the kernel module's version banner,
//! the `/dev/nvidia*` nodes, each GPU's `information` file, and the SHA-256
//! of every driver library in the folders the toolkit mounts into.
//!
//! [`gpu_facts`] only observes; it never fails. What exists but cannot be
//! read is listed in [`GpuFacts::errors`], and a policy that checks a GPU
//! (`crate::policy`) refuses facts with errors: a measurement with holes
//! proves nothing.
//!
//! Paths are recorded as seen inside the root (`/dev/nvidia0`), whatever
//! folder the root is on the verifier's side.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, major, minor};
use serde::Serialize;

use super::error::{FileError, LibraryError, describe};
use super::root::{FILE_FLAGS, Root, hash_regular, join, read_limited};

/// The kernel module's version banner.
pub const VERSION_FILE: &str = "/proc/driver/nvidia/version";
/// One folder per GPU, named by PCI bus id, each with an `information` file.
pub const GPUS_DIR: &str = "/proc/driver/nvidia/gpus";
/// The folders the NVIDIA container toolkit mounts driver libraries into,
/// across distributions and architectures. A folder that is a symlink to
/// another in the list (`/lib64` -> `usr/lib64`) is read once, under the
/// name that comes first here.
pub const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/lib64",
    "/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
];
/// The driver libraries measured: a file is one when its name is one of
/// these or one of these followed by `.` (`libcuda.so.1`,
/// `libcuda.so.550.54.15`).
pub const LIBRARY_FAMILIES: &[&str] = &[
    "libcuda.so",
    "libnvidia-ml.so",
    "libnvidia-ptxjitcompiler.so",
    "libnvidia-nvvm.so",
    "libcudadebugger.so",
    "libnvidia-opencl.so",
    "libnvidia-cfg.so",
    "libnvidia-gpucomp.so",
    "libnvidia-allocator.so",
];
/// Largest library hashed (the biggest driver libraries are a few hundred
/// MiB); a larger file is an error, not a silent skip.
pub const MAX_LIBRARY_BYTES: u64 = 1 << 30;
/// Largest `/proc` file read.
const MAX_PROC_BYTES: u64 = 64 << 10;

/// The reason recorded when no GPU is visible.
pub const NO_GPU: &str = "no /proc/driver/nvidia/version and no /dev/nvidia* device: no NVIDIA GPU is visible to this container";

/// What the GPU pathway looks like from a root folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuFacts {
    /// Whether an NVIDIA driver or device is visible: the version file, a
    /// GPU folder or a `/dev/nvidia*` node exists (readable or not).
    pub present: bool,
    /// Why `present` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The driver version from the banner (`550.54.15`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The banner's first line, as read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_banner: Option<String>,
    /// `/dev/nvidia*` and `/dev/nvidia-caps/*`, sorted by path.
    pub devices: Vec<Device>,
    /// One per GPU folder, sorted by bus id.
    pub gpus: Vec<Gpu>,
    /// Driver libraries, sorted by path.
    pub libraries: Vec<Library>,
    /// What exists but could not be read, each naming its path.
    pub errors: Vec<String>,
}

/// A device node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Path inside the root (`/dev/nvidia0`).
    pub path: String,
    /// Whether it is a character device (a fake root has plain files).
    pub char_device: bool,
    /// `major:minor` of a character device (`195:0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// One GPU, from `/proc/driver/nvidia/gpus/<bus id>/information`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// The folder's name, the PCI bus id (`0000:1b:00.0`).
    pub bus_id: String,
    /// The `key: value` lines, as written (`Model`, `GPU UUID`, `IRQ`,
    /// `Video BIOS`, `Bus Type`, `Bus Location`, ...).
    pub information: BTreeMap<String, String>,
}

impl Gpu {
    /// The `Model` line (`NVIDIA H100 80GB HBM3`).
    pub fn model(&self) -> Option<&str> {
        self.information.get("Model").map(String::as_str)
    }

    /// The `GPU UUID` line.
    pub fn uuid(&self) -> Option<&str> {
        self.information.get("GPU UUID").map(String::as_str)
    }
}

/// A driver library the container can see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Library {
    /// Path inside the root (`/usr/lib64/libcuda.so.1`).
    pub path: String,
    /// For a symbolic link, what it says (`libcuda.so.550.54.15`). It is
    /// followed only inside the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// SHA-256 of the file (of the link's target, for a link), lowercase
    /// hex; absent when there is nothing to hash (`note` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes of what was hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Why there is no digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Library {
    /// The file name (`libcuda.so.1`), which a policy names libraries by.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// A driver version: dot-separated numbers, compared number by number, a
/// missing number counting as 0 (`535` = `535.0`, `535.104.05` >
/// `535.54.03`).
#[derive(Clone, Debug)]
pub struct DriverVersion {
    text: String,
    parts: Vec<u64>,
}

impl DriverVersion {
    /// Parses `550.54.15`; `None` for anything but dot-separated decimal
    /// numbers.
    pub fn parse(text: &str) -> Option<Self> {
        let parts = text
            .split('.')
            .map(|p| {
                if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                    p.parse().ok()
                } else {
                    None
                }
            })
            .collect::<Option<Vec<u64>>>()?;
        Some(Self {
            text: text.to_string(),
            parts,
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for DriverVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        (0..n)
            .map(|i| {
                let a = self.parts.get(i).copied().unwrap_or(0);
                let b = other.parts.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for DriverVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DriverVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for DriverVersion {}

/// Whether a file name is one of the [`LIBRARY_FAMILIES`].
pub fn is_driver_library(name: &str) -> bool {
    LIBRARY_FAMILIES.iter().any(|family| {
        name.strip_prefix(family)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// The version in the banner's first line: the first word made of digits
/// and dots with at least one dot (`NVRM version: NVIDIA UNIX x86_64 Kernel
/// Module  550.54.15  Tue Mar  5 ...`; the open module's banner says `Open
/// Kernel Module for x86_64  550.54.15` and reads the same).
pub fn parse_banner(line: &str) -> Option<DriverVersion> {
    line.split_whitespace()
        .filter(|w| w.contains('.') && w.starts_with(|c: char| c.is_ascii_digit()))
        .find_map(DriverVersion::parse)
}

/// The `key: value` lines of a GPU's `information` file. The value is all
/// after the first `:` (`Bus Location: 0000:1b:00.0`), both sides trimmed.
pub fn parse_information(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The GPU pathway as seen from `root` (`/` in a pod, the host's root with
/// `--host-root`, a fake root in tests). Never fails: what cannot be read is
/// in `errors`.
pub fn gpu_facts(root: &Path) -> GpuFacts {
    let root = match Root::open(root) {
        Ok(root) => root,
        Err(e) => {
            let e = e.to_string();
            return GpuFacts {
                reason: Some(e.clone()),
                errors: vec![e],
                ..GpuFacts::default()
            };
        }
    };
    let mut facts = GpuFacts::default();
    let version_exists = driver(&root, &mut facts);
    facts.devices = devices(&root, &mut facts.errors);
    facts.gpus = gpus(&root, &mut facts.errors);
    facts.libraries = libraries(&root, &mut facts.errors);
    facts.present = version_exists || !facts.devices.is_empty() || !facts.gpus.is_empty();
    if !facts.present {
        facts.reason = Some(NO_GPU.into());
    }
    facts
}

/// Reads the version banner into `facts`; whether the file exists.
fn driver(root: &Root, facts: &mut GpuFacts) -> bool {
    let text = match root.open_file(VERSION_FILE) {
        Err(Errno::ENOENT | Errno::ENOTDIR) => return false,
        Err(e) => Err(FileError::Open(e)),
        Ok(file) => read_limited(file, MAX_PROC_BYTES),
    };
    let text = match text {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            facts
                .errors
                .push(format!("cannot read {VERSION_FILE}: {e}"));
            return true;
        }
    };
    let banner = text.lines().next().unwrap_or("").trim().to_string();
    match parse_banner(&banner) {
        Some(v) => facts.driver_version = Some(v.to_string()),
        None => facts.errors.push(format!(
            "{VERSION_FILE}: no driver version in its first line {banner:?}"
        )),
    }
    facts.driver_banner = Some(banner);
    true
}

fn devices(root: &Root, errors: &mut Vec<String>) -> Vec<Device> {
    let mut out = Vec::new();
    for (dir, wanted) in [("/dev", "nvidia"), ("/dev/nvidia-caps", "")] {
        let Some((fd, names)) = list(root, dir, |n| n.starts_with(wanted), errors) else {
            continue;
        };
        for name in names {
            let path = join(dir, &name);
            match fstatat(&fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                // The caps folder is listed on its own.
                Ok(st) if is(&st, SFlag::S_IFDIR) => {}
                Ok(st) => {
                    let char_device = is(&st, SFlag::S_IFCHR);
                    out.push(Device {
                        path,
                        char_device,
                        number: char_device
                            .then(|| format!("{}:{}", major(st.st_rdev), minor(st.st_rdev))),
                    });
                }
                Err(Errno::ENOENT) => {}
                Err(e) => errors.push(format!("cannot stat {path}: {}", describe(e))),
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn gpus(root: &Root, errors: &mut Vec<String>) -> Vec<Gpu> {
    let Some((_, names)) = list(root, GPUS_DIR, |_| true, errors) else {
        return Vec::new();
    };
    let mut out: Vec<Gpu> = names
        .into_iter()
        .map(|bus_id| {
            let path = join(&join(GPUS_DIR, &bus_id), "information");
            let text = root
                .open_file(&path)
                .map_err(FileError::Open)
                .and_then(|f| read_limited(f, MAX_PROC_BYTES));
            let information = match text {
                Ok(bytes) => parse_information(&String::from_utf8_lossy(&bytes)),
                Err(e) => {
                    errors.push(format!("cannot read {path}: {e}"));
                    BTreeMap::new()
                }
            };
            Gpu {
                bus_id,
                information,
            }
        })
        .collect();
    out.sort_by(|a, b| a.bus_id.cmp(&b.bus_id));
    out
}

fn libraries(root: &Root, errors: &mut Vec<String>) -> Vec<Library> {
    let mut seen: Vec<(u64, u64)> = Vec::new();
    let mut out = Vec::new();
    for dir in LIBRARY_DIRS {
        let Some((fd, names)) = list(root, dir, is_driver_library, errors) else {
            continue;
        };
        // The same folder under two names (merged /usr) is read once.
        match fstat(&fd) {
            Ok(st) if seen.contains(&(st.st_dev, st.st_ino)) => continue,
            Ok(st) => seen.push((st.st_dev, st.st_ino)),
            Err(e) => {
                errors.push(format!("cannot stat {dir}: {}", describe(e)));
                continue;
            }
        }
        for name in names {
            match library(root, &fd, dir, &name) {
                Ok(lib) => out.push(lib),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// One library: a regular file is opened with `O_NOFOLLOW` and hashed; a
/// symlink is recorded with its target and hashed through it when the
/// target is inside the root.
fn library(root: &Root, dir_fd: &OwnedFd, dir: &str, name: &str) -> Result<Library, LibraryError> {
    let path = join(dir, name);
    let st = match fstatat(dir_fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(errno) => return Err(LibraryError::Stat { path, errno }),
    };
    if is(&st, SFlag::S_IFREG) {
        let fd = match openat(dir_fd, name, FILE_FLAGS | OFlag::O_NOFOLLOW, Mode::empty()) {
            Ok(fd) => fd,
            Err(errno) => return Err(LibraryError::Open { path, errno }),
        };
        let (sha256, size) = match hash_regular(File::from(fd), MAX_LIBRARY_BYTES) {
            Ok(hashed) => hashed,
            Err(source) => return Err(LibraryError::Hash { path, source }),
        };
        return Ok(Library {
            path,
            target: None,
            sha256: Some(sha256),
            size: Some(size),
            note: None,
        });
    }
    if !is(&st, SFlag::S_IFLNK) {
        return Err(LibraryError::NotLibrary {
            path,
            mode: st.st_mode,
        });
    }
    let target = match readlinkat(dir_fd, name) {
        Ok(target) => target.to_string_lossy().into_owned(),
        Err(errno) => return Err(LibraryError::ReadLink { path, errno }),
    };
    let file = match root.open_file(&path) {
        Ok(file) => file,
        Err(Errno::ENOENT) => {
            return Ok(Library {
                path,
                target: Some(target),
                sha256: None,
                size: None,
                note: Some(
                    "its target does not exist inside the root; a link is never followed outside it"
                        .into(),
                ),
            });
        }
        Err(errno) => {
            return Err(LibraryError::OpenTarget {
                path,
                target,
                errno,
            });
        }
    };
    let (sha256, size) = match hash_regular(file, MAX_LIBRARY_BYTES) {
        Ok(hashed) => hashed,
        Err(source) => {
            return Err(LibraryError::HashTarget {
                path,
                target,
                source,
            });
        }
    };
    Ok(Library {
        path,
        target: Some(target),
        sha256: Some(sha256),
        size: Some(size),
        note: None,
    })
}

/// The folder `dir` (inside the root) and the names in it that `keep`
/// accepts, sorted; `None` when it does not exist (then nothing is recorded)
/// or cannot be read (then an error is). A name `keep` would accept but that
/// is not UTF-8 is an error: it cannot be recorded faithfully.
fn list(
    root: &Root,
    dir: &str,
    keep: impl Fn(&str) -> bool,
    errors: &mut Vec<String>,
) -> Option<(OwnedFd, Vec<String>)> {
    let fd = match root.open_dir(dir) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return None,
        Err(e) => {
            errors.push(format!("cannot open {dir}: {}", describe(e)));
            return None;
        }
    };
    let listing = match fd
        .try_clone()
        .map_err(|e| e.to_string())
        .and_then(|l| Dir::from_fd(l).map_err(describe))
    {
        Ok(d) => d,
        Err(e) => {
            errors.push(format!("cannot list {dir}: {e}"));
            return None;
        }
    };
    let mut names = Vec::new();
    for entry in listing {
        match entry {
            Ok(entry) => {
                let raw = entry.file_name().to_bytes();
                let name = String::from_utf8_lossy(raw);
                if raw == b"." || raw == b".." || !keep(&name) {
                    continue;
                }
                match std::str::from_utf8(raw) {
                    Ok(name) => names.push(name.to_string()),
                    Err(_) => errors.push(format!(
                        "{}: the name is not UTF-8; it cannot be recorded",
                        join(dir, &name)
                    )),
                }
            }
            Err(e) => {
                errors.push(format!("cannot list {dir}: {}", describe(e)));
                return None;
            }
        }
    }
    names.sort();
    Some((fd, names))
}

fn is(st: &FileStat, format: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == format
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_gives_the_version_for_both_kernel_modules() {
        let proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024";
        assert_eq!(parse_banner(proprietary).unwrap().as_str(), "550.54.15");
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.104.05  Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Aug 22 ...";
        assert_eq!(parse_banner(open).unwrap().as_str(), "535.104.05");
        let arm = "NVRM version: NVIDIA UNIX aarch64 Kernel Module  560.35.03  Fri Aug 16 21:21:48 UTC 2024";
        assert_eq!(parse_banner(arm).unwrap().as_str(), "560.35.03");
        assert!(parse_banner("NVRM version: something else entirely").is_none());
    }

    #[test]
    fn information_lines_split_at_the_first_colon() {
        let text = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: \t\t 0\nGPU UUID: \t GPU-6c3f0c8e-1d2a-4b5c-9e8f-0a1b2c3d4e5f\nVideo BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t 0000:1b:00.0\nDevice Minor: \t 0\nGPU Excluded:\t No\n\nno colon here\n";
        let info = parse_information(text);
        assert_eq!(info.len(), 10);
        assert_eq!(info["Model"], "NVIDIA H100 80GB HBM3");
        assert_eq!(info["Bus Location"], "0000:1b:00.0");
        assert_eq!(info["Video BIOS"], "96.00.99.00.01");
        assert_eq!(info["GPU Excluded"], "No");
        let gpu = Gpu {
            bus_id: "0000:1b:00.0".into(),
            information: info,
        };
        assert_eq!(gpu.model(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(gpu.uuid(), Some("GPU-6c3f0c8e-1d2a-4b5c-9e8f-0a1b2c3d4e5f"));
    }

    #[test]
    fn versions_compare_number_by_number() {
        let v = |s: &str| DriverVersion::parse(s).unwrap();
        assert!(v("535.104.05") > v("535.54.03"));
        assert!(v("550.54.15") < v("560.0"));
        assert!(v("9.0") < v("10.0"));
        assert_eq!(v("535"), v("535.0.0"));
        assert!(v("535.0.1") > v("535"));
        for bad in [
            "", "535.", ".535", "535..1", "v535", "535.1a", "-1", "535 .1",
        ] {
            assert!(DriverVersion::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn driver_libraries_are_recognised_by_family() {
        for name in [
            "libcuda.so",
            "libcuda.so.1",
            "libcuda.so.550.54.15",
            "libnvidia-ml.so.1",
            "libnvidia-gpucomp.so.550.54.15",
        ] {
            assert!(is_driver_library(name), "{name}");
        }
        for name in [
            "libcudart.so.12",
            "libcuda.sox",
            "libnvidia-mlx.so",
            "cuda.so",
        ] {
            assert!(!is_driver_library(name), "{name}");
        }
    }
}
