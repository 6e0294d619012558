//! One verification run as a library: every front end (the command line,
//! `init`, and next the admission webhook and the watch sidecar) turns its
//! input into [`Settings`] and a [`Source`], calls [`run`], and presents the
//! [`Outcome`].
//!
//! A run stages the model ([`stage`]), pulls it when it is in a registry
//! (deciding from the manifest and the signatures, before any blob, whether
//! it can be accepted at all), verifies every file, records the measurement
//! through a [`Recorder`], and only then places the model. A [`Cancel`]
//! handle, owned by the run, lets a deadline or a signal end it with nothing
//! placed.

pub mod admit;
mod cancel;
mod error;
mod keyless;
mod record;
mod settings;
pub mod sign;
mod stage;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{error, info, warn};

pub use cancel::{Cancel, Cancelled};
pub use error::{Error, SettingsError};
pub use record::{Both, Display, MeasurementFile, Quiet, RecordError, Recorder};
pub use settings::{Naming, Setting, Settings, Spec, load_certificates, read_pem, trusted_root};
pub use stage::{INCOMPLETE, StageError};

use crate::io::{MAX_SIGNATURE_BYTES, read_bounded};
use crate::measure::{FoundOut, Measurement, PolicyOut, SourceOut, Summary};
use crate::model::paths::{self, normalize_relative};
use crate::oci::layout::Unpack;
use crate::oci::{self, ModelArtifact, ModelRef, PullOptions, RefError};
use crate::oms::legacy::RE_SIGN_ADVICE;
use crate::oms::manifest::Format;
use crate::policy::{Mode, Policy, Rule};
use crate::verify::{
    self, AnnouncedFile, BlobResources, Evidence, KnownDigests, Origin, Problem, Rejection,
    Signature, Verdict, Verified,
};

/// Where the model is.
#[derive(Clone, Debug)]
pub enum Source {
    /// A folder (or a single file) verified where it is: a PVC, an image
    /// volume, a folder given by hand.
    InPlace(PathBuf),
    /// A folder verified where it is, read through another path than the
    /// one it is known by (`watch`'s modelcar: opened below
    /// `/proc/<pid>/root`, read as `/proc/self/fd/N`).
    InPlaceAs {
        /// The path its files are read through.
        files: PathBuf,
        /// What logs and the measurement call it.
        shown: PathBuf,
    },
    /// A mounted folder copied to `to`, verified there, then put in place
    /// (KServe handing a folder URI with a mount path).
    Copy {
        /// The folder copied.
        from: PathBuf,
        /// The empty destination.
        to: PathBuf,
    },
    /// A registry reference (`oci://...`, as given), pulled into `to`, or
    /// into a temporary folder that is only verified and then removed.
    Oci {
        /// The reference as the user wrote it.
        reference: String,
        /// The destination, if the model is to be kept.
        to: Option<PathBuf>,
    },
}

/// How a run ended: the verdict, and what its measurement says (the same
/// document the recorder was given, less what a recorder adds).
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// The measurement's summary.
    pub measurement: Summary,
    /// What was proven, when the model verified: kept by a front end that
    /// checks the same model again (`watch`, through [`recheck`]).
    pub proven: Option<Arc<Proven>>,
}

/// A model that verified: the manifest and what it was checked with, and
/// the rule it was checked under.
#[derive(Debug)]
pub struct Proven {
    /// The verification.
    pub verified: Verified,
    /// The index of its rule in the settings' policy.
    rule: usize,
}

impl Proven {
    /// What the policy decided, for a measurement of the same model
    /// written later (`watch`'s drift and restored documents).
    pub fn decided<'p>(&self, settings: &'p Settings) -> Option<PolicyOut<'p>> {
        let rule = settings.policy.rules.get(self.rule)?;
        Some(decided(&settings.policy, rule))
    }
}

/// Checks a model that verified again where it is, under the same
/// settings: every problem found now, sorted; none means the folder at
/// `model` still holds exactly the signed files. With `hash_only`, only
/// those files are hashed (the others taken as unchanged).
pub fn recheck(
    settings: &Settings,
    model: &Path,
    proven: &Proven,
    hash_only: Option<&std::collections::BTreeSet<String>>,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<Problem> {
    let Some(rule) = settings.policy.rules.get(proven.rule) else {
        return vec![Problem::CouldNotCheck(format!(
            "rule {} is not in policy {}: the model was verified under other settings",
            proven.verified.rule, settings.policy.name
        ))];
    };
    verify::recheck(&verify::Recheck {
        model,
        verified: &proven.verified,
        rule,
        ignore_unsigned_files: settings.ignore_unsigned_files,
        workers: settings.workers,
        progress,
        hash_only,
    })
}

/// Runs one verification of `source` under `settings`. Every path ends in
/// an [`Outcome`] whose measurement went to `recorder`; nothing unverified
/// is ever placed, and a temporary folder never outlives the run.
pub async fn run(
    settings: &Settings,
    source: Source,
    cancel: &Cancel,
    recorder: &mut dyn Recorder,
) -> Outcome {
    let mut run = Run {
        settings,
        cancel,
        recorder,
    };
    match source {
        Source::InPlace(path) => {
            let subject = Subject::local(path.clone(), path);
            let signatures = given_signatures(&settings.signatures);
            run.check(&subject, &signatures)
        }
        Source::InPlaceAs { files, shown } => {
            let subject = Subject::local(shown, files);
            let signatures = given_signatures(&settings.signatures);
            run.check(&subject, &signatures)
        }
        Source::Copy { from, to } => run.copy(&from, &to),
        Source::Oci { reference, to } => run.pull(&reference, to.as_deref()).await,
    }
}

/// Records a run that could not start (its settings were refused): the log
/// line and a measurement saying `error`.
pub fn refused(recorder: &mut dyn Recorder, shown: &Path, message: &str) -> Outcome {
    error!(exit_code = Verdict::Error.exit_code(), "{message}");
    let doc = Measurement::error(shown, message.to_string());
    let measurement = doc.summary();
    let _ = recorder.record(doc);
    Outcome {
        verdict: Verdict::Error,
        measurement,
        proven: None,
    }
}

/// The signature files given, read (bounded) with their origin; a file that
/// cannot be read is kept with its error, for the verdict to name.
fn given_signatures(paths: &[PathBuf]) -> Vec<Signature> {
    paths
        .iter()
        .map(|path| Signature {
            origin: Origin::File(path.clone()),
            bytes: read_bounded("signature", path, MAX_SIGNATURE_BYTES),
        })
        .collect()
}

/// Interprets an `--ignore-paths` value as a path relative to the model
/// root (see [`paths::locate`] for the spellings accepted).
pub fn model_relative(model: &Path, path: &str) -> Result<String, Error> {
    let outside = || {
        Error::Usage(format!(
            "--ignore-paths {path}: not a path inside the model {}",
            model.display()
        ))
    };
    let rel = paths::locate(model, Path::new(path)).map_err(|why| match why {
        paths::LocateError::Outside => outside(),
        other => Error::Usage(format!("--ignore-paths {path}: {other}")),
    })?;
    normalize_relative(&rel).ok_or_else(outside)
}

/// Where the model under verification is, and how to name it.
struct Subject {
    /// What logs and the measurement call the model (its path, or the
    /// reference and then the destination for a pull).
    shown: PathBuf,
    /// Where its files are now.
    files: PathBuf,
    /// Where it came from, for a model pulled from a registry.
    origin: Option<Pulled>,
    /// File digests proven while pulling, not hashed again.
    known: KnownDigests,
    /// Blobs of the model that are not files (a pulled artifact's config).
    blobs: BlobResources,
}

impl Subject {
    fn local(shown: PathBuf, files: PathBuf) -> Self {
        Self {
            shown,
            files,
            origin: None,
            known: KnownDigests::new(),
            blobs: BlobResources::new(),
        }
    }
}

/// Where a pulled model came from, for the measurement.
#[derive(Clone, Debug)]
struct Pulled {
    reference: String,
    repository: String,
    name: String,
    digest: String,
    layout: &'static str,
    found: Vec<FoundOut>,
}

impl Pulled {
    fn out(&self) -> SourceOut<'_> {
        SourceOut {
            reference: &self.reference,
            digest: &self.digest,
            layout: self.layout,
            signatures_found: &self.found,
        }
    }
}

/// One run: its settings, cancellation and recorder.
struct Run<'a> {
    settings: &'a Settings,
    cancel: &'a Cancel,
    recorder: &'a mut dyn Recorder,
}

impl Run<'_> {
    /// Records `doc` (with where the model came from) unless the run was
    /// cancelled; returns its summary and whether it was recorded.
    fn record(&mut self, doc: Measurement<'_>, origin: Option<&Pulled>) -> (Summary, bool) {
        let doc = match origin {
            Some(s) => doc.with_source(s.out()),
            None => doc,
        };
        let summary = doc.summary();
        let recorder = &mut *self.recorder;
        let recorded = self
            .cancel
            .unless_cancelled(|| recorder.record(doc))
            .is_ok();
        (summary, recorded)
    }

    /// A run that ended before verification: the log line, the measurement.
    fn fail(
        &mut self,
        model: &str,
        shown: &Path,
        verdict: Verdict,
        message: String,
        origin: Option<&Pulled>,
    ) -> Outcome {
        error!(exit_code = verdict.exit_code(), model = %model, "{message}; do not start the workload");
        let (measurement, _) = self.record(Measurement::failed(shown, verdict, message), origin);
        Outcome {
            verdict,
            measurement,
            proven: None,
        }
    }

    /// A mounted folder copied into a stage beside `to`, verified, placed.
    fn copy(&mut self, from: &Path, to: &Path) -> Outcome {
        let model = from.display().to_string();
        let stage = match stage::Stage::prepare(Some(to), self.cancel) {
            Ok(stage) => stage,
            Err(e) => return self.fail(&model, to, Verdict::Error, e.to_string(), None),
        };
        if let Err(source) = stage::copy_tree(from, stage.files()) {
            let e = StageError::Copy {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                source,
            };
            return self.fail(&model, to, Verdict::Error, e.to_string(), None);
        }
        info!(model = %model, "copied; verifying the copy");
        let subject = Subject::local(to.to_path_buf(), stage.files().to_path_buf());
        let outcome = self.check(&subject, &given_signatures(&self.settings.signatures));
        if !outcome.verdict.allows_start() {
            return outcome;
        }
        match stage.place(to, self.cancel) {
            Err(e) => self.fail(&model, to, Verdict::Error, e.to_string(), None),
            Ok(()) => {
                info!(destination = %to.display(), "in place");
                outcome
            }
        }
    }

    /// The pull, the verification and, for a destination, the placement.
    /// The stage is removed on every path that does not end in the
    /// placement, so the destination never holds an unverified or partial
    /// model.
    async fn pull(&mut self, given: &str, to: Option<&Path>) -> Outcome {
        let settings = self.settings;
        let policy: &Policy = &settings.policy;
        let shown = PathBuf::from(given);
        let model_ref = match ModelRef::parse(given) {
            Ok(r) => r,
            Err(e) => return self.fail(given, &shown, Verdict::Error, e.to_string(), None),
        };
        if let Err(why) = before_any_request(&model_ref, settings) {
            return self.fail(given, &shown, Verdict::Rejected, why.to_string(), None);
        }
        let stage = match stage::Stage::prepare(to, self.cancel) {
            Ok(stage) => stage,
            Err(e) => return self.fail(given, &shown, Verdict::Error, e.to_string(), None),
        };
        info!(model = %model_ref, "pulling");
        let discover = settings.signatures.is_empty();
        let model_name = settings
            .model_name
            .clone()
            .unwrap_or_else(|| model_ref.model_name().to_string());
        let rule = policy.select(&model_name, Some(&model_ref.name())).ok();
        let deadline = settings.registry_timeout.map(oci::Deadline::after);
        let resolved = oci::within(
            &model_ref,
            "pull",
            deadline,
            oci::resolve(&model_ref, &settings.registry, discover),
        )
        .await;
        let mut resolved = match resolved {
            Ok(r) => r,
            Err(e) => return self.fail(given, &shown, e.verdict(), e.to_string(), None),
        };
        let mut origin = Pulled {
            reference: model_ref.to_string(),
            repository: model_ref.name(),
            name: model_ref.model_name().to_string(),
            digest: resolved.digest.clone(),
            layout: resolved.artifact.layout.name(),
            found: Vec::new(),
        };
        let mut signatures = given_signatures(&settings.signatures);
        if discover {
            if resolved.discovered.is_empty() {
                let digest = &resolved.digest;
                let message = format!(
                    "{model_ref} ({digest}): no signature in the registry: no referrer with artifactType {} (referrers API, or the tag {}) and no cosign tag {}.sig or .att; attach one (modelgate push does), or pass --signature",
                    crate::oms::bundle::BUNDLE_MEDIA_TYPE_V03,
                    digest.replace(':', "-"),
                    digest.replace(':', "-"),
                );
                return self.fail(given, &shown, Verdict::Rejected, message, Some(&origin));
            }
            for candidate in std::mem::take(&mut resolved.discovered) {
                info!(signature = %candidate.origin, via = candidate.via.as_str(), "signature found in the registry");
                origin.found.push(FoundOut {
                    reference: candidate.origin.clone(),
                    via: candidate.via.as_str(),
                });
                signatures.push(candidate.into_signature());
            }
        }
        let placed_at = to.map_or_else(|| shown.clone(), Path::to_path_buf);
        if let Some(rule) = rule
            && let Err(rejection) = decide_before_download(
                &signatures,
                rule,
                &resolved.artifact,
                &settings.ignore_paths,
            )
        {
            let subject = Subject {
                origin: Some(origin),
                ..Subject::local(placed_at, stage.files().to_path_buf())
            };
            info!(model = %model_ref, "rejected from the manifest and the signatures: nothing was downloaded");
            return self.reject(&subject, &rejection, Some(rule));
        }
        let pull = PullOptions {
            concurrency: settings.concurrency,
            retries: 3,
            watch: self.recorder.transfers(),
            scratch: stage.blobs.path(),
        };
        let fetched = oci::within(
            &model_ref,
            "pull",
            deadline,
            oci::fetch(&resolved, stage.files(), &pull),
        )
        .await;
        let pulled = match fetched {
            Ok(p) => p,
            Err(e) => {
                return self.fail(given, &shown, e.verdict(), e.to_string(), Some(&origin));
            }
        };
        self.recorder.finished();
        info!(
            model = %model_ref,
            digest = %resolved.digest,
            layout = resolved.artifact.layout.name(),
            layers = resolved.artifact.layers.len(),
            credential = %pulled.credential,
            step = "fetch",
            "pulled"
        );
        let subject = Subject {
            shown: placed_at,
            files: stage.files().to_path_buf(),
            origin: Some(origin),
            known: pulled.known,
            blobs: config_blob(&resolved.artifact),
        };
        let outcome = self.check(&subject, &signatures);
        let Some(dest) = to else {
            return outcome;
        };
        if !outcome.verdict.allows_start() {
            // The stage goes with `stage`; the destination was never touched.
            return outcome;
        }
        match stage.place(dest, self.cancel) {
            Err(e) => self.fail(
                given,
                &shown,
                Verdict::Error,
                e.to_string(),
                subject.origin.as_ref(),
            ),
            Ok(()) => {
                info!(model = %model_ref, destination = %dest.display(), "in place");
                outcome
            }
        }
    }

    /// Verifies the model's files; records the measurement whatever the
    /// verdict.
    fn check(&mut self, subject: &Subject, signatures: &[Signature]) -> Outcome {
        let settings = self.settings;
        let ignores = settings
            .ignore_paths
            .iter()
            .map(|p| model_relative(&subject.files, p))
            .collect::<Result<Vec<_>, _>>();
        let extra_ignores = match ignores {
            Ok(v) => v,
            Err(e) => {
                error!(exit_code = Verdict::Error.exit_code(), "{e}");
                let doc = Measurement::error(&subject.shown, e.to_string());
                let (measurement, _) = self.record(doc, subject.origin.as_ref());
                return Outcome {
                    verdict: Verdict::Error,
                    measurement,
                    proven: None,
                };
            }
        };
        let model_name = settings
            .model_name
            .clone()
            .unwrap_or_else(|| match &subject.origin {
                Some(s) => s.name.clone(),
                None => paths::display_name(&subject.files),
            });
        let repository = subject.origin.as_ref().map(|s| s.repository.as_str());
        let policy: &Policy = &settings.policy;
        let rule = match policy.select(&model_name, repository) {
            Ok(rule) => rule,
            Err(why) => {
                let rejection =
                    Rejection::new(Problem::Policy(why.to_string()), Evidence::default());
                return self.reject(subject, &rejection, None);
            }
        };
        let recorder = &*self.recorder;
        let progress = |n| recorder.hashed(n);
        let request = verify::Request {
            model: &subject.files,
            signatures,
            rule,
            extra_ignores: &extra_ignores,
            ignore_unsigned_files: settings.ignore_unsigned_files,
            workers: settings.workers,
            progress: &progress,
            known_sha256: &subject.known,
            blob_resources: &subject.blobs,
        };
        let result = verify::verify(&request);
        self.recorder.finished();
        let shown = &subject.shown;
        let verified = match result {
            Ok(verified) => verified,
            Err(rejection) => return self.reject(subject, &rejection, Some(rule)),
        };
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
        let doc = Measurement::verified(shown, &verified).with_policy(decided(policy, rule));
        let (measurement, recorded) = self.record(doc, subject.origin.as_ref());
        if !recorded {
            // The files matched, but the verdict could not be recorded:
            // never report "verified" alongside a non-zero exit.
            error!(exit_code = Verdict::Error.exit_code(), model = %shown.display(), "the model matched its signature, but its measurement could not be written; do not start the workload");
            return Outcome {
                verdict: Verdict::Error,
                measurement,
                proven: None,
            };
        }
        let signers: Vec<String> = verified
            .signers
            .iter()
            .map(|s| format!("{} [{}]", s.signer.describe(), s.authority))
            .collect();
        info!(
            model = %shown.display(),
            root_digest = %crate::model::Digest(verified.manifest.root_digest),
            resources = verified.manifest.resources.len(),
            rule = %verified.rule,
            signer = %signers.join("; "),
            step = "verify",
            "verified"
        );
        let rule = policy
            .rules
            .iter()
            .position(|r| std::ptr::eq(r, rule))
            .unwrap_or(usize::MAX);
        Outcome {
            verdict: Verdict::Verified,
            measurement,
            proven: Some(Arc::new(Proven { verified, rule })),
        }
    }

    /// Reports a rejection: every problem, the measurement, the verdict. In
    /// a rule's warn mode the model may start: the verdict is
    /// [`Verdict::AllowedUnverified`] and the failure is logged as loudly as
    /// an enforced one.
    fn reject(&mut self, subject: &Subject, rejection: &Rejection, rule: Option<&Rule>) -> Outcome {
        let shown = &subject.shown;
        for problem in &rejection.problems {
            error!(kind = problem.kind(), path = problem.path(), "{problem}");
        }
        let verdict = rejection.verdict();
        let policy: &Policy = &self.settings.policy;
        let doc = Measurement::rejected(shown, rejection);
        let Some(rule) = rule else {
            let (measurement, _) = self.record(doc, subject.origin.as_ref());
            error!(exit_code = verdict.exit_code(), model = %shown.display(), "{}; do not start the workload", rejection.summary());
            return Outcome {
                verdict,
                measurement,
                proven: None,
            };
        };
        let doc = doc.with_policy(decided(policy, rule));
        if rule.mode != Mode::Warn {
            let (measurement, _) = self.record(doc, subject.origin.as_ref());
            error!(exit_code = verdict.exit_code(), model = %shown.display(), "{}; do not start the workload", rejection.summary());
            return Outcome {
                verdict,
                measurement,
                proven: None,
            };
        }
        let (measurement, recorded) =
            self.record(doc.allowed_by_warn_mode(), subject.origin.as_ref());
        let allowed = if recorded {
            Verdict::AllowedUnverified
        } else {
            Verdict::Error
        };
        let name = &rule.name;
        error!(
            exit_code = allowed.exit_code(),
            model = %shown.display(),
            rule = %name,
            "{}; POLICY RULE {name} IS IN WARN MODE: the workload is allowed to start UNVERIFIED (enforce mode would exit {})",
            rejection.summary(),
            verdict.exit_code()
        );
        Outcome {
            verdict: allowed,
            measurement,
            proven: None,
        }
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

/// Why the policy refuses a registry reference before anything is fetched.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// The registry is not in `spec.allowedRegistries`.
    #[error("{source} (policy {policy}, spec.allowedRegistries)")]
    Registry {
        /// The reference's refusal.
        source: RefError,
        /// The policy's name.
        policy: String,
    },
    /// The rule requires a digest and the reference has a tag.
    #[error(transparent)]
    Tag(RefError),
}

/// What the policy says about a registry reference before anything is
/// fetched: `spec.allowedRegistries`, and a rule's `requireDigest`.
fn before_any_request(model_ref: &ModelRef, settings: &Settings) -> Result<(), Refused> {
    let policy = &settings.policy;
    model_ref
        .check_allowed(&policy.allowed_registries)
        .map_err(|source| Refused::Registry {
            source,
            policy: policy.name.clone(),
        })?;
    let name = settings
        .model_name
        .as_deref()
        .unwrap_or_else(|| model_ref.model_name());
    if let Ok(rule) = policy.select(name, Some(&model_ref.name()))
        && rule.require_digest
    {
        model_ref
            .check_digest_required(&rule.name)
            .map_err(Refused::Tag)?;
    }
    Ok(())
}

/// The decision a registry model gets from its manifest and signatures,
/// before any blob: the signatures against the rule, and the signed files'
/// digests against the raw layers (see [`verify::before_download`]).
fn decide_before_download(
    signatures: &[Signature],
    rule: &Rule,
    artifact: &ModelArtifact,
    ignore_paths: &[String],
) -> Result<(), Rejection> {
    let (files, complete) = announced_files(artifact, ignore_paths);
    verify::before_download(signatures, rule, &files, complete)
}

/// The files a registry's manifest announces with their SHA-256 (each raw
/// layer, and the config blob where a signature names it), and whether
/// that is every file of the model (raw layers only, nothing more left out).
fn announced_files(
    artifact: &ModelArtifact,
    ignore_paths: &[String],
) -> (Vec<AnnouncedFile>, bool) {
    let files: Vec<AnnouncedFile> = artifact
        .layers
        .iter()
        .filter_map(|layer| match &layer.unpack {
            Unpack::Raw(path) => Some(AnnouncedFile {
                path: path.clone(),
                sha256: crate::model::Digest::parse(&layer.digest)?.0,
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
        && ignore_paths.is_empty();
    (files, complete)
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
        && let Some(digest) = crate::model::Digest::parse(&artifact.config).map(|d| d.0)
    {
        blobs.insert("config.json".into(), digest);
    }
    blobs
}
