//! `modelgate verify` and `modelgate pull`: flags into [`gate::Settings`]
//! and a [`gate::Source`], one [`gate::run`], the verdict.

use std::path::PathBuf;

use tracing::error;

use super::Progress;
use super::args::{CheckArgs, PullArgs, RegistryArgs, VerifyArgs};
use crate::gate::{self, Both, Cancel, MeasurementFile, Naming, Settings, Source};
use crate::oci::ModelRef;
use crate::verify::Verdict;

/// Verifies a model given as a path or an `oci://` reference.
pub(super) fn verify_cmd(
    args: &VerifyArgs,
    workers: usize,
    progress: &Progress,
    runtime: &tokio::runtime::Runtime,
) -> Verdict {
    let source = if ModelRef::is_oci(&args.model) {
        Source::Oci {
            reference: args.model.clone(),
            to: None,
        }
    } else {
        if args.check.signature.is_empty() {
            error!(
                exit_code = Verdict::Error.exit_code(),
                "--signature is required for a model on disk (only an oci:// model can find its signatures in the registry)"
            );
            return Verdict::Error;
        }
        Source::InPlace(PathBuf::from(&args.model))
    };
    run(
        &args.check,
        &args.registry,
        source,
        workers,
        progress,
        runtime,
    )
}

/// Pulls a model into a temporary folder beside its destination, verifies
/// it there, and renames it into place only once verified.
pub(super) fn pull_cmd(
    args: &PullArgs,
    workers: usize,
    progress: &Progress,
    runtime: &tokio::runtime::Runtime,
) -> Verdict {
    let source = Source::Oci {
        reference: args.reference.clone(),
        to: Some(args.destination.clone()),
    };
    run(
        &args.check,
        &args.registry,
        source,
        workers,
        progress,
        runtime,
    )
}

/// Builds the settings from the flags and runs the gate once.
fn run(
    checks: &CheckArgs,
    registry: &RegistryArgs,
    source: Source,
    workers: usize,
    progress: &Progress,
    runtime: &tokio::runtime::Runtime,
) -> Verdict {
    let mut recorder = Both {
        show: progress,
        record: checks.measurement.clone().map(|path| MeasurementFile {
            path,
            context: None,
        }),
    };
    let settings = match Settings::build(spec(checks, registry, workers), Naming::Flags) {
        Ok(settings) => settings,
        Err(e) => {
            return gate::refused(&mut recorder, &shown(&source), &e.to_string()).verdict;
        }
    };
    let cancel = Cancel::new();
    runtime
        .block_on(gate::run(&settings, source, &cancel, &mut recorder))
        .verdict
}

/// What the measurement calls a model that never reached the gate.
fn shown(source: &Source) -> PathBuf {
    match source {
        Source::InPlace(path) | Source::InPlaceAs { shown: path, .. } => path.clone(),
        Source::Copy { to, .. } => to.clone(),
        Source::Oci { reference, .. } => PathBuf::from(reference),
    }
}

/// The gate's settings as the flags give them.
pub(super) fn spec(checks: &CheckArgs, registry: &RegistryArgs, workers: usize) -> gate::Spec {
    gate::Spec {
        policy: checks.policy.clone(),
        keys: checks.key.clone(),
        certificate_chain: checks.certificate_chain.clone(),
        allow_expired_certificate: checks.allow_expired_certificate,
        certificate_identity: checks.keyless.certificate_identity.clone(),
        certificate_identity_regexp: checks.keyless.certificate_identity_regexp.clone(),
        certificate_oidc_issuer: checks.keyless.certificate_oidc_issuer.clone(),
        certificate_oidc_issuer_regexp: checks.keyless.certificate_oidc_issuer_regexp.clone(),
        trusted_root: checks.keyless.trusted_root.clone(),
        allow_legacy_format: checks.allow_legacy_format,
        signatures: checks.signature.clone(),
        model_name: checks.model_name.clone(),
        ignore_paths: checks.ignore_paths.clone(),
        ignore_unsigned_files: checks.ignore_unsigned_files,
        registry: registry.options(),
        concurrency: usize::try_from(registry.concurrency).unwrap_or(4),
        registry_timeout: Some(std::time::Duration::from_secs(registry.timeout)),
        workers,
    }
}
