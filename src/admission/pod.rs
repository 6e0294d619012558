//! The contract between a pod and the gate, shared with the admission
//! policies in `deploy/admission/`: which pods carry a model, the gate a
//! pod must run first, and the JSON Patch that adds it (the checks that
//! deny a pod without it are the `structure` module's). Pure functions over
//! a pod spec (as JSON); no I/O, so the policies' CEL tests and these share
//! fixtures.

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

pub(super) fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

pub(super) fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

impl Pod<'_> {
    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
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
    pub fn model_volumes(&self) -> Vec<String> {
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
/// `spec_at`) that adds the gate to a pod that has none and whose annotation
/// names a model, or (without the annotation) that mounts `image_model`, the
/// one image volume a policy rule names; empty otherwise, so a second pass
/// changes nothing. An image volume's model is verified in place, where the
/// server mounts it.
pub fn mutation(
    pod: &Pod,
    spec_at: &str,
    gate_image: &str,
    image_model: Option<&str>,
) -> Vec<Value> {
    if pod.gate().is_some() {
        return Vec::new();
    }
    let (model, target) = match (pod.annotation(SOURCE), image_model) {
        (Some(_), _) => match pod.model() {
            Some(model) => (model, pod.target().to_string()),
            None => return Vec::new(),
        },
        (None, Some(volume)) => {
            let path = pod
                .containers()
                .flat_map(|(_, _, c)| list(c, "volumeMounts").iter())
                .find(|m| text(m, "name") == Some(volume))
                .and_then(|m| text(m, "mountPath"))
                .unwrap_or(DEFAULT_TARGET)
                .to_string();
            let model = Model::Folder {
                volume: volume.to_string(),
                path: path.clone(),
            };
            (model, path)
        }
        (None, None) => return Vec::new(),
    };
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
