//! `attest --sigstore` and `push --sigstore`: the statement signed
//! keylessly through a Sigstore instance ([`crate::keyless`]), then checked
//! as `verify` checks it (certificate chain to the trusted root, SCTs, the
//! DSSE signature, the log entry, its inclusion proof and checkpoint or
//! promise, the timestamps) before the caller writes or pushes anything:
//! CI never publishes a signature that would not verify.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sigstore_trust_root::TrustedRoot;

use super::Error;
use crate::io::{MAX_KEY_BYTES, read_bounded};
use crate::keyless::{self, Reach, Services, TokenSource};
use crate::oms::bundle::{self, Bundle};
use crate::trust::TrustedMaterial;
use crate::trust::sigstore::{Identity, Keyless, Matcher};
use crate::verify::authenticate::{self, Signer};

/// A keyless signer, as the front end resolved it.
pub struct Sigstore {
    /// Where the identity token comes from; `None`: none was found.
    pub token: Option<TokenSource>,
    /// A SigningConfig v0.2 file; `None`: the embedded public-good one.
    pub signing_config: Option<PathBuf>,
    /// The trusted root the new bundle must verify against; `None`: the
    /// embedded public-good one.
    pub trusted_root: Option<PathBuf>,
    /// Extra CAs for the services' HTTPS (`--ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// The limit on the keyless work (`--timeout`).
    pub timeout: Duration,
    /// The limit on opening one connection (`--read-timeout`).
    pub connect_timeout: Duration,
}

/// What a keyless signature was made by, for the log line.
pub struct Made {
    /// The bundle's JSON text, verified.
    pub bundle: Vec<u8>,
    /// The certificate's identity and issuer, and the log index.
    pub signer: String,
}

impl Sigstore {
    /// Reads the SigningConfig and the trusted root: a file that cannot be
    /// used is refused before any token is obtained or request made.
    fn load(&self) -> Result<(Services, TrustedRoot), Error> {
        let services = match &self.signing_config {
            None => Services::production()?,
            Some(path) => {
                let json = String::from_utf8(read_bounded("signing config", path, MAX_KEY_BYTES)?)
                    .map_err(|_| {
                        Error::Usage(format!(
                            "--signing-config {}: not UTF-8 JSON",
                            path.display()
                        ))
                    })?;
                Services::from_signing_config(&json, &path.display().to_string())?
            }
        };
        let root = super::trusted_root(self.trusted_root.as_deref())?;
        Ok((services, root))
    }

    /// Signs `statement` keylessly and verifies the bundle; returns it.
    pub async fn sign(&self, statement: &[u8]) -> Result<Made, Error> {
        let (services, root) = self.load()?;
        let reach = Reach {
            roots: crate::oci::registry::https_roots(&self.ca_files)?,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let json =
            keyless::sign_statement(&services, self.token.as_ref(), &reach, statement, now).await?;
        let signer = check(
            json.as_bytes(),
            statement,
            root,
            self.trusted_root.as_deref(),
        )?;
        let mut bundle = json.into_bytes();
        bundle.push(b'\n');
        Ok(Made {
            bundle,
            signer: signer.describe(),
        })
    }
}

/// The check `verify` makes of a keyless signature, with any identity (the
/// policy that names one is the verifier's), and that the envelope carries
/// exactly the statement that was meant.
fn check(
    json: &[u8],
    statement: &[u8],
    root: TrustedRoot,
    root_path: Option<&Path>,
) -> Result<Signer, Error> {
    let root_name = root_path.map_or_else(
        || "the embedded public-good trusted root".to_string(),
        |p| format!("--trusted-root {}", p.display()),
    );
    let refuse = |reason: String| Error::KeylessUnverified {
        root: root_name.clone(),
        reason,
    };
    let parsed = Bundle::from_json(json).map_err(|e| refuse(e.to_string()))?;
    let signed = parsed.signed_payload().map_err(|e| refuse(e.to_string()))?;
    if signed.payload != statement || signed.payload_type != bundle::IN_TOTO_PAYLOAD_TYPE {
        return Err(refuse(
            "the envelope does not carry the statement that was signed".into(),
        ));
    }
    let pae = bundle::pae(&signed.payload_type, &signed.payload);
    let any = || Matcher::regex(".*").map_err(|e| refuse(e.to_string()));
    let trust = TrustedMaterial::Sigstore(Box::new(Keyless {
        root,
        identities: vec![Identity {
            subject: any()?,
            issuer: any()?,
        }],
    }));
    authenticate::authenticate(&trust, json, &parsed, &signed, &pae, false)
        .map(|a| a.signer)
        .map_err(|e| refuse(e.to_string()))
}
