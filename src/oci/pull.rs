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

/// Bytes per buffer handed from the network to the writer of one blob (a
/// multiple of [`ALIGN`]).
const WRITE_BATCH: usize = 256 << 10;

/// Buffers per blob: one filling from the network, one being written; a
/// fixed bound on memory (512 KiB per blob in flight) whatever the registry
/// or the disk does.
const BUFFERS: usize = 2;

/// Bytes written between two starts of write-back (buffered writes only).
const WRITEBACK_WINDOW: u64 = 8 << 20;

/// The alignment `O_DIRECT` asks of addresses, lengths and offsets (a page:
/// at least the logical block size of every disk in use).
const ALIGN: usize = 4096;

/// A buffer whose bytes start on an [`ALIGN`] boundary, found inside a
/// plain `Vec` (no allocator tricks, no `unsafe`).
struct Block {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    fn new() -> Self {
        let mem = vec![0u8; WRITE_BATCH + ALIGN];
        // `align_offset` may in theory give up; then the buffer is simply
        // unaligned, and the writer falls back to buffered writes.
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self { mem, start, len: 0 }
    }

    fn room(&self) -> usize {
        WRITE_BATCH - self.len
    }

    fn extend(&mut self, bytes: &[u8]) {
        let at = self.start + self.len;
        self.mem[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn bytes(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    fn aligned(&self) -> bool {
        self.start < ALIGN && self.mem.as_ptr().wrapping_add(self.start) as usize % ALIGN == 0
    }
}

/// What the network side hands the writer.
enum Piece {
    /// The blob's next bytes (a buffer of the pool, returned once written).
    Bytes(Block),
    /// Every byte arrived: write the rest, make it durable, and give the
    /// digest.
    Done,
}

/// The network side's end of a blob's writer: buffers to fill, and where
/// to send them full.
struct ToWriter {
    pieces: tokio::sync::mpsc::Sender<Piece>,
    free: tokio::sync::mpsc::Receiver<Block>,
    filling: Block,
}

impl ToWriter {
    /// Copies `chunk` into the buffers, handing each full one over; false
    /// when the writer has stopped (it says why when joined).
    async fn put(&mut self, mut chunk: &[u8]) -> bool {
        while !chunk.is_empty() {
            let (now, rest) = chunk.split_at(self.filling.room().min(chunk.len()));
            self.filling.extend(now);
            chunk = rest;
            if self.filling.room() == 0 && !self.hand_over().await {
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
        (self.filling.len == 0 || self.hand_over().await)
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
        let _ = free_tx.try_send(Block::new());
    }
    let writer = tokio::task::spawn_blocking(move || write_blob(file, rx, &free_tx));
    let to = ToWriter {
        pieces,
        free,
        filling: Block::new(),
    };
    (to, writer)
}

/// Turns `O_DIRECT` on or off for `file`; whether it is on.
fn set_direct(file: &std::fs::File, on: bool) -> bool {
    use nix::fcntl::{F_GETFL, F_SETFL, OFlag, fcntl};
    let Ok(flags) = fcntl(file, F_GETFL) else {
        return false;
    };
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_DIRECT, on);
    fcntl(file, F_SETFL(flags)).is_ok() && on
}

/// The writer thread of one blob: hashes and writes every buffer in order
/// and gives it back; on `Done`, `fdatasync`s the file (on disk before the
/// folder is renamed into place: a crash never leaves a torn file under a
/// name that looks verified; the data and the size it needs, not the
/// timestamps) and returns the SHA-256 of every byte written. Ends at once,
/// without syncing, when the channel closes with no `Done`.
///
/// Writes go around the page cache (`O_DIRECT`) where the file system
/// allows it: the disk reads the bytes from the buffer itself, so the CPU
/// neither copies them into the page cache nor writes them back later,
/// which on the 2-core benchmark machine was the pull's largest cost after
/// the hash (docs/performance.md). The model is then read from disk by its
/// first reader rather than from memory. A file system that refuses
/// `O_DIRECT` (tmpfs: an `emptyDir` in memory) gets buffered writes, with
/// write-back started every [`WRITEBACK_WINDOW`] so the final `fdatasync`
/// has little left to wait for.
fn write_blob(
    file: std::fs::File,
    mut rx: tokio::sync::mpsc::Receiver<Piece>,
    free: &tokio::sync::mpsc::Sender<Block>,
) -> Result<[u8; 32], WriteError> {
    use std::os::unix::fs::FileExt as _;
    let mut hasher = sha2::Sha256::new();
    let mut direct = set_direct(&file, true);
    let (mut written, mut flushed) = (0u64, 0u64);
    loop {
        match rx.blocking_recv() {
            Some(Piece::Bytes(mut block)) => {
                let bytes = block.bytes();
                hasher.update(bytes);
                // Whole aligned blocks directly; a tail (the blob's last
                // bytes) or an unaligned buffer through the page cache.
                let whole = if direct && block.aligned() {
                    bytes.len() - bytes.len() % ALIGN
                } else {
                    0
                };
                if whole > 0 {
                    match file.write_all_at(&bytes[..whole], written) {
                        Ok(()) => {}
                        // Refused after all (a file system that accepts the
                        // flag but not the write): buffered from here on.
                        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                            direct = set_direct(&file, false);
                            file.write_all_at(&bytes[..whole], written)?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if whole < bytes.len() {
                    if direct {
                        direct = set_direct(&file, false);
                    }
                    file.write_all_at(&bytes[whole..], written + whole as u64)?;
                }
                written += bytes.len() as u64;
                if !direct && written - flushed >= WRITEBACK_WINDOW {
                    // A hint only (see `start_writeback`); the fdatasync
                    // below is the guarantee.
                    let _ = crate::model::start_writeback(&file, flushed, written - flushed);
                    flushed = written;
                }
                block.len = 0;
                let _ = free.try_send(block);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `data` through a blob writer into a new file in `dir`, in
    /// network-sized pieces; the digest it gives and the file's bytes.
    fn write_through(dir: &Path, data: &[u8]) -> ([u8; 32], Vec<u8>) {
        let path = dir.join("blob");
        let _ = std::fs::remove_file(&path);
        let file = std::fs::File::create_new(&path).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (free_tx, mut free) = tokio::sync::mpsc::channel(BUFFERS);
        let _ = free_tx.try_send(Block::new());
        let writer = std::thread::spawn(move || write_blob(file, rx, &free_tx));
        let mut filling = Block::new();
        for piece in data.chunks(16_411) {
            let mut piece = piece;
            while !piece.is_empty() {
                let (now, rest) = piece.split_at(filling.room().min(piece.len()));
                filling.extend(now);
                piece = rest;
                if filling.room() == 0 {
                    let empty = free.blocking_recv().unwrap();
                    tx.blocking_send(Piece::Bytes(std::mem::replace(&mut filling, empty)))
                        .unwrap();
                }
            }
        }
        if filling.len > 0 {
            tx.blocking_send(Piece::Bytes(filling)).unwrap();
        }
        tx.blocking_send(Piece::Done).unwrap();
        let digest = writer.join().unwrap().unwrap();
        (digest, std::fs::read(&path).unwrap())
    }

    #[test]
    fn every_size_is_written_whole_and_hashed_direct_or_buffered() {
        let data: Vec<u8> = (0..3 * WRITE_BATCH + 5000)
            .map(|i| (i * 7 + i / 4096) as u8)
            .collect();
        // The build's disk (O_DIRECT on ext4) and, where there is one, a
        // tmpfs (which refuses O_DIRECT: buffered writes).
        let disk = tempfile::tempdir().unwrap();
        let mut dirs = vec![disk.path().to_path_buf()];
        let shm = tempfile::tempdir_in("/dev/shm").ok();
        if let Some(shm) = &shm {
            dirs.push(shm.path().to_path_buf());
        }
        for dir in &dirs {
            for size in [
                0,
                1,
                ALIGN - 1,
                ALIGN,
                ALIGN + 1,
                WRITE_BATCH,
                WRITE_BATCH + 123,
                data.len(),
            ] {
                let (digest, written) = write_through(dir, &data[..size]);
                assert_eq!(written, &data[..size], "{size} bytes in {}", dir.display());
                let want: [u8; 32] = sha2::Sha256::digest(&data[..size]).into();
                assert_eq!(digest, want, "{size} bytes in {}", dir.display());
            }
        }
    }

    #[test]
    fn a_writer_whose_transfer_is_given_up_stops_without_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create_new(dir.path().join("blob")).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (free_tx, _free) = tokio::sync::mpsc::channel(BUFFERS);
        let writer = std::thread::spawn(move || write_blob(file, rx, &free_tx));
        let mut block = Block::new();
        block.extend(b"part of a blob");
        tx.blocking_send(Piece::Bytes(block)).unwrap();
        drop(tx);
        assert!(matches!(writer.join().unwrap(), Err(WriteError::Abandoned)));
    }
}
