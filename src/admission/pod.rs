//! The contract between a pod and the gate, shared with the admission
//! policies in `deploy/admission/`: which pods carry a model, the gate a
//! pod must run first, the JSON Patch that adds it, and the structural
//! checks that deny a pod without it. Pure functions over a pod spec (as
//! JSON); no I/O, so the policies' CEL tests and these share fixtures.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

/// The annotation naming the model: `oci://REGISTRY/REPO@sha256:...`, or
/// an absolute folder with [`VOLUME`].
pub const SOURCE: &str = "modelgate.dev/source";
/// The annotation naming the volume that holds a folder model.
pub const VOLUME: &str = "modelgate.dev/volume";
/// The annotation naming where the model is mounted ([`DEFAULT_TARGET`]).
pub const TARGET: &str = "modelgate.dev/target";
/// Where the model is mounted without [`TARGET`].
pub const DEFAULT_TARGET: &str = "/mnt/models";
/// The gate's init container name.
pub const GATE: &str = "modelgate";
/// The emptyDir an `oci://` model is pulled into.
pub const MODEL_VOLUME: &str = "modelgate-model";
/// The ConfigMap volume holding the policy.
pub const TRUST_VOLUME: &str = "modelgate-trust";
/// The emptyDir the measurement is written to.
pub const RUN_VOLUME: &str = "modelgate-run";
/// Where the gate reads the policy.
pub const POLICY_PATH: &str = "/etc/modelgate/policy.yaml";
/// Where the gate writes the measurement.
pub const MEASUREMENT_PATH: &str = "/run/modelgate/measurement.json";

static PINNED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^@\s]+@sha256:[0-9a-f]{64}$").expect("a valid regex"));

/// Whether an image or `oci://` reference names its content by digest.
pub fn pinned(reference: &str) -> bool {
    PINNED.is_match(reference.strip_prefix("oci://").unwrap_or(reference))
}

/// The model a pod carries, as its annotations (or its gate) name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Model {
    /// `oci://...`: pulled by the gate into [`MODEL_VOLUME`].
    Oci(String),
    /// A folder in the named volume, verified in place.
    Folder {
        /// The folder, as the gate sees it.
        path: String,
        /// The volume holding it.
        volume: String,
    },
}

/// A pod template: its metadata and spec, as JSON.
pub struct Pod<'a> {
    /// `metadata`.
    pub metadata: &'a Value,
    /// `spec`.
    pub spec: &'a Value,
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

impl Pod<'_> {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .get("annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }

    /// Where the model is mounted.
    pub fn target(&self) -> &str {
        self.annotation(TARGET).unwrap_or(DEFAULT_TARGET)
    }

    /// The gate's init container, with its position.
    pub fn gate(&self) -> Option<(usize, &Value)> {
        list(self.spec, "initContainers")
            .iter()
            .enumerate()
            .find(|(_, c)| text(c, "name") == Some(GATE))
    }

    /// The image volumes: (volume name, reference).
    pub fn image_volumes(&self) -> Vec<(&str, &str)> {
        list(self.spec, "volumes")
            .iter()
            .filter_map(|v| {
                let reference = v.get("image")?.get("reference")?.as_str()?;
                Some((text(v, "name").unwrap_or(""), reference))
            })
            .collect()
    }

    /// The model named by the annotations, or else by the gate's
    /// `MODELGATE_SOURCE`.
    pub fn model(&self) -> Option<Model> {
        let source = self.annotation(SOURCE).map(str::to_string).or_else(|| {
            let (_, gate) = self.gate()?;
            list(gate, "env")
                .iter()
                .find(|e| text(e, "name") == Some("MODELGATE_SOURCE"))
                .and_then(|e| text(e, "value"))
                .map(str::to_string)
        })?;
        if source.starts_with("oci://") {
            return Some(Model::Oci(source));
        }
        Some(Model::Folder {
            volume: self.annotation(VOLUME).unwrap_or("").to_string(),
            path: source,
        })
    }

    /// Whether the pod carries a model: the annotation, an image volume, or
    /// a gate already in the spec.
    pub fn carries_model(&self) -> bool {
        self.annotation(SOURCE).is_some()
            || !self.image_volumes().is_empty()
            || self.gate().is_some()
    }

    /// The volumes that hold the model, which only the gate may write.
    fn model_volumes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .image_volumes()
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        match self.model() {
            Some(Model::Oci(_)) => out.push(MODEL_VOLUME.to_string()),
            Some(Model::Folder { volume, .. }) if !volume.is_empty() => out.push(volume),
            _ => {}
        }
        out
    }

    /// Every container and init container: (field, index, container).
    fn containers(&self) -> impl Iterator<Item = (&'static str, usize, &Value)> {
        ["initContainers", "containers"]
            .into_iter()
            .flat_map(|field| {
                list(self.spec, field)
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (field, i, c))
            })
    }
}

/// The JSON Patch (operations relative to the object, the pod template at
/// `spec_at`) that adds the gate to a pod whose annotation names a model and
/// that has no gate; empty otherwise, so a second pass changes nothing.
pub fn mutation(pod: &Pod, spec_at: &str, gate_image: &str) -> Vec<Value> {
    if pod.annotation(SOURCE).is_none() || pod.gate().is_some() {
        return Vec::new();
    }
    let Some(model) = pod.model() else {
        return Vec::new();
    };
    let target = pod.target().to_string();
    let mut ops = Vec::new();
    // Volumes first, then the mounts of the containers already there (at
    // their indices before the gate goes in), then the gate at index 0.
    let mut volumes = Vec::new();
    let have: Vec<&str> = list(pod.spec, "volumes")
        .iter()
        .filter_map(|v| text(v, "name"))
        .collect();
    if let Model::Oci(_) = model {
        volumes.push(json!({"name": MODEL_VOLUME, "emptyDir": {}}));
    }
    volumes.push(json!({"name": TRUST_VOLUME, "configMap": {"name": TRUST_VOLUME}}));
    volumes.push(json!({"name": RUN_VOLUME, "emptyDir": {}}));
    volumes.retain(|v| !have.contains(&text(v, "name").unwrap_or("")));
    add_all(
        &mut ops,
        &format!("{spec_at}/volumes"),
        pod.spec.get("volumes").is_some(),
        volumes,
    );
    if let Model::Oci(_) = model {
        let mount = json!({"name": MODEL_VOLUME, "mountPath": target, "readOnly": true});
        for (field, i, container) in pod.containers() {
            if list(container, "volumeMounts")
                .iter()
                .any(|m| text(m, "name") == Some(MODEL_VOLUME))
            {
                continue;
            }
            add_all(
                &mut ops,
                &format!("{spec_at}/{field}/{i}/volumeMounts"),
                container.get("volumeMounts").is_some(),
                vec![mount.clone()],
            );
        }
    }
    let gate = gate_container(&model, &target, gate_image);
    if pod.spec.get("initContainers").is_some() {
        ops.push(
            json!({"op": "add", "path": format!("{spec_at}/initContainers/0"), "value": gate}),
        );
    } else {
        ops.push(
            json!({"op": "add", "path": format!("{spec_at}/initContainers"), "value": [gate]}),
        );
    }
    ops
}

/// Adds `values` to the array at `path`: one `add` of the whole array when
/// it is absent, one append each otherwise.
fn add_all(ops: &mut Vec<Value>, path: &str, exists: bool, values: Vec<Value>) {
    if values.is_empty() {
        return;
    }
    if exists {
        for value in values {
            ops.push(json!({"op": "add", "path": format!("{path}/-"), "value": value}));
        }
    } else {
        ops.push(json!({"op": "add", "path": path, "value": values}));
    }
}

/// The gate's init container, hardened as `deploy/` runs it.
fn gate_container(model: &Model, target: &str, gate_image: &str) -> Value {
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let mut env = Vec::new();
    let mut mounts = Vec::new();
    match model {
        Model::Oci(reference) => {
            env.push(json!({"name": "MODELGATE_SOURCE", "value": reference}));
            env.push(json!({"name": "MODELGATE_TARGET", "value": target}));
            mounts.push(json!({"name": MODEL_VOLUME, "mountPath": target}));
        }
        Model::Folder { path, volume } => {
            // Verified in place: a target would make it a copy.
            env.push(json!({"name": "MODELGATE_SOURCE", "value": path}));
            mounts.push(json!({"name": volume, "mountPath": path, "readOnly": true}));
        }
    }
    env.push(json!({"name": "MODELGATE_POLICY", "value": POLICY_PATH}));
    env.push(json!({"name": "MODELGATE_MEASUREMENT", "value": MEASUREMENT_PATH}));
    env.push(json!({"name": "POD_NAME", "valueFrom": field("metadata.name")}));
    env.push(json!({"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")}));
    env.push(json!({"name": "POD_UID", "valueFrom": field("metadata.uid")}));
    env.push(json!({"name": "NODE_NAME", "valueFrom": field("spec.nodeName")}));
    mounts.push(json!({"name": TRUST_VOLUME, "mountPath": "/etc/modelgate", "readOnly": true}));
    mounts.push(json!({"name": RUN_VOLUME, "mountPath": "/run/modelgate"}));
    json!({
        "name": GATE,
        "image": gate_image,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
        },
    })
}

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
    let model_volumes = pod.model_volumes();
    for (field, _, container) in pod.containers() {
        let name = text(container, "name").unwrap_or("");
        if field == "initContainers" && name == GATE {
            continue;
        }
        for mount in list(container, "volumeMounts") {
            let volume = text(mount, "name").unwrap_or("");
            let read_only = mount.get("readOnly").and_then(Value::as_bool) == Some(true);
            if model_volumes.iter().any(|v| v == volume) && !read_only {
                reasons.push(format!(
                    "container {name} mounts the model volume {volume} writable; set readOnly: true on its volumeMount"
                ));
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(mutation(&p, "/spec", IMAGE).is_empty());
        assert!(structural(&p, IMAGE).is_empty());
    }

    #[test]
    fn an_annotated_pod_is_denied_until_it_has_the_gate() {
        let pod = annotated();
        let p = Pod {
            metadata: &pod["metadata"],
            spec: &pod["spec"],
        };
        let ops = mutation(&p, "/spec", IMAGE);
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
