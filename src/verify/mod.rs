//! Verifying a model against its signatures and a policy rule: the
//! signatures first, then every file, and every problem reported, not just
//! the first.
//!
//! [`verify`] returns `Result<Verified, Rejection>`: there is no boolean to
//! forget and no path that starts a model it did not check. A [`Verified`] is
//! only built after enough signatures verified with the rule's authorities,
//! the manifest parsed cleanly, and the model on disk matched it exactly.

pub mod artifact;
pub mod authenticate;
mod compare;
pub use compare::{BlobResources, KnownDigests};
mod problem;
mod signature;
pub mod tlog;
mod verdict;
pub use signature::{Origin, Signature, Via};
pub use verdict::Verdict;

use std::collections::BTreeSet;
use std::path::Path;

use crate::model::{self, Digest, IgnoreRules, ModelRoot, hashing};
use crate::oms::bundle::{self, Bundle};
use crate::oms::legacy;
use crate::oms::manifest::{Manifest, ManifestError};
use crate::policy::Rule;
pub use authenticate::Signer;
use authenticate::authenticate;
pub use problem::{Problem, Rejection};

/// What to verify, against what.
pub struct Request<'a> {
    /// The model folder or file.
    pub model: &'a Path,
    /// The signatures (Sigstore bundles); several for a k-of-n rule.
    pub signatures: &'a [Signature],
    /// The policy rule that applies to this model.
    pub rule: &'a Rule,
    /// More root-relative paths to exclude, besides the signed ones.
    pub extra_ignores: &'a [String],
    /// Tolerate files on disk that the signature does not list (the rule
    /// may allow it too).
    pub ignore_unsigned_files: bool,
    /// Hashing threads.
    pub workers: usize,
    /// Called with the number of bytes hashed, for a progress bar.
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// Whole-file SHA-256 digests already proven (by a pull), not hashed again.
    pub known_sha256: &'a KnownDigests,
    /// Parts of the model that are blobs, not files (see
    /// [`compare::Options::blob_resources`]).
    pub blob_resources: &'a BlobResources,
}

/// A signature that was read, and the hash of its bytes.
#[derive(Clone, Debug)]
pub struct SignatureFile {
    /// Where it came from.
    pub origin: Origin,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
}

/// A signature that verified, by whom, under which authority of the rule.
#[derive(Clone, Debug)]
pub struct AcceptedSignature {
    /// Where the signature came from.
    pub origin: Origin,
    /// Who signed.
    pub signer: Signer,
    /// The rule's authority that vouched for the signer.
    pub authority: String,
    /// The signature is over model_signing 0.2's encoding, not the DSSE PAE
    /// (accepted because the rule allows the legacy format).
    pub legacy_encoding: bool,
}

/// What is known about a verification so far; a measurement records it
/// whatever the verdict.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// The policy rule applied.
    pub rule: String,
    /// Every signature file read.
    pub signatures: Vec<SignatureFile>,
    /// The signed manifest, once a signature verified.
    pub manifest: Option<Manifest>,
    /// The signatures that verified and agree on the manifest.
    pub signers: Vec<AcceptedSignature>,
    /// Paths excluded from the comparison (signed and extra ignores).
    pub ignored: Vec<String>,
}

/// A model that matched its signatures, file for file, as the rule requires.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The policy rule applied.
    pub rule: String,
    /// The verified manifest: every resource and its digest.
    pub manifest: Manifest,
    /// Every signature file read.
    pub signatures: Vec<SignatureFile>,
    /// The signatures that counted, with their signers.
    pub signers: Vec<AcceptedSignature>,
    /// Signatures that did not verify but were not needed for the threshold.
    pub disregarded: Vec<String>,
    /// Paths excluded from the comparison.
    pub ignored: Vec<String>,
    /// Files present but unsigned, tolerated by `--ignore-unsigned-files`
    /// or the rule.
    pub unsigned_tolerated: Vec<String>,
}

/// Verifies `req.model` against `req.signatures` as `req.rule` requires.
pub fn verify(req: &Request<'_>) -> Result<Verified, Rejection> {
    let Signed {
        manifest,
        mut evidence,
        bad_signatures,
        mut problems,
    } = authenticate_all(req.signatures, req.rule)?;
    let unsigned = check_model(req, &manifest, &mut evidence, &mut problems);
    if !problems.is_empty() {
        evidence.manifest = Some(manifest);
        return Err(Rejection {
            problems,
            evidence: Box::new(evidence),
        });
    }
    Ok(Verified {
        rule: evidence.rule,
        manifest,
        signatures: evidence.signatures,
        signers: evidence.signers,
        disregarded: bad_signatures.iter().map(ToString::to_string).collect(),
        ignored: evidence.ignored,
        unsigned_tolerated: unsigned,
    })
}

/// One file of a model as a registry's manifest announces it, before any
/// byte is fetched: a raw layer's path, and its digest, which is the file's
/// SHA-256.
#[derive(Clone, Debug)]
pub struct AnnouncedFile {
    /// Model-relative path.
    pub path: String,
    /// The layer digest: the file's SHA-256.
    pub sha256: [u8; 32],
}

/// What can be decided before a download: the signatures against the rule
/// (who signed, the threshold, a pinned root digest), then the signed
/// `files`/`sha256` digests against the layers the registry announces. A
/// signed file whose layer has another digest is rejected here, before a
/// byte is fetched; so is a signed file with no layer when every layer is a
/// raw file (`complete`). Anything this cannot decide (tar layers, shards,
/// other hashes) is left to [`verify`] after the download, which checks
/// everything again. In a rule's warn mode nothing is decided early.
pub fn before_download(
    signatures: &[Signature],
    rule: &Rule,
    files: &[AnnouncedFile],
    complete: bool,
) -> Result<(), Rejection> {
    if rule.mode == crate::policy::Mode::Warn {
        return Ok(());
    }
    from_announced(signatures, rule, files, complete).map(|_| ())
}

/// What the signatures and a registry's manifest establish without a
/// download, whatever the rule's mode: the signatures against the rule,
/// then the signed `files`/`sha256` digests against the announced layers
/// (see [`before_download`]). On success, who signed and whether every
/// signed file could be compared (`complete` and a `files`/`sha256`
/// signature); admission decides from this.
pub fn from_announced(
    signatures: &[Signature],
    rule: &Rule,
    files: &[AnnouncedFile],
    complete: bool,
) -> Result<Announced, Rejection> {
    let Signed {
        manifest,
        mut evidence,
        mut problems,
        ..
    } = authenticate_all(signatures, rule)?;
    let serialization = &manifest.serialization;
    let comparable = serialization.method == model::Method::Files
        && serialization.hash == model::HashAlgorithm::Sha256;
    if comparable {
        let announced: std::collections::BTreeMap<&str, &[u8; 32]> =
            files.iter().map(|f| (f.path.as_str(), &f.sha256)).collect();
        for (key, signed) in &manifest.resources {
            match announced.get(key.path.as_str()) {
                Some(layer) if layer.as_slice() != signed.as_slice() => {
                    problems.push(Problem::LayerDiffers {
                        path: key.path.clone(),
                        expected: hex::encode(signed),
                        layer: hex::encode(layer),
                    });
                }
                None if complete => problems.push(Problem::Missing {
                    path: key.path.clone(),
                    expected: hex::encode(signed),
                }),
                _ => {}
            }
        }
    }
    if problems.is_empty() {
        return Ok(Announced {
            rule: evidence.rule,
            root_digest: manifest.root_digest,
            signers: evidence.signers,
            every_file_compared: comparable && complete,
        });
    }
    problems.sort_by(|a, b| a.path().cmp(&b.path()));
    evidence.manifest = Some(manifest);
    Err(Rejection {
        problems,
        evidence: Box::new(evidence),
    })
}

/// A model accepted from its manifest and signatures alone.
#[derive(Clone, Debug)]
pub struct Announced {
    /// The policy rule applied.
    pub rule: String,
    /// The signed root digest.
    pub root_digest: [u8; 32],
    /// The signatures that counted.
    pub signers: Vec<AcceptedSignature>,
    /// Every signed file was compared with its layer's digest (raw layers,
    /// a `files`/`sha256` signature); otherwise only the signatures were
    /// checked, and the rest is left to the gate in the pod.
    pub every_file_compared: bool,
}

/// The signatures, authenticated: the manifest they agree on, what was
/// established, the signatures not counted, and the rule's problems so far
/// (the threshold, a pinned root digest).
struct Signed {
    manifest: Manifest,
    evidence: Evidence,
    bad_signatures: Vec<Problem>,
    problems: Vec<Problem>,
}

/// Authenticates every signature against the rule; the first that verifies
/// sets the manifest, and the others count only if they sign the same one.
/// No signature verifying at all is a rejection.
fn authenticate_all(signatures: &[Signature], rule: &Rule) -> Result<Signed, Rejection> {
    let mut evidence = Evidence {
        rule: rule.name.clone(),
        ..Evidence::default()
    };
    let many = signatures.len() > 1;
    let mut accepted: Vec<(AcceptedSignature, Manifest)> = Vec::new();
    let mut bad_signatures: Vec<Problem> = Vec::new();
    for signature in signatures {
        match check_signature(signature, rule, &mut evidence) {
            Ok(found) => accepted.push(found),
            Err(Problem::Signature(why)) if many => {
                bad_signatures.push(Problem::Signature(format!("{}: {why}", signature.origin)));
            }
            Err(p) => bad_signatures.push(p),
        }
    }
    // Signatures count together only if they sign the same content as the
    // first one that verified.
    let mut accepted = accepted.into_iter();
    let Some((first, manifest)) = accepted.next() else {
        return Err(Rejection {
            problems: bad_signatures,
            evidence: Box::new(evidence),
        });
    };
    let first_origin = first.origin.to_string();
    evidence.signers.push(first);
    for (signature, m) in accepted {
        if m.root_digest == manifest.root_digest {
            evidence.signers.push(signature);
        } else {
            bad_signatures.push(Problem::Signature(format!(
                "{}: signs other model content (root {}) than {first_origin} (root {})",
                signature.origin,
                Digest(m.root_digest),
                Digest(manifest.root_digest)
            )));
        }
    }
    let mut problems = Vec::new();
    let authorities: BTreeSet<&str> = evidence
        .signers
        .iter()
        .map(|s| s.authority.as_str())
        .collect();
    if authorities.len() < rule.count {
        // The threshold failed, so the failed signatures matter: move them
        // into the verdict (the success path cannot be reached).
        problems.append(&mut bad_signatures);
        problems.push(Problem::Threshold {
            rule: rule.name.clone(),
            required: rule.count,
            verified: authorities.iter().map(|a| a.to_string()).collect(),
        });
    }
    if let Some(pinned) = rule.root_digest
        && pinned != manifest.root_digest
    {
        problems.push(Problem::PinnedDigest {
            expected: hex::encode(pinned),
            actual: hex::encode(manifest.root_digest),
        });
    }
    Ok(Signed {
        manifest,
        evidence,
        bad_signatures,
        problems,
    })
}

/// Compares the model on disk with the manifest and the rule's coverage
/// requirements; adds every problem; returns the unsigned files tolerated.
fn check_model(
    req: &Request<'_>,
    manifest: &Manifest,
    evidence: &mut Evidence,
    problems: &mut Vec<Problem>,
) -> Vec<String> {
    if manifest.resources.is_empty() {
        problems.push(Problem::EmptyManifest);
        return Vec::new();
    }
    let root = match ModelRoot::open(req.model) {
        Ok(root) => root,
        Err(e) => {
            problems.push(Problem::CouldNotCheck(e.to_string()));
            return Vec::new();
        }
    };
    let mut ignores: Vec<String> = manifest.serialization.ignore_paths.clone();
    ignores.extend(req.extra_ignores.iter().cloned());
    ignores.extend(
        req.signatures
            .iter()
            .filter_map(Signature::file)
            .filter_map(|s| model::paths::relative_inside(req.model, s)),
    );
    let rules = IgnoreRules::new(&ignores);
    evidence.ignored = rules.to_sorted_vec();
    let options = compare::Options {
        ignore_unsigned_files: req.ignore_unsigned_files || req.rule.allow_unsigned_files,
        workers: req.workers,
        progress: req.progress,
        known_sha256: req.known_sha256,
        blob_resources: req.blob_resources,
        hash_only: None,
    };
    against_rule(&options, &root, &rules, manifest, req.rule, problems)
}

/// Compares the opened model with the manifest, then the rule's coverage
/// requirements; adds every problem (sorted); returns the unsigned files
/// tolerated.
fn against_rule(
    options: &compare::Options<'_>,
    root: &ModelRoot,
    rules: &IgnoreRules,
    manifest: &Manifest,
    rule: &Rule,
    problems: &mut Vec<Problem>,
) -> Vec<String> {
    let (found, unsigned) = compare::compare(options, root, rules, manifest);
    problems.extend(found);
    let signed: Vec<&str> = manifest
        .resources
        .iter()
        .map(|(k, _)| k.path.as_str())
        .collect();
    for pattern in rule.uncovered(&signed) {
        problems.push(Problem::NotCovered {
            pattern: pattern.as_str().to_string(),
        });
    }
    // Tolerated unsigned files may not be ones the rule requires signed.
    let (required, tolerated): (Vec<String>, Vec<String>) = unsigned
        .into_iter()
        .partition(|p| rule.requires_signature(p));
    problems.extend(required.into_iter().map(|path| Problem::Extra { path }));
    problems.sort_by(|a, b| a.path().cmp(&b.path()));
    tolerated
}

/// A model that verified, to be checked again where it is (`modelgate
/// watch`): against the manifest that verified, with the same ignored paths,
/// the same rule and the same tolerance for unsigned files. The signatures
/// are not read again: they were proven once and cannot have changed in
/// the [`Verified`] held in memory.
pub struct Recheck<'a> {
    /// The model folder, opened again by the caller's path (the path may
    /// now lead somewhere else: that is what is checked).
    pub model: &'a Path,
    /// What verified.
    pub verified: &'a Verified,
    /// The rule it verified under.
    pub rule: &'a Rule,
    /// Whether unsigned files were tolerated by the settings (the rule's
    /// own tolerance is taken from `rule`).
    pub ignore_unsigned_files: bool,
    /// Hashing threads.
    pub workers: usize,
    /// Called with the number of bytes hashed (a budget may sleep in it).
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// Hash only these files; `None`: every file.
    pub hash_only: Option<&'a BTreeSet<String>>,
}

/// Checks a verified model again: every problem found now, sorted (none:
/// the model on disk is still exactly what was signed).
pub fn recheck(req: &Recheck<'_>) -> Vec<Problem> {
    let root = match ModelRoot::open(req.model) {
        Ok(root) => root,
        Err(e) => return vec![Problem::CouldNotCheck(e.to_string())],
    };
    let rules = IgnoreRules::new(&req.verified.ignored);
    let known = KnownDigests::new();
    let blobs = BlobResources::new();
    let options = compare::Options {
        ignore_unsigned_files: req.ignore_unsigned_files || req.rule.allow_unsigned_files,
        workers: req.workers,
        progress: req.progress,
        known_sha256: &known,
        blob_resources: &blobs,
        hash_only: req.hash_only,
    };
    let mut problems = Vec::new();
    against_rule(
        &options,
        &root,
        &rules,
        &req.verified.manifest,
        req.rule,
        &mut problems,
    );
    problems
}

/// Reads one bundle, checks its signature against the rule's authorities
/// (the first that accepts it vouches for it), and only then parses the
/// manifest from the exact signed bytes.
fn check_signature(
    signature: &Signature,
    rule: &Rule,
    evidence: &mut Evidence,
) -> Result<(AcceptedSignature, Manifest), Problem> {
    let bytes = signature
        .bytes
        .as_deref()
        .map_err(|e| Problem::CouldNotCheck(e.to_string()))?;
    evidence.signatures.push(SignatureFile {
        origin: signature.origin.clone(),
        sha256: hex::encode(hashing::sha256(bytes)),
    });
    // Large buffers (file bytes, bundle, PAE) are dropped as soon as they are
    // used: a 10,000-file signature is a few MB in each form.
    let bundle = Bundle::from_json(bytes).map_err(|e| Problem::Signature(e.to_string()))?;
    let signed = bundle
        .signed_payload()
        .map_err(|e| Problem::Signature(e.to_string()))?;
    let pae = bundle::pae(&signed.payload_type, &signed.payload);
    let mut refusals = Vec::new();
    let mut vouched = None;
    for authority in &rule.authorities {
        let allow_legacy = rule.allow_legacy_format;
        match authenticate(
            &authority.trust,
            bytes,
            &bundle,
            &signed,
            &pae,
            allow_legacy,
        ) {
            Ok(found) => {
                vouched = Some((found, authority.name.clone()));
                break;
            }
            Err(why) => refusals.push((authority.name.as_str(), why)),
        }
    }
    drop((bundle, pae));
    let (found, authority) = vouched.ok_or_else(|| {
        Problem::Signature(match refusals.as_slice() {
            [(_, why)] => why.to_string(),
            all => {
                let each: Vec<String> = all
                    .iter()
                    .map(|(name, why)| format!("{name}: {why}"))
                    .collect();
                format!(
                    "no authority of rule {} accepts it ({})",
                    rule.name,
                    each.join("; ")
                )
            }
        })
    })?;
    if signed.payload_type != bundle::IN_TOTO_PAYLOAD_TYPE {
        return Err(Problem::Signature(format!(
            "the payload type is {:?}, expected {}",
            signed.payload_type,
            bundle::IN_TOTO_PAYLOAD_TYPE
        )));
    }
    let manifest = match Manifest::from_statement(&signed.payload) {
        Err(ManifestError::LegacyFormat { .. }) if rule.allow_legacy_format => {
            legacy::manifest_from_legacy_statement(&signed.payload)
        }
        parsed => parsed,
    }
    .map_err(|e| Problem::Signature(e.to_string()))?;
    Ok((
        AcceptedSignature {
            origin: signature.origin.clone(),
            signer: found.signer,
            authority,
            legacy_encoding: found.legacy_encoding,
        },
        manifest,
    ))
}
