//! The measurement log, hash-chained like a TPM PCR or the IMA list: each
//! run appends one JSON line `{"entry": {...}, "entryDigest": hex, "chain":
//! hex}` where `entryDigest` = SHA-256 of the entry's canonical JSON (keys
//! sorted, no spaces) and `chain` = SHA-256(previous chain || entryDigest),
//! starting from 32 zero bytes. [`verify_log`] recomputes every line and
//! names the first one that was edited, reordered or removed; removing the
//! *last* entries can only be seen against a chain value kept elsewhere
//! (`--expect-chain`, like a PCR quote).
//!
//! And the termination message: a short summary of the verdict for the file
//! kubelet shows in `kubectl describe pod` (at most 4096 bytes).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::Summary;
use sha2::{Digest as _, Sha256};

/// The most a log may hold (a line per pod start: years of restarts).
pub const MAX_LOG_BYTES: u64 = 64 << 20;
/// The most kubelet reads of a termination message.
pub const MAX_TERMINATION_BYTES: usize = 4096;

/// Why a log could not be appended to or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be opened, read, locked or written.
    #[error("measurement log {path}: {source}")]
    Io {
        /// The log.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The log does not verify.
    #[error("measurement log {path}: {why}")]
    Broken {
        /// The log.
        path: String,
        /// What is wrong, and where.
        why: String,
    },
}

/// Why a log's text does not verify: the first line that is wrong, and how.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// An empty line.
    #[error("line {line} is empty: the log was edited")]
    EmptyLine {
        /// Its number, from 1.
        line: usize,
    },
    /// A line that is not JSON.
    #[error("line {line} is not a log entry ({source}): the log was edited")]
    NotEntry {
        /// Its number, from 1.
        line: usize,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// A line without `entry`.
    #[error("line {line} has no entry")]
    NoEntry {
        /// Its number, from 1.
        line: usize,
    },
    /// A line without a hex `entryDigest`.
    #[error("line {line} has no entryDigest")]
    NoEntryDigest {
        /// Its number, from 1.
        line: usize,
    },
    /// A line whose entry does not have the digest it states.
    #[error(
        "line {line}: the entry was edited (its digest is {}, the line says {})",
        hex::encode(.actual),
        hex::encode(.stated)
    )]
    Edited {
        /// Its number, from 1.
        line: usize,
        /// The entry's digest.
        actual: [u8; 32],
        /// The digest the line states.
        stated: [u8; 32],
    },
    /// A line without a hex `chain`.
    #[error("line {line} has no chain")]
    NoChain {
        /// Its number, from 1.
        line: usize,
    },
    /// A line whose chain value does not follow from the lines before it.
    #[error(
        "line {line}: the chain breaks (expected {}, the line says {}): an entry before it was removed or reordered, or the line was rewritten",
        hex::encode(.expected),
        hex::encode(.stated)
    )]
    Breaks {
        /// Its number, from 1.
        line: usize,
        /// The chain value the lines before it give.
        expected: [u8; 32],
        /// The chain value the line states.
        stated: [u8; 32],
    },
}

/// What a verified log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    /// Entries.
    pub entries: usize,
    /// The last chain value (hex): what a later check compares against.
    pub chain: String,
}

/// Canonical JSON: object keys sorted, no whitespace (serde_json's `Value`
/// keeps insertion order with `preserve_order`, so keys are sorted here).
fn canonical(value: &Value) -> Vec<u8> {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&map[k]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

fn next_chain(previous: &[u8; 32], entry_digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(entry_digest);
    h.finalize().into()
}

/// The log entry for a measurement document: what was decided, about what,
/// where, and the SHA-256 of the whole document, so the log commits to it.
pub fn entry_for(measurement: &Summary, measurement_bytes: &[u8]) -> Value {
    let signers: Vec<Value> = measurement
        .signers
        .iter()
        .map(|s| json!({"authority": s.authority, "identity": s.identity}))
        .collect();
    let (reference, digest) = match &measurement.source {
        Some((r, d)) => (json!(r), json!(d)),
        None => (Value::Null, Value::Null),
    };
    let (policy, rule) = match &measurement.policy {
        Some((p, r)) => (json!(p), json!(r)),
        None => (Value::Null, Value::Null),
    };
    let mut entry = json!({
        "time": measurement.time,
        "verdict": measurement.verdict.as_str(),
        "model": {
            "path": measurement.model_path,
            "name": measurement.model_name,
            "rootDigest": measurement.root_digest,
        },
        "source": {"reference": reference, "digest": digest},
        "policy": {"name": policy, "rule": rule},
        "signers": signers,
        "pod": measurement.pod,
        "gpuDriver": measurement.gpu_driver,
        "measurementSha256": hex::encode(Sha256::digest(measurement_bytes)),
    });
    // Only `watch`'s entries have it: every other entry stays as it was.
    if let (Some(watch), Some(map)) = (&measurement.watch, entry.as_object_mut()) {
        map.insert(
            "watch".into(),
            json!({"event": watch.event, "files": watch.files}),
        );
    }
    entry
}

/// Appends `entry` to the log at `path` (created if absent, mode 0644),
/// under an exclusive lock, after checking the chain so far. Returns the new
/// chain value.
pub fn append(path: &Path, entry: &Value) -> Result<String, LogError> {
    let io = |source| LogError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(io)?;
    let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io(std::io::Error::from(e)))?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_LOG_BYTES {
        return Err(LogError::Broken {
            path: path.display().to_string(),
            why: format!(
                "it is larger than {MAX_LOG_BYTES} bytes; rotate it (keep the last chain value)"
            ),
        });
    }
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    (&mut *file)
        .take(MAX_LOG_BYTES)
        .read_to_string(&mut text)
        .map_err(io)?;
    let before = check(&text).map_err(|why| LogError::Broken {
        path: path.display().to_string(),
        why: format!("{why}; nothing was appended"),
    })?;
    let previous = hex_32(&before.chain).unwrap_or([0; 32]);
    let entry_digest: [u8; 32] = Sha256::digest(canonical(entry)).into();
    let chain = hex::encode(next_chain(&previous, &entry_digest));
    let mut line = serde_json::to_vec(&json!({
        "entry": entry,
        "entryDigest": hex::encode(entry_digest),
        "chain": chain,
    }))
    .unwrap_or_default();
    line.push(b'\n');
    file.write_all(&line).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(chain)
}

/// Verifies the log at `path`: every entry's digest and the chain, and the
/// last chain value against `expect` when given.
pub fn verify_log(path: &Path, expect: Option<&str>) -> Result<LogSummary, LogError> {
    let bytes = crate::io::read_bounded("measurement log", path, MAX_LOG_BYTES).map_err(|e| {
        LogError::Broken {
            path: path.display().to_string(),
            why: e.to_string(),
        }
    })?;
    let broken = |why: String| LogError::Broken {
        path: path.display().to_string(),
        why,
    };
    let text = String::from_utf8(bytes).map_err(|_| broken("it is not UTF-8 text".into()))?;
    let summary = check(&text).map_err(|e| broken(e.to_string()))?;
    if let Some(want) = expect
        && !want.eq_ignore_ascii_case(&summary.chain)
    {
        return Err(broken(format!(
            "the last chain value is {} ({} entries), not the expected {want}: entries were removed from the end, or the log was replaced",
            summary.chain, summary.entries
        )));
    }
    Ok(summary)
}

/// Recomputes the chain of the log's text: the number of entries and the
/// last chain value, or why the log is broken.
pub fn check(text: &str) -> Result<LogSummary, ChainError> {
    let mut chain = [0u8; 32];
    let mut entries = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            return Err(ChainError::EmptyLine { line: n });
        }
        let doc: Value = serde_json::from_str(line)
            .map_err(|source| ChainError::NotEntry { line: n, source })?;
        let entry = doc.get("entry").ok_or(ChainError::NoEntry { line: n })?;
        let stated = doc
            .get("entryDigest")
            .and_then(Value::as_str)
            .and_then(hex_32)
            .ok_or(ChainError::NoEntryDigest { line: n })?;
        let actual: [u8; 32] = Sha256::digest(canonical(entry)).into();
        if actual != stated {
            return Err(ChainError::Edited {
                line: n,
                actual,
                stated,
            });
        }
        let stated_chain = doc
            .get("chain")
            .and_then(Value::as_str)
            .and_then(hex_32)
            .ok_or(ChainError::NoChain { line: n })?;
        let expected = next_chain(&chain, &actual);
        if stated_chain != expected {
            return Err(ChainError::Breaks {
                line: n,
                expected,
                stated: stated_chain,
            });
        }
        chain = expected;
        entries = n;
    }
    Ok(LogSummary {
        entries,
        chain: if entries == 0 {
            String::new()
        } else {
            hex::encode(chain)
        },
    })
}

fn hex_32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// The termination message for a measurement document: the verdict, the
/// model, its root digest and signers; on a rejection the reasons (drifted
/// files by name); on an error the reason. At most 4096 bytes, cut on a
/// character boundary.
pub fn termination_message(measurement: &Summary) -> String {
    let mut out = format!("modelgate: {}", measurement.verdict);
    let name = measurement
        .model_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(&measurement.model_path);
    out.push_str(&format!(": {name}"));
    if let Some(root) = &measurement.root_digest {
        out.push_str(&format!(" (root {root})"));
    }
    if let Some((reference, digest)) = &measurement.source {
        out.push_str(&format!("\nsource: {reference} ({digest})"));
    }
    let signers: Vec<String> = measurement
        .signers
        .iter()
        .map(|s| format!("{} [{}]", s.identity, s.authority))
        .collect();
    if !signers.is_empty() {
        out.push_str(&format!("\nsigned by: {}", signers.join("; ")));
    }
    for reason in &measurement.reasons {
        out.push_str(&format!("\n- {reason}"));
    }
    out.push('\n');
    cut(out, MAX_TERMINATION_BYTES)
}

/// `text` cut to at most `max` bytes on a character boundary, ending with
/// an ellipsis line when cut.
pub fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    const MORE: &str = "\n…(cut; the measurement has everything)\n";
    let mut end = max.saturating_sub(MORE.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MORE}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Verdict;

    #[test]
    fn a_log_over_its_size_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_LOG_BYTES + 1).unwrap();
        let err = verify_log(&path, None).unwrap_err().to_string();
        assert!(
            err.contains(&format!("it is larger than {MAX_LOG_BYTES} bytes")),
            "{err}"
        );
    }

    fn entry(n: u64) -> Value {
        json!({"verdict": "verified", "n": n, "model": {"name": "m"}})
    }

    #[test]
    fn a_log_verifies_and_names_edited_reordered_and_removed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        let mut chains = Vec::new();
        for n in 0..4 {
            chains.push(append(&log, &entry(n)).unwrap());
        }
        let summary = verify_log(&log, Some(&chains[3])).unwrap();
        assert_eq!(summary.entries, 4);
        assert_eq!(summary.chain, chains[3]);
        let lines: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let write = |lines: &[String]| {
            std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        };
        // Edited: the verdict of entry 2.
        let mut edited = lines.clone();
        edited[1] = edited[1].replace("\"verified\"", "\"rejected\"");
        write(&edited);
        let err = verify_log(&log, None).unwrap_err().to_string();
        assert!(err.contains("line 2: the entry was edited"), "{err}");
        // Reordered.
        let mut reordered = lines.clone();
        reordered.swap(1, 2);
        write(&reordered);
        let err = verify_log(&log, None).unwrap_err().to_string();
        assert!(err.contains("line 2: the chain breaks"), "{err}");
        // Removed from the middle.
        let mut removed = lines.clone();
        removed.remove(1);
        write(&removed);
        let err = verify_log(&log, None).unwrap_err().to_string();
        assert!(err.contains("line 2: the chain breaks"), "{err}");
        // Removed from the end: only the expected chain shows it.
        write(&lines[..3]);
        assert!(verify_log(&log, None).is_ok());
        let err = verify_log(&log, Some(&chains[3])).unwrap_err().to_string();
        assert!(err.contains("entries were removed from the end"), "{err}");
        // An append to a broken log is refused.
        write(&edited);
        let err = append(&log, &entry(9)).unwrap_err().to_string();
        assert!(err.contains("nothing was appended"), "{err}");
    }

    #[test]
    fn the_chain_is_sha256_of_the_previous_chain_and_the_canonical_entry() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        let e = json!({"b": 1, "a": {"d": 2, "c": 3}});
        let chain = append(&log, &e).unwrap();
        let digest = Sha256::digest(br#"{"a":{"c":3,"d":2},"b":1}"#);
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(digest);
        assert_eq!(chain, hex::encode(h.finalize()));
    }

    #[test]
    fn a_termination_message_is_cut_on_a_character_boundary() {
        let summary = |verdict| Summary {
            time: String::new(),
            verdict,
            model_path: String::new(),
            model_name: None,
            root_digest: None,
            source: None,
            policy: None,
            signers: Vec::new(),
            pod: None,
            gpu_driver: None,
            reasons: Vec::new(),
            watch: None,
        };
        let doc = Summary {
            model_path: "/mnt/models".into(),
            reasons: (0..500)
                .map(|i| format!("fichier-é{i}.bin: modified"))
                .collect(),
            ..summary(Verdict::Rejected)
        };
        let msg = termination_message(&doc);
        assert!(msg.len() <= MAX_TERMINATION_BYTES, "{}", msg.len());
        assert!(msg.starts_with("modelgate: rejected: /mnt/models\n- fichier-é0.bin: modified"));
        assert!(msg.ends_with("(cut; the measurement has everything)\n"));
        let short = termination_message(&Summary {
            model_name: Some("m".into()),
            root_digest: Some("sha256:ab".into()),
            signers: vec![super::super::SignerSummary {
                authority: "release".into(),
                identity: "ci@example.com".into(),
            }],
            ..summary(Verdict::Verified)
        });
        assert_eq!(
            short,
            "modelgate: verified: m (root sha256:ab)\nsigned by: ci@example.com [release]\n"
        );
        // Multi-byte characters straddling the limit.
        let s = "é".repeat(3000);
        let c = cut(s, 4096);
        assert!(c.len() <= 4096);
    }
}
