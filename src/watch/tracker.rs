//! What is known about the model since it verified, and one check of it.
//!
//! A check is a stat sweep of the whole tree ([`ModelRoot::survey`]): when
//! every [`Stamp`] is the one the files had when they were proven, the
//! model is the signed one and nothing is read. Otherwise only the files
//! whose stamp changed are hashed again ([`gate::recheck`] with
//! `hash_only`), and which files are there is compared in full. A file
//! that hashes to its signed digest gets its new stamp (a `touch` or a new
//! hard link costs one re-hash, then nothing); one that does not stays
//! unproven, so it is hashed again whenever the tree changes, until it is
//! restored. Permission bits are compared with the ones the model had
//! when it verified.
//!
//! The first sweep is taken before the first verification, so a change
//! made while the model was being verified is found by the first check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{error, info};

use super::health::{Health, Status};
use super::place::{Located, Place};
use crate::gate::{self, MeasurementFile, Proven, Settings};
use crate::measure::{Measurement, WatchEvent};
use crate::model::{FsError, IgnoreRules, ModelRoot, Stamp};
use crate::verify::{Evidence, Problem, Rejection};

/// A stat sweep: every path below the root (`""` the root) and its stamp.
pub type Survey = BTreeMap<String, Stamp>;

/// The model under watch.
pub struct Tracker {
    /// Where the folder is.
    place: Arc<Place>,
    /// Where it was found for the last sweep (the descriptor held).
    here: Located,
    /// What logs and measurements call it.
    pub shown: PathBuf,
    settings: Settings,
    proven: Arc<Proven>,
    rules: IgnoreRules,
    record: MeasurementFile,
    health: Arc<Health>,
    /// The stamps at which each path was last proven to be as signed.
    proven_at: Survey,
    /// Permission bits when the model verified.
    modes: BTreeMap<String, u32>,
    /// The sweep the last check decided on.
    last: Option<Survey>,
    /// The problems found by the last check; empty: verified.
    drift: Vec<Problem>,
}

/// Takes a stat sweep of `model` (nothing left out: before a verification
/// the ignored paths are not known yet).
pub fn survey_all(model: &std::path::Path) -> Result<Survey, FsError> {
    ModelRoot::open(model)?.survey(&IgnoreRules::new(Vec::<String>::new()))
}

/// Why a sweep found no model to sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The folder's container is not found.
    #[error("{0}")]
    Place(String),
    /// The folder cannot be read.
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl Tracker {
    /// The model as it was just before it verified: `before` is the sweep
    /// taken then.
    pub fn new(
        place: Arc<Place>,
        here: Located,
        settings: Settings,
        proven: Arc<Proven>,
        record: MeasurementFile,
        health: Arc<Health>,
        before: Survey,
    ) -> Self {
        let rules = IgnoreRules::new(&proven.verified.ignored);
        let proven_at: Survey = before
            .into_iter()
            .filter(|(name, _)| name.is_empty() || !rules.is_ignored(name))
            .collect();
        let modes = proven_at
            .iter()
            .map(|(name, s)| (name.clone(), s.permissions()))
            .collect();
        Self {
            place,
            shown: here.shown.clone(),
            here,
            settings,
            proven,
            rules,
            record,
            health,
            proven_at,
            modes,
            last: None,
            drift: Vec::new(),
        }
    }

    /// What a re-hash of the whole model needs, for another thread: the
    /// model located for it alone.
    pub fn rehash_inputs(&self) -> Result<(Settings, Located, Arc<Proven>), String> {
        let located = self.place.locate()?;
        Ok((self.settings.clone(), located, self.proven.clone()))
    }

    /// Finds the model, opens it and sweeps it with the verified ignores.
    pub fn sweep(&mut self) -> Result<(ModelRoot, Survey), SweepError> {
        self.here = self.place.locate().map_err(SweepError::Place)?;
        self.shown = self.here.shown.clone();
        let root = ModelRoot::open(&self.here.path)?;
        let survey = root.survey(&self.rules)?;
        Ok((root, survey))
    }

    /// Forgets that `problems`' files were proven (a full re-hash found
    /// them changed behind an unchanged stamp), so the next check hashes
    /// them again.
    pub fn distrust(&mut self, problems: &[Problem]) {
        for name in named_files(problems) {
            self.proven_at.remove(&name);
        }
        self.last = None;
    }

    /// Decides on a sweep: nothing to do when it is the last one decided on;
    /// otherwise the changed files are hashed again and the state set.
    pub fn check(&mut self, swept: Result<Survey, SweepError>) {
        let survey = match swept {
            Ok(survey) => survey,
            Err(e) => {
                self.last = None;
                return self.conclude(vec![Problem::CouldNotCheck(e.to_string())]);
            }
        };
        if self.last.as_ref() == Some(&survey) {
            return;
        }
        let changed: BTreeSet<String> = survey
            .iter()
            .filter(|(name, s)| !name.is_empty() && !s.is_dir())
            .filter(|(name, s)| self.proven_at.get(*name) != Some(*s))
            .map(|(name, _)| name.clone())
            .collect();
        let same_files = files(&survey).eq(files(&self.proven_at));
        let mut problems = Vec::new();
        if !changed.is_empty() || !same_files {
            if !changed.is_empty() {
                info!(
                    files = %list(changed.iter()),
                    "{} file(s) changed on disk (inode, size, mtime or ctime): hashing them again",
                    changed.len()
                );
                self.health.set(Status::Checking {
                    files: changed.len(),
                });
            }
            problems = gate::recheck(
                &self.settings,
                &self.here.path,
                &self.proven,
                Some(&changed),
                &|_| {},
            );
        }
        problems.extend(self.mode_problems(&survey));
        problems.sort_by(|a, b| a.path().cmp(&b.path()));
        let named = named_files(&problems);
        for name in changed.iter().filter(|n| !named.contains(*n)) {
            if let Some(stamp) = survey.get(name) {
                self.proven_at.insert(name.clone(), *stamp);
            }
        }
        if problems.is_empty() {
            self.proven_at = survey.clone();
        }
        self.last = Some(survey);
        self.conclude(problems);
    }

    /// Permission bits that differ from the verified ones.
    fn mode_problems(&self, survey: &Survey) -> Vec<Problem> {
        survey
            .iter()
            .filter_map(|(name, s)| {
                let expected = *self.modes.get(name)?;
                (s.permissions() != expected).then(|| Problem::ModeChanged {
                    path: if name.is_empty() {
                        ".".into()
                    } else {
                        name.clone()
                    },
                    expected,
                    actual: s.permissions(),
                })
            })
            .collect()
    }

    /// Sets the state, and records a drift or the return to the signed
    /// files: the measurement, its log entry, a log line per problem.
    fn conclude(&mut self, problems: Vec<Problem>) {
        if problems.is_empty() {
            if !self.drift.is_empty() {
                let files = named_files(&self.drift).into_iter().collect::<Vec<_>>();
                info!(
                    event = "restored",
                    files = %list(files.iter()),
                    "the model is the signed one again: ready"
                );
                let mut doc = Measurement::verified(&self.shown, &self.proven.verified).with_watch(
                    WatchEvent {
                        event: "restored",
                        files,
                    },
                );
                if let Some(policy) = self.proven.decided(&self.settings) {
                    doc = doc.with_policy(policy);
                }
                let _ = self.record.write(doc);
                self.drift.clear();
            }
            return self.health.set(Status::Verified);
        }
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        if problems != self.drift {
            let files = named_files(&problems).into_iter().collect::<Vec<_>>();
            for problem in &problems {
                error!(
                    event = "drift",
                    kind = problem.kind(),
                    path = problem.path(),
                    "{problem}"
                );
            }
            error!(
                event = "drift",
                files = %list(files.iter()),
                "the model drifted from its signature after it verified: not ready"
            );
            let verified = &self.proven.verified;
            let rejection = Rejection {
                problems: problems.clone(),
                evidence: Box::new(Evidence {
                    rule: verified.rule.clone(),
                    signatures: verified.signatures.clone(),
                    manifest: Some(verified.manifest.clone()),
                    signers: verified.signers.clone(),
                    ignored: verified.ignored.clone(),
                }),
            };
            let mut doc = Measurement::rejected(&self.shown, &rejection).with_watch(WatchEvent {
                event: "drift",
                files,
            });
            if let Some(policy) = self.proven.decided(&self.settings) {
                doc = doc.with_policy(policy);
            }
            let _ = self.record.write(doc);
        }
        self.drift = problems;
        self.health.set(Status::Drifted(lines));
    }
}

/// The non-folder paths of a sweep.
fn files(survey: &Survey) -> impl Iterator<Item = &String> {
    survey
        .iter()
        .filter(|(name, s)| !name.is_empty() && !s.is_dir())
        .map(|(name, _)| name)
}

/// The files problems name (a shard's name cut to its file).
fn named_files(problems: &[Problem]) -> BTreeSet<String> {
    problems
        .iter()
        .filter_map(Problem::path)
        .map(|p| match p.split_once(':') {
            Some((file, range)) if range.split(':').all(|n| n.parse::<u64>().is_ok()) => {
                file.to_string()
            }
            _ => p.to_string(),
        })
        .collect()
}

/// Names for a log line, comma-separated, at most 20.
fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&String> = names.collect();
    let mut out = names
        .iter()
        .take(20)
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 20 {
        out.push_str(&format!(" and {} more", names.len() - 20));
    }
    out
}
