//! Pulling a model's layers into a fresh folder in one pass: each blob is
//! streamed from the registry to its file while its SHA-256 is computed, and
//! a blob whose digest or size is not what the manifest says is an error.
//! For a raw layer that digest is the file's SHA-256, so a `files`/`sha256`
//! signature is checked by the same hash.
//!
//! Blobs are fetched concurrently (bounded), and a transfer that breaks is
//! resumed with an HTTP Range request, with backoff, a few times. A tar
//! layer is the exception to the single pass: its blob is kept beside the
//! model until its digest is proven, and only then unpacked, so no byte of
//! an unverified archive is ever interpreted. The caller owns the folder and
//! removes it on any failure.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use super::layout::{ModelArtifact, ModelLayer, Unpack};
use super::registry::{OciError, Registry};
use crate::model::Digest;
use crate::verify::KnownDigests;

/// Bytes gathered before each write to disk.
const WRITE_BUFFER: usize = 1 << 20;

/// How to pull.
pub struct PullOptions<'a> {
    /// Blobs in flight at once.
    pub concurrency: usize,
    /// Attempts per blob after a transient failure (resumed where it broke).
    pub retries: u32,
    /// Told of each blob's transfer.
    pub watch: &'a dyn Watch,
    /// An empty folder of the caller's, on the model's file system, where
    /// tar layers wait until their digest is proven (each is removed once
    /// unpacked; the caller removes the folder).
    pub scratch: &'a Path,
}

/// What a pull reports while it runs: a progress bar per blob on a
/// terminal. The pull logs each blob it finishes itself.
pub trait Watch: Sync {
    /// A blob of `size` bytes starts; `shown` names it. Returns a handle for
    /// the calls below.
    fn started(&self, shown: &str, size: u64) -> usize;
    /// `n` more bytes of the blob arrived.
    fn received(&self, handle: usize, n: u64);
    /// The blob is complete (or failed).
    fn finished(&self, handle: usize);
}

/// Downloads every layer of `artifact` into `dir` (an empty folder the
/// caller made). A raw layer streams straight into its file; a tar layer is
/// downloaded into `opts.scratch`, checked against its digest, and only then
/// unpacked ([`super::untar`]), in manifest order.
pub async fn download(
    registry: &Registry,
    artifact: &ModelArtifact,
    dir: &Path,
    opts: &PullOptions<'_>,
) -> Result<KnownDigests, OciError> {
    let blobs = opts.scratch;
    // A tar blob named twice (images repeat their empty layer) is fetched
    // once, and removed after its last unpacking.
    let mut scheduled = std::collections::HashSet::new();
    let mut last_use = std::collections::HashMap::new();
    for (i, layer) in artifact.layers.iter().enumerate() {
        if matches!(layer.unpack, Unpack::Tar { .. }) {
            last_use.insert(layer.digest.as_str(), i);
        }
    }
    let fetched: Vec<&ModelLayer> = artifact
        .layers
        .iter()
        .filter(|l| matches!(l.unpack, Unpack::Raw(_)) || scheduled.insert(l.digest.as_str()))
        .collect();
    let jobs = fetched.into_iter().map(|layer| {
        let (target, shown) = match &layer.unpack {
            Unpack::Raw(path) => (dir.join(path), path.clone()),
            Unpack::Tar { .. } => (
                blobs.join(layer.digest.replace(':', "-")),
                format!("tar layer {}", layer.digest),
            ),
        };
        async move { fetch_layer(registry, layer, &target, &shown, opts).await }
    });
    let results: Vec<Result<(), OciError>> = futures_util::stream::iter(jobs)
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<(), OciError>>()?;
    for (i, layer) in artifact.layers.iter().enumerate() {
        let Unpack::Tar {
            under,
            compression,
            within,
            select,
        } = &layer.unpack
        else {
            continue;
        };
        let last = last_use.get(layer.digest.as_str()) == Some(&i);
        let blob = blobs.join(layer.digest.replace(':', "-"));
        let stop = std::sync::Arc::new(super::untar::Stop::default());
        // If this future is dropped (the deadline), the unpacking stops
        // before the caller removes the folder.
        let _raise = RaiseOnDrop(std::sync::Arc::clone(&stop));
        let target = super::untar::Target {
            root: dir.to_path_buf(),
            under: under.clone(),
            within: within.clone(),
            select: select.clone(),
            stop: Some(stop),
        };
        let (compression, digest, size) = (*compression, layer.digest.clone(), layer.size);
        tokio::task::spawn_blocking(move || {
            let unpacked = super::untar::unpack(&blob, size, compression, &target, &digest);
            if last {
                let _ = std::fs::remove_file(&blob);
            }
            unpacked
        })
        .await
        .map_err(|e| OciError::Registry(format!("unpacking layer {}: {e}", layer.digest)))?
        .map_err(|e| match e {
            OciError::Content(why) => OciError::Content(format!("{}: {why}", registry.reference)),
            other => other,
        })?;
    }
    // Every raw file was written from bytes whose SHA-256 is its layer's
    // digest: verification need not hash it again.
    let mut known = KnownDigests::new();
    for layer in &artifact.layers {
        if let Unpack::Raw(path) = &layer.unpack
            && let Some(digest) = Digest::parse(&layer.digest)
        {
            known.insert(path.clone(), (digest.0, layer.size));
        }
    }
    Ok(known)
}

/// Streams one layer's blob into `target` (a new file), checking its size
/// and digest; `path` names it in messages.
async fn fetch_layer(
    registry: &Registry,
    layer: &ModelLayer,
    target: &Path,
    path: &str,
    opts: &PullOptions<'_>,
) -> Result<(), OciError> {
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| OciError::Registry(format!("cannot create {}: {e}", parent.display())))?;
    }
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .mode(0o644)
        .open(target)
        .await
        .map_err(|e| {
            OciError::Content(format!(
                "cannot create {path} for layer {}: {e}",
                layer.digest
            ))
        })?;
    // tokio's file hands every write to a blocking thread: the network's
    // small chunks are gathered into 4 MiB writes (measured: this halved the
    // pull's overhead over curl).
    let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = sha2::Sha256::new();
    let mut received: u64 = 0;
    let mut attempt = 0;
    let started = std::time::Instant::now();
    let handle = opts.watch.started(path, layer.size);
    loop {
        let sink = Sink {
            file: &mut file,
            hasher: &mut hasher,
            received: &mut received,
            handle,
        };
        match stream_into(registry, layer, sink, opts).await {
            Ok(()) => break,
            Err(Failure::Final(e)) => {
                opts.watch.finished(handle);
                return Err(e);
            }
            // Every byte arrived, but the answer ended badly (a connection
            // cut after the body, a Content-Length longer than the body):
            // there is nothing left to ask for, and the digest decides.
            Err(Failure::Transient(e)) if received == layer.size => {
                tracing::warn!(blob = %layer.digest, path, "{e}; all {received} bytes arrived, checking the digest");
                break;
            }
            Err(Failure::Transient(e)) if attempt >= opts.retries => {
                opts.watch.finished(handle);
                return Err(e);
            }
            Err(Failure::Transient(e)) => {
                attempt += 1;
                tracing::warn!(blob = %layer.digest, path, attempt, "{e}; resuming at byte {received}");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    opts.watch.finished(handle);
    // On disk before the folder is renamed into place: a crash never leaves
    // a torn file under a name that looks verified. fdatasync, not fsync:
    // the data and the size the data needs, without the timestamps nobody
    // reads back. (Measured: no cost the benchmark can see; the data is
    // written once either way.)
    file.flush()
        .await
        .map_err(|e| OciError::Registry(format!("cannot write {path}: {e}")))?;
    file.get_ref()
        .sync_data()
        .await
        .map_err(|e| OciError::Registry(format!("cannot write {path}: {e}")))?;
    let digest = Digest(hasher.finalize().into()).to_string();
    if digest != layer.digest {
        return Err(mismatch(path, &layer.digest, &digest));
    }
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        blob = %layer.digest,
        path,
        bytes = layer.size,
        seconds = format!("{seconds:.3}"),
        "blob fetched, digest checked"
    );
    Ok(())
}

/// Raises a stop when dropped: a pull given up on mid-unpacking (its future
/// dropped at the deadline) stops its blocking unpacker, and waits for the
/// entry in progress, before the caller removes the model folder.
struct RaiseOnDrop(std::sync::Arc<super::untar::Stop>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.raise();
    }
}

/// A blob that arrived with other bytes than its digest names.
fn mismatch(path: &str, blob: &str, got: &str) -> OciError {
    OciError::Content(format!(
        "{path}: layer {blob} arrived with digest {got}; the registry served other bytes than the manifest names (a corrupted or substituted blob)"
    ))
}

enum Failure {
    /// Worth another attempt from where it stopped (a broken connection).
    Transient(OciError),
    /// Not worth retrying (a wrong digest or size, a refused request).
    Final(OciError),
}

/// Where a blob's bytes go: its file and its hash, and how many arrived.
struct Sink<'a> {
    file: &'a mut tokio::io::BufWriter<tokio::fs::File>,
    hasher: &'a mut sha2::Sha256,
    received: &'a mut u64,
    handle: usize,
}

/// Streams the rest of a blob (from `*received` on) into the sink.
async fn stream_into(
    registry: &Registry,
    layer: &ModelLayer,
    sink: Sink<'_>,
    opts: &PullOptions<'_>,
) -> Result<(), Failure> {
    let Sink {
        file,
        hasher,
        received,
        handle,
    } = sink;
    let blob = &layer.digest;
    let doing = if *received == 0 { "fetch" } else { "resume" };
    // Asked for as a range, even from byte 0, and open-ended (`bytes=N-`):
    // a blob longer than its descriptor shows. An empty blob is asked for
    // whole (a range of nothing is a 416). A registry that ignores Range on
    // a first request sends the whole blob, which is fine.
    let from = (layer.size > 0).then_some(*received);
    let mut response = registry.http.blob(blob, from).await.map_err(|e| {
        let transient = e.is_transient();
        let error = registry.http_error(&format!("{doing} blob {blob} of"), &registry.reference, e);
        if transient {
            Failure::Transient(error)
        } else {
            Failure::Final(error)
        }
    })?;
    if *received > 0 && response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
        return Err(Failure::Final(OciError::Registry(format!(
            "{}: the registry ignored the Range request to resume blob {blob}",
            registry.reference
        ))));
    }
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::Transient(OciError::Registry(format!(
                    "{}: blob {blob} broke off after {received} of {} bytes: {}",
                    registry.reference,
                    layer.size,
                    registry.http.transport(&e)
                ))));
            }
        };
        let len = chunk.len() as u64;
        if *received + len > layer.size {
            return Err(Failure::Final(OciError::Content(format!(
                "{}: blob {blob} is longer than the {} bytes its descriptor says",
                registry.reference, layer.size
            ))));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| {
            Failure::Final(OciError::Registry(format!("cannot write blob {blob}: {e}")))
        })?;
        *received += len;
        opts.watch.received(handle, len);
    }
    if *received < layer.size {
        return Err(Failure::Transient(OciError::Content(format!(
            "{}: blob {blob} ended after {received} of the {} bytes its descriptor says",
            registry.reference, layer.size
        ))));
    }
    Ok(())
}
