//! The HTTPS server: TLS from a reloading resolver, HTTP/1.1 by hyper, every
//! read bounded in size and time, connections served concurrently.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::decide::{self, Admitter};
use super::review::{self, Review};
use super::tls::{self, Resolver, TlsError};

/// The largest request body read (the API server's own limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// The time a client has for its TLS handshake, its headers and its body.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 1024;
/// How often the certificate and policy files are looked at.
const CERT_POLL: Duration = Duration::from_secs(2);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The TLS configuration.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
    /// The listening address.
    #[error("--listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Where to listen and with which certificate.
pub struct Listen {
    /// The address.
    pub addr: SocketAddr,
    /// The PEM chain.
    pub cert: PathBuf,
    /// The PEM key.
    pub key: PathBuf,
}

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("a header value"),
    );
    response
}

/// Serves until the process ends.
pub async fn serve(listen: Listen, admitter: Admitter) -> Result<(), ServeError> {
    let resolver = Arc::new(Resolver::new(tls::load(&listen.cert, &listen.key)?));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(listen.addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: listen.addr,
            source,
        })?;
    tokio::spawn(tls::watch(resolver, listen.cert, listen.key, CERT_POLL));
    tokio::spawn(admitter.policy.clone().watch(CERT_POLL));
    let admitter = Arc::new(admitter);
    info!(listen = %listen.addr, gate_image = %admitter.gate_image, "webhook serving");
    crate::serve::accept(&listener, MAX_CONNECTIONS, |tcp, peer| {
        let acceptor = acceptor.clone();
        let admitter = admitter.clone();
        async move {
            let tls = match tokio::time::timeout(READ_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => return debug!(%peer, "TLS handshake took too long"),
            };
            let service = hyper::service::service_fn(move |request| {
                let admitter = admitter.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&admitter, request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_DEADLINE)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                debug!(%peer, "connection ended: {e}");
            }
        }
    })
    .await;
    Ok(())
}

async fn route(admitter: &Admitter, request: Request<Incoming>) -> Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        // Serving means the policy and the certificate were loaded.
        (&Method::GET, "/readyz") => match admitter.policy.problem() {
            None => text(StatusCode::OK, "ready\n"),
            Some(problem) => text(
                StatusCode::OK,
                format!(
                    "ready; the policy changed but was not reloaded, the last good one stays: {problem}\n"
                ),
            ),
        },
        (&Method::GET, "/metrics") => text(StatusCode::OK, admitter.metrics.render()),
        (&Method::POST, "/mutate") => review(admitter, "mutate", request).await,
        (&Method::POST, "/validate") => review(admitter, "validate", request).await,
        (_, "/mutate" | "/validate") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST an admission.k8s.io/v1 AdmissionReview\n",
        ),
        (_, path) => text(StatusCode::NOT_FOUND, format!("no {path} here\n")),
    }
}

/// Reads the body, bounded in size and time: `Err` is the response.
async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_BODY} bytes\n"),
        )
    };
    let announced = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let limited = Limited::new(request.into_body(), MAX_BODY);
    match tokio::time::timeout(READ_DEADLINE, limited.collect()).await {
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body took more than {} s\n", READ_DEADLINE.as_secs()),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {e}\n"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

async fn review(
    admitter: &Admitter,
    endpoint: &'static str,
    request: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => {
            admitter
                .metrics
                .review(endpoint, "error", started.elapsed());
            return response;
        }
    };
    let review = match Review::parse(&body) {
        Ok(review) => review,
        Err(e) => {
            admitter
                .metrics
                .review(endpoint, "error", started.elapsed());
            warn!(endpoint, "bad request: {e}");
            return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
    };
    let answer = match endpoint {
        "mutate" => admitter.mutate(&review),
        _ => admitter.validate(&review).await,
    };
    admitter
        .metrics
        .review(endpoint, decide::verdict(&answer), started.elapsed());
    let body = serde_json::to_vec(&review::response(&review.uid, &answer)).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("a header value"),
    );
    response
}
