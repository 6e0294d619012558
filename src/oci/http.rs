//! The registry's read side over HTTP, with every read bounded and every
//! wait limited: manifests, indexes, referrers, blobs, and the token
//! service. A registry and its token service are treated as attackers.
//!
//! oci-client reads whole answers into memory before a caller can look at
//! their size (a manifest answer without end grew modelgate past 1.2 GB),
//! follows a redirect from HTTPS to plain HTTP without a word, and copies a
//! token service's error body into its errors; so the pull side speaks HTTP
//! itself, on reqwest (rustls): this module, for pushes too (uploads,
//! manifests), so their answers are bounded and their redirects held to
//! the same rule.
//!
//! - A body is read chunk by chunk into a buffer that stops at its bound
//!   plus one byte, whatever `Content-Length` says.
//! - Every connection has a connect timeout and an idle-read timeout
//!   ([`IDLE_TIMEOUT`]): a registry that stops sending is cut, and the error
//!   says what was awaited.
//! - A redirect is followed (five hops at most) without credentials to
//!   another host (reqwest drops `Authorization` across origins), and never
//!   from HTTPS to plain HTTP unless the target host was named
//!   `--insecure-registry`.
//! - Text an upstream sends (an error body) is cut to [`MAX_EXCERPT`] bytes
//!   and has every secret of the request removed, in any encoding that was
//!   sent, before it reaches an error, a log or a measurement.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RANGE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

use super::credentials::Credential;
use super::reference::ModelRef;

/// How long a connection may send nothing before it is cut, unless set
/// (`--read-timeout`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TCP and TLS connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token-service answer read (a JWT is a few KiB).
pub const MAX_TOKEN_BYTES: usize = 64 << 10;
/// Largest excerpt of an upstream error body copied into a message.
pub const MAX_EXCERPT: usize = 512;
/// Largest error body read at all (only its excerpt is kept).
const MAX_ERROR_BODY: usize = 16 << 10;
/// Redirect hops followed.
const MAX_REDIRECTS: usize = 5;

/// Why an HTTP exchange with a registry failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection failed, broke, or stalled (worth a retry).
    #[error("{0}")]
    Transport(String),
    /// The registry answered with an error status.
    #[error("HTTP {status}: {excerpt}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of its body, with every secret removed.
        excerpt: String,
    },
    /// The answer is larger than what is read of it.
    #[error("the answer is more than the {limit} bytes modelgate reads of {what}")]
    TooLarge {
        /// What was read.
        what: String,
        /// The bound.
        limit: usize,
    },
    /// Authentication failed.
    #[error("{0}")]
    Auth(String),
    /// A secret would have gone in cleartext: nothing was sent.
    #[error("{0}")]
    Cleartext(String),
}

impl HttpError {
    /// Whether another attempt may succeed: a broken or stalled connection,
    /// 429, or a 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// A client for one repository of one registry.
pub struct Http {
    client: reqwest::Client,
    base: String,
    repository: String,
    registry: String,
    credential: Credential,
    https: bool,
    /// How long a connection may send nothing.
    idle: Duration,
    /// The token the registry's token service issued.
    bearer: tokio::sync::Mutex<Option<String>>,
    /// Whether tokens are asked for with push as well as pull.
    push: std::sync::atomic::AtomicBool,
    /// Hosts named `--insecure-registry`.
    insecure: Vec<String>,
}

impl Http {
    /// A client for `reference`'s repository, checking HTTPS against
    /// `roots`, plain HTTP only to a host named in `insecure`.
    pub fn new(
        reference: &ModelRef,
        credential: Credential,
        roots: Vec<reqwest::Certificate>,
        insecure: &[String],
        idle: Duration,
    ) -> Result<Self, HttpError> {
        let registry = reference.registry().to_string();
        let https = !insecure.iter().any(|h| h == &registry);
        let allowed_http: Vec<String> = insecure.to_vec();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let downgrade = attempt.url().scheme() == "http"
                && attempt.previous().iter().any(|u| u.scheme() == "https");
            let host = host_port(attempt.url());
            if downgrade && !allowed_http.contains(&host) {
                let shown = without_query(attempt.url());
                return attempt.error(format!(
                    "the registry redirected from HTTPS to plain HTTP ({shown}); refused: the bytes and any credential would travel in cleartext (name {host} with --insecure-registry if that network is trusted)"
                ));
            }
            attempt.follow()
        });
        let client = reqwest::Client::builder()
            .tls_certs_only(roots)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(idle)
            .redirect(policy)
            .user_agent(concat!("modelgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Transport(format!("cannot set up HTTPS: {e}")))?;
        let host = reference.as_client_ref().resolve_registry().to_string();
        let scheme = if https { "https" } else { "http" };
        Ok(Self {
            client,
            base: format!("{scheme}://{host}"),
            repository: reference.repository().to_string(),
            registry,
            credential,
            https,
            idle,
            bearer: tokio::sync::Mutex::new(None),
            push: std::sync::atomic::AtomicBool::new(false),
            insecure: insecure.to_vec(),
        })
    }

    /// Asks the registry (`GET /v2/`) how to authenticate and, for a
    /// `Bearer` challenge, gets a pull token for the repository before any
    /// repository request, as distribution clients do.
    pub async fn login(&self) -> Result<(), HttpError> {
        let url = format!("{}/v2/", self.base);
        let mut request = self.client.get(&url);
        if let Some(value) = self.authorization(None) {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        if let Some(bearer) = challenge_of(&response) {
            let token = self.token(&bearer).await?;
            *self.bearer.lock().await = Some(token);
        }
        Ok(())
    }

    /// An HTTPS registry's plain-HTTP token service would get the
    /// credentials in cleartext: refused, when there are credentials.
    fn refuse_cleartext(&self, realm: &str) -> Result<(), HttpError> {
        let has_secret = !matches!(self.credential, Credential::Anonymous);
        if self.https && has_secret && !realm.to_ascii_lowercase().starts_with("https://") {
            return Err(HttpError::Cleartext(format!(
                "{} sends clients to the token service {realm}, which is not HTTPS: the credentials for {} would travel in cleartext, so none were sent; have the registry's token realm use HTTPS (or, for a test registry on a trusted network, name it with --insecure-registry)",
                self.registry, self.registry
            )));
        }
        Ok(())
    }

    /// `GET /v2/<repository>/<path>` answered 200, its body read up to
    /// `limit` bytes (more is an error, whatever the headers say). `None`
    /// for a 404.
    pub async fn get_bounded(
        &self,
        path: &str,
        accept: &[&str],
        limit: usize,
        what: &str,
    ) -> Result<Option<Vec<u8>>, HttpError> {
        let response = self.get(path, accept, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_success(response).await?;
        self.read(response, limit, what).await.map(Some)
    }

    /// `GET /v2/<repository>/blobs/<digest>`, from byte `from` on when
    /// given (`Range: bytes=N-`; a registry that ignores it answers 200 with
    /// everything).
    pub async fn blob(&self, digest: &str, from: Option<u64>) -> Result<Response, HttpError> {
        let response = self.get(&format!("blobs/{digest}"), &["*/*"], from).await?;
        self.expect_success(response).await
    }

    /// A GET with the credential the registry asks for: the cached token,
    /// or after a `401` the token its `Bearer` challenge names, or Basic.
    async fn get(
        &self,
        path: &str,
        accept: &[&str],
        from: Option<u64>,
    ) -> Result<Response, HttpError> {
        let url = self.url(path);
        self.send(|authorization| {
            let mut request = self.client.get(&url).header(ACCEPT, accept.join(", "));
            if let Some(from) = from {
                request = request.header(RANGE, format!("bytes={from}-"));
            }
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            Ok(request)
        })
        .await
    }

    /// `<base>/v2/<repository>/<path>`.
    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// Sends the request `build` makes with the credential the registry
    /// asks for: the cached token, or after a `401` the token its `Bearer`
    /// challenge names (then `build` is called again: a body is made anew),
    /// or the credential itself.
    async fn send(
        &self,
        build: impl Fn(Option<String>) -> Result<reqwest::RequestBuilder, HttpError>,
    ) -> Result<Response, HttpError> {
        let cached = self.bearer.lock().await.clone();
        let first = build(self.authorization(cached.as_deref()))?.send().await;
        let response = first.map_err(|e| self.transport(&e))?;
        let Some(bearer) = challenge_of(&response) else {
            // Not a 401, or Basic, or no challenge: the credential (if any)
            // was already sent.
            return Ok(response);
        };
        let token = self.token(&bearer).await?;
        *self.bearer.lock().await = Some(token.clone());
        build(Some(format!("Bearer {token}")))?
            .send()
            .await
            .map_err(|e| self.transport(&e))
    }

    /// Asks for push as well as pull from now on (a token scoped
    /// `pull,push`), and logs in with it.
    pub async fn login_push(&self) -> Result<(), HttpError> {
        self.push.store(true, std::sync::atomic::Ordering::Relaxed);
        *self.bearer.lock().await = None;
        self.login().await
    }

    /// Whether the repository has the blob `digest` (`HEAD`).
    pub async fn blob_exists(&self, digest: &str) -> Result<bool, HttpError> {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self
            .send(|authorization| {
                let mut request = self.client.head(&url);
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value);
                }
                Ok(request)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => self.expect_success(response).await.map(|_| true),
        }
    }

    /// Uploads a blob of `size` bytes as `digest` in one request: `POST`
    /// opens an upload session, one `PUT …?digest=` carries every byte
    /// (the spec's monolithic upload; the registry checks the digest).
    /// `body` makes the bytes (called again if the registry asks for a new
    /// token mid-way).
    pub async fn upload_blob(
        &self,
        digest: &str,
        size: u64,
        body: impl Fn() -> Result<reqwest::Body, HttpError>,
    ) -> Result<(), HttpError> {
        let start = self.url("blobs/uploads/");
        let opened = self
            .send(|authorization| {
                let mut request = self
                    .client
                    .post(&start)
                    .header(reqwest::header::CONTENT_LENGTH, "0");
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value);
                }
                Ok(request)
            })
            .await?;
        let opened = self.expect_success(opened).await?;
        let location = opened
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                HttpError::Transport(format!(
                    "the registry opened an upload for blob {digest} without a Location to send it to"
                ))
            })?;
        // The ack's body is read bounded (and thrown away): a registry that
        // sends more is not answering the request.
        self.read(opened, MAX_ERROR_BODY, "its answer to opening an upload")
            .await?;
        let not_a_url = || {
            HttpError::Transport(format!(
                "the registry's upload location for blob {digest} is not a URL"
            ))
        };
        let base = reqwest::Url::parse(&self.base).map_err(|_| not_a_url())?;
        let mut target = base.join(&location).map_err(|_| not_a_url())?;
        self.check_target(&target)?;
        target.query_pairs_mut().append_pair("digest", digest);
        // A credential goes only to the registry itself, never to another
        // host the upload was sent to (as reqwest drops it on redirects).
        let same_origin = base.origin() == target.origin();
        let response = self
            .send(|authorization| {
                let mut request = self
                    .client
                    .put(target.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_LENGTH, size)
                    .body(body()?);
                if let Some(value) = authorization.filter(|_| same_origin) {
                    request = request.header(AUTHORIZATION, value);
                }
                Ok(request)
            })
            .await?;
        self.expect_success(response).await.map(|_| ())
    }

    /// Puts a manifest (or index) of `media_type` at `at` (a tag or a
    /// digest).
    pub async fn put_manifest(
        &self,
        at: &str,
        body: &[u8],
        media_type: &str,
    ) -> Result<(), HttpError> {
        let url = self.url(&format!("manifests/{at}"));
        let response = self
            .send(|authorization| {
                let mut request = self
                    .client
                    .put(&url)
                    .header(reqwest::header::CONTENT_TYPE, media_type)
                    .body(body.to_vec());
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value);
                }
                Ok(request)
            })
            .await?;
        self.expect_success(response).await.map(|_| ())
    }

    /// A URL the registry sent a client to (an upload location) is held to
    /// the redirect rule: never from HTTPS to plain HTTP unless its host was
    /// named `--insecure-registry`.
    fn check_target(&self, target: &reqwest::Url) -> Result<(), HttpError> {
        let host = host_port(target);
        if self.https && target.scheme() != "https" && !self.insecure.contains(&host) {
            return Err(HttpError::Cleartext(format!(
                "{} sent the upload to {} over plain HTTP; refused: the model's bytes and any credential would travel in cleartext (name {host} with --insecure-registry if that network is trusted)",
                self.registry,
                without_query(target)
            )));
        }
        Ok(())
    }

    /// The `Authorization` value for a request: the token, or the
    /// credential itself.
    fn authorization(&self, token: Option<&str>) -> Option<String> {
        if let Some(token) = token {
            return Some(format!("Bearer {token}"));
        }
        match &self.credential {
            Credential::Anonymous => None,
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credential::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }

    /// A token from the service a `Bearer` challenge names, for pulling.
    async fn token(&self, challenge: &Challenge) -> Result<String, HttpError> {
        let realm = &challenge.realm;
        self.refuse_cleartext(realm)?;
        let actions = if self.push.load(std::sync::atomic::Ordering::Relaxed) {
            "pull,push"
        } else {
            "pull"
        };
        let scope = format!("repository:{}:{actions}", self.repository);
        let mut request = self.client.get(realm).query(&[("scope", scope.as_str())]);
        if let Some(service) = &challenge.service {
            request = request.query(&[("service", service.as_str())]);
        }
        if let Some(value) = self.authorization(None) {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await.map_err(|e| {
            HttpError::Auth(format!(
                "the token service cannot be reached: {}",
                self.redact(&describe(&e, self.idle))
            ))
        })?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = self
                .read(response, MAX_ERROR_BODY, "an error answer")
                .await
                .unwrap_or_default();
            return Err(HttpError::Auth(format!(
                "the token service answered HTTP {status}: {}",
                self.excerpt(&body)
            )));
        }
        let body = self
            .read(response, MAX_TOKEN_BYTES, "a token answer")
            .await?;
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| {
            HttpError::Auth(
                "the token service's answer is not a token (JSON with token or access_token)"
                    .into(),
            )
        })?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty() && HeaderValue::from_str(&format!("Bearer {t}")).is_ok())
            .ok_or_else(|| {
                HttpError::Auth("the token service's answer holds no usable token".into())
            })
    }

    /// A 2xx answer as it is; any other status as an error with a redacted
    /// excerpt of its body.
    async fn expect_success(&self, response: Response) -> Result<Response, HttpError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = self
            .read(response, MAX_ERROR_BODY, "an error answer")
            .await
            .unwrap_or_default();
        Err(HttpError::Status {
            status,
            excerpt: self.excerpt(&body),
        })
    }

    /// How long a connection may send nothing.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// A transport error in words, without a URL's query or any secret.
    pub fn transport(&self, e: &reqwest::Error) -> HttpError {
        HttpError::Transport(self.redact(&describe(e, self.idle)))
    }

    /// `read_bounded` on this client's answers, naming a stall by its limit.
    pub async fn read(
        &self,
        response: Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, HttpError> {
        read_bounded(response, limit, what, self.idle)
            .await
            .map_err(|e| match e {
                HttpError::Transport(text) => HttpError::Transport(self.redact(&text)),
                other => other,
            })
    }

    /// The start of an upstream body, as text, with every secret removed.
    pub fn excerpt(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text = self.redact(text.trim());
        cut(&text, MAX_EXCERPT)
    }

    /// `text` with every secret this client may have sent replaced by
    /// `<redacted>`: the password and the user name, the Basic value in
    /// base64, the identity token, and the token the service issued.
    pub fn redact(&self, text: &str) -> String {
        let mut secrets: Vec<String> = Vec::new();
        match &self.credential {
            Credential::Anonymous => {}
            Credential::Basic { username, password } => {
                let pair = format!("{username}:{password}");
                secrets.push(base64::engine::general_purpose::STANDARD.encode(&pair));
                secrets.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&pair));
                secrets.push(pair);
                secrets.push(password.clone());
                secrets.push(username.clone());
            }
            Credential::Bearer(token) => secrets.push(token.clone()),
        }
        if let Ok(guard) = self.bearer.try_lock()
            && let Some(token) = guard.as_ref()
        {
            secrets.push(token.clone());
        }
        redact(text, &secrets)
    }
}

/// `text` with each of `secrets` (longest first; empty and one-character
/// ones skipped) replaced by `<redacted>`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| s.len() > 1).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for secret in sorted {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

/// At most `max` bytes of `text`, cut on a character boundary, marked when
/// cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes, cut)", &text[..end], text.len())
}

/// Reads `response`'s body into memory, stopping after `limit` bytes: one
/// more is an error, whatever `Content-Length` says.
pub async fn read_bounded(
    mut response: Response,
    limit: usize,
    what: &str,
    idle: Duration,
) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| HttpError::Transport(describe(&e, idle)))?;
        let Some(chunk) = chunk else {
            return Ok(out);
        };
        if out.len() + chunk.len() > limit {
            return Err(HttpError::TooLarge {
                what: what.to_string(),
                limit,
            });
        }
        out.extend_from_slice(&chunk);
    }
}

/// A transport error in words, with its cause chain (DNS, refused, TLS, a
/// stall), without the URL's query: after a redirect it can be a presigned
/// storage URL, a credential in all but name.
pub fn describe(err: &reqwest::Error, idle: Duration) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    if let Some(url) = err.url()
        && url.query().is_some()
    {
        text = text.replace(url.as_str(), &without_query(url));
    }
    if err.is_timeout() {
        return format!(
            "{text}: nothing arrived for {} s (--read-timeout), or the connection took over {} s to open",
            idle.as_secs(),
            CONNECT_TIMEOUT.as_secs()
        );
    }
    let mut parts = vec![text];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let status = err
        .status()
        .map(|s| format!("HTTP {}: ", s.as_u16()))
        .unwrap_or_default();
    format!("{status}{}", parts.join(": "))
}

/// A URL without its query and fragment, marked when it had a query.
fn without_query(url: &reqwest::Url) -> String {
    let mut bare = url.clone();
    let had = bare.query().is_some();
    bare.set_query(None);
    bare.set_fragment(None);
    if had {
        format!("{bare}?…")
    } else {
        bare.to_string()
    }
}

/// `host:port` as `--insecure-registry` names it (the port only when the
/// URL has one).
fn host_port(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// The `Bearer` challenge of a `401` answer, if it is one.
fn challenge_of(response: &Response) -> Option<Challenge> {
    if response.status() != StatusCode::UNAUTHORIZED {
        return None;
    }
    let header = response.headers().get(WWW_AUTHENTICATE)?.to_str().ok()?;
    Challenge::parse(header)
}

/// The `realm` of a `Bearer` challenge (`Bearer realm="...",service=...`).
pub fn realm_of(header: &str) -> Option<String> {
    Challenge::parse(header).map(|c| c.realm)
}

/// A `Bearer` challenge's realm and service.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    realm: String,
    service: Option<String>,
}

impl Challenge {
    /// `Bearer realm="...",service="...",scope="..."`; `None` for any other
    /// scheme.
    fn parse(header: &str) -> Option<Self> {
        let rest = header.trim();
        let (scheme, params) = rest.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut realm = None;
        let mut service = None;
        for part in split_params(params) {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_string();
            match key.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "service" => service = Some(value),
                _ => {}
            }
        }
        Some(Self {
            realm: realm.filter(|r| !r.is_empty())?,
            service,
        })
    }
}

/// The comma-separated parameters of a challenge, commas inside quotes kept.
fn split_params(params: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in params.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&params[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&params[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_gives_its_realm_and_service_and_other_schemes_none() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="reg,istry",scope="repository:a:pull""#
            ),
            Some(Challenge {
                realm: "https://auth.example/token".into(),
                service: Some("reg,istry".into()),
            })
        );
        assert_eq!(Challenge::parse(r#"Basic realm="x""#), None);
        assert_eq!(Challenge::parse("Bearer service=\"x\""), None);
        assert_eq!(Challenge::parse(""), None);
    }

    #[test]
    fn every_secret_is_removed_longest_first_and_an_excerpt_is_cut() {
        let secrets = vec![
            "alice".to_string(),
            "alice:hunter2".to_string(),
            "hunter2".to_string(),
            base64::engine::general_purpose::STANDARD.encode("alice:hunter2"),
        ];
        let text = format!(
            "denied alice:hunter2 Basic {} pw=hunter2 user=alice",
            base64::engine::general_purpose::STANDARD.encode("alice:hunter2")
        );
        let out = redact(&text, &secrets);
        assert_eq!(
            out,
            "denied <redacted> Basic <redacted> pw=<redacted> user=<redacted>"
        );
        let long = "é".repeat(600);
        let c = cut(&long, MAX_EXCERPT);
        assert!(c.len() < MAX_EXCERPT + 40, "{}", c.len());
        assert!(c.ends_with("(1200 bytes, cut)"), "{c}");
    }

    /// A server on 127.0.0.1 that answers every request with `answer(path)`
    /// (raw HTTP/1.1, the connection closed after it): a hostile registry
    /// and token service in a few lines.
    async fn serve(answer: fn(&str, u16) -> Vec<u8>) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = vec![0u8; 4096];
                    let n = stream.read(&mut head).await.unwrap_or(0);
                    let text = String::from_utf8_lossy(&head[..n]).to_string();
                    let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                    let _ = stream.write_all(&answer(&path, port)).await;
                    // An endless body: keep sending until the client hangs up.
                    if path.contains("endless") {
                        let chunk = vec![b'x'; 64 << 10];
                        while stream.write_all(&chunk).await.is_ok() {}
                    }
                });
            }
        });
        port
    }

    fn client(port: u16) -> Http {
        let host = format!("127.0.0.1:{port}");
        let reference = ModelRef::parse(&format!("oci://{host}/m:v1")).unwrap();
        Http::new(
            &reference,
            Credential::Anonymous,
            Vec::new(),
            &[host],
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_token_answer_without_end_is_cut_at_its_bound() {
        let port = serve(|path, port| {
            if path.starts_with("/v2/") && path.len() == 4 {
                format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/endless-token\",service=\"s\"\r\nContent-Length: 0\r\n\r\n").into_bytes()
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"token\": \"".to_vec()
            }
        })
        .await;
        let err = client(port).login().await.unwrap_err();
        assert!(
            matches!(&err, HttpError::TooLarge { what, limit } if what == "a token answer" && *limit == MAX_TOKEN_BYTES),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_redirect_loop_ends_after_five_hops() {
        let port = serve(|path, _| {
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {path}\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes()
        })
        .await;
        let err = client(port)
            .get_bounded("manifests/v1", &["*/*"], 1024, "the manifest")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("more than 5 redirects"), "{err}");
        assert!(err.is_transient(), "a transport error: {err}");
    }
}
