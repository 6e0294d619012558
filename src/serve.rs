//! The accept loop the webhook and the watch probes share: at most `max`
//! connections served at once (more wait in the kernel's queue until one
//! ends), a failed accept (out of descriptors, say) logged and retried after
//! 50 ms rather than ending the server, and each connection served on a task
//! of its own that holds its slot until it ends.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::warn;

/// Accepts connections on `listener` for ever, `handle` serving each.
pub async fn accept<F, Fut>(listener: &TcpListener, max: usize, handle: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let served = handle(tcp, peer);
        tokio::spawn(async move {
            let _slot = slot;
            served.await;
        });
    }
}
