//! The Kubernetes manifests under deploy/, as a platform engineer applies
//! them: every kustomization builds with `kubectl kustomize`, every resource
//! validates strictly against Kubernetes' own schemas (kubernetes-validate,
//! from the test venv), and the properties a user relies on hold: the server
//! reads the model read-only, every container is hardened, every model and
//! image reference is pinned by digest, modelgate is configured only by the
//! variables it knows, and the policies shipped are ones modelgate accepts.
//!
//! Needs `kubectl` on PATH and `kubernetes-validate` in the venv
//! (`MODELGATE_TEST_VENV`, default `.venv`; tests/requirements.txt).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::Process;

/// Every kustomization a user may apply, relative to deploy/.
const KUSTOMIZATIONS: [&str; 6] = [
    "base",
    "overlays/pvc",
    "overlays/pvc-watch",
    "overlays/image-volume",
    "overlays/kserve",
    "overlays/kserve-modelcar",
];

/// The oldest Kubernetes the manifests promise to work on: image volumes
/// (`volumes[].image`) need 1.33. Each build is also validated against the
/// newest version the installed kubernetes-validate knows.
const OLDEST_KUBERNETES: &str = "1.33.0";

/// The cluster-wide admission kustomization (the policies, their parameter,
/// the namespace; the webhook later). Not in KUSTOMIZATIONS: it holds no
/// workload, so the checks of pods and their env do not apply to it.
const ADMISSION: &str = "admission";

/// The oldest Kubernetes the admission kustomization works on: the
/// MutatingAdmissionPolicy is admissionregistration.k8s.io/v1 from 1.36
/// (kubernetes-validate 1.37.0 has its schema for 1.36 and 1.37 only; 1.33
/// to 1.35 have v1alpha1 and v1beta1). ValidatingAdmissionPolicy v1 is older
/// (1.30).
const ADMISSION_OLDEST_KUBERNETES: &str = "1.36.0";

/// Kinds that are not Kubernetes' own: kubernetes-validate has no schema for
/// them, so their Kubernetes parts are validated by wrapping them in a Pod.
const CUSTOM_KINDS: [&str; 4] = [
    "ClusterStorageContainer",
    "InferenceService",
    "Certificate",
    "Issuer",
];

/// The environment `modelgate init` and `modelgate watch` read, from their
/// own `--help` (each setting shows `[env: MODELGATE_...]`), plus
/// MODELGATE_LOG: any other MODELGATE_ name in a manifest is a typo that
/// they would refuse.
fn modelgate_env() -> Vec<String> {
    let mut names = vec!["MODELGATE_LOG".to_string()];
    for command in ["init", "watch"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let before = names.len();
        names.extend(
            help.split("[env: ")
                .skip(1)
                .filter_map(|rest| rest.split('=').next())
                .map(String::from),
        );
        assert!(names.len() - before > 20, "{command}: {help}");
    }
    names
}

const MODELGATE_IMAGE: &str = "ghcr.io/modelgate/modelgate@sha256:";
const MODEL_PATH: &str = "/mnt/models";
const MEASUREMENT_DIR: &str = "/run/modelgate";

// ---------------------------------------------------------------- helpers

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A program of the test venv, which must be installed.
fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("MODELGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let bin = venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: install tests/requirements.txt into the venv ({}/bin/pip install -r tests/requirements.txt, or scripts/test.sh)",
        bin.display(),
        venv.display()
    );
    bin
}

/// Runs `cmd` with `input` on stdin; returns (exit code, stdout, stderr).
fn pipe(cmd: &mut Command, input: &str) -> (i32, String, String) {
    let mut child = Process::spawn(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl kustomize deploy/<dir>`, asserting success.
fn kustomize(dir: &str) -> String {
    let path = repo().join("deploy").join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl (needed to build deploy/): {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The documents of a YAML stream, as JSON (PyYAML from the venv).
fn parse(yaml: &str) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)";
    let (code, stdout, stderr) = pipe(Command::new(venv_bin("python")).args(["-c", script]), yaml);
    assert_eq!(code, 0, "parsing YAML: {stderr}");
    match serde_json::from_str(&stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("not a list of documents: {other}"),
    }
}

/// The documents `deploy/<dir>` builds to.
fn build(dir: &str) -> Vec<Value> {
    parse(&kustomize(dir))
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn one<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    let found: Vec<_> = docs
        .iter()
        .filter(|d| kind(d) == kind_ && name(d) == name_)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind_} {name_}");
    found[0]
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Validates a YAML stream strictly (unknown fields are errors) against
/// `version`, or the newest version kubernetes-validate knows. Every
/// resource must pass except custom kinds, which it can only skip.
fn validate(yaml: &str, version: Option<&str>, what: &str) {
    let mut cmd = Command::new(venv_bin("kubernetes-validate"));
    cmd.arg("--strict");
    if let Some(v) = version {
        cmd.args(["--kubernetes-version", v]);
    }
    cmd.arg("-");
    let (code, stdout, stderr) = pipe(&mut cmd, yaml);
    let report = format!("{stdout}{stderr}");
    assert_eq!(
        code, 0,
        "kubernetes-validate {what} ({version:?}):\n{report}"
    );
    let docs = parse(yaml);
    let custom = docs
        .iter()
        .filter(|d| CUSTOM_KINDS.contains(&kind(d)))
        .count();
    let total = docs.len();
    let mut passed = 0;
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("INFO") && line.contains(" passed for resource ") {
            passed += 1;
        } else {
            assert!(
                line.starts_with("WARN") && CUSTOM_KINDS.iter().any(|k| line.contains(k)),
                "kubernetes-validate {what}: unexpected output {line:?}\n{report}"
            );
        }
    }
    assert_eq!(
        passed,
        total - custom,
        "resources validated in {what}:\n{report}"
    );
}

/// A Pod holding `spec`, to validate the Kubernetes parts of a custom kind.
fn pod(name: &str, spec: Value) -> String {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": spec,
    });
    // JSON is YAML.
    serde_json::to_string(&pod).unwrap()
}

/// The pod spec KServe would build from an InferenceService's predictor,
/// as far as the manifest states it: the predictor is a PodSpec, and its
/// `model` a container the serving runtime completes (image, name).
fn predictor_pod_spec(isvc: &Value) -> Value {
    let mut spec = isvc["spec"]["predictor"].clone();
    let spec_map = spec.as_object_mut().unwrap();
    if let Some(mut model) = spec_map.remove("model") {
        let m = model.as_object_mut().unwrap();
        for kserve_only in ["modelFormat", "storageUri", "runtime", "protocolVersion"] {
            m.remove(kserve_only);
        }
        m.insert("name".into(), "kserve-container".into());
        m.insert("image".into(), "serving-runtime".into());
        spec_map.insert("containers".into(), Value::Array(vec![model]));
    }
    spec
}

/// A pod as the manifests describe it: a Deployment's template, an
/// InferenceService's predictor, or the ClusterStorageContainer's container
/// (KServe's storage-initializer).
struct PodView {
    what: String,
    spec: Value,
    init: Vec<Value>,
    containers: Vec<Value>,
}

fn pods(docs: &[Value]) -> Vec<PodView> {
    let mut out = Vec::new();
    for doc in docs {
        let (spec, init, containers) = match kind(doc) {
            "Deployment" => {
                let spec = doc["spec"]["template"]["spec"].clone();
                let init = list(&spec["initContainers"]).to_vec();
                let containers = list(&spec["containers"]).to_vec();
                (spec, init, containers)
            }
            "InferenceService" => {
                let spec = predictor_pod_spec(doc);
                let init = list(&spec["initContainers"]).to_vec();
                let containers = list(&spec["containers"]).to_vec();
                (spec, init, containers)
            }
            "ClusterStorageContainer" => (
                Value::Null,
                vec![doc["spec"]["container"].clone()],
                Vec::new(),
            ),
            _ => continue,
        };
        out.push(PodView {
            what: format!("{} {}", kind(doc), name(doc)),
            spec,
            init,
            containers,
        });
    }
    out
}

fn all_builds() -> Vec<(&'static str, Vec<Value>)> {
    KUSTOMIZATIONS.iter().map(|d| (*d, build(d))).collect()
}

fn env<'a>(container: &'a Value, var: &str) -> Option<&'a str> {
    list(&container["env"])
        .iter()
        .find(|e| e["name"] == var)
        .map(|e| e["value"].as_str().unwrap_or_default())
}

fn mount<'a>(container: &'a Value, path: &str) -> Option<&'a Value> {
    list(&container["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == path)
}

fn volume<'a>(spec: &'a Value, name_: &str) -> &'a Value {
    list(&spec["volumes"])
        .iter()
        .find(|v| v["name"] == name_)
        .unwrap_or_else(|| panic!("no volume {name_}"))
}

/// The single init container and the single server container of `dir`'s
/// Deployment, with its pod spec.
fn deployment(dir: &str) -> (Vec<Value>, Value, Value, Value) {
    let docs = build(dir);
    let spec = one(&docs, "Deployment", "vllm")["spec"]["template"]["spec"].clone();
    let init = list(&spec["initContainers"]);
    let containers = list(&spec["containers"]);
    assert_eq!(init.len(), 1, "{dir}: one init container");
    assert_eq!(containers.len(), 1, "{dir}: one server container");
    let (init, server) = (init[0].clone(), containers[0].clone());
    (docs, spec, init, server)
}

/// Every string in `v`, with the path that leads to it.
fn strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings(x, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                strings(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Every `env` list in `v`, wherever it is.
fn env_lists<'a>(v: &'a Value, out: &mut Vec<&'a [Value]>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| env_lists(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if k == "env" {
                    out.push(list(x));
                }
                env_lists(x, out);
            }
        }
        _ => {}
    }
}

/// `sha256:` followed by 64 lowercase hex digits, at the end of `s`.
fn pinned(s: &str) -> bool {
    s.rsplit_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty()
            && !name.contains('@')
            && hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

// ------------------------------------------------------------------ tests

#[test]
fn every_kustomization_builds_and_validates_strictly() {
    for dir in KUSTOMIZATIONS {
        let yaml = kustomize(dir);
        for version in [Some(OLDEST_KUBERNETES), None] {
            validate(&yaml, version, dir);
        }
        // The Kubernetes parts of the custom kinds, in a Pod.
        for doc in parse(&yaml) {
            let spec = match kind(&doc) {
                "InferenceService" => predictor_pod_spec(&doc),
                "ClusterStorageContainer" => {
                    let mut c = doc["spec"]["container"].clone();
                    // Its volumes are the InferenceService's.
                    c.as_object_mut().unwrap().remove("volumeMounts");
                    serde_json::json!({"initContainers": [c], "containers": [{"name": "server", "image": "server"}]})
                }
                _ => continue,
            };
            let what = format!("{dir}: {} {} as a Pod", kind(&doc), name(&doc));
            validate(&pod(name(&doc), spec), Some(OLDEST_KUBERNETES), &what);
        }
    }
}

#[test]
fn base_pulls_a_pinned_model_that_the_server_reads_read_only() {
    let (docs, spec, init, server) = deployment("base");
    assert!(init["image"].as_str().unwrap().starts_with(MODELGATE_IMAGE));
    assert!(
        server["image"]
            .as_str()
            .unwrap()
            .starts_with("vllm/vllm-openai@sha256:")
    );
    let args: Vec<&str> = list(&server["args"])
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--model", MODEL_PATH]),
        "{args:?}"
    );

    // Pulled from the registry by digest into an emptyDir ...
    let source = env(&init, "MODELGATE_SOURCE").unwrap();
    assert!(source.starts_with("oci://") && pinned(source), "{source}");
    assert_eq!(env(&init, "MODELGATE_TARGET"), Some(MODEL_PATH));
    let server_model = mount(&server, MODEL_PATH).expect("the server mounts the model");
    assert!(volume(&spec, server_model["name"].as_str().unwrap())["emptyDir"].is_object());
    // ... that modelgate writes (staging beside the target, in the same
    // volume) and the server only reads.
    let init_model = list(&init["volumeMounts"])
        .iter()
        .find(|m| m["name"] == server_model["name"])
        .expect("the init container mounts the model volume");
    assert_ne!(init_model["readOnly"], true);
    assert!(MODEL_PATH.starts_with(init_model["mountPath"].as_str().unwrap()));
    assert_eq!(
        server_model["readOnly"], true,
        "the model is read-only in the server"
    );
    assert_eq!(server_model["subPath"], "models");

    // The measurement on a shared emptyDir, read-only in the server.
    assert_eq!(
        env(&init, "MODELGATE_MEASUREMENT"),
        Some("/run/modelgate/measurement.json")
    );
    let m = mount(&server, MEASUREMENT_DIR).expect("the server mounts the measurement");
    assert_eq!(m["readOnly"], true);
    let init_m = mount(&init, MEASUREMENT_DIR).expect("modelgate mounts the measurement");
    assert_eq!(init_m["name"], m["name"]);
    assert!(volume(&spec, m["name"].as_str().unwrap())["emptyDir"].is_object());

    // Registry credentials: the pull secret's .dockerconfigjson.
    let secret_name = list(&spec["imagePullSecrets"])[0]["name"].as_str().unwrap();
    let creds = env(&init, "MODELGATE_REGISTRY_CONFIG").unwrap();
    let (dir, file) = creds.rsplit_once('/').unwrap();
    assert_eq!(file, ".dockerconfigjson");
    let creds_mount = mount(&init, dir).expect("the credentials are mounted");
    assert_eq!(creds_mount["readOnly"], true);
    let secret = &volume(&spec, creds_mount["name"].as_str().unwrap())["secret"];
    assert_eq!(secret["secretName"], secret_name);
    assert!(
        mount(&server, dir).is_none(),
        "the server never sees the credentials"
    );

    // Signature and policy: files of the ConfigMap.
    trust_files_come_from_the_configmap(&docs, &spec, &init);

    // The pod status says why it failed.
    assert_eq!(init["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(init["terminationMessagePolicy"], "FallbackToLogsOnError");
    assert_eq!(
        env(&init, "MODELGATE_TERMINATION_LOG"),
        Some("/dev/termination-log")
    );
    for var in ["POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME"] {
        let e = list(&init["env"])
            .iter()
            .find(|e| e["name"] == var)
            .unwrap();
        assert!(e["valueFrom"]["fieldRef"]["fieldPath"].is_string(), "{var}");
    }

    // A Service in front of the server.
    let service = one(&docs, "Service", "vllm");
    let template_labels =
        &one(&docs, "Deployment", "vllm")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&template_labels[k], v, "the Service selects the pods");
    }
}

/// MODELGATE_POLICY and MODELGATE_SIGNATURE name files of the trust
/// ConfigMap, mounted read-only, and the policy's key is there too.
fn trust_files_come_from_the_configmap(docs: &[Value], spec: &Value, init: &Value) {
    for var in ["MODELGATE_POLICY", "MODELGATE_SIGNATURE"] {
        let path = env(init, var).unwrap_or_else(|| panic!("{var} is set"));
        let (dir, file) = path.rsplit_once('/').unwrap();
        let m = mount(init, dir).unwrap_or_else(|| panic!("{dir} is mounted"));
        assert_eq!(m["readOnly"], true);
        let cm = volume(spec, m["name"].as_str().unwrap())["configMap"]["name"]
            .as_str()
            .unwrap();
        let data = &one(docs, "ConfigMap", cm)["data"];
        assert!(data[file].is_string(), "{var}: {file} is in ConfigMap {cm}");
    }
}

/// The volume the server mounts at the model path.
fn model_volume<'a>(spec: &'a Value, server: &Value) -> &'a Value {
    volume(
        spec,
        mount(server, MODEL_PATH).unwrap()["name"].as_str().unwrap(),
    )
}

#[test]
fn pvc_overlay_verifies_the_claim_in_place_read_only() {
    let (docs, spec, init, server) = deployment("overlays/pvc");
    in_place(&docs, &spec, &init, &server);
    let model = model_volume(&spec, &server);
    assert_eq!(model["persistentVolumeClaim"]["readOnly"], true);
    assert!(model["emptyDir"].is_null());
    nothing_to_reach(&docs);
}

#[test]
fn image_volume_overlay_pins_the_model_and_verifies_it_in_place() {
    let (docs, spec, init, server) = deployment("overlays/image-volume");
    in_place(&docs, &spec, &init, &server);
    let model = model_volume(&spec, &server);
    let reference = model["image"]["reference"].as_str().unwrap();
    assert!(pinned(reference), "the image volume is pinned: {reference}");
    assert_eq!(model["image"]["pullPolicy"], "IfNotPresent");
    assert!(model["emptyDir"].is_null());
    // The kubelet pulls it with the pod's pull secret.
    assert!(!list(&spec["imagePullSecrets"]).is_empty());
    nothing_to_reach(&docs);

    // The warning a user must not miss, where they will read it.
    let yaml =
        std::fs::read_to_string(repo().join("deploy/overlays/image-volume/kustomization.yaml"))
            .unwrap();
    let readme = std::fs::read_to_string(repo().join("deploy/README.md")).unwrap();
    for text in [&yaml, &readme] {
        assert!(text.contains("MUST be digest-pinned"));
        assert!(text.contains("requireDigest: true"));
    }
}

/// A model verified where it lies: both containers mount it read-only,
/// MODELGATE_SOURCE is that folder, nothing is pulled.
fn in_place(docs: &[Value], spec: &Value, init: &Value, server: &Value) {
    assert_eq!(env(init, "MODELGATE_SOURCE"), Some(MODEL_PATH));
    for var in ["MODELGATE_TARGET", "MODELGATE_REGISTRY_CONFIG"] {
        assert_eq!(env(init, var), None, "{var} is not set");
    }
    let server_model = mount(server, MODEL_PATH).unwrap();
    let init_model = mount(init, MODEL_PATH).expect("modelgate mounts the model at its source");
    assert_eq!(init_model["name"], server_model["name"]);
    for m in [init_model, server_model] {
        assert_eq!(m["readOnly"], true, "read-only: {m}");
        assert!(m["subPath"].is_null());
    }
    // Nothing else of the pull remains: no writable model mount, no secret.
    for m in list(&init["volumeMounts"]) {
        let v = volume(spec, m["name"].as_str().unwrap());
        assert!(v["secret"].is_null(), "no credentials are mounted: {m}");
    }
    trust_files_come_from_the_configmap(docs, spec, init);
}

/// An in-place overlay's pod reaches nothing: egress denied.
fn nothing_to_reach(docs: &[Value]) {
    let np = one(docs, "NetworkPolicy", "vllm-egress");
    assert!(list(&np["spec"]["policyTypes"]).contains(&"Egress".into()));
    assert!(list(&np["spec"]["egress"]).is_empty(), "{np}");
}

/// The gate of deploy/base, whose hardening every sidecar copies.
fn base_gate() -> Value {
    deployment("base").2
}

/// A `watch` sidecar and the server it guards: a native sidecar
/// (`restartPolicy: Always`, `args: [watch]`) hardened exactly as the gate
/// of base, serving the probes on MODELGATE_WATCH_LISTEN's port, which
/// the server's readinessProbe asks (`/readyz`) and, under
/// `MODELGATE_WATCH_ON_DRIFT=restart`, its livenessProbe (`/livez`). The
/// sidecar's own probes never ask `/livez`: that would restart the
/// sidecar, not the server. Returns the port.
fn watch_sidecar_guards(what: &str, sidecar: &Value, server: &Value) -> i64 {
    assert_eq!(
        sidecar["restartPolicy"], "Always",
        "{what}: a native sidecar"
    );
    assert_eq!(sidecar["args"], serde_json::json!(["watch"]), "{what}");
    assert!(
        sidecar["command"].is_null(),
        "{what}: the image's entrypoint"
    );
    assert!(
        sidecar["image"]
            .as_str()
            .unwrap()
            .starts_with(MODELGATE_IMAGE)
    );
    let gate = base_gate();
    for field in [
        "securityContext",
        "terminationMessagePath",
        "terminationMessagePolicy",
    ] {
        assert_eq!(
            sidecar[field], gate[field],
            "{what}: {field} as the gate of base"
        );
    }
    // Every mount but the measurement's is read-only.
    for m in list(&sidecar["volumeMounts"]) {
        if m["mountPath"] != MEASUREMENT_DIR {
            assert_eq!(m["readOnly"], true, "{what}: read-only {m}");
        }
    }
    let m = mount(server, MEASUREMENT_DIR).expect("the server mounts the measurement");
    assert_eq!(m["readOnly"], true, "{what}: {m}");
    assert_eq!(
        mount(sidecar, MEASUREMENT_DIR).expect("the sidecar writes the measurement")["name"],
        m["name"]
    );

    let listen = env(sidecar, "MODELGATE_WATCH_LISTEN").expect("MODELGATE_WATCH_LISTEN");
    let port: i64 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
    let declared = list(&sidecar["ports"])
        .iter()
        .find(|p| p["containerPort"] == port)
        .unwrap_or_else(|| panic!("{what}: the sidecar declares port {port}"));
    let named = |p: &Value| p == &declared["name"] || p == port;
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let p = &sidecar[probe];
        assert_ne!(p["httpGet"]["path"], "/livez", "{what}: sidecar {probe}");
        if !p.is_null() {
            let port_ = p["httpGet"]["port"].clone();
            let port_ = if port_.is_null() {
                p["tcpSocket"]["port"].clone()
            } else {
                port_
            };
            assert!(named(&port_), "{what}: sidecar {probe} {p}");
        }
    }
    // The server's probes ask the sidecar, by number: a named port must be
    // the probing container's own.
    let ready = &server["readinessProbe"]["httpGet"];
    assert_eq!(ready["path"], "/readyz", "{what}: {ready}");
    assert_eq!(ready["port"], port, "{what}: {ready}");
    let live = &server["livenessProbe"]["httpGet"];
    match env(sidecar, "MODELGATE_WATCH_ON_DRIFT").unwrap_or("quarantine") {
        "restart" => {
            assert_eq!(live["path"], "/livez", "{what}: {live}");
            assert_eq!(live["port"], port, "{what}: {live}");
        }
        "quarantine" => assert_ne!(live["path"], "/livez", "{what}: nothing to restart"),
        other => panic!("{what}: MODELGATE_WATCH_ON_DRIFT={other}"),
    }
    port
}

#[test]
fn pvc_watch_overlay_keeps_the_claim_verified_and_the_server_ready_only_while_it_is() {
    let (docs, spec, sidecar, server) = deployment("overlays/pvc-watch");
    // watch replaces init: one verification at the start, the same inputs.
    assert_eq!(sidecar["name"], "modelgate-watch");
    in_place(&docs, &spec, &sidecar, &server);
    let model = model_volume(&spec, &server);
    assert_eq!(model["persistentVolumeClaim"]["readOnly"], true);
    nothing_to_reach(&docs);
    watch_sidecar_guards("overlays/pvc-watch", &sidecar, &server);
    assert_eq!(env(&sidecar, "MODELGATE_WATCH_ON_DRIFT"), Some("restart"));
    // The server starts only once the model verified.
    let startup = &sidecar["startupProbe"]["httpGet"];
    assert_eq!(startup["path"], "/readyz", "{startup}");
    // The rest of the gate is the pvc overlay's.
    let (.., pvc_gate, _) = deployment("overlays/pvc");
    for field in ["image", "volumeMounts"] {
        assert_eq!(sidecar[field], pvc_gate[field], "{field}");
    }
    for e in list(&pvc_gate["env"]) {
        assert!(list(&sidecar["env"]).contains(e), "{e}");
    }
}

#[test]
fn kserve_modelcar_overlay_watches_the_model_inside_the_modelcar() {
    let dir = "overlays/kserve-modelcar";
    let docs = build(dir);
    let isvc = one(&docs, "InferenceService", "llama-modelcar");
    let uri = isvc["spec"]["predictor"]["model"]["storageUri"]
        .as_str()
        .unwrap();
    assert!(uri.starts_with("oci://") && pinned(uri), "{uri}");
    let spec = predictor_pod_spec(isvc);
    assert_eq!(spec["shareProcessNamespace"], true);
    let init = list(&spec["initContainers"]);
    assert_eq!(init.len(), 1, "one sidecar");
    let (sidecar, server) = (&init[0], &list(&spec["containers"])[0]);
    watch_sidecar_guards(dir, sidecar, server);
    // The model is a folder inside the modelcar, found by its process.
    assert_eq!(env(sidecar, "MODELGATE_SOURCE"), Some("/models"));
    assert_eq!(env(sidecar, "MODELGATE_WATCH_CONTAINER"), Some("sleep"));
    for var in ["MODELGATE_TARGET", "MODELGATE_REGISTRY_CONFIG"] {
        assert_eq!(env(sidecar, var), None, "{var} is not set");
    }
    // No startupProbe: the modelcar starts after the init containers, so
    // one would never pass.
    assert!(sidecar["startupProbe"].is_null());
    // The modelcar's root is read as its user: the pod's, the sidecar's.
    assert_eq!(
        sidecar["securityContext"]["runAsUser"],
        spec["securityContext"]["runAsUser"]
    );
    trust_files_come_from_the_configmap(&docs, &spec, sidecar);
}

#[test]
fn base_network_policy_allows_only_dns_and_the_registry() {
    let (docs, ..) = deployment("base");
    let np = one(&docs, "NetworkPolicy", "vllm-egress");
    let labels = &one(&docs, "Deployment", "vllm")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in np["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&labels[k], v, "the policy selects the pods");
    }
    assert!(list(&np["spec"]["policyTypes"]).contains(&"Egress".into()));
    let rules = list(&np["spec"]["egress"]);
    assert_eq!(rules.len(), 2, "{np}");
    let mut dns = false;
    let mut registry = false;
    for rule in rules {
        let ports: Vec<i64> = list(&rule["ports"])
            .iter()
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        let to = list(&rule["to"]);
        assert!(
            !to.is_empty() && !ports.is_empty(),
            "every rule is narrow: {rule}"
        );
        if ports.iter().all(|p| *p == 53) {
            assert!(
                to.iter()
                    .all(|t| t["podSelector"]["matchLabels"]["k8s-app"] == "kube-dns")
            );
            dns = true;
        } else {
            assert_eq!(ports, [443]);
            assert!(
                to.iter().all(|t| t["ipBlock"]["cidr"].is_string()),
                "{rule}"
            );
            registry = true;
        }
    }
    assert!(dns && registry);
}

#[test]
fn kserve_cluster_storage_container_is_modelgate_for_oci() {
    let docs = build("overlays/kserve");
    let csc = one(&docs, "ClusterStorageContainer", "modelgate");
    assert_eq!(csc["apiVersion"], "serving.kserve.io/v1alpha1");
    assert_eq!(csc["spec"]["workloadType"], "initContainer");
    assert_eq!(
        csc["spec"]["supportedUriFormats"],
        serde_json::json!([{"prefix": "oci://"}])
    );
    let c = &csc["spec"]["container"];
    assert!(c["image"].as_str().unwrap().starts_with(MODELGATE_IMAGE));
    // KServe runs it as `modelgate <srcURI> <mountPath>`: the arguments are
    // KServe's, and the name is the one KServe recognises as its own.
    assert!(c["args"].is_null() && c["command"].is_null(), "{c}");
    assert_eq!(c["name"], "storage-initializer");
    assert!(env(c, "MODELGATE_SOURCE").is_none() && env(c, "MODELGATE_TARGET").is_none());

    // Its mounts name volumes every InferenceService using it declares.
    let isvc = one(&docs, "InferenceService", "llama-oci");
    assert_eq!(isvc["apiVersion"], "serving.kserve.io/v1beta1");
    let uri = isvc["spec"]["predictor"]["model"]["storageUri"]
        .as_str()
        .unwrap();
    assert!(uri.starts_with("oci://") && pinned(uri), "{uri}");
    let predictor = predictor_pod_spec(isvc);
    for m in list(&c["volumeMounts"]) {
        volume(&predictor, m["name"].as_str().unwrap());
    }
    // The model stays read-only in the server (KServe's default).
    assert_ne!(
        isvc["metadata"]["annotations"]["serving.kserve.io/storage-readonly"],
        "false"
    );
    // The policy is in the ConfigMap the InferenceService mounts.
    let policy = env(c, "MODELGATE_POLICY").unwrap();
    let (dir, file) = policy.rsplit_once('/').unwrap();
    let m = mount(c, dir).unwrap();
    let cm = volume(&predictor, m["name"].as_str().unwrap())["configMap"]["name"]
        .as_str()
        .unwrap();
    assert!(one(&docs, "ConfigMap", cm)["data"][file].is_string());

    // A model KServe downloads itself is verified in the server container
    // before the server starts.
    let hf = one(&docs, "InferenceService", "llama-hf");
    let spec = predictor_pod_spec(hf);
    let server = &list(&spec["containers"])[0];
    let storage_uri = env(server, "STORAGE_URI").unwrap();
    assert!(storage_uri.starts_with("hf://"), "{storage_uri}");
    assert_eq!(env(server, "MODELGATE_SOURCE"), Some(MODEL_PATH));
    let script = list(&server["args"])[0].as_str().unwrap();
    assert!(script.starts_with("modelgate init && exec "), "{script}");
    trust_files_come_from_the_configmap(&docs, &spec, server);
}

#[test]
fn every_container_and_pod_is_hardened() {
    for (dir, docs) in all_builds() {
        for pod in pods(&docs) {
            let what = format!("{dir}: {}", pod.what);
            if !pod.spec.is_null() {
                let sc = &pod.spec["securityContext"];
                assert_eq!(sc["runAsNonRoot"], true, "{what}: pod runAsNonRoot");
                assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
                assert_eq!(pod.spec["automountServiceAccountToken"], false, "{what}");
            }
            for c in pod.init.iter().chain(&pod.containers) {
                let what = format!("{what} container {}", c["name"]);
                let sc = &c["securityContext"];
                assert_eq!(sc["runAsNonRoot"], true, "{what}: runAsNonRoot");
                assert_eq!(
                    sc["readOnlyRootFilesystem"], true,
                    "{what}: readOnlyRootFilesystem"
                );
                assert_eq!(
                    sc["allowPrivilegeEscalation"], false,
                    "{what}: allowPrivilegeEscalation"
                );
                assert_ne!(sc["privileged"], true, "{what}: privileged");
                assert!(
                    list(&sc["capabilities"]["drop"]).contains(&"ALL".into()),
                    "{what}: capabilities drop ALL"
                );
                assert!(
                    sc["capabilities"]["add"].is_null(),
                    "{what}: no capability added"
                );
                assert_eq!(
                    sc["seccompProfile"]["type"], "RuntimeDefault",
                    "{what}: seccomp"
                );
                for bound in ["requests", "limits"] {
                    let r = c["resources"][bound].as_object();
                    assert!(
                        r.is_some_and(|r| r.contains_key("memory")),
                        "{what}: {bound}"
                    );
                }
                if c["image"].as_str().unwrap().starts_with(MODELGATE_IMAGE) {
                    assert_eq!(sc["runAsUser"], 65532, "{what}: modelgate's user");
                    assert_eq!(
                        c["terminationMessagePath"], "/dev/termination-log",
                        "{what}"
                    );
                    assert_eq!(
                        c["terminationMessagePolicy"], "FallbackToLogsOnError",
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_model_and_image_reference_is_digest_pinned() {
    for (dir, docs) in all_builds() {
        for doc in &docs {
            let mut all = Vec::new();
            strings(doc, format!("{} {}", kind(doc), name(doc)), &mut all);
            for (path, s) in all {
                // Models by digest: a tag could be moved after signing.
                if s.starts_with("oci://") && s != "oci://" {
                    assert!(pinned(s), "{dir}: {path} = {s} is not pinned by digest");
                }
                // Images and image volumes by digest.
                if path.ends_with(".image") || path.ends_with(".image.reference") {
                    assert!(pinned(s), "{dir}: {path} = {s} is not pinned by digest");
                }
            }
        }
        // The InferenceService's `model` gets its image from the runtime;
        // every container the manifests name has one.
        for pod in pods(&docs) {
            for c in pod.init.iter().chain(&pod.containers) {
                let image = c["image"].as_str().unwrap_or_default();
                assert!(
                    pinned(image)
                        || pod.what.starts_with("InferenceService") && image == "serving-runtime",
                    "{dir}: {} container {} image {image:?}",
                    pod.what,
                    c["name"]
                );
            }
        }
    }
}

#[test]
fn modelgate_is_configured_only_by_variables_it_reads() {
    let known = modelgate_env();
    for (dir, docs) in all_builds() {
        let mut lists = Vec::new();
        for doc in &docs {
            env_lists(doc, &mut lists);
        }
        assert!(!lists.is_empty(), "{dir}: no env at all");
        for e in lists.into_iter().flatten() {
            let n = e["name"].as_str().unwrap();
            assert!(
                !n.starts_with("MODELGATE_") || known.iter().any(|k| k == n),
                "{dir}: {n} is not a variable modelgate reads"
            );
        }
    }
}

#[test]
fn shipped_policies_are_valid_for_modelgate() {
    for dir in ["base", "overlays/kserve", "overlays/kserve-modelcar"] {
        let docs = build(dir);
        let cm = docs
            .iter()
            .find(|d| kind(d) == "ConfigMap" && name(d).starts_with("modelgate-trust"))
            .unwrap_or_else(|| panic!("{dir}: no trust ConfigMap"));
        // The ConfigMap as modelgate sees it, mounted.
        let mounted = tempfile::tempdir().unwrap();
        for (file, content) in cm["data"].as_object().unwrap() {
            std::fs::write(mounted.path().join(file), content.as_str().unwrap()).unwrap();
        }
        let out = Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .args(["policy", "check"])
            .arg(mounted.path().join("policy.yaml"))
            .env("MODELGATE_LOG_FORMAT", "text")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{dir}: modelgate policy check: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let policy: Value = parse(cm["data"]["policy.yaml"].as_str().unwrap()).remove(0);
        for rule in list(&policy["spec"]["models"]) {
            // Key-based: the public key ships in the same ConfigMap.
            for a in list(&rule["authorities"]) {
                let key = a["key"]["path"].as_str().expect("a key authority");
                assert!(
                    cm["data"][key]
                        .as_str()
                        .unwrap()
                        .contains("BEGIN PUBLIC KEY")
                );
            }
            if !list(&rule["match"]["repositories"]).is_empty() {
                assert_eq!(rule["requireDigest"], true, "{dir}: {rule}");
            }
        }
        assert!(
            !list(&policy["spec"]["allowedRegistries"]).is_empty(),
            "{dir}"
        );
    }
}

/// Every namespace selector of the admission policies and their bindings:
/// (label key, operator, values).
fn selector(doc: &Value, path: &str) -> Vec<(String, String, Vec<String>)> {
    list(&doc["spec"][path]["namespaceSelector"]["matchExpressions"])
        .iter()
        .map(|e| {
            let values = list(&e["values"])
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            (
                e["key"].as_str().unwrap().to_owned(),
                e["operator"].as_str().unwrap().to_owned(),
                values,
            )
        })
        .collect()
}

#[test]
fn admission_builds_validates_and_selects_only_opted_in_namespaces() {
    let yaml = kustomize(ADMISSION);
    for version in [Some(ADMISSION_OLDEST_KUBERNETES), None] {
        validate(&yaml, version, ADMISSION);
    }
    let docs = parse(&yaml);
    assert_eq!(
        one(&docs, "Namespace", "modelgate-system")["kind"],
        "Namespace"
    );

    // The parameter: the gate image the cluster trusts, pinned.
    let params = one(&docs, "ConfigMap", "modelgate-admission");
    assert_eq!(params["metadata"]["namespace"], "modelgate-system");
    let image = params["data"]["gateImage"].as_str().unwrap();
    assert!(
        image.starts_with(MODELGATE_IMAGE) && pinned(image),
        "{image}"
    );

    let system = (
        "kubernetes.io/metadata.name".to_owned(),
        "NotIn".to_owned(),
        vec!["kube-system".to_owned(), "modelgate-system".to_owned()],
    );
    let opted_in = |value: &str| {
        (
            "modelgate.dev/enforce".to_owned(),
            "In".to_owned(),
            vec![value.to_owned()],
        )
    };
    for (kind_, name_) in [
        ("ValidatingAdmissionPolicy", "modelgate-gate"),
        ("MutatingAdmissionPolicy", "modelgate-inject"),
    ] {
        let policy = one(&docs, kind_, name_);
        assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
        assert_eq!(policy["spec"]["failurePolicy"], "Fail", "{name_}");
        assert_eq!(
            policy["spec"]["paramKind"],
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(
            selector(policy, "matchConstraints"),
            std::slice::from_ref(&system),
            "{name_}"
        );
        let rules = list(&policy["spec"]["matchConstraints"]["resourceRules"]);
        assert!(
            rules
                .iter()
                .all(|r| list(&r["resources"]).contains(&"pods".into())),
            "{name_}"
        );
    }

    // Each binding: the parameter, the label value, never the system.
    let bindings = [
        (
            "ValidatingAdmissionPolicyBinding",
            "modelgate-gate-enforce",
            "enforce",
        ),
        (
            "ValidatingAdmissionPolicyBinding",
            "modelgate-gate-warn",
            "warn",
        ),
        (
            "MutatingAdmissionPolicyBinding",
            "modelgate-inject",
            "enforce",
        ),
    ];
    for (kind_, name_, value) in bindings {
        let binding = one(&docs, kind_, name_);
        let policy_kind = kind_.trim_end_matches("Binding");
        one(
            &docs,
            policy_kind,
            binding["spec"]["policyName"].as_str().unwrap(),
        );
        let param = &binding["spec"]["paramRef"];
        assert_eq!(param["name"], name(params), "{name_}");
        assert_eq!(param["namespace"], "modelgate-system", "{name_}");
        assert_eq!(param["parameterNotFoundAction"], "Deny", "{name_}");
        assert_eq!(
            selector(binding, "matchResources"),
            [opted_in(value), system.clone()],
            "{name_}"
        );
    }
    let actions = |n: &str| {
        one(&docs, "ValidatingAdmissionPolicyBinding", n)["spec"]["validationActions"].clone()
    };
    assert_eq!(
        actions("modelgate-gate-enforce"),
        serde_json::json!(["Deny"])
    );
    assert_eq!(
        actions("modelgate-gate-warn"),
        serde_json::json!(["Warn", "Audit"])
    );
}

/// The webhook's part of deploy/admission: two replicas spread over nodes
/// behind a PodDisruptionBudget, hardened, pinned, no API token; webhook
/// configurations that fail closed, have no side effects, time out well
/// under the API server's 10 s, and never select kube-system or the
/// webhook's own namespace; a certificate whose CA cert-manager injects.
#[test]
fn the_webhook_is_deployed_fail_closed_and_never_gates_itself() {
    let docs = build(ADMISSION);
    let deployment = one(&docs, "Deployment", "modelgate-webhook");
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        spec["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(spec["automountServiceAccountToken"], false);
    let container = &spec["containers"][0];
    let image = container["image"].as_str().unwrap();
    assert!(
        image.starts_with(MODELGATE_IMAGE) && pinned(image),
        "{image}"
    );
    assert_eq!(container["args"], serde_json::json!(["webhook"]));
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        one(&docs, "PodDisruptionBudget", "modelgate-webhook")["spec"]["minAvailable"],
        1
    );
    assert_eq!(
        one(&docs, "ServiceAccount", "modelgate-webhook")["automountServiceAccountToken"],
        false
    );
    // No RBAC at all: the webhook calls no API.
    assert!(
        !docs.iter().any(
            |d| ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"].contains(&kind(d))
        ),
        "the webhook needs no RBAC"
    );
    for (kind_, path) in [
        ("MutatingWebhookConfiguration", "/mutate"),
        ("ValidatingWebhookConfiguration", "/validate"),
    ] {
        let config = one(&docs, kind_, "modelgate");
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "modelgate-system/modelgate-webhook"
        );
        for hook in list(&config["webhooks"]) {
            assert_eq!(hook["failurePolicy"], "Fail", "{kind_}");
            assert_eq!(hook["sideEffects"], "None", "{kind_}");
            assert!(hook["timeoutSeconds"].as_u64().unwrap() <= 10, "{kind_}");
            assert_eq!(hook["clientConfig"]["service"]["path"], path);
            let expressions = list(&hook["namespaceSelector"]["matchExpressions"]);
            assert!(
                expressions
                    .iter()
                    .any(|e| e["key"] == "kubernetes.io/metadata.name"
                        && e["operator"] == "NotIn"
                        && list(&e["values"]).iter().any(|v| v == "kube-system")
                        && list(&e["values"]).iter().any(|v| v == "modelgate-system")),
                "{kind_}: {expressions:?}"
            );
            assert!(
                expressions
                    .iter()
                    .any(|e| e["key"] == "modelgate.dev/enforce" && e["operator"] == "In"),
                "{kind_}"
            );
        }
    }
    let certificate = one(&docs, "Certificate", "modelgate-webhook");
    assert_eq!(certificate["spec"]["secretName"], "modelgate-webhook-tls");
    assert!(
        list(&certificate["spec"]["dnsNames"])
            .iter()
            .any(|n| n == "modelgate-webhook.modelgate-system.svc")
    );
}
