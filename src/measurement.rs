//! The measurement: a JSON record of what was verified, by whom it was
//! signed, and the verdict, written atomically where operators and the
//! workload can read it.
//!
//! A rejected run writes a document that says `rejected` (or `error`) in place
//! of whatever was there before, so a stale `verified` can never survive a
//! failed check. The schema is documented in the README.

use std::path::Path;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::manifest::{Manifest, Method};
use crate::verify::{Evidence, Rejection, Verified};

/// Version of the measurement document's schema.
pub const SCHEMA: &str = "modelgate.dev/measurement/v1";

/// Builds the measurement of a successful verification.
pub fn of_verified(model: &Path, v: &Verified) -> Value {
    let mut doc = base(model, "verified");
    doc["model"] = model_section(model, &v.manifest);
    doc["signature"] = json!({ "sha256": v.signature_sha256 });
    doc["signers"] = json!([signer_json(&v.signer)]);
    doc["ignored"] = json!(v.ignored);
    doc["unsignedFilesTolerated"] = json!(v.unsigned_tolerated);
    doc["reasons"] = json!([]);
    doc
}

/// Builds the measurement of a rejected verification.
pub fn of_rejection(model: &Path, r: &Rejection) -> Value {
    let verdict = if r.exit_code() == 2 {
        "error"
    } else {
        "rejected"
    };
    let mut doc = base(model, verdict);
    add_evidence(&mut doc, model, &r.evidence);
    doc["reasons"] = r
        .problems
        .iter()
        .map(|p| {
            let mut reason = json!({ "kind": p.kind(), "message": p.to_string() });
            if let Some(path) = p.path() {
                reason["path"] = json!(path);
            }
            if let crate::verify::Problem::Modified {
                expected, actual, ..
            } = p
            {
                reason["expected"] = json!(expected);
                reason["actual"] = json!(actual);
            }
            reason
        })
        .collect();
    doc
}

/// Builds the measurement of a run that failed before any evidence existed
/// (unusable key, bad arguments).
pub fn of_error(model: &Path, message: &str) -> Value {
    let mut doc = base(model, "error");
    doc["reasons"] = json!([{ "kind": "error", "message": message }]);
    doc
}

fn base(model: &Path, verdict: &str) -> Value {
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    json!({
        "schemaVersion": SCHEMA,
        "tool": { "name": "modelgate", "version": env!("CARGO_PKG_VERSION") },
        "time": now,
        "verdict": verdict,
        "model": { "path": model.display().to_string() },
    })
}

fn add_evidence(doc: &mut Value, model: &Path, e: &Evidence) {
    if let Some(m) = &e.manifest {
        doc["model"] = model_section(model, m);
    }
    if let Some(sha) = &e.signature_sha256 {
        doc["signature"] = json!({ "sha256": sha });
    }
    doc["signers"] = e.signer.iter().map(signer_json).collect();
}

fn signer_json(s: &crate::verify::Signer) -> Value {
    json!({ "method": "key", "keyFingerprint": format!("sha256:{}", s.key_fingerprint), "curve": s.curve.to_string() })
}

fn model_section(model: &Path, m: &Manifest) -> Value {
    let s = &m.serialization;
    let mut serialization = json!({
        "method": match s.method { Method::Files => "files", Method::Shards { .. } => "shards" },
        "hashType": s.hash.name(),
        "allowSymlinks": s.allow_symlinks,
        "ignorePaths": s.ignore_paths,
    });
    if let Method::Shards { shard_size } = s.method {
        serialization["shardSize"] = json!(shard_size);
    }
    let algorithm = s.resource_algorithm();
    json!({
        "path": model.display().to_string(),
        "name": m.model_name,
        "rootDigest": format!("sha256:{}", hex::encode(m.root_digest)),
        "serialization": serialization,
        "files": m.resources.iter().map(|(k, d)| json!({
            "name": k.name(), "algorithm": algorithm, "digest": hex::encode(d),
        })).collect::<Vec<_>>(),
    })
}

/// Writes `doc` to `path` atomically, readable by the workload (which may
/// run as another user).
pub fn write(path: &Path, doc: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(doc)?;
    bytes.push(b'\n');
    crate::write_atomic(path, &bytes, 0o644)
}
