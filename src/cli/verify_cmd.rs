//! `modelgate verify`: policy, verification, the verdict, the measurement.

use tracing::{error, info, warn};

use super::args::VerifyArgs;
use super::{EXIT_ERROR, EXIT_OK, Progress, load_certificates, model_relative, read_pem};
use crate::Error;
use crate::measure::{Measurement, PolicyOut};
use crate::model::paths;
use crate::oms::legacy::RE_SIGN_ADVICE;
use crate::oms::manifest::Format;
use crate::policy::{Mode, Policy};
use crate::trust::sigstore::Keyless;
use crate::trust::{PublicKey, TrustedMaterial};
use crate::verify::{self, Evidence, Problem, Rejection, Request};

/// Verifies a model; writes the measurement whatever the verdict.
pub(super) fn verify_cmd(args: &VerifyArgs, workers: usize, progress: &Progress) -> i32 {
    let prepared = load_policy(args).and_then(|policy| {
        let ignores = args
            .ignore_paths
            .iter()
            .map(|p| model_relative(&args.model, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((policy, ignores))
    });
    let (policy, extra_ignores) = match prepared {
        Ok(v) => v,
        Err(e) => {
            error!(exit_code = EXIT_ERROR, "{e}");
            record(args, || Measurement::error(&args.model, e.to_string()));
            return EXIT_ERROR;
        }
    };
    let model_name = args
        .model_name
        .clone()
        .unwrap_or_else(|| paths::display_name(&args.model));
    let rule = match policy.select(&model_name, None) {
        Ok(rule) => rule,
        Err(why) => {
            let rejection = Rejection::new(Problem::Policy(why), Evidence::default());
            return reject(args, &rejection, None);
        }
    };
    let decided = || PolicyOut {
        name: &policy.name,
        rule: &rule.name,
        mode: if rule.mode == Mode::Warn {
            "warn"
        } else {
            "enforce"
        },
        allow_legacy_format: rule.allow_legacy_format,
    };
    let progress_fn = |n| progress.inc(n);
    let request = Request {
        model: &args.model,
        signatures: &args.signature,
        rule,
        extra_ignores: &extra_ignores,
        ignore_unsigned_files: args.ignore_unsigned_files,
        workers,
        progress: &progress_fn,
    };
    let result = verify::verify(&request);
    progress.finish();
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
            if record(args, || {
                Measurement::verified(&args.model, &verified).with_policy(decided())
            }) != EXIT_OK
            {
                // The files matched, but the verdict could not be recorded:
                // never report "verified" alongside a non-zero exit.
                error!(exit_code = EXIT_ERROR, model = %args.model.display(), "the model matched its signature, but its measurement could not be written; do not start the workload");
                return EXIT_ERROR;
            }
            let signers: Vec<String> = verified
                .signers
                .iter()
                .map(|s| format!("{} [{}]", s.signer.describe(), s.authority))
                .collect();
            info!(
                model = %args.model.display(),
                root_digest = %format!("sha256:{}", hex::encode(verified.manifest.root_digest)),
                resources = verified.manifest.resources.len(),
                rule = %verified.rule,
                signer = %signers.join("; "),
                "verified"
            );
            EXIT_OK
        }
        Err(rejection) => reject(args, &rejection, Some((rule.mode, decided()))),
    }
}

/// Reports a rejection: every problem, the measurement, the exit code. In a
/// rule's warn mode the model may start: the verdict is `unverified-allowed`
/// and the failure is logged as loudly as an enforced one.
fn reject(args: &VerifyArgs, rejection: &Rejection, policy: Option<(Mode, PolicyOut<'_>)>) -> i32 {
    for problem in &rejection.problems {
        error!(
            kind = problem.kind(),
            path = problem.path().unwrap_or(""),
            "{problem}"
        );
    }
    let code = rejection.exit_code();
    match policy {
        Some((Mode::Warn, decided)) => {
            let rule = decided.rule.to_string();
            let written = record(args, || {
                Measurement::rejected(&args.model, rejection)
                    .with_policy(decided)
                    .allowed_by_warn_mode()
            });
            error!(
                exit_code = written,
                model = %args.model.display(),
                rule = %rule,
                "{}; POLICY RULE {rule} IS IN WARN MODE: the workload is allowed to start UNVERIFIED (enforce mode would exit {code})",
                rejection.summary()
            );
            written
        }
        decided => {
            record(args, || {
                let doc = Measurement::rejected(&args.model, rejection);
                match decided {
                    Some((_, d)) => doc.with_policy(d),
                    None => doc,
                }
            });
            error!(exit_code = code, model = %args.model.display(), "{}; do not start the workload", rejection.summary());
            code
        }
    }
}

/// Writes the measurement if one was asked for. A verified model whose
/// measurement cannot be written is not reported as verified.
fn record<'a>(args: &VerifyArgs, doc: impl FnOnce() -> Measurement<'a>) -> i32 {
    let Some(path) = &args.measurement else {
        return EXIT_OK;
    };
    match doc().write(path) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            error!(path = %path.display(), "cannot write measurement: {e}");
            // Never leave an older "verified" document behind.
            let _ = std::fs::remove_file(path);
            EXIT_ERROR
        }
    }
}

/// The policy `verify` applies: the `--policy` file, or the trust flags as
/// a policy of one rule.
fn load_policy(args: &VerifyArgs) -> Result<Policy, Error> {
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
fn load_trust(args: &VerifyArgs) -> Result<TrustedMaterial, Error> {
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
