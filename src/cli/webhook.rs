//! `modelgate webhook`: the flags (or `MODELGATE_*` variables) into the
//! admission [`Admitter`] and the server's [`Listen`], all checked before
//! it listens: a gate image not pinned, a policy or a certificate that does
//! not load is exit 2 naming the flag. Then it serves until stopped.

use std::sync::Arc;
use std::time::Duration;

use tracing::error;

use super::args::WebhookArgs;
use crate::admission::decide::Admitter;
use crate::admission::metrics::Metrics;
use crate::admission::pod;
use crate::admission::policy::Current;
use crate::admission::server::{self, Listen};
use crate::gate::Spec;
use crate::gate::admit::AdmissionCache;
use crate::verify::Verdict;

/// Decisions kept, and how long.
const CACHE_ENTRIES: usize = 4096;
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Runs the webhook; returns only when it cannot start or serve.
pub(super) fn webhook_cmd(
    args: &WebhookArgs,
    workers: usize,
    runtime: &tokio::runtime::Runtime,
) -> Verdict {
    let fail = |message: String| {
        error!(exit_code = Verdict::Error.exit_code(), "{message}");
        Verdict::Error
    };
    if !pod::pinned(&args.gate_image) {
        return fail(format!(
            "--gate-image {}: not pinned; name the modelgate image by digest (REPOSITORY@sha256:<64 hex>)",
            args.gate_image
        ));
    }
    let timeout = Duration::from_secs(args.registry.timeout);
    let spec = Spec {
        policy: Some(args.policy.clone()),
        registry: args.registry.options(),
        concurrency: 1,
        registry_timeout: Some(timeout),
        workers,
        ..Spec::default()
    };
    let policy = match Current::new(spec) {
        Ok(policy) => Arc::new(policy),
        Err(e) => return fail(e.to_string()),
    };
    let admitter = Admitter {
        policy,
        gate_image: args.gate_image.clone(),
        cache: AdmissionCache::new(CACHE_ENTRIES, CACHE_TTL),
        timeout,
        metrics: Metrics::default(),
    };
    let listen = Listen {
        addr: args.listen,
        cert: args.tls_cert_file.clone(),
        key: args.tls_private_key_file.clone(),
    };
    match runtime.block_on(server::serve(listen, admitter)) {
        Ok(()) => Verdict::Verified,
        Err(e) => fail(e.to_string()),
    }
}
