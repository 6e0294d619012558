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

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use sha2::Digest as _;

use super::layout::{ModelArtifact, ModelLayer, Unpack};
use super::registry::{OciError, Registry};
use crate::model::Digest;
use crate::verify::KnownDigests;

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
///
/// The network side (this task) only receives, into one of two fixed
/// buffers; a blocking thread of its own hashes each full buffer, writes it
/// in one `write`, gives it back, and starts each window's write-back as it
/// goes, so the final `fdatasync` has little left to wait for. Before, the
/// bytes went through a `BufWriter` and tokio's file (two copies and a
/// blocking-pool hop per write); measured in docs/performance.md.
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
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .mode(0o644)
        .open(target)
        .map_err(|e| {
            OciError::Content(format!(
                "cannot create {path} for layer {}: {e}",
                layer.digest
            ))
        })?;
    let (mut to_writer, writer) = start_writer(file);
    let mut received: u64 = 0;
    let mut attempt = 0;
    let started = std::time::Instant::now();
    let handle = opts.watch.started(path, layer.size);
    let streamed = loop {
        match stream_into(registry, layer, &mut to_writer, &mut received, handle, opts).await {
            Ok(()) => break Ok(()),
            Err(Failure::Final(e)) => break Err(e),
            // Every byte arrived, but the answer ended badly (a connection
            // cut after the body, a Content-Length longer than the body):
            // there is nothing left to ask for, and the digest decides.
            Err(Failure::Transient(e)) if received == layer.size => {
                tracing::warn!(blob = %layer.digest, path, "{e}; all {received} bytes arrived, checking the digest");
                break Ok(());
            }
            Err(Failure::Transient(e)) if attempt >= opts.retries => break Err(e),
            Err(Failure::Transient(e)) => {
                attempt += 1;
                tracing::warn!(blob = %layer.digest, path, attempt, "{e}; resuming at byte {received}");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    };
    opts.watch.finished(handle);
    // The writer stops at once, without syncing, when the channel closes
    // with no `Done` (a failure here, or this future dropped at the
    // deadline); a write error there ends the stream above and is reported
    // here.
    if streamed.is_ok() {
        // A failed send means the writer already ended, with its reason.
        let _ = to_writer.finish().await;
    }
    drop(to_writer);
    let written = writer
        .await
        .map_err(|e| OciError::Registry(format!("writing {path}: {e}")))?;
    let digest = match (streamed, written) {
        // The disk's error first: it is why the stream stopped, if it did.
        (_, Err(WriteError::Io(e))) => {
            return Err(OciError::Registry(format!(
                "cannot write {path} (layer {}): {e}",
                layer.digest
            )));
        }
        (Err(e), _) => return Err(e),
        (Ok(()), Err(WriteError::Abandoned)) => {
            return Err(OciError::Registry(format!(
                "cannot write {path} (layer {}): its writer stopped",
                layer.digest
            )));
        }
        (Ok(()), Ok(digest)) => digest,
    };
    let digest = Digest(digest).to_string();
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

/// Bytes per buffer handed from the network to the writer of one blob.
const WRITE_BATCH: usize = 256 << 10;

/// Buffers per blob: one filling from the network, one being written; a
/// fixed bound on memory (512 KiB per blob in flight) whatever the registry
/// or the disk does.
const BUFFERS: usize = 2;

/// Bytes written between two starts of write-back.
const WRITEBACK_WINDOW: u64 = 8 << 20;

/// What the network side hands the writer.
enum Piece {
    /// The blob's next bytes (a buffer of the pool, returned once written).
    Bytes(Vec<u8>),
    /// Every byte arrived: write the rest, make it durable, and give the
    /// digest.
    Done,
}

/// The network side's end of a blob's writer: buffers to fill, and where
/// to send them full.
struct ToWriter {
    pieces: tokio::sync::mpsc::Sender<Piece>,
    free: tokio::sync::mpsc::Receiver<Vec<u8>>,
    filling: Vec<u8>,
}

impl ToWriter {
    /// Copies `chunk` into the buffers, handing each full one over; false
    /// when the writer has stopped (it says why when joined).
    async fn put(&mut self, mut chunk: &[u8]) -> bool {
        while !chunk.is_empty() {
            let room = WRITE_BATCH - self.filling.len();
            let (now, rest) = chunk.split_at(room.min(chunk.len()));
            self.filling.extend_from_slice(now);
            chunk = rest;
            if self.filling.len() == WRITE_BATCH && !self.hand_over().await {
                return false;
            }
        }
        true
    }

    /// Sends the buffer being filled and takes an empty one.
    async fn hand_over(&mut self) -> bool {
        let Some(empty) = self.free.recv().await else {
            return false;
        };
        let full = std::mem::replace(&mut self.filling, empty);
        self.pieces.send(Piece::Bytes(full)).await.is_ok()
    }

    /// Sends what is left and asks for the digest.
    async fn finish(&mut self) -> bool {
        (self.filling.is_empty() || self.hand_over().await)
            && self.pieces.send(Piece::Done).await.is_ok()
    }
}

/// Why the writer ended without a digest.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the transfer was given up")]
    Abandoned,
}

/// Starts the writer thread of one blob.
fn start_writer(
    file: std::fs::File,
) -> (
    ToWriter,
    tokio::task::JoinHandle<Result<[u8; 32], WriteError>>,
) {
    let (pieces, rx) = tokio::sync::mpsc::channel(1);
    let (free_tx, free) = tokio::sync::mpsc::channel(BUFFERS);
    for _ in 1..BUFFERS {
        let _ = free_tx.try_send(Vec::with_capacity(WRITE_BATCH));
    }
    let writer = tokio::task::spawn_blocking(move || write_blob(file, rx, &free_tx));
    let to = ToWriter {
        pieces,
        free,
        filling: Vec::with_capacity(WRITE_BATCH),
    };
    (to, writer)
}

/// The writer thread of one blob: hashes and writes every buffer in order
/// and gives it back; on `Done`, `fdatasync`s the file (on disk before the
/// folder is renamed into place: a crash never leaves a torn file under a
/// name that looks verified; the data and the size it needs, not the
/// timestamps) and returns the SHA-256 of every byte written. Ends at once,
/// without syncing, when the channel closes with no `Done`.
fn write_blob(
    mut file: std::fs::File,
    mut rx: tokio::sync::mpsc::Receiver<Piece>,
    free: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<[u8; 32], WriteError> {
    use std::io::Write as _;
    let mut hasher = sha2::Sha256::new();
    let (mut written, mut flushed) = (0u64, 0u64);
    loop {
        match rx.blocking_recv() {
            Some(Piece::Bytes(mut buf)) => {
                hasher.update(&buf);
                file.write_all(&buf)?;
                written += buf.len() as u64;
                if written - flushed >= WRITEBACK_WINDOW {
                    // A hint only (see `start_writeback`); the fdatasync
                    // below is the guarantee.
                    let _ = crate::model::start_writeback(&file, flushed, written - flushed);
                    flushed = written;
                }
                buf.clear();
                let _ = free.try_send(buf);
            }
            Some(Piece::Done) => {
                file.sync_data()?;
                return Ok(hasher.finalize().into());
            }
            None => return Err(WriteError::Abandoned),
        }
    }
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

/// Streams the rest of a blob (from `*received` on) into the sink.
async fn stream_into(
    registry: &Registry,
    layer: &ModelLayer,
    writer: &mut ToWriter,
    received: &mut u64,
    handle: usize,
    opts: &PullOptions<'_>,
) -> Result<(), Failure> {
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
        // A closed channel: the writer failed, and says why when joined.
        if !writer.put(&chunk).await {
            return Err(Failure::Final(OciError::Registry(format!(
                "cannot write blob {blob}"
            ))));
        }
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
