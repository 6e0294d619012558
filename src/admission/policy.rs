//! The policy in force, re-read when it changes: a file, or every policy
//! file of a folder (a ConfigMap update: kubelet swaps the `..data` link,
//! which the files' links go through). Each good new policy gets a new
//! version, so every cached decision of the old one is a miss at once (a
//! revoked key takes effect with the policy, not with the cache's TTL); a
//! bad one keeps the last good policy and says why (in the log and in
//! `/readyz`'s body).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::gate::{Naming, Settings, SettingsError, Spec};
use crate::policy::Policy;

/// The settings in force, their version, and the last reload's problem.
pub struct Current {
    spec: Spec,
    file: PathBuf,
    settings: RwLock<(Arc<Settings>, u64)>,
    problem: Mutex<Option<String>>,
}

/// What one file's content is identified by (through its links).
type FileStamp = Option<(SystemTime, u64, u64)>;

/// What identifies the policy's content on disk: each of its files (the
/// one file, or a folder's policy files) with its modification time, length
/// and inode, so that a file added, removed, rewritten or swapped in by a
/// new `..data` link is a change.
fn stamp(path: &Path) -> Vec<(PathBuf, FileStamp)> {
    let files = if path.is_dir() {
        Policy::files_in(path).unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    files
        .into_iter()
        .map(|file| {
            let meta = std::fs::metadata(&file).ok();
            let stamp = meta.and_then(|m| Some((m.modified().ok()?, m.len(), m.ino())));
            (file, stamp)
        })
        .collect()
}

impl Current {
    /// Builds the first settings from `spec` (its `policy` is the file or
    /// folder watched).
    pub fn new(spec: Spec) -> Result<Self, SettingsError> {
        let settings = Settings::build(spec.clone(), Naming::Flags)?;
        Ok(Self {
            file: spec.policy.clone().unwrap_or_default(),
            spec,
            settings: RwLock::new((Arc::new(settings), 1)),
            problem: Mutex::new(None),
        })
    }

    /// The settings in force and their version.
    pub fn get(&self) -> (Arc<Settings>, u64) {
        let current = self.settings.read().unwrap_or_else(|e| e.into_inner());
        (current.0.clone(), current.1)
    }

    /// Why the last change was not taken, if it was not.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Looks at the file or folder every `every`; a change is built, and
    /// taken when good.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut seen = stamp(&self.file);
        loop {
            tokio::time::sleep(every).await;
            let now = stamp(&self.file);
            if now == seen {
                continue;
            }
            seen = now;
            let spec = self.spec.clone();
            let built =
                tokio::task::spawn_blocking(move || Settings::build(spec, Naming::Flags)).await;
            let mut problem = self.problem.lock().unwrap_or_else(|e| e.into_inner());
            match built {
                Ok(Ok(settings)) => {
                    let mut current = self.settings.write().unwrap_or_else(|e| e.into_inner());
                    *current = (Arc::new(settings), current.1 + 1);
                    *problem = None;
                    info!(policy = %self.file.display(), version = current.1, "policy reloaded");
                }
                Ok(Err(e)) => {
                    warn!(policy = %self.file.display(), "policy not reloaded, the last good one stays: {e}");
                    *problem = Some(e.to_string());
                }
                Err(e) => *problem = Some(e.to_string()),
            }
        }
    }
}
