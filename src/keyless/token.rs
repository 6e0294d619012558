//! The OIDC identity token a keyless signature is made for, from where a
//! CI machine has one: a value, a file (a Kubernetes projected
//! service-account token, rotated on disk), or GitHub Actions' token
//! request endpoint. No browser flow: this is for machines.
//!
//! The token is a secret: it is held in [`sigstore_oidc::IdentityToken`]
//! (zeroized on drop, redacted in `Debug`), and no message here quotes it or
//! any part of it. Its claims are read *unverified*, only to fail early and
//! clearly (not a JWT, expired); Fulcio is what authenticates it.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sigstore_oidc::IdentityToken;

use super::KeylessError;

/// Largest token file or GitHub answer read (a JWT is a few KiB).
const MAX_TOKEN_BYTES: usize = 64 << 10;

/// Where the identity token comes from, decided by the front end.
#[derive(Clone)]
pub enum TokenSource {
    /// The token itself (`--identity-token TOKEN`, `SIGSTORE_ID_TOKEN`).
    Value {
        /// The flag or variable it came from, for messages.
        origin: &'static str,
        /// The token.
        token: sigstore_oidc::token::SecretString,
    },
    /// A file holding it (`--identity-token FILE`, `--identity-token-file`),
    /// read when signing: a projected token rotates.
    File {
        /// The flag it came from.
        origin: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// GitHub Actions' ambient credentials: the token is requested from
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` with `ACTIONS_ID_TOKEN_REQUEST_TOKEN`,
    /// for the audience `sigstore`.
    GitHubActions {
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        request_url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (a secret too).
        request_token: sigstore_oidc::token::SecretString,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.origin())
    }
}

impl TokenSource {
    /// What the token came from, as the user would name it.
    pub fn origin(&self) -> &'static str {
        match self {
            Self::Value { origin, .. } | Self::File { origin, .. } => origin,
            Self::GitHubActions { .. } => "GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL)",
        }
    }

    /// The token, checked to be a JWT that has not expired.
    pub async fn obtain(
        &self,
        http: &reqwest::Client,
        now: Duration,
    ) -> Result<IdentityToken, KeylessError> {
        let raw = match self {
            Self::Value { token, .. } => token.expose_secret().trim().to_string(),
            Self::File { path, .. } => {
                let bytes = crate::io::read_bounded("identity token", path, MAX_TOKEN_BYTES as u64)
                    .map_err(|e| KeylessError::Token {
                        origin: self.origin(),
                        reason: e.to_string(),
                    })?;
                String::from_utf8(bytes)
                    .map_err(|_| KeylessError::Token {
                        origin: self.origin(),
                        reason: format!("{} is not text", path.display()),
                    })?
                    .trim()
                    .to_string()
            }
            Self::GitHubActions {
                request_url,
                request_token,
            } => github_token(http, request_url, request_token.expose_secret()).await?,
        };
        parse(&raw, self.origin(), now)
    }
}

/// Parses `raw` as a JWT whose `exp` is after `now` (since the Unix epoch).
pub fn parse(
    raw: &str,
    origin: &'static str,
    now: Duration,
) -> Result<IdentityToken, KeylessError> {
    let malformed = |reason: &str| KeylessError::Token {
        origin,
        reason: format!(
            "it is not an OIDC identity token (a JWT: header.payload.signature): {reason}; pass the token your CI issued for the audience sigstore"
        ),
    };
    if raw.is_empty() {
        return Err(malformed("it is empty"));
    }
    let parts: Vec<&str> = raw.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return Err(malformed(&format!(
            "it has {} dot-separated parts, expected 3",
            parts.len()
        )));
    };
    let claims = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| malformed("its payload is not base64url"))?;
    #[derive(serde::Deserialize)]
    struct Exp {
        exp: Option<serde_json::Value>,
    }
    let exp: Exp = serde_json::from_slice(&claims)
        .map_err(|_| malformed("its payload is not a JSON object"))?;
    let Some(exp) = exp.exp.as_ref().and_then(serde_json::Value::as_u64) else {
        return Err(malformed("its payload has no numeric exp (expiry) claim"));
    };
    if exp <= now.as_secs() {
        return Err(KeylessError::TokenExpired {
            origin,
            expired: rfc3339(exp),
            now: rfc3339(now.as_secs()),
        });
    }
    IdentityToken::from_jwt(raw)
        .map_err(|_| malformed("its payload lacks the iss, sub or exp claim Fulcio needs"))
}

fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} (Unix time)"))
}

/// Asks GitHub Actions for a token for the audience `sigstore` (the
/// runner's documented protocol: GET the request URL with `audience` added,
/// the request token as a bearer, the token in the answer's `value`).
///
/// Done here rather than by `IdentityToken::detect_ambient` (ambient-id):
/// this request goes through modelgate's client, so `--timeout`, `--ca-file`
/// and the answer's size bound apply to it as to Fulcio and Rekor.
async fn github_token(
    http: &reqwest::Client,
    request_url: &str,
    request_token: &str,
) -> Result<String, KeylessError> {
    let fail = |reason: String| KeylessError::TokenRequest {
        url: redact_query(request_url),
        reason,
    };
    let mut url = reqwest::Url::parse(request_url)
        .map_err(|e| fail(format!("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL: {e}")))?;
    url.query_pairs_mut().append_pair("audience", "sigstore");
    let response = http
        .get(url)
        .bearer_auth(request_token)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| fail(super::describe_http(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!(
            "HTTP {status}; the job needs `permissions: id-token: write`"
        )));
    }
    let body = crate::oci::http::read_bounded(
        response,
        MAX_TOKEN_BYTES,
        "the token answer",
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    #[derive(serde::Deserialize)]
    struct Answer {
        value: String,
    }
    serde_json::from_slice::<Answer>(&body)
        .map(|a| a.value)
        .map_err(|_| fail("the answer is not JSON with a string `value`".into()))
}

/// A URL without its query (which may carry request parameters).
fn redact_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "eyJhbGciOiJub25lIn0.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn tokens_are_checked_without_quoting_them() {
        let now = Duration::from_secs(1_000);
        let good = jwt(r#"{"iss":"https://issuer.test","sub":"ci","exp":2000}"#);
        assert!(parse(&good, "SIGSTORE_ID_TOKEN", now).is_ok());
        let expired = jwt(r#"{"iss":"https://issuer.test","sub":"ci","exp":999}"#);
        let e = parse(&expired, "SIGSTORE_ID_TOKEN", now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expired at 1970-01-01T00:16:39Z"), "{e}");
        for bad in [
            "",
            "abc",
            "a.!!!.c",
            "a.bm90IGpzb24.c",
            &jwt(r#"{"sub":"x"}"#),
        ] {
            let e = parse(bad, "--identity-token", now).unwrap_err().to_string();
            assert!(e.contains("not an OIDC identity token"), "{e}");
            if !bad.is_empty() {
                assert!(!e.contains(bad), "the token is quoted: {e}");
            }
        }
    }
}
