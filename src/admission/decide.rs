//! One review decided: the mutation that adds the gate, or the validation
//! (the structure, then the model's signatures through the cache), and the
//! one JSON log line per decision.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::info;

use super::metrics::Metrics;
use super::pod::{self, Model};
use super::policy::Current;
use super::review::{Answer, Review};
use super::structure;
use crate::gate::admit::{self, Admission, AdmissionCache};
use crate::policy::Mode;
use crate::verify::Verdict;

/// What every review shares: built once, at start.
pub struct Admitter {
    /// The policy and registry settings in force.
    pub policy: Arc<Current>,
    /// The gate image, pinned.
    pub gate_image: String,
    /// Decisions by reference and policy version.
    pub cache: AdmissionCache,
    /// The limit on one review's registry work.
    pub timeout: Duration,
    /// The counters.
    pub metrics: Metrics,
}

impl Admitter {
    /// `/mutate`: the patch that adds the gate, allowed.
    pub fn mutate(&self, review: &Review) -> Answer {
        let patch = review
            .pod()
            .map(|(pod, spec_at)| {
                // One image volume from a repository a rule names is the
                // model; with several, which one the gate verifies is the
                // pod author's to say (the annotation), so none is chosen.
                let images = self.image_models(&pod);
                let image = match images.as_slice() {
                    [(volume, _)] => Some(volume.as_str()),
                    _ => None,
                };
                pod::mutation(&pod, spec_at, &self.gate_image, image)
            })
            .unwrap_or_default();
        let answer = Answer {
            allowed: true,
            patch,
            ..Answer::default()
        };
        log(review, "mutate", &answer, None);
        answer
    }

    /// `/validate`: denied with what to change, allowed, or allowed with
    /// warnings (a rule in warn mode).
    pub async fn validate(&self, review: &Review) -> Answer {
        let mut answer = Answer {
            allowed: true,
            ..Answer::default()
        };
        let Some((pod, _)) = review.pod() else {
            log(review, "validate", &answer, None);
            return answer;
        };
        answer.reasons = structure::structural(&pod, &self.gate_image);
        let mut digest = None;
        if answer.reasons.is_empty()
            && let Some(Model::Oci(reference)) = pod.model()
        {
            let admission = self.signatures(&reference).await;
            digest = admission.digest.clone();
            let warn = admission.mode == Some(Mode::Warn);
            let reasons: Vec<String> = admission
                .reasons
                .iter()
                .map(|r| format!("model {reference}: {r}"))
                .collect();
            match admission.verdict {
                Verdict::Verified => {}
                _ if warn => answer.warnings = reasons,
                _ => answer.reasons = reasons,
            }
        }
        // An image volume from a repository a rule names is a model too:
        // its signatures are checked the same way, before the kubelet
        // pulls it (the structure above already asked for a digest).
        if answer.reasons.is_empty() {
            for (volume, image) in self.image_models(&pod) {
                let admission = self.signatures(&image).await;
                digest = digest.or(admission.digest.clone());
                let reasons = admission
                    .reasons
                    .iter()
                    .map(|r| format!("image volume {volume} ({image}): {r}"));
                match admission.verdict {
                    Verdict::Verified => {}
                    _ if admission.mode == Some(Mode::Warn) => answer.warnings.extend(reasons),
                    _ => answer.reasons.extend(reasons),
                }
            }
        }
        answer.allowed = answer.reasons.is_empty();
        log(review, "validate", &answer, digest.as_deref());
        answer
    }

    /// The pod's image volumes whose repository a policy rule names:
    /// (volume name, `oci://` reference).
    fn image_models(&self, pod: &pod::Pod) -> Vec<(String, String)> {
        let (settings, _) = self.policy.get();
        pod.image_volumes()
            .into_iter()
            .filter_map(|(volume, image)| {
                let reference = format!("oci://{image}");
                let parsed = crate::oci::ModelRef::parse(&reference).ok()?;
                settings
                    .policy
                    .covers_repository(&parsed.name())
                    .then(|| (volume.to_string(), reference))
            })
            .collect()
    }

    /// The signature check of `reference`, from the cache when decided
    /// before under this policy.
    async fn signatures(&self, reference: &str) -> Admission {
        let (settings, version) = self.policy.get();
        if let Some(mut hit) = self.cache.get(reference, version) {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            hit.digest = reference.rsplit_once('@').map(|(_, d)| d.to_string());
            return hit;
        }
        self.metrics
            .registry_lookups
            .fetch_add(1, Ordering::Relaxed);
        // admit keeps to the timeout itself; this is the backstop.
        let admission = match tokio::time::timeout(
            self.timeout + Duration::from_secs(1),
            admit::admit(&settings, reference),
        )
        .await
        {
            Ok(admission) => admission,
            Err(_) => Admission {
                verdict: Verdict::Error,
                digest: None,
                rule: None,
                mode: None,
                reasons: vec![format!(
                    "the registry lookup took more than {} s (--timeout); check that the registry is reachable",
                    self.timeout.as_secs()
                )],
                signers: Vec::new(),
                every_file_compared: false,
            },
        };
        // Kept under the reference (repository and digest: signatures are
        // the repository's), whatever manifest an index resolved to.
        let mut kept = admission.clone();
        kept.digest = Some(reference.to_string());
        self.cache.put(version, &kept);
        admission
    }
}

/// The verdict a metric and a log line name.
pub fn verdict(answer: &Answer) -> &'static str {
    match (answer.allowed, answer.warnings.is_empty()) {
        (false, _) => "denied",
        (true, false) => "warned",
        (true, true) => "allowed",
    }
}

fn log(review: &Review, endpoint: &str, answer: &Answer, digest: Option<&str>) {
    info!(
        endpoint,
        uid = %review.uid,
        namespace = %review.namespace(),
        object = %format!("{}/{}", review.kind(), review.name()),
        operation = %review.request.get("operation").and_then(|o| o.as_str()).unwrap_or(""),
        verdict = verdict(answer),
        patched = !answer.patch.is_empty(),
        reasons = %answer.reasons.join("; "),
        warnings = %answer.warnings.join("; "),
        model_digest = digest.unwrap_or(""),
        "admission decision"
    );
}
