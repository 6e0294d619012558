//! `admission.k8s.io/v1` AdmissionReview: parsed and checked before any
//! decision, and the response the API server expects (the request's uid
//! echoed, a JSON Patch in base64, warnings, a status for a denial).

use base64::Engine as _;
use serde_json::{Value, json};

use super::pod::Pod;

/// The only API version answered.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// A request that is not an AdmissionReview the webhook can answer (HTTP
/// 400, with this message).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON.
    #[error("the body is not JSON: {0}; send an admission.k8s.io/v1 AdmissionReview")]
    Json(#[from] serde_json::Error),
    /// JSON, but another kind or version.
    #[error(
        "expected apiVersion {API_VERSION} and kind AdmissionReview, found apiVersion {api_version:?} and kind {kind:?}"
    )]
    Kind {
        /// What was sent.
        api_version: String,
        /// What was sent.
        kind: String,
    },
    /// A review without `request.uid`.
    #[error("the AdmissionReview has no request.uid")]
    NoUid,
}

/// A checked AdmissionReview request.
#[derive(Debug)]
pub struct Review {
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// `request`.
    pub request: Value,
}

impl Review {
    /// Parses and checks `body`.
    pub fn parse(body: &[u8]) -> Result<Self, ReviewError> {
        let doc: Value = serde_json::from_slice(body)?;
        let field = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if api_version != API_VERSION || kind != "AdmissionReview" {
            return Err(ReviewError::Kind { api_version, kind });
        }
        let request = doc.get("request").cloned().unwrap_or(Value::Null);
        let uid = request
            .get("uid")
            .and_then(Value::as_str)
            .ok_or(ReviewError::NoUid)?
            .to_string();
        Ok(Self { uid, request })
    }

    fn text(&self, pointer: &str) -> &str {
        self.request
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `request.kind.kind`.
    pub fn kind(&self) -> &str {
        self.text("/kind/kind")
    }

    /// `request.namespace`.
    pub fn namespace(&self) -> &str {
        self.text("/namespace")
    }

    /// The object's name (`request.name`, or its metadata's name or
    /// generateName).
    pub fn name(&self) -> &str {
        let name = self.text("/name");
        if !name.is_empty() {
            return name;
        }
        let name = self.text("/object/metadata/name");
        if !name.is_empty() {
            return name;
        }
        self.text("/object/metadata/generateName")
    }

    /// The pod template of the object, with the JSON pointer of its spec
    /// (for the patch); `None` for a kind without one, a review without an
    /// object (a DELETE), and a Pod UPDATE that leaves the spec as it was:
    /// a running pod's spec cannot gain the gate, and its metadata changes
    /// (a label, a finalizer removed before deletion) must not be refused.
    pub fn pod(&self) -> Option<(Pod<'_>, &'static str)> {
        let object = self.request.get("object").filter(|o| o.is_object())?;
        if self.kind() == "Pod"
            && self.text("/operation") == "UPDATE"
            && self.request.pointer("/oldObject/spec") == object.get("spec")
        {
            return None;
        }
        let (metadata, spec) = template(self.kind())?;
        let empty = &Value::Null;
        Some((
            Pod {
                metadata: object.pointer(metadata).unwrap_or(empty),
                spec: object.pointer(spec)?,
            },
            spec,
        ))
    }
}

/// Where a kind keeps its pod template: the metadata's and the spec's JSON
/// pointers in the object.
pub fn template(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "Pod" => Some(("/metadata", "/spec")),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some(("/spec/template/metadata", "/spec/template/spec")),
        "CronJob" => Some((
            "/spec/jobTemplate/spec/template/metadata",
            "/spec/jobTemplate/spec/template/spec",
        )),
        _ => None,
    }
}

/// The answer to one review.
#[derive(Debug, Default)]
pub struct Answer {
    /// Allowed (possibly with warnings, possibly with a patch).
    pub allowed: bool,
    /// JSON Patch operations, for a mutation.
    pub patch: Vec<Value>,
    /// Shown by `kubectl`.
    pub warnings: Vec<String>,
    /// Why it is denied.
    pub reasons: Vec<String>,
}

/// The AdmissionReview response for `uid`.
pub fn response(uid: &str, answer: &Answer) -> Value {
    let mut response = json!({"uid": uid, "allowed": answer.allowed});
    if !answer.patch.is_empty() {
        let patch = serde_json::to_vec(&answer.patch).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    if !answer.warnings.is_empty() {
        response["warnings"] = json!(answer.warnings);
    }
    if !answer.allowed {
        response["status"] = json!({
            "code": 403,
            "reason": "Forbidden",
            "message": format!("modelgate: {}", answer.reasons.join("; ")),
        });
    }
    json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrong_kind_or_version_is_named() {
        let e =
            Review::parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#)
                .unwrap_err();
        assert!(e.to_string().contains("admission.k8s.io/v1beta1"), "{e}");
        assert!(matches!(Review::parse(b"{"), Err(ReviewError::Json(_))));
        assert!(matches!(
            Review::parse(
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#
            ),
            Err(ReviewError::NoUid)
        ));
    }

    #[test]
    fn a_denial_echoes_the_uid_with_a_status() {
        let answer = Answer {
            reasons: vec!["no".into()],
            ..Answer::default()
        };
        let r = response("u-1", &answer);
        assert_eq!(r["response"]["uid"], "u-1");
        assert_eq!(r["response"]["allowed"], false);
        assert_eq!(r["response"]["status"]["code"], 403);
        assert_eq!(r["response"]["status"]["message"], "modelgate: no");
    }
}
