//! `modelgate verify`: policy, verification, the verdict, the measurement.

use tracing::{error, info, warn};

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::abort;
use super::args::{CheckArgs, PullArgs, RegistryArgs, VerifyArgs};
use super::{
    EXIT_ERROR, EXIT_OK, EXIT_REJECTED, Progress, load_certificates, model_relative, read_pem,
};
use crate::Error;
use crate::measure::{FoundOut, Measurement, PolicyOut, SourceOut, log};
use crate::model::paths;
use crate::oci::discover::Discovered;
use crate::oci::layout::Unpack;
use crate::oci::{self, ModelArtifact, ModelRef, OciError, PullOptions};
use crate::oms::legacy::RE_SIGN_ADVICE;
use crate::oms::manifest::Format;
use crate::policy::{Mode, Policy, Rule};
use crate::trust::sigstore::Keyless;
use crate::trust::{PublicKey, TrustedMaterial};
use crate::verify::{
    self, AnnouncedFile, BlobResources, Evidence, KnownDigests, Problem, Rejection, Request,
};

/// Where the model under verification is, and how to name it.
struct Subject {
    /// What logs and the measurement call the model (its path, or the
    /// reference and then the destination for a pull).
    shown: PathBuf,
    /// Where its files are now.
    files: PathBuf,
    /// Where it came from, for a model pulled from a registry.
    source: Option<Source>,
    /// File digests proven while pulling, not hashed again.
    known: KnownDigests,
    /// Blobs of the model that are not files (a pulled artifact's config).
    blobs: BlobResources,
}

/// Verifies a model given as a path or an `oci://` reference.
pub(super) fn verify_cmd(args: &VerifyArgs, workers: usize, progress: &Progress) -> i32 {
    if ModelRef::is_oci(&args.model) {
        return pull_and_verify(
            &args.model,
            None,
            &args.check,
            &args.registry,
            workers,
            progress,
        );
    }
    verify_in_place(Path::new(&args.model), &args.check, workers, progress)
}

/// Verifies a model folder (or file) where it is.
pub(super) fn verify_in_place(
    path: &Path,
    checks: &CheckArgs,
    workers: usize,
    progress: &Progress,
) -> i32 {
    if checks.signature.is_empty() {
        error!(
            exit_code = EXIT_ERROR,
            "--signature is required for a model on disk (only an oci:// model can find its signatures in the registry)"
        );
        return EXIT_ERROR;
    }
    let subject = Subject {
        shown: path.to_path_buf(),
        files: path.to_path_buf(),
        source: None,
        known: KnownDigests::new(),
        blobs: BlobResources::new(),
    };
    let policy = load_policy(checks);
    check(
        &subject,
        checks,
        policy,
        &checks.signature,
        workers,
        progress,
    )
}

/// Pulls a model into a temporary folder beside its destination, verifies
/// it there, and renames it into place only once verified.
pub(super) fn pull_cmd(args: &PullArgs, workers: usize, progress: &Progress) -> i32 {
    pull_and_verify(
        &args.reference,
        Some(&args.destination),
        &args.check,
        &args.registry,
        workers,
        progress,
    )
}

/// The pull, the verification and, for a destination, the rename. The
/// temporary folder is removed on every path that does not end in the
/// rename, so the destination never holds an unverified or partial model.
pub(super) fn pull_and_verify(
    reference: &str,
    destination: Option<&Path>,
    checks: &CheckArgs,
    registry: &RegistryArgs,
    workers: usize,
    progress: &Progress,
) -> i32 {
    let shown = PathBuf::from(reference);
    let fail = |code: i32, message: String, source: Option<Source>| {
        error!(exit_code = code, model = %reference, "{message}; do not start the workload");
        let verdict = if code == EXIT_ERROR {
            "error"
        } else {
            "rejected"
        };
        record(checks, || {
            let doc = Measurement::failed(&shown, verdict, message.clone());
            match &source {
                Some(s) => doc.with_source(s.out()),
                None => doc,
            }
        });
        code
    };
    let model_ref = match ModelRef::parse(reference) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_ERROR, e.to_string(), None),
    };
    // The policy is read once: it decides before any request, and then
    // verifies what was pulled.
    let policy = match load_policy(checks) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_ERROR, e.to_string(), None),
    };
    if let Err(why) = before_any_request(&model_ref, checks, &policy) {
        return fail(EXIT_REJECTED, why, None);
    }
    let place = match Placement::prepare(destination) {
        Ok(place) => place,
        Err(why) => return fail(EXIT_ERROR, why, None),
    };
    let (staging, found_dir) = (&place.staging, &place.signatures);
    let options = registry.options();
    let pull = PullOptions {
        concurrency: usize::try_from(registry.concurrency).unwrap_or(4),
        retries: 3,
        watch: progress,
        scratch: place.blobs.path(),
    };
    let timeout = registry.timeout.map(Duration::from_secs);
    info!(model = %model_ref, "pulling");
    let discover = checks.signature.is_empty();
    let model_name = checks
        .model_name
        .clone()
        .unwrap_or_else(|| model_ref.model_name().to_string());
    let rule = policy.select(&model_name, Some(&model_ref.name())).ok();
    // Decided once the manifest and the signatures are known, before any
    // blob is fetched: where the model came from, which signatures to
    // check, and a verdict reached without downloading.
    let mut source: Option<Source> = None;
    let mut signatures: Vec<PathBuf> = checks.signature.clone();
    let mut early: Option<Early> = None;
    let mut before_download = |digest: &str,
                               artifact: &ModelArtifact,
                               discovered: &[Discovered]|
     -> Result<(), OciError> {
        let found = source.insert(Source {
            reference: model_ref.to_string(),
            repository: model_ref.name(),
            name: model_ref.model_name().to_string(),
            digest: digest.to_string(),
            layout: artifact.layout.name(),
            found: Vec::new(),
        });
        if discover {
            if discovered.is_empty() {
                let message = format!(
                    "{model_ref} ({digest}): no signature in the registry: no referrer with artifactType {} (referrers API, or the tag {}) and no cosign tag {}.sig or .att; attach one (modelgate push does), or pass --signature",
                    crate::oms::bundle::BUNDLE_MEDIA_TYPE_V03,
                    digest.replace(':', "-"),
                    digest.replace(':', "-"),
                );
                early = Some(Early::NoSignature(message));
                return Err(OciError::Content("no signature".into()));
            }
            for (i, candidate) in discovered.iter().enumerate() {
                let path = found_dir
                    .path()
                    .join(format!("signature-{i}.sigstore.json"));
                std::fs::write(&path, &candidate.bundle).map_err(|e| {
                    OciError::Usage(format!(
                        "cannot keep the signature found at {}: {e}",
                        candidate.origin
                    ))
                })?;
                info!(signature = %candidate.origin, via = candidate.via, file = %path.display(), "signature found in the registry");
                found.found.push(FoundOut {
                    file: path.display().to_string(),
                    reference: candidate.origin.clone(),
                    via: candidate.via,
                });
                signatures.push(path);
            }
        }
        let Some(rule) = rule else {
            return Ok(()); // no rule applies: reported after the pull
        };
        let files: Vec<AnnouncedFile> = artifact
            .layers
            .iter()
            .filter_map(|layer| match &layer.unpack {
                Unpack::Raw(path) => Some(AnnouncedFile {
                    path: path.clone(),
                    sha256: layer_sha256(&layer.digest)?,
                }),
                Unpack::Tar { .. } => None,
            })
            .chain(
                config_blob(artifact)
                    .into_iter()
                    .map(|(path, sha256)| AnnouncedFile { path, sha256 }),
            )
            .collect();
        let complete = artifact
            .layers
            .iter()
            .all(|l| matches!(l.unpack, Unpack::Raw(_)))
            && checks.ignore_paths.is_empty();
        verify::before_download(&signatures, rule, &files, complete).map_err(|rejection| {
            early = Some(Early::Rejected(rejection));
            OciError::Content("rejected before download".into())
        })
    };
    let pulled = oci::pull_into(
        &model_ref,
        &options,
        staging.path(),
        &pull,
        timeout,
        discover,
        &mut before_download,
    );
    let pulled = match (pulled, early) {
        (Ok(p), _) => p,
        (Err(_), Some(Early::NoSignature(message))) => {
            return fail(EXIT_REJECTED, message, source);
        }
        (Err(_), Some(Early::Rejected(rejection))) => {
            let (Some(rule), Some(source)) = (rule, source) else {
                return EXIT_ERROR;
            };
            let subject = Subject {
                shown: destination.map_or_else(|| shown.clone(), Path::to_path_buf),
                files: staging.path().to_path_buf(),
                source: Some(source),
                known: KnownDigests::new(),
                blobs: BlobResources::new(),
            };
            info!(model = %model_ref, "rejected from the manifest and the signatures: nothing was downloaded");
            let ctx = Ctx {
                args: checks,
                subject: &subject,
            };
            return ctx.reject(&rejection, Some((rule.mode, decided(&policy, rule))));
        }
        (Err(e), None) => return fail(e.exit_code(), e.to_string(), source),
    };
    progress.finish();
    info!(
        model = %model_ref,
        digest = %pulled.digest,
        layout = pulled.artifact.layout.name(),
        layers = pulled.artifact.layers.len(),
        credential = %pulled.credential,
        step = "fetch",
        "pulled"
    );
    let Some(source) = source else {
        return fail(EXIT_ERROR, "the pull ended without a manifest".into(), None);
    };
    let subject = Subject {
        shown: destination.map_or_else(|| shown.clone(), Path::to_path_buf),
        files: staging.path().to_path_buf(),
        source: Some(source),
        known: pulled.known.clone(),
        blobs: config_blob(&pulled.artifact),
    };
    let code = check(&subject, checks, Ok(policy), &signatures, workers, progress);
    let Some(dest) = destination else {
        return code;
    };
    if code != EXIT_OK {
        // The temporary folder goes with `staging`; the destination was
        // never touched.
        return code;
    }
    match abort::commit(|| place.put_in_place(dest)) {
        Err(e) => {
            let source = subject.source.clone();
            fail(
                EXIT_ERROR,
                format!(
                    "the model verified, but cannot be moved into place at {}: {e}",
                    dest.display()
                ),
                source,
            )
        }
        Ok(()) => {
            info!(model = %model_ref, destination = %dest.display(), "in place");
            EXIT_OK
        }
    }
}

/// A mounted folder copied to `dest` (KServe handing a folder URI with a
/// mount path): copied into a temporary folder, verified there, then put in
/// place as a pull is. Symbolic links are copied as links (the signature
/// decides whether any may exist); anything but files, folders and links is
/// refused.
pub(super) fn copy_and_verify(
    from: &Path,
    dest: &Path,
    checks: &CheckArgs,
    workers: usize,
    progress: &Progress,
) -> i32 {
    let fail = |message: String| {
        error!(exit_code = EXIT_ERROR, model = %from.display(), "{message}; do not start the workload");
        record(checks, || {
            Measurement::failed(dest, "error", message.clone())
        });
        EXIT_ERROR
    };
    let place = match Placement::prepare(Some(dest)) {
        Ok(place) => place,
        Err(why) => return fail(why),
    };
    if let Err(e) = copy_tree(from, place.staging.path()) {
        return fail(format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            dest.display()
        ));
    }
    info!(model = %from.display(), "copied; verifying the copy");
    let subject = Subject {
        shown: dest.to_path_buf(),
        files: place.staging.path().to_path_buf(),
        source: None,
        known: KnownDigests::new(),
        blobs: BlobResources::new(),
    };
    let code = check(
        &subject,
        checks,
        load_policy(checks),
        &checks.signature,
        workers,
        progress,
    );
    if code != EXIT_OK {
        return code;
    }
    match abort::commit(|| place.put_in_place(dest)) {
        Err(e) => fail(format!(
            "the model verified, but cannot be moved into place at {}: {e}",
            dest.display()
        )),
        Ok(()) => {
            info!(destination = %dest.display(), "in place");
            EXIT_OK
        }
    }
}

/// Copies the tree at `from` into the existing empty folder `to`, never
/// following a link.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if kind.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            let mut input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&src)?;
            let mut output = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&dst)?;
            std::io::copy(&mut input, &mut output)?;
            output.sync_all()?;
        } else {
            return Err(std::io::Error::other(format!(
                "{} is not a file, folder or symbolic link",
                src.display()
            )));
        }
    }
    Ok(())
}

/// Marks a target being filled in place; an earlier run that left it is
/// cleared by the next one.
const INCOMPLETE: &str = ".modelgate-incomplete";

/// Where a pull is staged: a temporary folder beside the destination, which
/// is renamed into place; or, when the destination is an empty mount point
/// whose parent cannot be written (an emptyDir at `/mnt/models` under a
/// read-only root, KServe's layout), a temporary folder inside it, whose
/// entries are moved up once verified, with a marker file until they all are.
struct Placement {
    staging: tempfile::TempDir,
    signatures: tempfile::TempDir,
    /// Tar layers until their digest is proven.
    blobs: tempfile::TempDir,
    /// For a pull inside the destination: its marker, removed when the
    /// placement ends either way (left only by a killed run).
    marker: Option<Marker>,
}

/// The marker file of a destination filled in place.
struct Marker(PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Placement {
    fn prepare(destination: Option<&Path>) -> Result<Self, String> {
        let Some(dest) = destination else {
            let parent = std::env::temp_dir();
            return Self::in_folder(&parent);
        };
        let parent = prepare_destination(dest)?;
        match Self::in_folder(&parent) {
            Ok(place) => Ok(place),
            Err(beside) if dest.is_dir() => {
                let marker = dest.join(INCOMPLETE);
                crate::io::write_atomic(&marker, b"", 0o644).map_err(|e| {
                    format!(
                        "{beside}; and cannot write in the destination {} either: {e}",
                        dest.display()
                    )
                })?;
                let marker = Marker(marker);
                let mut place = Self::in_folder(dest)?;
                place.marker = Some(marker);
                Ok(place)
            }
            Err(beside) => Err(beside),
        }
    }

    fn in_folder(folder: &Path) -> Result<Self, String> {
        let staging = temp_dir_in(folder, ".modelgate-pull-")?;
        abort::register(staging.path().to_path_buf());
        // Signatures found in the registry go to a folder of their own
        // (never inside the model), removed with it.
        let signatures = temp_dir_in(folder, ".modelgate-signatures-")?;
        abort::register(signatures.path().to_path_buf());
        let blobs = temp_dir_in(folder, ".modelgate-blobs-")?;
        abort::register(blobs.path().to_path_buf());
        Ok(Self {
            staging,
            signatures,
            blobs,
            marker: None,
        })
    }

    /// Puts the verified model at `dest`.
    fn put_in_place(self, dest: &Path) -> std::io::Result<()> {
        let Self {
            staging,
            signatures,
            blobs,
            marker,
        } = self;
        drop((signatures, blobs));
        let staged = staging.keep();
        let Some(marker) = marker else {
            let renamed = std::fs::rename(&staged, dest);
            if renamed.is_err() {
                let _ = std::fs::remove_dir_all(&staged);
            }
            return renamed;
        };
        let moved = (|| {
            for entry in std::fs::read_dir(&staged)? {
                let entry = entry?;
                if entry.file_name() == INCOMPLETE {
                    return Err(std::io::Error::other(format!(
                        "the model has a file named {INCOMPLETE}, the marker of a target filled in place; rename it"
                    )));
                }
                std::fs::rename(entry.path(), dest.join(entry.file_name()))?;
            }
            std::fs::remove_dir(&staged)
        })();
        if moved.is_err() && clear_folder(dest).is_err() {
            // Not cleared: the marker stays, so the next run clears it.
            std::mem::forget(marker);
            let _ = std::fs::remove_dir_all(&staged);
            return moved;
        }
        let _ = std::fs::remove_dir_all(&staged);
        drop(marker);
        moved
    }
}

/// Removes everything inside `folder`, not the folder.
fn clear_folder(folder: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// What the policy says about a registry reference before anything is
/// fetched: `spec.allowedRegistries`, and a rule's `requireDigest`.
fn before_any_request(
    model_ref: &ModelRef,
    checks: &CheckArgs,
    policy: &Policy,
) -> Result<(), String> {
    model_ref
        .check_allowed(&policy.allowed_registries)
        .map_err(|e| format!("{e} (policy {}, spec.allowedRegistries)", policy.name))?;
    let name = checks
        .model_name
        .as_deref()
        .unwrap_or_else(|| model_ref.model_name());
    if let Ok(rule) = policy.select(name, Some(&model_ref.name()))
        && rule.require_digest
    {
        model_ref
            .check_digest_required(&rule.name)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A new private folder in `parent`, removed when dropped.
fn temp_dir_in(parent: &Path, prefix: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|e| {
            format!(
                "cannot make a temporary folder in {}: {e}",
                parent.display()
            )
        })
}

/// The destination's parent, once the destination is known to be absent or
/// an empty folder (which the rename replaces).
fn prepare_destination(dest: &Path) -> Result<PathBuf, String> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot use destination {}: {e}", dest.display())),
        Ok(meta) if meta.is_dir() => {
            if dest.join(INCOMPLETE).exists() {
                tracing::warn!(destination = %dest.display(), "clearing an incomplete model an earlier run left (it was killed while putting the model in place)");
                clear_folder(dest).map_err(|e| format!("cannot clear {}: {e}", dest.display()))?;
            }
            let mut entries = std::fs::read_dir(dest)
                .map_err(|e| format!("cannot read destination {}: {e}", dest.display()))?;
            if entries.next().is_some() {
                return Err(format!(
                    "destination {} exists and is not empty; pull into a new or empty folder",
                    dest.display()
                ));
            }
        }
        Ok(_) => {
            return Err(format!(
                "destination {} exists and is not a folder",
                dest.display()
            ));
        }
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    std::path::absolute(parent).map_err(|e| format!("cannot resolve {}: {e}", parent.display()))
}

/// Where a pulled model came from, for the measurement.
#[derive(Clone, Debug)]
struct Source {
    reference: String,
    repository: String,
    name: String,
    digest: String,
    layout: &'static str,
    found: Vec<FoundOut>,
}

impl Source {
    fn out(&self) -> SourceOut<'_> {
        SourceOut {
            reference: &self.reference,
            digest: &self.digest,
            layout: self.layout,
            signatures_found: &self.found,
        }
    }
}

/// Verifies the model's files; writes the measurement whatever the verdict.
fn check(
    subject: &Subject,
    args: &CheckArgs,
    policy: Result<Policy, Error>,
    signatures: &[PathBuf],
    workers: usize,
    progress: &Progress,
) -> i32 {
    let ctx = Ctx { args, subject };
    let prepared = policy.and_then(|policy| {
        let ignores = args
            .ignore_paths
            .iter()
            .map(|p| model_relative(&subject.files, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((policy, ignores))
    });
    let (policy, extra_ignores) = match prepared {
        Ok(v) => v,
        Err(e) => {
            error!(exit_code = EXIT_ERROR, "{e}");
            ctx.record(|| Measurement::error(&subject.shown, e.to_string()));
            return EXIT_ERROR;
        }
    };
    let model_name = args
        .model_name
        .clone()
        .unwrap_or_else(|| match &subject.source {
            Some(s) => s.name.clone(),
            None => paths::display_name(&subject.files),
        });
    let repository = subject.source.as_ref().map(|s| s.repository.as_str());
    let rule = match policy.select(&model_name, repository) {
        Ok(rule) => rule,
        Err(why) => {
            let rejection = Rejection::new(Problem::Policy(why), Evidence::default());
            return ctx.reject(&rejection, None);
        }
    };
    let decided = || decided(&policy, rule);
    let progress_fn = |n| progress.inc(n);
    let request = Request {
        model: &subject.files,
        signatures,
        rule,
        extra_ignores: &extra_ignores,
        ignore_unsigned_files: args.ignore_unsigned_files,
        workers,
        progress: &progress_fn,
        known_sha256: &subject.known,
        blob_resources: &subject.blobs,
    };
    let result = verify::verify(&request);
    progress.finish();
    let shown = &subject.shown;
    match result {
        Ok(verified) => {
            for path in &verified.unsigned_tolerated {
                warn!(path = %path, "unsigned file tolerated");
            }
            for why in &verified.disregarded {
                warn!("signature not counted: {why}");
            }
            if verified.manifest.format == Format::Legacy
                || verified.signers.iter().any(|s| s.legacy_encoding)
            {
                warn!(
                    rule = %verified.rule,
                    "the signature is in the pre-1.0 format (model_signing 0.2), accepted because the legacy format is allowed; {}",
                    RE_SIGN_ADVICE.split(';').next().unwrap_or_default()
                );
            }
            if ctx.record(|| Measurement::verified(shown, &verified).with_policy(decided()))
                != EXIT_OK
            {
                // The files matched, but the verdict could not be recorded:
                // never report "verified" alongside a non-zero exit.
                error!(exit_code = EXIT_ERROR, model = %shown.display(), "the model matched its signature, but its measurement could not be written; do not start the workload");
                return EXIT_ERROR;
            }
            let signers: Vec<String> = verified
                .signers
                .iter()
                .map(|s| format!("{} [{}]", s.signer.describe(), s.authority))
                .collect();
            info!(
                model = %shown.display(),
                root_digest = %format!("sha256:{}", hex::encode(verified.manifest.root_digest)),
                resources = verified.manifest.resources.len(),
                rule = %verified.rule,
                signer = %signers.join("; "),
                step = "verify",
                "verified"
            );
            EXIT_OK
        }
        Err(rejection) => ctx.reject(&rejection, Some((rule.mode, decided()))),
    }
}

/// What the policy decided, for the measurement.
fn decided<'p>(policy: &'p Policy, rule: &'p Rule) -> PolicyOut<'p> {
    PolicyOut {
        name: &policy.name,
        rule: &rule.name,
        mode: if rule.mode == Mode::Warn {
            "warn"
        } else {
            "enforce"
        },
        allow_legacy_format: rule.allow_legacy_format,
    }
}

/// A pull stopped before its download.
enum Early {
    /// The registry holds no signature for the model.
    NoSignature(String),
    /// The signatures, checked against the manifest, reject it.
    Rejected(Rejection),
}

/// The artifact's config blob as the resource `config.json`, the name a
/// signature over the OCI manifest (model-transparency-go) gives it, when no
/// layer is a file of that name (a layer titled `config.json` replaces the
/// config in such a signature, as it does on disk). Only for an artifact of
/// raw files, the kind such a signature describes: a tar layer may hold a
/// `config.json` of its own.
fn config_blob(artifact: &ModelArtifact) -> BlobResources {
    let mut blobs = BlobResources::new();
    let all_raw = artifact
        .layers
        .iter()
        .all(|l| matches!(l.unpack, Unpack::Raw(_)));
    let named = artifact
        .layers
        .iter()
        .any(|l| matches!(&l.unpack, Unpack::Raw(p) if p == "config.json"));
    if all_raw
        && !named
        && let Some(digest) = layer_sha256(&artifact.config)
    {
        blobs.insert("config.json".into(), digest);
    }
    blobs
}

/// `sha256:<hex>` as 32 bytes.
fn layer_sha256(digest: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(digest.strip_prefix("sha256:")?).ok()?;
    <[u8; 32]>::try_from(bytes).ok()
}

/// The options and the subject, for reporting.
struct Ctx<'a> {
    args: &'a CheckArgs,
    subject: &'a Subject,
}

impl Ctx<'_> {
    fn record<'m>(&self, doc: impl FnOnce() -> Measurement<'m>) -> i32 {
        let source = self.subject.source.as_ref();
        record(self.args, || {
            let doc = doc();
            match source {
                Some(s) => doc.with_source(s.out()),
                None => doc,
            }
        })
    }

    /// Reports a rejection: every problem, the measurement, the exit code. In a
    /// rule's warn mode the model may start: the verdict is `unverified-allowed`
    /// and the failure is logged as loudly as an enforced one.
    fn reject(&self, rejection: &Rejection, policy: Option<(Mode, PolicyOut<'_>)>) -> i32 {
        let shown = &self.subject.shown;
        for problem in &rejection.problems {
            error!(kind = problem.kind(), path = problem.path(), "{problem}");
        }
        let code = rejection.exit_code();
        match policy {
            Some((Mode::Warn, decided)) => {
                let rule = decided.rule.to_string();
                let written = self.record(|| {
                    Measurement::rejected(shown, rejection)
                        .with_policy(decided)
                        .allowed_by_warn_mode()
                });
                error!(
                    exit_code = written,
                    model = %shown.display(),
                    rule = %rule,
                    "{}; POLICY RULE {rule} IS IN WARN MODE: the workload is allowed to start UNVERIFIED (enforce mode would exit {code})",
                    rejection.summary()
                );
                written
            }
            decided => {
                self.record(|| {
                    let doc = Measurement::rejected(shown, rejection);
                    match decided {
                        Some((_, d)) => doc.with_policy(d),
                        None => doc,
                    }
                });
                error!(exit_code = code, model = %shown.display(), "{}; do not start the workload", rejection.summary());
                code
            }
        }
    }
}

/// Writes the measurement if one was asked for. A verified model whose
/// measurement cannot be written is not reported as verified. Under `init`
/// the document also carries the pod and node facts, an entry goes to the
/// measurement log, and a summary to the termination message.
fn record<'a>(args: &CheckArgs, doc: impl FnOnce() -> Measurement<'a>) -> i32 {
    let Some(path) = &args.measurement else {
        return EXIT_OK;
    };
    let context = args.context.as_deref();
    let doc = doc();
    let doc = match context {
        Some(c) => doc.with_context(c.pod.as_ref(), c.node.as_ref()),
        None => doc,
    };
    let bytes = doc.to_bytes();
    // Never after an abort's own record (deadline, SIGTERM).
    abort::unless_aborted(|| write_measurement(path, &bytes, context))
}

/// Writes a measurement's bytes, then (with a context) its log entry and
/// termination message. Any failure to record removes the document: never
/// an older or unlogged "verified" left behind.
pub(super) fn write_measurement(
    path: &Path,
    bytes: &[u8],
    context: Option<&crate::measure::RunContext>,
) -> i32 {
    if let Err(e) = crate::io::write_atomic(path, bytes, 0o644) {
        error!(path = %path.display(), "cannot write measurement: {e}");
        let _ = std::fs::remove_file(path);
        return EXIT_ERROR;
    }
    info!(path = %path.display(), step = "measurement", "measurement written");
    let Some(context) = context else {
        return EXIT_OK;
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let mut code = EXIT_OK;
    if let Some(log) = &context.measurement_log {
        match log::append(log, &log::entry_for(&value, bytes)) {
            Ok(chain) => info!(log = %log.display(), chain = %chain, "measurement log appended"),
            Err(e) => {
                error!("{e}; the run is not reported as verified");
                let _ = std::fs::remove_file(path);
                code = EXIT_ERROR;
            }
        }
    }
    if let Some(file) = &context.termination_log {
        let mut message = log::termination_message(&value);
        if code != EXIT_OK {
            message = log::cut(
                format!(
                    "modelgate: error: the measurement log could not be appended to\n{message}"
                ),
                log::MAX_TERMINATION_BYTES,
            );
        }
        if let Err(e) = std::fs::write(file, message) {
            warn!(path = %file.display(), "cannot write the termination message: {e}");
        }
    }
    code
}

/// The policy `verify` applies: the `--policy` file, or the trust flags as
/// a policy of one rule.
pub(super) fn load_policy(args: &CheckArgs) -> Result<Policy, Error> {
    match &args.policy {
        Some(path) => Policy::from_file(path).map_err(|e| Error::Usage(e.to_string())),
        None => load_trust(args).map(|trust| {
            let mut policy = Policy::single(trust);
            for rule in &mut policy.rules {
                rule.allow_legacy_format = args.allow_legacy_format;
            }
            policy
        }),
    }
}

/// The trusted material the command-line flags give: keys, certificate
/// anchors, or a keyless identity.
fn load_trust(args: &CheckArgs) -> Result<TrustedMaterial, Error> {
    if args.keyless.given() {
        let identities = vec![args.keyless.identity()?];
        let root = args.keyless.root()?;
        return Ok(TrustedMaterial::Sigstore(Box::new(Keyless {
            root,
            identities,
        })));
    }
    if !args.certificate_chain.is_empty() {
        let anchors = load_certificates("certificate chain", &args.certificate_chain)?;
        return Ok(TrustedMaterial::Certificates {
            anchors,
            allow_expired: args.allow_expired_certificate,
        });
    }
    let keys = args
        .key
        .iter()
        .map(|path| {
            let pem = read_pem("public key", path)?;
            PublicKey::from_pem(&pem).map_err(|source| Error::Key {
                path: path.clone(),
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    let transparency = match &args.keyless.trusted_root {
        Some(_) => Some(Box::new(args.keyless.root()?)),
        None => None,
    };
    Ok(TrustedMaterial::Keys { keys, transparency })
}
