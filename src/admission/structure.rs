//! The structural checks: why a pod that carries a model is denied before
//! any registry is asked, each reason saying what to change. The same rules
//! as the `ValidatingAdmissionPolicy` of `deploy/admission/policies/`
//! (tests/it/webhook.rs sends its fixtures through both): the gate first,
//! pinned, the cluster's, running `modelgate init` to completion, hardened,
//! verifying the annotated source; models and image volumes by digest; the
//! model volume laid out as the gate expects; no other container (init,
//! regular or ephemeral) writing it.

use serde_json::Value;

use super::pod::{
    DEFAULT_TARGET, GATE, MODEL_VOLUME, Model, Pod, SOURCE, TARGET, VOLUME, list, pinned, text,
};

/// Why a pod that carries a model is denied on its structure alone, each
/// reason saying what to change; empty when the structure is sound (or the
/// pod carries no model).
pub fn structural(pod: &Pod, gate_image: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if !pod.carries_model() {
        return reasons;
    }
    match pod.gate() {
        None => reasons.push(format!(
            "the pod carries a model but has no {GATE} init container; add it first in spec.initContainers (the mutating webhook does when the pod has the {SOURCE} annotation)"
        )),
        Some((index, gate)) => {
            if index != 0 {
                reasons.push(format!(
                    "init container {GATE} is at position {index} of spec.initContainers; move it first, so that nothing runs before the model is verified"
                ));
            }
            let image = text(gate, "image").unwrap_or("");
            if image != gate_image {
                reasons.push(format!(
                    "init container {GATE} runs image {image:?}; use the gate image {gate_image}"
                ));
            }
            if !pinned(image) {
                reasons.push(format!(
                    "init container {GATE}'s image {image:?} is not pinned; name it by digest (REPOSITORY@sha256:<64 hex>)"
                ));
            }
            // A gate that is a sidecar, or that runs something else, is a
            // gate in name only: the server would start unverified.
            if text(gate, "restartPolicy") == Some("Always") {
                reasons.push(format!(
                    "init container {GATE} has restartPolicy: Always, which makes it a sidecar the server does not wait for; remove it, so that the server starts only after the model is verified"
                ));
            }
            let command = list(gate, "command");
            let args = list(gate, "args");
            let runs_init = (command.is_empty() || command == [Value::from("/modelgate")])
                && (args.is_empty() || args == [Value::from("init")]);
            if !runs_init {
                reasons.push(format!(
                    "init container {GATE} overrides its command or args ({}, {}); remove them, so that it runs modelgate init",
                    Value::from(command.to_vec()),
                    Value::from(args.to_vec())
                ));
            }
            reasons.extend(hardening(gate));
            reasons.extend(source_of(pod, gate));
        }
    }
    if let Some(Model::Oci(reference)) = pod.model()
        && !pinned(&reference)
    {
        reasons.push(format!(
            "model {reference} is named by tag; name it by digest (oci://REGISTRY/REPOSITORY@sha256:<64 hex>)"
        ));
    }
    // A folder in an image volume needs no annotation: the image volume is
    // a model volume already (and so the CEL policy reads it too).
    if let Some(Model::Folder { volume, path }) = pod.model()
        && volume.is_empty()
        && pod.image_volumes().is_empty()
    {
        reasons.push(format!(
            "model folder {path} has no {VOLUME} annotation; name the volume that holds it (or mount the model from an image volume)"
        ));
    }
    for (volume, reference) in pod.image_volumes() {
        if !pinned(reference) {
            reasons.push(format!(
                "image volume {volume} names {reference} by tag, which the kubelet would resolve again; name it by digest (REPOSITORY@sha256:<64 hex>)"
            ));
        }
    }
    reasons.extend(layout(pod));
    let model_volumes = pod.model_volumes();
    // Ephemeral containers too: a debug container may not write the model
    // (the pods/ephemeralcontainers subresource is an UPDATE of the pod).
    let every = ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|field| list(pod.spec, field).iter().map(move |c| (field, c)));
    for (field, container) in every {
        let name = text(container, "name").unwrap_or("");
        if field == "initContainers" && name == GATE {
            continue;
        }
        let kind = match field {
            "ephemeralContainers" => "ephemeral container",
            _ => "container",
        };
        for mount in list(container, "volumeMounts") {
            let volume = text(mount, "name").unwrap_or("");
            let read_only = mount.get("readOnly").and_then(Value::as_bool) == Some(true);
            if model_volumes.iter().any(|v| v == volume) && !read_only {
                reasons.push(format!(
                    "{kind} {name} mounts the model volume {volume} writable; set readOnly: true on its volumeMount"
                ));
            }
        }
    }
    reasons
}

/// What the gate's securityContext lacks, as the mutation sets it (and
/// deploy/base/deployment.yaml): one reason, or none.
fn hardening(gate: &Value) -> Option<String> {
    let context = gate.get("securityContext").unwrap_or(&Value::Null);
    let flag = |key: &str| context.get(key).and_then(Value::as_bool);
    let capabilities = context.get("capabilities").unwrap_or(&Value::Null);
    let mut gaps = Vec::new();
    if flag("runAsNonRoot") != Some(true) {
        gaps.push("runAsNonRoot: true");
    }
    if flag("readOnlyRootFilesystem") != Some(true) {
        gaps.push("readOnlyRootFilesystem: true");
    }
    if flag("allowPrivilegeEscalation") != Some(false) {
        gaps.push("allowPrivilegeEscalation: false");
    }
    if !list(capabilities, "drop").contains(&Value::from("ALL")) {
        gaps.push("capabilities.drop: [ALL]");
    }
    if !list(capabilities, "add").is_empty() {
        gaps.push("no capabilities.add");
    }
    if flag("privileged") == Some(true) {
        gaps.push("privileged: false");
    }
    (!gaps.is_empty()).then(|| {
        format!(
            "init container {GATE} must run hardened, as the mutating webhook adds it: set {} in its securityContext",
            gaps.join(", ")
        )
    })
}

/// The gate verifies the source the annotation names, and only it: the
/// signature check is of the annotation's model, so a gate pulling another
/// one would start a model nobody checked at admission.
fn source_of(pod: &Pod, gate: &Value) -> Option<String> {
    let source = pod.annotation(SOURCE)?;
    let values: Vec<Option<&str>> = list(gate, "env")
        .iter()
        .filter(|e| text(e, "name") == Some("MODELGATE_SOURCE"))
        .map(|e| text(e, "value"))
        .collect();
    if !values.is_empty() && values.iter().all(|v| *v == Some(source)) {
        return None;
    }
    let found = match values.as_slice() {
        [] => "not set".to_string(),
        _ => values
            .iter()
            .map(|v| v.map_or("(not a value)".to_string(), |v| format!("{v:?}")))
            .collect::<Vec<_>>()
            .join(", "),
    };
    Some(format!(
        "init container {GATE}'s MODELGATE_SOURCE is {found}; set it to {source} (the annotation {SOURCE}), as its only value"
    ))
}

/// What is wrong with the model volume of an annotated pod: an `oci://`
/// model is pulled into the emptyDir [`MODEL_VOLUME`], mounted writable at
/// the target in the gate; a folder is verified where it lies, on the PVC
/// or image volume [`VOLUME`] names, which the gate mounts there or above.
/// Without a gate there is nothing to lay out yet: the reason to change is
/// the missing gate (the mutation adds both).
fn layout(pod: &Pod) -> Option<String> {
    pod.annotation(SOURCE)?;
    let (_, gate) = pod.gate()?;
    let volumes = list(pod.spec, "volumes");
    let volume = |name: &str| volumes.iter().find(|v| text(v, "name") == Some(name));
    let gate_mounts = list(gate, "volumeMounts");
    match pod.model()? {
        Model::Oci(_) => {
            let target = pod.annotation(TARGET).unwrap_or(DEFAULT_TARGET);
            let Some(v) = volume(MODEL_VOLUME) else {
                return Some(format!(
                    "add an emptyDir volume named {MODEL_VOLUME}: the {GATE} init container pulls the model into it"
                ));
            };
            if v.get("emptyDir").is_none() {
                return Some(format!(
                    "make the volume {MODEL_VOLUME} an emptyDir: the {GATE} init container pulls the model into it, nothing else may fill it"
                ));
            }
            let mounted = gate_mounts.iter().any(|m| {
                text(m, "name") == Some(MODEL_VOLUME)
                    && text(m, "mountPath") == Some(target)
                    && m.get("readOnly").and_then(Value::as_bool) != Some(true)
            });
            (!mounted).then(|| {
                format!(
                    "mount the volume {MODEL_VOLUME} in the {GATE} init container at {target}, writable: it is where the model is pulled to ({TARGET}, default {DEFAULT_TARGET})"
                )
            })
        }
        Model::Folder { path, volume: name } if !name.is_empty() => {
            let Some(v) = volume(&name) else {
                return Some(format!(
                    "the pod has no volume {name}, which the annotation {VOLUME} names: add it, or name the volume that holds the model"
                ));
            };
            if v.get("persistentVolumeClaim").is_none() && v.get("image").is_none() {
                return Some(format!(
                    "the volume {name} must be a persistentVolumeClaim or an image volume: the model is verified where it lies"
                ));
            }
            let mounted = gate_mounts.iter().any(|m| {
                let Some(at) = text(m, "mountPath") else {
                    return false;
                };
                text(m, "name") == Some(name.as_str())
                    && (path == at || path.starts_with(&format!("{}/", at.trim_end_matches('/'))))
            });
            (!mounted).then(|| {
                format!(
                    "mount the volume {name} in the {GATE} init container at {path} (or a folder above it): it verifies the model there"
                )
            })
        }
        Model::Folder { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admission::pod::mutation;

    const IMAGE: &str = "registry.example/modelgate@sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn annotated() -> Value {
        json!({
            "metadata": {"name": "p", "annotations": {SOURCE: format!("oci://r.example/m@sha256:{}", "a".repeat(64))}},
            "spec": {"containers": [{"name": "server", "image": "s"}]}
        })
    }

    #[test]
    fn pinned_needs_a_full_digest() {
        assert!(pinned(IMAGE));
        assert!(pinned(&format!("oci://r/m@sha256:{}", "b".repeat(64))));
        assert!(!pinned("r/m:latest"));
        assert!(!pinned("r/m@sha256:abc"));
    }

    #[test]
    fn an_unannotated_pod_without_a_model_is_left_alone() {
        let pod = json!({"metadata": {}, "spec": {"containers": [{"name": "a"}]}});
        let p = Pod {
            metadata: &pod["metadata"],
            spec: &pod["spec"],
        };
        assert!(mutation(&p, "/spec", IMAGE, None).is_empty());
        assert!(structural(&p, IMAGE).is_empty());
    }

    #[test]
    fn an_annotated_pod_is_denied_until_it_has_the_gate() {
        let pod = annotated();
        let p = Pod {
            metadata: &pod["metadata"],
            spec: &pod["spec"],
        };
        let ops = mutation(&p, "/spec", IMAGE, None);
        assert_eq!(ops.len(), 3, "{ops:#?}");
        assert_eq!(structural(&p, IMAGE).len(), 1);
    }

    #[test]
    fn a_gate_that_is_a_sidecar_or_runs_something_else_is_denied() {
        let good = json!({"name": GATE, "image": IMAGE});
        let cases = [
            (json!({"restartPolicy": "Always"}), "restartPolicy: Always"),
            (
                json!({"command": ["/bin/true"]}),
                "overrides its command or args",
            ),
            (
                json!({"args": ["verify", "/x"]}),
                "overrides its command or args",
            ),
        ];
        for (change, message) in cases {
            let mut gate = good.clone();
            for (k, v) in change.as_object().unwrap() {
                gate[k] = v.clone();
            }
            let mut pod = annotated();
            pod["spec"]["initContainers"] = json!([gate]);
            let p = Pod {
                metadata: &pod["metadata"],
                spec: &pod["spec"],
            };
            let reasons = structural(&p, IMAGE);
            assert!(
                reasons.iter().any(|r| r.contains(message)),
                "{change}: {reasons:?}"
            );
        }
        // Naming what the image runs anyway is allowed.
        let mut gate = good.clone();
        gate["command"] = json!(["/modelgate"]);
        gate["args"] = json!(["init"]);
        let mut pod = annotated();
        pod["spec"]["initContainers"] = json!([gate]);
        let p = Pod {
            metadata: &pod["metadata"],
            spec: &pod["spec"],
        };
        assert!(
            !structural(&p, IMAGE)
                .iter()
                .any(|r| r.contains("overrides") || r.contains("restartPolicy")),
        );
    }
}
