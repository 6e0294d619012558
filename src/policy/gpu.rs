//! What a policy requires of the GPU pathway (`spec.gpu`): a GPU at all, a
//! driver version range, pinned driver library digests. Checked against the
//! facts `crate::node` observed; every failure says what was expected, what
//! was found and what to do.

use crate::node::gpu::LIBRARY_DIRS;
use crate::node::{DriverVersion, GpuFacts};

/// `spec.gpu`, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuRequirement {
    /// An NVIDIA GPU must be visible. When false, the rest is checked only
    /// when a GPU is visible (or something could not be read).
    pub required: bool,
    /// The allowed driver versions.
    pub driver_version: Option<VersionRange>,
    /// Libraries that must be visible, each with the digest it must have.
    pub libraries: Vec<LibraryPin>,
}

/// Allowed driver versions: `min` inclusive, `max` exclusive, either open.
/// At least one is set, and `min < max` when both are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRange {
    /// The lowest allowed version.
    pub min: Option<DriverVersion>,
    /// The first version no longer allowed.
    pub max: Option<DriverVersion>,
}

/// A library (by file name) and the SHA-256 every visible copy must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryPin {
    /// The file name, `libcuda.so.550.54.15`; one of the measured families.
    pub name: String,
    /// The digest, lowercase hex.
    pub sha256: String,
}

impl VersionRange {
    /// Whether `v` is in the range.
    pub fn contains(&self, v: &DriverVersion) -> bool {
        self.min.as_ref().is_none_or(|min| v >= min) && self.max.as_ref().is_none_or(|max| v < max)
    }
}

impl std::fmt::Display for VersionRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.min, &self.max) {
            (Some(min), Some(max)) => write!(f, "[{min}, {max})"),
            (Some(min), None) => write!(f, "[{min}, no upper bound)"),
            (None, Some(max)) => write!(f, "[any, {max})"),
            (None, None) => f.write_str("[any, no upper bound)"),
        }
    }
}

impl GpuRequirement {
    /// Checks observed facts. A requirement is in force when a GPU is
    /// required, when one is visible, or when something could not be read
    /// (then nobody knows whether one is there: fail closed). Returns every
    /// failure, not only the first.
    pub fn check(&self, facts: &GpuFacts) -> Result<(), Vec<String>> {
        if !self.required && !facts.present && facts.errors.is_empty() {
            return Ok(());
        }
        let mut failures = Vec::new();
        if self.required && !facts.present {
            failures.push(format!(
                "the policy requires an NVIDIA GPU, and none is visible: {}; schedule the pod on a GPU node with the NVIDIA device plugin and request nvidia.com/gpu, or set spec.gpu.required: false",
                facts.reason.as_deref().unwrap_or(crate::node::gpu::NO_GPU)
            ));
        }
        failures.extend(facts.errors.iter().map(|e| {
            format!(
                "the GPU pathway could not be measured completely: {e}; the policy cannot be checked against what was not read"
            )
        }));
        if facts.present {
            if let Some(range) = &self.driver_version {
                failures.extend(check_driver(range, facts));
            }
            for pin in &self.libraries {
                failures.extend(check_library(pin, facts));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// What the requirement asks, for `policy explain`.
    pub fn describe(&self) -> String {
        let mut out = if self.required {
            "an NVIDIA GPU is required".to_string()
        } else {
            "no GPU is required; when one is visible it is checked".to_string()
        };
        if let Some(range) = &self.driver_version {
            out.push_str(&format!(
                "; driver version in {range} (min inclusive, max exclusive)"
            ));
        }
        for pin in &self.libraries {
            out.push_str(&format!("; {} pinned to sha256:{}", pin.name, pin.sha256));
        }
        out
    }
}

fn check_driver(range: &VersionRange, facts: &GpuFacts) -> Option<String> {
    let Some(text) = &facts.driver_version else {
        return Some(format!(
            "the driver version is unknown ({} was not read), and the policy allows only drivers in {range}; make {} visible to the verifier",
            crate::node::gpu::VERSION_FILE,
            crate::node::gpu::VERSION_FILE
        ));
    };
    match DriverVersion::parse(text) {
        None => Some(format!(
            "driver version {text:?} is not a dotted number, and the policy allows only drivers in {range}"
        )),
        Some(v) if !range.contains(&v) => Some(format!(
            "driver {v} is outside the allowed range {range} (min inclusive, max exclusive): install an allowed driver on the node, or change spec.gpu.driverVersion"
        )),
        Some(_) => None,
    }
}

fn check_library(pin: &LibraryPin, facts: &GpuFacts) -> Vec<String> {
    let copies: Vec<_> = facts
        .libraries
        .iter()
        .filter(|l| l.name() == pin.name)
        .collect();
    if copies.is_empty() {
        return vec![format!(
            "library {} required by the policy is not visible in {}: the NVIDIA container toolkit did not inject it, or the node runs another driver; check the node's driver, or change spec.gpu.libraries",
            pin.name,
            LIBRARY_DIRS.join(", ")
        )];
    }
    // Every copy: the loader may pick any of them.
    copies
        .into_iter()
        .filter_map(|lib| match &lib.sha256 {
            None => Some(format!(
                "{}: not hashed ({}), the policy allows sha256 {} for {}",
                lib.path,
                lib.note.as_deref().unwrap_or("no digest"),
                pin.sha256,
                pin.name
            )),
            Some(actual) if *actual != pin.sha256 => Some(format!(
                "{}: sha256 {actual}, the policy allows {} for {}: the driver library is not the one the policy pins; if the driver was changed on purpose, update spec.gpu.libraries",
                lib.path, pin.sha256, pin.name
            )),
            Some(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Library;
    use crate::policy::Policy;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn lib(path: &str, sha256: Option<&str>) -> Library {
        Library {
            path: path.into(),
            target: None,
            sha256: sha256.map(Into::into),
            size: sha256.map(|_| 4),
            note: None,
        }
    }

    /// A node with driver 550.54.15 and two libraries.
    fn gpu_node() -> GpuFacts {
        GpuFacts {
            present: true,
            driver_version: Some("550.54.15".into()),
            libraries: vec![
                lib("/usr/lib64/libcuda.so.550.54.15", Some(A)),
                lib("/usr/lib64/libnvidia-ml.so.1", Some(B)),
            ],
            ..GpuFacts::default()
        }
    }

    fn no_gpu() -> GpuFacts {
        GpuFacts {
            reason: Some(crate::node::gpu::NO_GPU.into()),
            ..GpuFacts::default()
        }
    }

    fn range(min: Option<&str>, max: Option<&str>) -> Option<VersionRange> {
        let v = |s: &str| DriverVersion::parse(s).unwrap();
        Some(VersionRange {
            min: min.map(v),
            max: max.map(v),
        })
    }

    fn requirement(required: bool) -> GpuRequirement {
        GpuRequirement {
            required,
            driver_version: range(Some("535.0"), Some("560.0")),
            libraries: vec![LibraryPin {
                name: "libcuda.so.550.54.15".into(),
                sha256: A.into(),
            }],
        }
    }

    fn one_failure(r: &GpuRequirement, facts: &GpuFacts) -> String {
        let failures = r.check(facts).unwrap_err();
        assert_eq!(failures.len(), 1, "{failures:#?}");
        failures.into_iter().next().unwrap()
    }

    #[test]
    fn a_matching_node_passes() {
        requirement(true).check(&gpu_node()).unwrap();
        requirement(false).check(&gpu_node()).unwrap();
    }

    #[test]
    fn a_required_gpu_that_is_not_there_fails_and_an_optional_one_passes() {
        let msg = one_failure(&requirement(true), &no_gpu());
        assert_eq!(
            msg,
            format!(
                "the policy requires an NVIDIA GPU, and none is visible: {}; schedule the pod on a GPU node with the NVIDIA device plugin and request nvidia.com/gpu, or set spec.gpu.required: false",
                crate::node::gpu::NO_GPU
            )
        );
        // required: false with a range: no GPU passes, a GPU is checked.
        requirement(false).check(&no_gpu()).unwrap();
        let mut old = gpu_node();
        old.driver_version = Some("530.30.02".into());
        let msg = one_failure(&requirement(false), &old);
        assert!(
            msg.starts_with("driver 530.30.02 is outside the allowed range [535.0, 560.0)"),
            "{msg}"
        );
    }

    #[test]
    fn the_range_includes_min_and_excludes_max() {
        let mut r = requirement(true);
        r.driver_version = range(Some("535.0"), Some("550.0"));
        let msg = one_failure(&r, &gpu_node());
        assert!(
            msg.starts_with("driver 550.54.15 is outside the allowed range [535.0, 550.0)"),
            "{msg}"
        );
        assert!(msg.contains("spec.gpu.driverVersion"), "{msg}");
        r.driver_version = range(Some("550.54.15"), None);
        r.check(&gpu_node()).unwrap();
        r.driver_version = range(None, Some("550.54.15"));
        let msg = one_failure(&r, &gpu_node());
        assert!(msg.contains("[any, 550.54.15)"), "{msg}");
        r.driver_version = range(Some("550.54.16"), None);
        let msg = one_failure(&r, &gpu_node());
        assert!(msg.contains("[550.54.16, no upper bound)"), "{msg}");
    }

    #[test]
    fn an_unknown_driver_version_fails_a_range() {
        let mut facts = gpu_node();
        facts.driver_version = None;
        let msg = one_failure(&requirement(true), &facts);
        assert!(
            msg.starts_with("the driver version is unknown (/proc/driver/nvidia/version was not read), and the policy allows only drivers in [535.0, 560.0)"),
            "{msg}"
        );
        // Without a range, an unknown version is not a failure by itself.
        let mut r = requirement(true);
        r.driver_version = None;
        r.check(&facts).unwrap();
    }

    #[test]
    fn a_library_with_another_digest_fails_with_both_digests() {
        let mut facts = gpu_node();
        facts.libraries[0].sha256 = Some(B.into());
        let msg = one_failure(&requirement(true), &facts);
        assert!(
            msg.starts_with(&format!(
                "/usr/lib64/libcuda.so.550.54.15: sha256 {B}, the policy allows {A} for libcuda.so.550.54.15"
            )),
            "{msg}"
        );
    }

    #[test]
    fn every_copy_of_a_pinned_library_must_match() {
        let mut facts = gpu_node();
        facts.libraries.push(lib(
            "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15",
            Some(B),
        ));
        let msg = one_failure(&requirement(true), &facts);
        assert!(
            msg.starts_with("/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15: sha256 "),
            "{msg}"
        );
        facts.libraries[2].sha256 = None;
        facts.libraries[2].note = Some("its target does not exist inside the root".into());
        let msg = one_failure(&requirement(true), &facts);
        assert!(
            msg.starts_with("/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15: not hashed (its target does not exist inside the root), the policy allows sha256 "),
            "{msg}"
        );
    }

    #[test]
    fn a_pinned_library_that_is_not_visible_fails() {
        let mut r = requirement(true);
        r.libraries.push(LibraryPin {
            name: "libnvidia-ptxjitcompiler.so.1".into(),
            sha256: A.into(),
        });
        let msg = one_failure(&r, &gpu_node());
        assert!(
            msg.starts_with("library libnvidia-ptxjitcompiler.so.1 required by the policy is not visible in /usr/lib64, "),
            "{msg}"
        );
    }

    #[test]
    fn what_could_not_be_read_fails_closed() {
        let mut facts = gpu_node();
        facts
            .errors
            .push("cannot read /proc/driver/nvidia/version: Is a directory".into());
        let msg = one_failure(&requirement(false), &facts);
        assert_eq!(
            msg,
            "the GPU pathway could not be measured completely: cannot read /proc/driver/nvidia/version: Is a directory; the policy cannot be checked against what was not read"
        );
        // Even when no GPU was seen: whether one is there is not known.
        let mut facts = no_gpu();
        facts
            .errors
            .push("cannot open /usr/lib64: permission denied".into());
        assert_eq!(requirement(false).check(&facts).unwrap_err().len(), 1);
        assert_eq!(requirement(true).check(&facts).unwrap_err().len(), 2);
    }

    #[test]
    fn all_failures_are_reported_together() {
        let mut facts = gpu_node();
        facts.driver_version = Some("570.1".into());
        facts.libraries.clear();
        let failures = requirement(true).check(&facts).unwrap_err();
        assert_eq!(failures.len(), 2, "{failures:#?}");
    }

    /// A policy file with one rule and `gpu` as `spec.gpu`.
    fn policy(gpu: &str) -> Result<Policy, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/keys/test-signer.pub.pem"
            ),
            dir.path().join("k.pub"),
        )
        .unwrap();
        let text = format!(
            "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata:\n  name: p\nspec:\n  models:\n    - name: all\n      match:\n        names: [\"*\"]\n      authorities:\n        - name: k\n          key:\n            path: k.pub\n{gpu}"
        );
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, text).unwrap();
        Policy::from_file(&path).map_err(|e| e.reason.to_string())
    }

    #[test]
    fn spec_gpu_compiles_from_yaml() {
        let p = policy(&format!(
            "  gpu:\n    required: true\n    driverVersion:\n      min: 535.0\n      max: \"560.0\"\n    libraries:\n      - name: libcuda.so.550.54.15\n        sha256: {}\n",
            A.to_ascii_uppercase()
        ))
        .unwrap();
        assert_eq!(p.gpu, Some(requirement(true)));
        let explained = p.explain();
        assert!(
            explained.contains("- gpu: an NVIDIA GPU is required; driver version in [535.0, 560.0) (min inclusive, max exclusive); libcuda.so.550.54.15 pinned to sha256:aaaa"),
            "{explained}"
        );
        assert_eq!(policy("").unwrap().gpu, None);
        let p = policy("  gpu:\n    driverVersion: {min: \"535\"}\n").unwrap();
        let gpu = p.gpu.unwrap();
        assert!(!gpu.required);
        assert!(gpu.libraries.is_empty());
    }

    #[test]
    fn spec_gpu_mistakes_are_refused_naming_the_field() {
        let cases = [
            ("  gpu:\n    requierd: true\n", "unknown field"),
            (
                "  gpu:\n    driverVersion: {min: \"535.x\"}\n",
                "spec.gpu.driverVersion.min: \"535.x\" is not a version",
            ),
            (
                "  gpu:\n    driverVersion: {min: \"560\", max: \"535.0\"}\n",
                "spec.gpu.driverVersion: min 560 is not below max 535.0",
            ),
            (
                "  gpu:\n    driverVersion: {min: \"535\", max: \"535.0\"}\n",
                "spec.gpu.driverVersion: min 535 is not below max 535.0",
            ),
            (
                "  gpu:\n    driverVersion: {}\n",
                "spec.gpu.driverVersion: give min (inclusive), max (exclusive) or both",
            ),
            (
                "  gpu:\n    driverVersion: {min: \"535\", exact: \"550\"}\n",
                "unknown field",
            ),
            (
                "  gpu:\n    libraries:\n      - {name: libcudart.so.12, sha256: x}\n",
                "spec.gpu.libraries[0].name: \"libcudart.so.12\" is not a driver library modelgate measures",
            ),
            (
                "  gpu:\n    libraries:\n      - {name: libcuda.so.1, sha256: \"sha256:abc\"}\n",
                "spec.gpu.libraries[0].sha256: \"sha256:abc\" is not 64 hex digits",
            ),
            (
                &format!(
                    "  gpu:\n    libraries:\n      - {{name: libcuda.so.1, sha256: {A}}}\n      - {{name: libcuda.so.1, sha256: {B}}}\n"
                ),
                "spec.gpu.libraries[1].name: \"libcuda.so.1\" is listed twice",
            ),
        ];
        for (gpu, expected) in cases {
            let err = policy(gpu).unwrap_err();
            assert!(err.contains(expected), "{gpu}: {err}");
        }
    }
}
