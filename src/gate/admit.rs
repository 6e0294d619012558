//! Admission: the decision a model in a registry gets before any pod that
//! names it is created, without downloading it. The manifest is resolved,
//! the signatures attached to it are found (as `pull` finds them),
//! authenticated against the policy rule, and their signed files compared
//! with the raw layers' digests: the path `pull` takes before any blob. A
//! decision is cached by manifest digest and policy version, so a revoked
//! key takes effect with the policy change, not with the cache's TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Settings, announced_files, given_signatures};
use crate::oci::{self, ModelRef};
use crate::policy::Mode;
use crate::verify::{self, Signature, Verdict};

/// What admission decided about one model reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// [`Verdict::Verified`]: signed as the rule requires;
    /// [`Verdict::Rejected`]: not (each reason says why);
    /// [`Verdict::Error`]: it could not be decided (the registry could not
    /// be used): the caller denies or warns by its mode.
    pub verdict: Verdict,
    /// The manifest digest the reference resolved to, once known.
    pub digest: Option<String>,
    /// The policy rule that applied, once known.
    pub rule: Option<String>,
    /// The rule's mode (warn: the caller allows with warnings).
    pub mode: Option<Mode>,
    /// Why it is not verified, one line each, saying what to change.
    pub reasons: Vec<String>,
    /// Who signed, one line each (`signer [authority]`).
    pub signers: Vec<String>,
    /// Every signed file was compared with its layer; otherwise only the
    /// signatures were (tar layers, shards): the gate in the pod checks the
    /// rest after the download.
    pub every_file_compared: bool,
}

impl Admission {
    fn refused(verdict: Verdict, reason: String) -> Self {
        Self {
            verdict,
            digest: None,
            rule: None,
            mode: None,
            reasons: vec![reason],
            signers: Vec::new(),
            every_file_compared: false,
        }
    }
}

/// Decides whether the model at `reference` (`oci://...`) is signed as
/// `settings`' policy requires, from its manifest and signatures only.
pub async fn admit(settings: &Settings, reference: &str) -> Admission {
    let model_ref = match ModelRef::parse(reference) {
        Ok(r) => r,
        Err(e) => return Admission::refused(Verdict::Rejected, e.to_string()),
    };
    if let Err(why) = super::before_any_request(&model_ref, settings) {
        return Admission::refused(Verdict::Rejected, why.to_string());
    }
    let name = settings
        .model_name
        .clone()
        .unwrap_or_else(|| model_ref.model_name().to_string());
    let rule = match settings.policy.select(&name, Some(&model_ref.name())) {
        Ok(rule) => rule,
        Err(why) => return Admission::refused(Verdict::Rejected, why.to_string()),
    };
    let discover = settings.signatures.is_empty();
    let deadline = settings.registry_timeout.map(oci::Deadline::after);
    let resolved = oci::within(
        &model_ref,
        "admission lookup",
        deadline,
        oci::resolve(&model_ref, &settings.registry, discover),
    )
    .await;
    let mut resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            let mut refused = Admission::refused(e.verdict(), e.to_string());
            refused.rule = Some(rule.name.clone());
            refused.mode = Some(rule.mode);
            return refused;
        }
    };
    let mut out = Admission {
        verdict: Verdict::Rejected,
        digest: Some(resolved.digest.clone()),
        rule: Some(rule.name.clone()),
        mode: Some(rule.mode),
        reasons: Vec::new(),
        signers: Vec::new(),
        every_file_compared: false,
    };
    let mut signatures: Vec<Signature> = given_signatures(&settings.signatures);
    signatures.extend(
        std::mem::take(&mut resolved.discovered)
            .into_iter()
            .map(oci::discover::Discovered::into_signature),
    );
    if signatures.is_empty() {
        out.reasons.push(format!(
            "{model_ref} ({}): no signature in the registry; sign and attach one (modelgate push does), or name a signed model",
            resolved.digest
        ));
        return out;
    }
    let (files, complete) = announced_files(&resolved.artifact, &settings.ignore_paths);
    match verify::from_announced(&signatures, rule, &files, complete) {
        Ok(announced) => {
            out.verdict = Verdict::Verified;
            out.every_file_compared = announced.every_file_compared;
            out.signers = announced
                .signers
                .iter()
                .map(|s| format!("{} [{}]", s.signer.describe(), s.authority))
                .collect();
        }
        Err(rejection) => {
            out.verdict = rejection.verdict();
            out.reasons = rejection.problems.iter().map(ToString::to_string).collect();
        }
    }
    out
}

/// Admission decisions by manifest digest and policy version: bounded, each
/// kept for a time. Only decided verdicts are kept (verified or rejected),
/// never a registry that could not be reached.
pub struct AdmissionCache {
    entries: Mutex<HashMap<(String, u64), (Instant, Admission)>>,
    capacity: usize,
    ttl: Duration,
}

impl AdmissionCache {
    /// A cache of at most `capacity` decisions, each kept `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// The decision for `digest` under `policy_version`, if fresh.
    pub fn get(&self, digest: &str, policy_version: u64) -> Option<Admission> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (digest.to_string(), policy_version);
        match entries.get(&key) {
            Some((at, admission)) if at.elapsed() < self.ttl => Some(admission.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps `admission` (a decided one, with its digest); when full, the
    /// oldest decision goes.
    pub fn put(&self, policy_version: u64, admission: &Admission) {
        let Some(digest) = &admission.digest else {
            return;
        };
        if admission.verdict == Verdict::Error {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            (digest.clone(), policy_version),
            (Instant::now(), admission.clone()),
        );
    }

    /// Decisions held.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(digest: &str, verdict: Verdict) -> Admission {
        Admission {
            verdict,
            digest: Some(digest.into()),
            rule: Some("r".into()),
            mode: Some(Mode::Enforce),
            reasons: Vec::new(),
            signers: Vec::new(),
            every_file_compared: true,
        }
    }

    #[test]
    fn a_decision_is_kept_per_digest_and_policy_version_until_its_ttl() {
        let cache = AdmissionCache::new(8, Duration::from_millis(200));
        cache.put(1, &decided("sha256:a", Verdict::Verified));
        assert_eq!(
            cache.get("sha256:a", 1).map(|a| a.verdict),
            Some(Verdict::Verified)
        );
        // A new policy version (a key revoked) is a miss at once.
        assert_eq!(cache.get("sha256:a", 2), None);
        assert_eq!(cache.get("sha256:b", 1), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(cache.get("sha256:a", 1), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn an_undecided_lookup_is_never_kept_and_the_oldest_goes_when_full() {
        let cache = AdmissionCache::new(2, Duration::from_secs(60));
        cache.put(1, &decided("sha256:x", Verdict::Error));
        assert!(cache.is_empty());
        cache.put(1, &decided("sha256:a", Verdict::Verified));
        std::thread::sleep(Duration::from_millis(5));
        cache.put(1, &decided("sha256:b", Verdict::Rejected));
        std::thread::sleep(Duration::from_millis(5));
        cache.put(1, &decided("sha256:c", Verdict::Verified));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("sha256:a", 1), None);
        assert!(cache.get("sha256:b", 1).is_some());
        assert!(cache.get("sha256:c", 1).is_some());
    }
}
