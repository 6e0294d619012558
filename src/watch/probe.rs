//! The probes' HTTP server: plain HTTP/1.1 on the pod network, where the
//! kubelet's `httpGet` probes reach it (a probe carries no credentials and
//! the answers are not secret: the same words are in the logs). `/readyz`
//! is the model's state, `/livez` the restart request; anything else is a
//! 404. Every read is bounded in time and size, as the webhook's are.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::debug;

use super::health::{Answer, Health};

/// The time a client has for its headers.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;

/// Binds `addr`; the error names the setting.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("MODELGATE_WATCH_LISTEN={addr}: cannot listen: {e}"))
}

/// Serves the probes until the process ends.
pub async fn serve(listener: TcpListener, health: Arc<Health>) {
    crate::serve::accept(&listener, MAX_CONNECTIONS, |tcp, peer| {
        let health = health.clone();
        async move {
            let service = hyper::service::service_fn(move |request| {
                let health = health.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&health, &request)) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_DEADLINE)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                debug!(%peer, "connection ended: {e}");
            }
        }
    })
    .await;
}

fn route(health: &Health, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/readyz") => health.readiness(),
        (&Method::GET | &Method::HEAD, "/livez") => health.liveness(Instant::now()),
        (_, "/readyz" | "/livez") => {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        }
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "not found: try /readyz or /livez\n".into(),
            );
        }
    };
    let Answer { ok, body } = answer;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, body)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
