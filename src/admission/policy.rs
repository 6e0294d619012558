//! The policy in force, re-read when its file changes (a ConfigMap update:
//! kubelet swaps the `..data` link). Each good new policy gets a new
//! version, so every cached decision of the old one is a miss at once (a
//! revoked key takes effect with the policy, not with the cache's TTL); a
//! bad one keeps the last good policy and says why (in the log and in
//! `/readyz`'s body).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::gate::{Naming, Settings, SettingsError, Spec};

/// The settings in force, their version, and the last reload's problem.
pub struct Current {
    spec: Spec,
    file: PathBuf,
    settings: RwLock<(Arc<Settings>, u64)>,
    problem: Mutex<Option<String>>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Current {
    /// Builds the first settings from `spec` (its `policy` is the file
    /// watched).
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

    /// Looks at the file every `every`; a change is built, and taken when
    /// good.
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
