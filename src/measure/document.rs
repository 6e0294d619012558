//! The measurement: a JSON record of what was verified, by whom it was
//! signed, and the verdict, written atomically where operators and the
//! workload can read it.
//!
//! A rejected run writes a document that says `rejected` (or `error`) in place
//! of whatever was there before, so a stale `verified` can never survive a
//! failed check. The schema is documented in the README; the types below are
//! that schema, serialized straight from the verified manifest without an
//! intermediate JSON tree (10,000 files stay cheap).

use std::path::Path;

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::{Digest, Method};
use crate::node::GpuFacts;
use crate::oms::manifest::{Format, Manifest};
use crate::verify::tlog::LogEvidence;
use crate::verify::{
    AcceptedSignature, Evidence, Problem, Rejection, SignatureFile, Signer, Verdict, Verified,
};

/// Version of the measurement document's schema.
pub const SCHEMA: &str = "modelgate.dev/measurement/v1";

/// The measurement document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement<'a> {
    schema_version: &'static str,
    tool: Tool,
    time: String,
    /// `verified`, `rejected`, `error`, or `unverified-allowed` (warn mode).
    verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<PolicyOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<SourceOut<'a>>,
    model: Model<'a>,
    signatures: Vec<SignatureOut<'a>>,
    signers: Vec<SignerOut<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    disregarded_signatures: &'a [String],
    ignored: &'a [String],
    unsigned_files_tolerated: &'a [String],
    reasons: Vec<Reason<'a>>,
    /// What `modelgate watch` saw happen to a model that had verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    watch: Option<WatchEvent>,
    /// The pod this ran in (from the downward API), under `modelgate init`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pod: Option<&'a Pod>,
    /// Facts about the node (the GPU driver pathway), under `modelgate init`.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<NodeOut<'a>>,
}

/// A change `modelgate watch` saw in a model that had verified: `drift`
/// (the files named differ from the signed ones) or `restored` (they are
/// the signed ones again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchEvent {
    /// `drift` or `restored`.
    pub event: &'static str,
    /// The files it is about.
    pub files: Vec<String>,
}

/// The node facts of a measurement.
#[derive(Serialize)]
struct NodeOut<'a> {
    gpu: &'a GpuFacts,
}

/// The pod, as the downward API gives it (`POD_NAME`, `POD_NAMESPACE`,
/// `POD_UID`, `NODE_NAME`); absent values are left out.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// `POD_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `POD_NAMESPACE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `POD_UID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `NODE_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Pod {
    /// The pod from the downward API's usual variables; `None` outside a pod.
    pub fn from_env() -> Option<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let pod = Self {
            name: get("POD_NAME"),
            namespace: get("POD_NAMESPACE"),
            uid: get("POD_UID"),
            node: get("NODE_NAME"),
        };
        (pod.name.is_some() || pod.namespace.is_some() || pod.uid.is_some() || pod.node.is_some())
            .then_some(pod)
    }
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Model<'a> {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    predicate_type: Option<&'static str>,
    /// Set only when a pre-1.0 signature was accepted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    legacy_format: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    serialization: Option<SerializationOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Files<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SerializationOut<'a> {
    method: &'static str,
    hash_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_size: Option<u64>,
    allow_symlinks: bool,
    ignore_paths: &'a [String],
}

/// Every resource of the manifest, serialized lazily.
struct Files<'a>(&'a Manifest);

impl Serialize for Files<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct File<'b> {
            name: String,
            algorithm: &'b str,
            digest: String,
        }
        let algorithm = self.0.serialization.resource_algorithm();
        let mut seq = serializer.serialize_seq(Some(self.0.resources.len()))?;
        for (key, digest) in &self.0.resources {
            seq.serialize_element(&File {
                name: key.name(),
                algorithm: &algorithm,
                digest: hex::encode(digest),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct SignatureOut<'a> {
    path: String,
    sha256: &'a str,
}

impl<'a> From<&'a SignatureFile> for SignatureOut<'a> {
    fn from(s: &'a SignatureFile) -> Self {
        Self {
            path: s.origin.to_string(),
            sha256: &s.sha256,
        }
    }
}

/// Where a model pulled from a registry came from.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceOut<'a> {
    /// The reference as given (`oci://...`, a tag or a digest).
    pub reference: &'a str,
    /// The manifest digest it resolved to, which everything after used.
    pub digest: &'a str,
    /// The artifact layout read from the manifest.
    pub layout: &'static str,
    /// Signatures found in the registry (when none was given).
    #[serde(skip_serializing_if = "<[FoundOut]>::is_empty")]
    pub signatures_found: &'a [FoundOut],
}

/// A signature found in the registry: where it was, and how it was found
/// (`signatures[].path` names it the same way, with the way in brackets).
#[derive(Clone, Debug, Serialize)]
pub struct FoundOut {
    /// `oci://registry/repository@sha256:<the signature's manifest>`.
    pub reference: String,
    /// `referrers` or `cosign-tag`.
    pub via: &'static str,
}

/// The policy and rule that decided, and in which mode.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyOut<'a> {
    /// The policy's name.
    pub name: &'a str,
    /// The rule that matched the model.
    pub rule: &'a str,
    /// `enforce` or `warn`.
    pub mode: &'static str,
    /// The rule accepts pre-1.0 signatures (shown only when it does).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_legacy_format: bool,
}

/// What the log and the termination message keep of a measurement.
#[derive(Clone, Debug)]
pub struct Summary {
    /// When (RFC 3339).
    pub time: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The model as shown (its path, or the destination of a pull).
    pub model_path: String,
    /// The signed model name, once a signature verified.
    pub model_name: Option<String>,
    /// `sha256:<hex>`, once a signature verified.
    pub root_digest: Option<String>,
    /// The reference and the manifest digest, for a registry model.
    pub source: Option<(String, String)>,
    /// The policy's name and the rule that decided.
    pub policy: Option<(String, String)>,
    /// Who signed, under which authority.
    pub signers: Vec<SignerSummary>,
    /// The pod, under `init`.
    pub pod: Option<Pod>,
    /// The node's GPU driver version, under `init`.
    pub gpu_driver: Option<String>,
    /// Every reason of a rejection or error, as its message.
    pub reasons: Vec<String>,
    /// What `watch` saw happen, for its measurements.
    pub watch: Option<WatchEvent>,
}

/// A signer, in one line.
#[derive(Clone, Debug)]
pub struct SignerSummary {
    /// The policy authority that vouched.
    pub authority: String,
    /// The Sigstore identity, the certificate subject, or the key fingerprint.
    pub identity: String,
}

impl SignerOut<'_> {
    /// Who signed, in one string: the Sigstore identity, the certificate
    /// subject, or the key fingerprint.
    fn identity(&self) -> String {
        self.sigstore
            .as_ref()
            .map(|s| s.identity.to_string())
            .or_else(|| self.certificate.as_ref().map(|c| c.subject.to_string()))
            .or_else(|| self.key_fingerprint.clone())
            .unwrap_or_else(|| "?".into())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignerOut<'a> {
    /// The signature file this signer made.
    signature: String,
    /// The policy authority that vouched for the signer.
    authority: &'a str,
    /// `key`, `certificate` or `sigstore`.
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    curve: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sigstore: Option<SigstoreOut<'a>>,
    /// For a key signer whose transparency-log evidence was required and verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    transparency_log: Option<LogOut<'a>>,
    /// The signature is over model_signing 0.2's encoding, not the DSSE PAE.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    legacy_encoding: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SigstoreOut<'a> {
    identity: &'a str,
    issuer: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_fingerprint: Option<String>,
    rekor: RekorOut<'a>,
    verified_timestamps: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RekorOut<'a> {
    log_index: Option<i64>,
    integrated_time: Option<&'a str>,
}

impl<'a> From<&'a LogEvidence> for RekorOut<'a> {
    fn from(log: &'a LogEvidence) -> Self {
        Self {
            log_index: log.log_index,
            integrated_time: log.integrated_time.as_deref(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogOut<'a> {
    rekor: RekorOut<'a>,
    verified_timestamps: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateOut<'a> {
    subject: &'a str,
    issuer: &'a str,
    subject_alt_names: &'a [String],
    serial: &'a str,
    fingerprint: String,
    anchor: AnchorOut<'a>,
}

#[derive(Serialize)]
struct AnchorOut<'a> {
    subject: &'a str,
    fingerprint: String,
}

impl<'a> From<&'a AcceptedSignature> for SignerOut<'a> {
    fn from(accepted: &'a AcceptedSignature) -> Self {
        let signature = accepted.origin.to_string();
        let authority = accepted.authority.as_str();
        match &accepted.signer {
            Signer::Key {
                key_fingerprint,
                curve,
                transparency,
            } => Self {
                signature,
                authority,
                method: "key",
                curve: Some(curve.to_string()),
                key_fingerprint: Some(key_fingerprint.to_string()),
                certificate: None,
                sigstore: None,
                transparency_log: transparency.as_ref().map(|log| LogOut {
                    rekor: log.into(),
                    verified_timestamps: &log.verified_timestamps,
                }),
                legacy_encoding: accepted.legacy_encoding,
            },
            Signer::Sigstore(k) => Self {
                signature,
                authority,
                method: "sigstore",
                curve: None,
                key_fingerprint: None,
                certificate: None,
                sigstore: Some(SigstoreOut {
                    identity: &k.identity,
                    issuer: &k.issuer,
                    certificate_fingerprint: k
                        .certificate_fingerprint
                        .as_ref()
                        .map(ToString::to_string),
                    rekor: (&k.log).into(),
                    verified_timestamps: &k.log.verified_timestamps,
                }),
                transparency_log: None,
                legacy_encoding: accepted.legacy_encoding,
            },
            Signer::Certificate(c) => Self {
                signature,
                authority,
                method: "certificate",
                curve: Some(c.curve.to_string()),
                key_fingerprint: None,
                sigstore: None,
                transparency_log: None,
                certificate: Some(CertificateOut {
                    subject: &c.subject,
                    issuer: &c.issuer,
                    subject_alt_names: &c.subject_alt_names,
                    serial: &c.serial,
                    fingerprint: c.fingerprint.to_string(),
                    anchor: AnchorOut {
                        subject: &c.anchor_subject,
                        fingerprint: c.anchor_fingerprint.to_string(),
                    },
                }),
                legacy_encoding: accepted.legacy_encoding,
            },
        }
    }
}

#[derive(Serialize)]
struct Reason<'a> {
    kind: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actual: Option<&'a str>,
}

impl<'a> From<&'a Problem> for Reason<'a> {
    fn from(p: &'a Problem) -> Self {
        let (expected, actual) = match p {
            Problem::Modified {
                expected, actual, ..
            } => (Some(expected.as_str()), Some(actual.as_str())),
            Problem::LayerDiffers {
                expected, layer, ..
            } => (Some(expected.as_str()), Some(layer.as_str())),
            Problem::Missing { expected, .. } => (Some(expected.as_str()), None),
            _ => (None, None),
        };
        Self {
            kind: p.kind(),
            message: p.to_string(),
            path: p.path(),
            expected,
            actual,
        }
    }
}

impl<'a> Measurement<'a> {
    fn base(model: &Path, verdict: Verdict) -> Self {
        Self {
            schema_version: SCHEMA,
            tool: Tool {
                name: "modelgate",
                version: env!("CARGO_PKG_VERSION"),
            },
            time: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            verdict,
            policy: None,
            source: None,
            model: Model {
                path: model.display().to_string(),
                name: None,
                root_digest: None,
                predicate_type: None,
                legacy_format: false,
                serialization: None,
                files: None,
            },
            signatures: Vec::new(),
            signers: Vec::new(),
            disregarded_signatures: &[],
            ignored: &[],
            unsigned_files_tolerated: &[],
            reasons: Vec::new(),
            watch: None,
            pod: None,
            node: None,
        }
    }

    /// The measurement of a successful verification.
    pub fn verified(model: &Path, v: &'a Verified) -> Self {
        let mut doc = Self::base(model, Verdict::Verified);
        doc.describe_model(&v.manifest);
        doc.signatures = v.signatures.iter().map(Into::into).collect();
        doc.signers = v.signers.iter().map(Into::into).collect();
        doc.disregarded_signatures = &v.disregarded;
        doc.ignored = &v.ignored;
        doc.unsigned_files_tolerated = &v.unsigned_tolerated;
        doc
    }

    /// The measurement of a rejected verification, with every reason.
    pub fn rejected(model: &Path, r: &'a Rejection) -> Self {
        let mut doc = Self::base(model, r.verdict());
        let e: &Evidence = &r.evidence;
        if let Some(m) = &e.manifest {
            doc.describe_model(m);
        }
        doc.signatures = e.signatures.iter().map(Into::into).collect();
        doc.signers = e.signers.iter().map(Into::into).collect();
        doc.ignored = &e.ignored;
        doc.reasons = r.problems.iter().map(Into::into).collect();
        doc
    }

    /// Records what `watch` saw happen.
    pub fn with_watch(mut self, event: WatchEvent) -> Self {
        self.watch = Some(event);
        self
    }

    /// Records where a pulled model came from.
    pub fn with_source(mut self, source: SourceOut<'a>) -> Self {
        self.source = Some(source);
        self
    }

    /// The measurement of a run that ended before verification with
    /// `verdict` (`error`, or `rejected` when the registry served wrong
    /// content).
    pub fn failed(model: &Path, verdict: Verdict, message: String) -> Self {
        let mut doc = Self::error(model, message);
        doc.verdict = verdict;
        doc
    }

    /// Records the pod and the node facts (`modelgate init`).
    pub fn with_context(mut self, pod: Option<&'a Pod>, gpu: Option<&'a GpuFacts>) -> Self {
        self.pod = pod;
        self.node = gpu.map(|gpu| NodeOut { gpu });
        self
    }

    /// What the measurement log and the termination message say of this
    /// document, taken from the typed document (never parsed back).
    pub fn summary(&self) -> Summary {
        Summary {
            time: self.time.clone(),
            verdict: self.verdict,
            model_path: self.model.path.clone(),
            model_name: self.model.name.map(str::to_string),
            root_digest: self.model.root_digest.clone(),
            source: self
                .source
                .as_ref()
                .map(|s| (s.reference.to_string(), s.digest.to_string())),
            policy: self
                .policy
                .as_ref()
                .map(|p| (p.name.to_string(), p.rule.to_string())),
            signers: self
                .signers
                .iter()
                .map(|s| SignerSummary {
                    authority: s.authority.to_string(),
                    identity: s.identity(),
                })
                .collect(),
            pod: self.pod.cloned(),
            gpu_driver: self
                .node
                .as_ref()
                .and_then(|n| n.gpu.driver_version.clone()),
            reasons: self.reasons.iter().map(|r| r.message.clone()).collect(),
            watch: self.watch.clone(),
        }
    }

    /// The document's JSON bytes, as [`Self::write`] writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut ser = serde_json::Serializer::pretty(&mut bytes);
        let _ = self.serialize(&mut ser);
        bytes.push(b'\n');
        bytes
    }

    /// Records the policy and rule that decided.
    pub fn with_policy(mut self, policy: PolicyOut<'a>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Marks a failed verification that warn mode let through.
    pub fn allowed_by_warn_mode(mut self) -> Self {
        self.verdict = Verdict::AllowedUnverified;
        self
    }

    /// The measurement of a run that failed before any evidence existed
    /// (an unusable key, bad arguments).
    pub fn error(model: &Path, message: String) -> Self {
        let mut doc = Self::base(model, Verdict::Error);
        doc.reasons = vec![Reason {
            kind: "error",
            message,
            path: None,
            expected: None,
            actual: None,
        }];
        doc
    }

    fn describe_model(&mut self, m: &'a Manifest) {
        let s = &m.serialization;
        self.model.name = Some(&m.model_name);
        self.model.root_digest = Some(Digest(m.root_digest).to_string());
        self.model.predicate_type = Some(m.format.predicate_type());
        self.model.legacy_format = m.format == Format::Legacy;
        self.model.serialization = Some(SerializationOut {
            method: match s.method {
                Method::Files => "files",
                Method::Shards { .. } => "shards",
            },
            hash_type: s.hash.name(),
            shard_size: match s.method {
                Method::Files => None,
                Method::Shards { shard_size } => Some(shard_size),
            },
            allow_symlinks: s.allow_symlinks,
            ignore_paths: &s.ignore_paths,
        });
        self.model.files = Some(Files(m));
    }

    /// Writes the document to `path` atomically, readable by the workload
    /// (which may run as another user).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::io::write_atomic(path, &self.to_bytes(), 0o644)
    }
}
