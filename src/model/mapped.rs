//! Mapping a window of an open file into memory, to hash it without copying,
//! and starting the write-back of a file being written.
//!
//! This is the one module where `unsafe` is allowed: the map, a SIGBUS
//! handler of two async-signal-safe calls, and one `sync_file_range(2)`
//! (which `nix` does not wrap; see [`start_writeback`]). Why map at
//! all: `pread` copies every byte from the page cache into a buffer before the
//! hash reads it, and on this project's SHA-NI machine that copy costs 13% of
//! single-core throughput (1.24 GB/s through `pread` against 1.34 GB/s mapped,
//! with `openssl speed` at 1.43). Mapping a bounded window at a time (never the
//! whole file) keeps resident memory at a few MiB per worker.
//!
//! What the `unsafe` accepts: `Mmap::map` is unsafe because another process
//! may change or truncate the file while it is mapped.
//! - A change shows up in the bytes being hashed, exactly as it would through
//!   `read`; the digest then covers what was read, and verification compares
//!   it with the signed one as always.
//! - A truncation can make a mapped page disappear. Before mapping each window
//!   the caller checks with `fstat` that the file still reaches the window's
//!   end; a truncation after that check raises SIGBUS when the hash touches
//!   the lost page. The handler installed here turns that into a clear
//!   message and exit 1 (the model changed while it was verified) instead of
//!   a silent death by signal; nothing is recorded as verified, because the
//!   process ends before any record is written. (tests/attacks.rs truncates
//!   a file in a loop while it is hashed: about half the runs end here.)
//!
//! The window is mapped read-only and private, from the descriptor that was
//! opened with `O_NOFOLLOW` and checked with `fstat` (see `super::dir`).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

/// What the SIGBUS handler writes before it ends the process.
const SIGBUS_MESSAGE: &[u8] = b"modelgate: a model file shrank while it was being hashed (SIGBUS on a mapped page): the model is being changed under modelgate; it is rejected. Make the volume read-only to every other writer while modelgate runs, and run modelgate again.\n";

/// Exit status after SIGBUS: the model did not match (it was changing).
const SIGBUS_EXIT: i32 = 1;

extern "C" fn on_sigbus(_: nix::libc::c_int) {
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is a
    // static.
    unsafe {
        nix::libc::write(2, SIGBUS_MESSAGE.as_ptr().cast(), SIGBUS_MESSAGE.len());
        nix::libc::_exit(SIGBUS_EXIT);
    }
}

/// Installs the SIGBUS handler once per process.
fn handle_sigbus() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        let action = SigAction::new(
            SigHandler::Handler(on_sigbus),
            SaFlags::SA_RESETHAND,
            SigSet::empty(),
        );
        // SAFETY: the handler only calls async-signal-safe functions.
        if let Err(e) = unsafe { sigaction(Signal::SIGBUS, &action) } {
            tracing::warn!("cannot install the SIGBUS handler ({e}); a file truncated while hashed will end the process by signal");
        }
    });
}

/// Maps `len` bytes of `file` from `offset` (a multiple of the page size).
pub fn map_window(file: &File, offset: u64, len: usize) -> io::Result<Mmap> {
    handle_sigbus();
    // SAFETY: see the module comment: concurrent changes alter only the bytes
    // hashed; a truncation after the caller's size check ends the process
    // with SIGBUS, which the init-container contract treats as a failure.
    unsafe {
        MmapOptions::new()
            .offset(offset)
            .len(len)
            .populate()
            .map_copy_read_only(file)
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to
/// disk now, without waiting (`sync_file_range(2)` with
/// `SYNC_FILE_RANGE_WRITE`). A pull writes gigabytes that must be on disk
/// before the model is placed; without this, nothing is written back until
/// the final `fdatasync` (the dirty pages stay under the kernel's background
/// threshold), which then waits for all of it. It is only a hint: the
/// `fdatasync` after the last byte is what makes the file durable, and a
/// failure here is reported by that call too.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: the descriptor is open for as long as `file` is borrowed, and
    // the call reads no memory of this process.
    let done = unsafe {
        nix::libc::sync_file_range(
            file.as_raw_fd(),
            offset,
            len,
            nix::libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
