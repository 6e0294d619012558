//! `modelgate webhook`: a real HTTPS server, started as a child process with
//! a certificate made here, sent AdmissionReview v1 requests as the API
//! server sends them (uid, kind, resource, CREATE with `object`, UPDATE with
//! `oldObject`, `userInfo`, `dryRun`). A pod with the annotation is mutated,
//! the patch applied and the result admitted; a second pass changes
//! nothing; each structural denial says what to change; a model in a real
//! registry is admitted or denied by its signatures without a blob of it
//! fetched, and a second review is a cache hit; bad input is an error and
//! the server keeps answering.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::registry::*;
use crate::common::*;

const GATE_IMAGE: &str = "registry.example/modelgate@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NO_GATE: &str = "the pod carries a model but has no modelgate init container; add it first in spec.initContainers (the mutating webhook does when the pod has the modelgate.dev/source annotation)";

/// A running webhook, stopped when dropped.
struct Webhook {
    process: Process,
    dir: TempDir,
    url: String,
}

impl Webhook {
    /// Starts `modelgate webhook` with `policy` and `extra` flags, and waits
    /// for /readyz.
    fn start(policy: &str, extra: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, policy).unwrap();
        Self::start_in(dir, &file, extra)
    }

    /// Starts it in `dir` with `--policy POLICY` (a file or a folder).
    fn start_in(dir: TempDir, policy: &Path, extra: &[String]) -> Self {
        make_tls(dir.path());
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("webhook.log")).unwrap();
        let process = Process::spawn(
            Command::new(env!("CARGO_BIN_EXE_modelgate"))
                .arg("webhook")
                .arg("--policy")
                .arg(policy)
                .args(extra)
                .env("MODELGATE_LISTEN", format!("127.0.0.1:{port}"))
                .env("MODELGATE_TLS_CERT_FILE", dir.path().join("server.pem"))
                .env(
                    "MODELGATE_TLS_PRIVATE_KEY_FILE",
                    dir.path().join("server.key"),
                )
                .env("MODELGATE_GATE_IMAGE", GATE_IMAGE)
                .env("MODELGATE_LOG_FORMAT", "json")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log)),
        );
        let mut hook = Self {
            process,
            dir,
            url: format!("https://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = hook.process.try_wait() {
                panic!("the webhook ended ({status}): {}", hook.log());
            }
            if hook.get("/readyz").0 == 200 {
                return hook;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "not ready: {}",
                hook.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("webhook.log")).unwrap_or_default()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// curl: (HTTP status, body); status 0 when no answer came.
    fn curl(&self, args: &[OsString]) -> (u16, String) {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(self.ca())
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.curl(&[format!("{}{path}", self.url).into()])
    }

    fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let file = self.dir.path().join("body.json");
        std::fs::write(&file, body).unwrap();
        self.curl(&[
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            format!("@{}", file.display()).into(),
            format!("{}{path}", self.url).into(),
        ])
    }

    /// Sends `review` to `endpoint` and returns its `response`, checking
    /// the envelope and that the uid is echoed.
    fn review(&self, endpoint: &str, review: &Value) -> Value {
        let (code, body) = self.post(endpoint, &serde_json::to_vec(review).unwrap());
        assert_eq!(code, 200, "{body}\n{}", self.log());
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
        answer["response"].clone()
    }

    /// The value of a metric line (`name{labels}`), 0 when absent.
    fn metric(&self, line: &str) -> u64 {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// An AdmissionReview as the API server sends it for `object` of `kind`.
fn review(kind: &str, operation: &str, object: &Value) -> Value {
    let (group, resource) = match kind {
        "Pod" => ("", "pods".to_string()),
        "ConfigMap" => ("", "configmaps".to_string()),
        "CronJob" | "Job" => ("batch", format!("{}s", kind.to_lowercase())),
        other => ("apps", format!("{}s", other.to_lowercase())),
    };
    let version = "v1";
    let uid = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        std::process::id(),
        serial()
    );
    let mut request = json!({
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": object["metadata"]["name"],
        "namespace": "models",
        "operation": operation,
        "userInfo": {"username": "alice", "uid": "1c4f", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": null,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": format!("{}Options", operation[..1].to_string() + &operation[1..].to_lowercase())},
    });
    if operation == "UPDATE" {
        request["oldObject"] = object.clone();
        request["dryRun"] = json!(true);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A pod whose annotation names `source`, with a server mounting nothing.
fn annotated_pod(source: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llm", "namespace": "models", "annotations": {"modelgate.dev/source": source}},
        "spec": {
            "initContainers": [{"name": "setup", "image": "busybox@sha256:2222222222222222222222222222222222222222222222222222222222222222"}],
            "containers": [{"name": "server", "image": "vllm@sha256:3333333333333333333333333333333333333333333333333333333333333333"}]
        }
    })
}

/// Applies a JSON Patch of `add` operations (all the webhook emits).
fn apply(doc: &mut Value, patch: &[Value]) {
    for op in patch {
        assert_eq!(op["op"], "add", "{op}");
        let path = op["path"].as_str().unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let target = doc.pointer_mut(parent).unwrap_or_else(|| panic!("{path}"));
        let value = op["value"].clone();
        match target {
            Value::Array(items) if last == "-" => items.push(value),
            Value::Array(items) => items.insert(last.parse().unwrap(), value),
            Value::Object(map) => {
                map.insert(last.to_string(), value);
            }
            other => panic!("{path}: cannot add into {other}"),
        }
    }
}

/// `pod` with the patch `/mutate` answers applied.
fn mutated(hook: &Webhook, mut pod: Value) -> Value {
    let patch = patch_of(&hook.review("/mutate", &review("Pod", "CREATE", &pod)));
    apply(&mut pod, &patch);
    pod
}

fn patch_of(response: &Value) -> Vec<Value> {
    let Some(patch) = response["patch"].as_str() else {
        return Vec::new();
    };
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A policy: `warned/*` in warn mode, everything else under `HOST/models/*`
/// enforced; both trusting `key`.
fn policy(host: &str, key: &Path) -> String {
    policy_for(&[host], key)
}

/// [`policy`] with `HOST/models/*` of every host enforced.
fn policy_for(hosts: &[&str], key: &Path) -> String {
    let host = hosts[0];
    let models: Vec<String> = hosts.iter().map(|h| format!("\"{h}/models/*\"")).collect();
    format!(
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata:\n  name: admission\nspec:\n  models:\n    - name: warned\n      match:\n        repositories: [\"{host}/warned/*\"]\n      authorities:\n        - name: release\n          key:\n            path: {key}\n      mode: warn\n    - name: models\n      match:\n        repositories: [{models}]\n      authorities:\n        - name: release\n          key:\n            path: {key}\n",
        key = key.display(),
        models = models.join(", ")
    )
}

/// `modelgate push MODEL REF --key KEY`: the pushed digest.
fn push(reg: &Registry, reference: &str, key: &Path) -> String {
    let mut args: Vec<OsString> = vec![
        "push".into(),
        repo(TINY).into(),
        reference.into(),
        "--key".into(),
        key.into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    let run = modelgate(args);
    run.expect_code(0);
    run.stdout.trim().to_string()
}

/// The webhook denies with exactly `message`.
fn denied_with(response: &Value, message: &str) {
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 403, "{response}");
    assert_eq!(
        response["status"]["message"],
        format!("modelgate: {message}"),
        "{response}"
    );
}

/// The tiny model pushed unsigned (by oras) as `models/unsigned:v1`: its
/// manifest digest.
fn push_unsigned(reg: &Registry) -> String {
    oras_push(reg, &repo(TINY), "models/unsigned:v1");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%header{docker-content-digest}",
            "-I",
        ])
        .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"])
        .arg(format!(
            "http://{}/v2/models/unsigned/manifests/v1",
            reg.host
        ))
        .output()
        .unwrap();
    let digest = String::from_utf8(out.stdout).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    digest
}

fn pinned_model(host: &str, repo: &str) -> String {
    format!("oci://{host}/{repo}@sha256:{}", "4".repeat(64))
}

#[test]
fn a_refused_gate_image_or_certificate_stops_it_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    make_tls(dir.path());
    std::fs::write(
        dir.path().join("p.yaml"),
        policy("r.example", Path::new("k.pub")),
    )
    .unwrap();
    let run = |image: &str, key: &str| {
        modelgate([
            OsString::from("webhook"),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()).into(),
            "--policy".into(),
            dir.path().join("p.yaml").into(),
            "--gate-image".into(),
            image.into(),
            "--tls-cert-file".into(),
            dir.path().join("server.pem").into(),
            "--tls-private-key-file".into(),
            dir.path().join(key).into(),
        ])
    };
    run("registry.example/modelgate:v1", "server.key")
        .expect_code(2)
        .expect_stderr("--gate-image registry.example/modelgate:v1: not pinned; name the modelgate image by digest (REPOSITORY@sha256:<64 hex>)");
    // The policy's key does not exist: the policy is refused first.
    run(GATE_IMAGE, "server.key")
        .expect_code(2)
        .expect_stderr("k.pub");
    std::fs::copy(keypair("P-256").public, dir.path().join("k.pub")).unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        policy("r.example", &dir.path().join("k.pub")),
    )
    .unwrap();
    run(GATE_IMAGE, "ca.pem")
        .expect_code(2)
        .expect_stderr("--tls-private-key-file");
}

#[test]
fn a_pod_with_a_signed_model_is_mutated_admitted_and_cached_without_a_blob_fetched() {
    let reg = Registry::start(Mode::Plain);
    let keys = keypair("P-256");
    let digest = push(&reg, &reg.reference("models/good:v1"), &keys.private);
    let source = format!("oci://{}/models/good@{digest}", reg.host);
    let hook = Webhook::start(&policy(&reg.host, &keys.public), &reg.flags());
    let mut pod = annotated_pod(&source);

    let response = hook.review("/mutate", &review("Pod", "CREATE", &pod));
    assert_eq!(response["allowed"], true);
    let patch = patch_of(&response);
    assert!(!patch.is_empty(), "{response}");
    apply(&mut pod, &patch);
    let spec = &pod["spec"];
    let gate = &spec["initContainers"][0];
    assert_eq!(gate["name"], "modelgate");
    assert_eq!(gate["image"], GATE_IMAGE);
    assert_eq!(spec["initContainers"][1]["name"], "setup");
    assert_eq!(gate["securityContext"]["runAsNonRoot"], true);
    assert_eq!(gate["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(gate["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        gate["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    let env: Vec<(String, Value)> = gate["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    let var = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, e)| e.clone());
    assert_eq!(var("MODELGATE_SOURCE").unwrap()["value"], source.as_str());
    assert_eq!(var("MODELGATE_TARGET").unwrap()["value"], "/mnt/models");
    assert_eq!(
        var("MODELGATE_POLICY").unwrap()["value"],
        "/etc/modelgate/policy.yaml"
    );
    assert_eq!(
        var("MODELGATE_MEASUREMENT").unwrap()["value"],
        "/run/modelgate/measurement.json"
    );
    assert_eq!(
        var("NODE_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    for name in ["POD_NAME", "POD_NAMESPACE", "POD_UID"] {
        assert!(var(name).is_some(), "{name}");
    }
    let volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        volumes,
        ["modelgate-model", "modelgate-trust", "modelgate-run"]
    );
    for container in [&spec["containers"][0], &spec["initContainers"][1]] {
        assert_eq!(
            container["volumeMounts"],
            json!([{"name": "modelgate-model", "mountPath": "/mnt/models", "readOnly": true}]),
            "{container}"
        );
    }

    // What the API server stores is a valid Pod, strictly.
    valid_pod(&pod, "1.36.0");

    // A second pass (reinvocationPolicy: IfNeeded) changes nothing.
    let again = hook.review("/mutate", &review("Pod", "CREATE", &pod));
    assert_eq!(again["allowed"], true);
    assert!(again.get("patch").is_none(), "{again}");

    // The patched pod is admitted, from the manifest and signatures only.
    let admitted = hook.review("/validate", &review("Pod", "CREATE", &pod));
    assert_eq!(admitted["allowed"], true, "{admitted}\n{}", hook.log());
    assert!(admitted.get("warnings").is_none(), "{admitted}");
    assert_eq!(hook.metric("modelgate_admission_registry_lookups_total"), 1);
    assert_eq!(hook.metric("modelgate_admission_cache_hits_total"), 0);
    // The same digest again (a dry run): from the cache.
    let mut dry_run = review("Pod", "CREATE", &pod);
    dry_run["request"]["dryRun"] = json!(true);
    let cached = hook.review("/validate", &dry_run);
    assert_eq!(cached["allowed"], true, "{cached}");
    assert_eq!(hook.metric("modelgate_admission_cache_hits_total"), 1);
    assert_eq!(hook.metric("modelgate_admission_registry_lookups_total"), 1);
    assert_eq!(
        hook.metric("modelgate_admission_reviews_total{endpoint=\"validate\",verdict=\"allowed\"}"),
        2
    );
    assert_eq!(
        hook.metric("modelgate_admission_reviews_total{endpoint=\"mutate\",verdict=\"allowed\"}"),
        2
    );
    assert!(hook.metric("modelgate_admission_review_seconds_count") >= 4);

    // No layer of the model was fetched.
    let manifest = Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!(
            "http://{}/v2/models/good/manifests/{digest}",
            reg.host
        ))
        .output()
        .unwrap();
    let manifest: Value = serde_json::from_slice(&manifest.stdout).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    let log = reg.log();
    for layer in layers {
        let blob = format!("/blobs/{}", layer["digest"].as_str().unwrap());
        assert!(
            !log.lines().any(|l| l.contains("GET") && l.contains(&blob)),
            "{blob} fetched:\n{log}"
        );
    }

    // One JSON line per decision, with the digest.
    let decisions: Vec<Value> = hook
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "admission decision")
        .collect();
    assert_eq!(decisions.len(), 4, "{}", hook.log());
    let validated = &decisions[2];
    assert_eq!(validated["endpoint"], "validate");
    assert_eq!(validated["verdict"], "allowed");
    assert_eq!(validated["namespace"], "models");
    assert_eq!(validated["object"], "Pod/llm");
    assert_eq!(validated["model_digest"], digest.as_str());
    assert!(validated["uid"].as_str().is_some_and(|u| !u.is_empty()));
}

#[test]
fn an_untrusted_an_unsigned_and_an_unreachable_model_are_denied_and_warn_mode_allows() {
    let reg = Registry::start(Mode::Plain);
    let (good, evil) = (keypair("P-256"), keypair("P-256"));
    let untrusted = push(&reg, &reg.reference("models/evil:v1"), &evil.private);
    let unsigned = push_unsigned(&reg);
    let warned = push(&reg, &reg.reference("warned/evil:v1"), &evil.private);
    let mut gone = Registry::start(Mode::Plain);
    let mut flags = reg.flags();
    flags.extend(gone.flags());
    let hook = Webhook::start(&policy_for(&[&reg.host, &gone.host], &good.public), &flags);

    let gated = |source: &str| mutated(&hook, annotated_pod(source));
    let host = &reg.host;
    let response = hook.review(
        "/validate",
        &review(
            "Pod",
            "CREATE",
            &gated(&format!("oci://{host}/models/evil@{untrusted}")),
        ),
    );
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "modelgate: model oci://{host}/models/evil@{untrusted}: "
        )),
        "{message}"
    );
    assert!(message.contains("fingerprint"), "{message}");

    let response = hook.review(
        "/validate",
        &review(
            "Pod",
            "CREATE",
            &gated(&format!("oci://{host}/models/unsigned@{unsigned}")),
        ),
    );
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no signature in the registry"),
        "{response}"
    );

    // warn mode: allowed, the reasons as warnings.
    let response = hook.review(
        "/validate",
        &review(
            "Pod",
            "CREATE",
            &gated(&format!("oci://{host}/warned/evil@{warned}")),
        ),
    );
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = response["warnings"].as_array().unwrap();
    assert!(!warnings.is_empty());
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("model oci://{host}/warned/evil@{warned}: ")),
        "{response}"
    );
    assert!(response.get("status").is_none(), "{response}");

    // A registry that cannot be reached: denied in enforce.
    gone.stop();
    let source = pinned_model(&gone.host, "models/x");
    let response = hook.review("/validate", &review("Pod", "CREATE", &gated(&source)));
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("modelgate: model {source}: ")),
        "{response}"
    );
    assert_eq!(
        hook.metric("modelgate_admission_reviews_total{endpoint=\"validate\",verdict=\"denied\"}"),
        3
    );
    assert_eq!(
        hook.metric("modelgate_admission_reviews_total{endpoint=\"validate\",verdict=\"warned\"}"),
        1
    );
}

#[test]
fn each_structural_denial_says_what_to_change() {
    let hook = Webhook::start(
        &policy("r.example", &repo("fixtures/keys/test-signer.pub.pem")),
        &[],
    );
    let source = pinned_model("r.example", "models/llama");
    let validate = |object: &Value| hook.review("/validate", &review("Pod", "CREATE", object));

    // No gate.
    denied_with(&validate(&annotated_pod(&source)), NO_GATE);

    // The mutated pod, then broken one way at a time.
    let gated = mutated(&hook, annotated_pod(&source));
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut pod = gated.clone();
        change(&mut pod);
        validate(&pod)
    };
    denied_with(
        &broken(&|p| {
            let gate = p["spec"]["initContainers"]
                .as_array_mut()
                .unwrap()
                .remove(0);
            p["spec"]["initContainers"]
                .as_array_mut()
                .unwrap()
                .push(gate);
        }),
        "init container modelgate is at position 1 of spec.initContainers; move it first, so that nothing runs before the model is verified",
    );
    let other = "registry.example/modelgate@sha256:5555555555555555555555555555555555555555555555555555555555555555";
    denied_with(
        &broken(&|p| p["spec"]["initContainers"][0]["image"] = json!(other)),
        &format!(
            "init container modelgate runs image \"{other}\"; use the gate image {GATE_IMAGE}"
        ),
    );
    denied_with(
        &broken(&|p| {
            p["spec"]["initContainers"][0]["image"] = json!("registry.example/modelgate:v1")
        }),
        &format!(
            "init container modelgate runs image \"registry.example/modelgate:v1\"; use the gate image {GATE_IMAGE}; init container modelgate's image \"registry.example/modelgate:v1\" is not pinned; name it by digest (REPOSITORY@sha256:<64 hex>)"
        ),
    );
    denied_with(
        &broken(&|p| {
            p["spec"]["containers"][0]["volumeMounts"][0]
                .as_object_mut()
                .unwrap()
                .remove("readOnly");
        }),
        "container server mounts the model volume modelgate-model writable; set readOnly: true on its volumeMount",
    );
    denied_with(
        &broken(&|p| p["spec"]["initContainers"][1]["volumeMounts"][0]["readOnly"] = json!(false)),
        "container setup mounts the model volume modelgate-model writable; set readOnly: true on its volumeMount",
    );

    // A gate that verifies another model than the annotation names.
    let elsewhere = pinned_model("r.example", "models/other");
    denied_with(
        &broken(&|p| p["spec"]["initContainers"][0]["env"][0]["value"] = json!(elsewhere)),
        &format!(
            "init container modelgate's MODELGATE_SOURCE is \"{elsewhere}\"; set it to {source} (the annotation modelgate.dev/source), as its only value"
        ),
    );
    denied_with(
        &broken(&|p| {
            let env = p["spec"]["initContainers"][0]["env"]
                .as_array_mut()
                .unwrap();
            env.push(json!({"name": "MODELGATE_SOURCE", "value": elsewhere}));
        }),
        &format!(
            "init container modelgate's MODELGATE_SOURCE is \"{source}\", \"{elsewhere}\"; set it to {source} (the annotation modelgate.dev/source), as its only value"
        ),
    );
    // A gate that is not hardened.
    denied_with(
        &broken(&|p| {
            p["spec"]["initContainers"][0]
                .as_object_mut()
                .unwrap()
                .remove("securityContext");
        }),
        "init container modelgate must run hardened, as the mutating webhook adds it: set runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities.drop: [ALL] in its securityContext",
    );
    denied_with(
        &broken(&|p| {
            p["spec"]["initContainers"][0]["securityContext"]["capabilities"]["add"] =
                json!(["SYS_ADMIN"]);
            p["spec"]["initContainers"][0]["securityContext"]["privileged"] = json!(true);
        }),
        "init container modelgate must run hardened, as the mutating webhook adds it: set no capabilities.add, privileged: false in its securityContext",
    );
    // The model volume not laid out as the gate expects.
    denied_with(
        &broken(&|p| {
            p["spec"]["volumes"][0] =
                json!({"name": "modelgate-model", "hostPath": {"path": "/models"}})
        }),
        "make the volume modelgate-model an emptyDir: the modelgate init container pulls the model into it, nothing else may fill it",
    );
    denied_with(
        &broken(&|p| {
            p["spec"]["initContainers"][0]["volumeMounts"][0]["mountPath"] = json!("/tmp/m")
        }),
        "mount the volume modelgate-model in the modelgate init container at /mnt/models, writable: it is where the model is pulled to (modelgate.dev/target, default /mnt/models)",
    );
    // A debug container added to the running pod (the ephemeralcontainers
    // subresource, an UPDATE) may not write the model either.
    let mut debug = gated.clone();
    debug["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox",
        "volumeMounts": [{"name": "modelgate-model", "mountPath": "/m"}]}]);
    let mut update = review("Pod", "UPDATE", &debug);
    update["request"]["oldObject"] = gated.clone();
    update["request"]["subResource"] = json!("ephemeralcontainers");
    denied_with(
        &hook.review("/validate", &update),
        "ephemeral container debug mounts the model volume modelgate-model writable; set readOnly: true on its volumeMount",
    );

    // A folder on a PVC, verified in place: admitted as mutated (no
    // registry), and denied when its volume is not one the gate can verify.
    let mut folder = annotated_pod("/mnt/models/llama");
    folder["metadata"]["annotations"]["modelgate.dev/volume"] = json!("weights");
    folder["spec"]["volumes"] = json!([{"name": "weights", "persistentVolumeClaim": {"claimName": "llama", "readOnly": true}}]);
    let folder = mutated(&hook, folder);
    assert_eq!(validate(&folder)["allowed"], true, "{folder}");
    let mut scratch = folder.clone();
    scratch["spec"]["volumes"][0] = json!({"name": "weights", "emptyDir": {}});
    denied_with(
        &validate(&scratch),
        "the volume weights must be a persistentVolumeClaim or an image volume: the model is verified where it lies",
    );
    let mut unmounted = folder.clone();
    unmounted["spec"]["initContainers"][0]["volumeMounts"][0]["mountPath"] = json!("/data");
    denied_with(
        &validate(&unmounted),
        "mount the volume weights in the modelgate init container at /mnt/models/llama (or a folder above it): it verifies the model there",
    );

    // A model by tag: mutated all the same, then denied.
    let by_tag = mutated(&hook, annotated_pod("oci://r.example/models/llama:v3"));
    denied_with(
        &validate(&by_tag),
        "model oci://r.example/models/llama:v3 is named by tag; name it by digest (oci://REGISTRY/REPOSITORY@sha256:<64 hex>)",
    );

    // An image volume by tag, in a pod with no annotation: the mutation
    // gives it a gate (a rule names its repository), but as sent, without
    // it: no gate, and the tag.
    let image_volume = json!({
        "metadata": {"name": "iv"},
        "spec": {
            "volumes": [{"name": "weights", "image": {"reference": "r.example/models/llama:v3"}}],
            "containers": [{"name": "server", "image": "s", "volumeMounts": [{"name": "weights", "mountPath": "/mnt/models"}]}]
        }
    });
    assert!(
        hook.review("/mutate", &review("Pod", "CREATE", &image_volume))
            .get("patch")
            .is_some()
    );
    denied_with(
        &validate(&image_volume),
        &format!(
            "{NO_GATE}; image volume weights names r.example/models/llama:v3 by tag, which the kubelet would resolve again; name it by digest (REPOSITORY@sha256:<64 hex>); container server mounts the model volume weights writable; set readOnly: true on its volumeMount"
        ),
    );

    // A pod without a model is left alone by both.
    let plain = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
    assert!(
        hook.review("/mutate", &review("Pod", "CREATE", &plain))
            .get("patch")
            .is_none()
    );
    assert_eq!(validate(&plain)["allowed"], true);
    // No registry was asked: every denial here is structural.
    assert_eq!(hook.metric("modelgate_admission_registry_lookups_total"), 0);
}

#[test]
fn workloads_are_mutated_and_denied_through_their_pod_templates() {
    let hook = Webhook::start(
        &policy("r.example", &repo("fixtures/keys/test-signer.pub.pem")),
        &[],
    );
    let template = annotated_pod(&pinned_model("r.example", "models/llama"));
    let template = json!({"metadata": template["metadata"], "spec": template["spec"]});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "models"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "llm"}}, "template": template}
    });
    denied_with(
        &hook.review("/validate", &review("Deployment", "CREATE", &deployment)),
        NO_GATE,
    );
    denied_with(
        &hook.review("/validate", &review("Deployment", "UPDATE", &deployment)),
        NO_GATE,
    );
    let mut mutated = deployment.clone();
    let patch = patch_of(&hook.review("/mutate", &review("Deployment", "CREATE", &deployment)));
    assert!(
        patch[0]["path"]
            .as_str()
            .unwrap()
            .starts_with("/spec/template/spec/"),
        "{patch:?}"
    );
    apply(&mut mutated, &patch);
    assert_eq!(
        mutated["spec"]["template"]["spec"]["initContainers"][0]["name"],
        "modelgate"
    );

    for kind in ["StatefulSet", "DaemonSet", "ReplicaSet", "Job"] {
        let mut object = deployment.clone();
        object["kind"] = json!(kind);
        denied_with(
            &hook.review("/validate", &review(kind, "CREATE", &object)),
            NO_GATE,
        );
    }
    let cronjob = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "models"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}
    });
    denied_with(
        &hook.review("/validate", &review("CronJob", "CREATE", &cronjob)),
        NO_GATE,
    );
    let patch = patch_of(&hook.review("/mutate", &review("CronJob", "CREATE", &cronjob)));
    assert!(
        patch.iter().all(|op| op["path"]
            .as_str()
            .unwrap()
            .starts_with("/spec/jobTemplate/spec/template/spec/")),
        "{patch:?}"
    );
    // A pod UPDATE that leaves the spec as it was (a finalizer removed from
    // a pod made before the webhook): allowed, not patched.
    let mut old_pod = annotated_pod(&pinned_model("r.example", "models/llama"));
    old_pod["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    let mut update = review("Pod", "UPDATE", &old_pod);
    update["request"]["object"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    assert_eq!(hook.review("/validate", &update)["allowed"], true);
    assert!(hook.review("/mutate", &update).get("patch").is_none());
    // One that changes it is checked.
    update["request"]["object"]["spec"]["containers"][0]["image"] = json!("vllm:latest");
    denied_with(&hook.review("/validate", &update), NO_GATE);
    // A kind without a pod template, and a DELETE (no object): allowed.
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(
        hook.review("/validate", &review("ConfigMap", "CREATE", &config_map))["allowed"],
        true
    );
    let mut delete = review("Pod", "DELETE", &deployment);
    delete["request"]["object"] = Value::Null;
    assert_eq!(hook.review("/validate", &delete)["allowed"], true);
}

#[test]
fn bad_input_is_an_error_and_the_server_keeps_answering() {
    let hook = Webhook::start(
        &policy("r.example", &repo("fixtures/keys/test-signer.pub.pem")),
        &[],
    );
    let (code, body) = hook.post("/validate", b"{\"apiVersion\": ");
    assert_eq!(code, 400, "{body}");
    assert!(body.starts_with("the body is not JSON: "), "{body}");
    let (code, body) = hook.post(
        "/mutate",
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1"}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body.trim(),
        "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, found apiVersion \"admission.k8s.io/v1beta1\" and kind \"AdmissionReview\""
    );
    let (code, body) = hook.post(
        "/validate",
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#,
    );
    assert_eq!(
        (code, body.trim()),
        (400, "the AdmissionReview has no request.uid")
    );
    // 10 MiB: refused before it is read.
    let (code, body) = hook.post("/validate", &vec![b' '; 10 << 20]);
    assert_eq!(code, 413, "{body}");
    assert_eq!(body.trim(), "the body is over 3145728 bytes");
    // The same, chunked (no length announced): cut at the limit. The
    // server answers 413 and closes the connection without reading the
    // rest, so curl, still sending, sees the 413 or a reset (0). No
    // `Expect: 100-continue`: after a `100 Continue` curl would report 100
    // when the reset comes first.
    let big = hook.dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 10 << 20]).unwrap();
    let (code, _body) = hook.curl(&[
        "-H".into(),
        "Transfer-Encoding: chunked".into(),
        "-H".into(),
        "Expect:".into(),
        "--data-binary".into(),
        format!("@{}", big.display()).into(),
        format!("{}/validate", hook.url).into(),
    ]);
    assert!(
        code == 413 || code == 0,
        "chunked 10 MiB: HTTP {code}: {_body}"
    );
    // Plain HTTP to the TLS port: no answer, no crash.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(hook.url.replace("https://", "http://") + "/healthz")
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    assert_eq!(hook.get("/nowhere").0, 404);
    assert_eq!(hook.get("/mutate").0, 405);
    assert_eq!(hook.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(
        hook.metric("modelgate_admission_reviews_total{endpoint=\"validate\",verdict=\"error\"}"),
        4
    );
    // Still answering a real review.
    let response = hook.review(
        "/validate",
        &review(
            "Pod",
            "CREATE",
            &annotated_pod(&pinned_model("r.example", "m/x")),
        ),
    );
    denied_with(&response, NO_GATE);
}

/// Two clients sending a byte a second over TLS, one in its headers, one in
/// its body: each is cut near the read deadline (10 s), and the server
/// answers others meanwhile.
#[test]
fn a_client_sending_a_byte_a_second_is_cut_and_others_are_served() {
    let hook = Webhook::start(
        &policy("r.example", &repo("fixtures/keys/test-signer.pub.pem")),
        &[],
    );
    let script = r#"
import socket, ssl, sys, threading, time
host, port = sys.argv[1].removeprefix("https://").split(":")
ctx = ssl.create_default_context(cafile=sys.argv[2])
def trickle(name, first, rest):
    s = ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname="127.0.0.1")
    start = time.monotonic()
    s.sendall(first)
    answer = b""
    try:
        for b in rest:
            s.sendall(bytes([b]))
            s.settimeout(1)
            try:
                got = s.recv(4096)
                if not got:
                    break
                answer += got
                break
            except socket.timeout:
                pass
            if time.monotonic() - start > 30:
                break
    except OSError:
        pass
    print(name, round(time.monotonic() - start), answer.split(b"\r\n")[0].decode() or "closed", flush=True)
body = b'{"apiVersion":"admission.k8s.io/v1"' + b" " * 100
threads = [
    threading.Thread(target=trickle, args=("headers", b"", b"POST /validate HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100)),
    threading.Thread(target=trickle, args=("body", b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (len(body) + 1000), body)),
]
for t in threads: t.start()
for t in threads: t.join()
"#;
    let child = Process::spawn(
        Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(script)
            .arg(&hook.url)
            .arg(hook.ca())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // Served meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..5 {
        let response = hook.review(
            "/validate",
            &review(
                "Pod",
                "CREATE",
                &annotated_pod(&pinned_model("r.example", "m/x")),
            ),
        );
        denied_with(&response, NO_GATE);
    }
    let out = child.wait_with_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = 0;
    for line in stdout.lines() {
        let mut words = line.splitn(3, ' ');
        let (name, secs, answer) = (
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap(),
        );
        let secs: u64 = secs.parse().unwrap();
        assert!((9..=14).contains(&secs), "{line}");
        if name == "body" {
            assert_eq!(answer, "HTTP/1.1 408 Request Timeout", "{line}");
        }
        seen += 1;
    }
    assert_eq!(seen, 2, "{stdout}");
    assert_eq!(hook.get("/healthz").0, 200);
}

/// The certificate rotated under load (new files renamed over the old, the
/// key SEC1 this time): every review is answered, the new certificate is
/// served within seconds, and a pair that does not match (the chain
/// renamed before the key) keeps the last good one meanwhile.
#[test]
fn a_rotated_certificate_is_served_without_dropping_a_review() {
    let hook = Webhook::start(
        &policy("r.example", &repo("fixtures/keys/test-signer.pub.pem")),
        &[],
    );
    let next = tempfile::tempdir().unwrap();
    make_tls(next.path());
    run_ok(
        Command::new("openssl")
            .args(["ec", "-in"])
            .arg(next.path().join("server.key"))
            .arg("-out")
            .arg(next.path().join("server.sec1.key")),
    );
    assert!(
        std::fs::read_to_string(next.path().join("server.sec1.key"))
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    let both = hook.dir.path().join("both-ca.pem");
    let mut bundle = std::fs::read(hook.ca()).unwrap();
    bundle.extend(std::fs::read(next.path().join("ca.pem")).unwrap());
    std::fs::write(&both, bundle).unwrap();
    let review_with = |ca: &Path| {
        let file = hook.dir.path().join(format!("r-{}.json", serial()));
        let body = review(
            "Pod",
            "CREATE",
            &annotated_pod(&pinned_model("r.example", "m/x")),
        );
        std::fs::write(&file, serde_json::to_vec(&body).unwrap()).unwrap();
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
            ])
            .arg(ca)
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{}/validate", hook.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let old_ca = hook.ca();
    let new_ca = next.path().join("ca.pem");
    assert_eq!(review_with(&new_ca), "000");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let answered = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let mut codes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                codes.push(review_with(&both));
            }
            codes
        });
        std::thread::sleep(Duration::from_millis(500));
        // The chain first: for a moment the pair does not match.
        let tmp = hook.dir.path().join("incoming");
        std::fs::copy(next.path().join("server.pem"), &tmp).unwrap();
        std::fs::rename(&tmp, hook.dir.path().join("server.pem")).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        std::fs::copy(next.path().join("server.sec1.key"), &tmp).unwrap();
        std::fs::rename(&tmp, hook.dir.path().join("server.key")).unwrap();
        let start = Instant::now();
        while review_with(&new_ca) != "200" {
            assert!(
                start.elapsed() < Duration::from_secs(6),
                "not rotated: {}",
                hook.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().unwrap()
    });
    assert!(answered.len() > 3, "{answered:?}");
    assert!(answered.iter().all(|c| c == "200"), "{answered:?}");
    assert_eq!(review_with(&old_ca), "000");
    let log = hook.log();
    assert!(
        log.contains("serving certificate not reloaded, the last good one stays"),
        "{log}"
    );
    assert!(log.contains("serving certificate reloaded"), "{log}");
}

/// A changed policy is re-read within seconds and takes effect at once (a
/// cached decision of the old one is a miss: a revoked key denies); a bad
/// one keeps the last good policy and says so in /readyz.
#[test]
fn a_changed_policy_takes_effect_at_once_and_a_bad_one_keeps_the_last_good() {
    let reg = Registry::start(Mode::Plain);
    let (good, other) = (keypair("P-256"), keypair("P-256"));
    let digest = push(&reg, &reg.reference("models/good:v1"), &good.private);
    let hook = Webhook::start(&policy(&reg.host, &good.public), &reg.flags());
    let pod = mutated(
        &hook,
        annotated_pod(&format!("oci://{}/models/good@{digest}", reg.host)),
    );
    let validate = || hook.review("/validate", &review("Pod", "CREATE", &pod));
    assert_eq!(validate()["allowed"], true);
    assert_eq!(validate()["allowed"], true);
    assert_eq!(hook.metric("modelgate_admission_cache_hits_total"), 1);
    // The good key revoked: only `other` is trusted now.
    let file = hook.dir.path().join("policy.yaml");
    std::fs::write(&file, policy(&reg.host, &other.public)).unwrap();
    let start = Instant::now();
    while validate()["allowed"] == true {
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "not reloaded: {}",
            hook.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(hook.metric("modelgate_admission_registry_lookups_total"), 2);
    assert!(hook.log().contains("policy reloaded"), "{}", hook.log());
    // A bad policy: the last good one stays, and /readyz says why.
    std::fs::write(
        &file,
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nspec: {models: 3}\n",
    )
    .unwrap();
    let start = Instant::now();
    loop {
        let (code, body) = hook.get("/readyz");
        assert_eq!(code, 200);
        if body.starts_with(
            "ready; the policy changed but was not reloaded, the last good one stays: ",
        ) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{body}\n{}",
            hook.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(validate()["allowed"], false);
    assert!(
        hook.log()
            .contains("policy not reloaded, the last good one stays")
    );
}

/// cert-manager's RSA keys are PKCS#1 (`RSA PRIVATE KEY`): a pair rotated
/// to one is served.
#[test]
fn a_pkcs1_rsa_key_is_served() {
    let hook = Webhook::start(
        &policy("r.example", &repo("fixtures/keys/test-signer.pub.pem")),
        &[],
    );
    let dir = hook.dir.path();
    let openssl = |args: &[&str]| {
        run_ok(Command::new("openssl").current_dir(dir).args(args));
    };
    openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    assert!(
        std::fs::read_to_string(dir.join("rsa.key"))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    openssl(&[
        "req",
        "-new",
        "-key",
        "rsa.key",
        "-out",
        "rsa.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "rsa.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "rsa.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    // The key first this time: the old chain and the new key do not match.
    std::fs::rename(dir.join("rsa.key"), dir.join("server.key")).unwrap();
    std::fs::rename(dir.join("rsa.pem"), dir.join("server.pem")).unwrap();
    let port = hook.url.rsplit_once(':').unwrap().1.to_string();
    let start = Instant::now();
    loop {
        let served = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.1:{port} -CAfile ca.pem </dev/null 2>/dev/null | openssl x509 -noout -text"
            ))
            .current_dir(dir)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&served.stdout).contains("rsaEncryption") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "not rotated: {}",
            hook.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(hook.get("/healthz").0, 200);
}

/// On a cluster without cert-manager, `scripts/admission-certs.sh` makes the
/// serving certificate: the webhook starts with it, and a client that
/// trusts only the script's CA reaches it under the Service's DNS name, as
/// the API server does.
#[test]
fn the_certificate_script_makes_what_the_webhook_serves_under_its_service_name() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let made = Command::new(repo("scripts/admission-certs.sh"))
        .arg(&certs)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(certs.join(file).is_file(), "{file}");
    }
    assert!(!certs.join("ca.key").exists(), "the CA key is kept");
    let usage = Command::new(repo("scripts/admission-certs.sh"))
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(
        &policy_file,
        policy(
            "registry.example",
            &repo("fixtures/keys/test-signer.pub.pem"),
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("webhook.log");
    let mut process = Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .arg("webhook")
            .arg("--policy")
            .arg(&policy_file)
            .env("MODELGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("MODELGATE_TLS_CERT_FILE", certs.join("tls.crt"))
            .env("MODELGATE_TLS_PRIVATE_KEY_FILE", certs.join("tls.key"))
            .env("MODELGATE_GATE_IMAGE", GATE_IMAGE)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap())),
    );
    let name = "modelgate-webhook.modelgate-system.svc";
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = process.try_wait() {
            panic!(
                "the webhook ended ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(certs.join("ca.crt"))
            .arg("--resolve")
            .arg(format!("{name}:{port}:127.0.0.1"))
            .arg(format!("https://{name}:{port}/readyz"))
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout) == "200" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not reachable under {name}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The policy file of one team: rule `team` for `HOST/team/*`, trusting
/// `key`.
fn team_policy(host: &str, team: &str, key: &Path) -> String {
    format!(
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata: {{name: {team}}}\nspec:\n  models:\n    - name: {team}\n      match: {{repositories: [\"{host}/{team}/*\"]}}\n      authorities: [{{name: release, key: {{path: \"{}\"}}}}]\n",
        key.display()
    )
}

/// Waits up to 6 s (the policy is looked at every 2) for `done`.
fn within_seconds(hook: &Webhook, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{what}: {}",
            hook.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `--policy FOLDER`: every policy file of it, rules in file-name order; a
/// file added is taken within seconds; a bad one (a rule name another file
/// uses) keeps the last good set and says so, naming both files.
#[test]
fn a_folder_of_policies_is_one_policy_and_a_bad_new_file_keeps_the_last_good_set() {
    let reg = Registry::start(Mode::Plain);
    let keys = [keypair("P-256"), keypair("P-256"), keypair("P-256")];
    let teams = ["team-a", "team-b", "team-c"];
    let digests: Vec<String> = teams
        .iter()
        .zip(&keys)
        .map(|(team, key)| push(&reg, &reg.reference(&format!("{team}/m:v1")), &key.private))
        .collect();
    let late = push(&reg, &reg.reference("team-c/late:v1"), &keys[2].private);
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("policies");
    std::fs::create_dir(&folder).unwrap();
    for i in 0..2 {
        let file = folder.join(format!("{}0-{}.yaml", i + 1, teams[i]));
        std::fs::write(file, team_policy(&reg.host, teams[i], &keys[i].public)).unwrap();
    }
    std::fs::write(folder.join("README.md"), "not a policy").unwrap();
    let hook = Webhook::start_in(dir, &folder, &reg.flags());
    let validate = |repo: &str, digest: &str| {
        let pod = mutated(
            &hook,
            annotated_pod(&format!("oci://{}/{repo}@{digest}", reg.host)),
        );
        hook.review("/validate", &review("Pod", "CREATE", &pod))
    };
    for i in 0..2 {
        let admitted = validate(&format!("{}/m", teams[i]), &digests[i]);
        assert_eq!(admitted["allowed"], true, "{admitted}\n{}", hook.log());
    }
    let denied = validate("team-c/m", &digests[2]);
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(
        denied["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no rule of policy team-a+team-b matches model"),
        "{denied}"
    );
    // A third team's file added.
    let third = folder.join("30-team-c.yaml");
    std::fs::write(&third, team_policy(&reg.host, teams[2], &keys[2].public)).unwrap();
    within_seconds(&hook, "the added file not taken", || {
        validate("team-c/m", &digests[2])["allowed"] == true
    });
    assert!(hook.log().contains("policy reloaded"), "{}", hook.log());
    // A bad file: team-a's rule name again. The three files stay in force.
    let bad = folder.join("40-bad.yaml");
    std::fs::write(&bad, team_policy(&reg.host, teams[0], &keys[1].public)).unwrap();
    let problem = format!(
        "policy {}: rule \"team-a\" is defined in {} too; give each rule of the folder its own name",
        bad.display(),
        folder.join("10-team-a.yaml").display()
    );
    within_seconds(&hook, "the bad file not reported", || {
        let (code, body) = hook.get("/readyz");
        code == 200
            && body
                == format!(
                    "ready; the policy changed but was not reloaded, the last good one stays: {problem}\n"
                )
    });
    // (The log is JSON: its quotes escaped.)
    assert!(
        hook.log().contains(&problem.replace('"', "\\\"")),
        "{}",
        hook.log()
    );
    // A model of the third team not looked up before: decided by the last
    // good set, not from the cache.
    let lookups = hook.metric("modelgate_admission_registry_lookups_total");
    let admitted = validate("team-c/late", &late);
    assert_eq!(admitted["allowed"], true, "{admitted}\n{}", hook.log());
    assert_eq!(
        hook.metric("modelgate_admission_registry_lookups_total"),
        lookups + 1
    );
}

/// A ConfigMap mounted as a folder, as the kubelet lays it out and updates
/// it: each key a link through `..data` to a timestamped folder, and an
/// update a new folder and `..data` swapped to it by a rename. The swap is
/// taken within seconds: a key revoked denies at once.
#[test]
fn a_mounted_configmap_updated_by_a_data_link_swap_is_taken_within_seconds() {
    use std::os::unix::fs::symlink;
    let reg = Registry::start(Mode::Plain);
    let (good, other) = (keypair("P-256"), keypair("P-256"));
    let digest = push(&reg, &reg.reference("models/m:v1"), &good.private);
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("policies");
    let version = |name: &str, key: &Path| {
        let at = mount.join(name);
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(
            at.join("models.yaml"),
            team_policy(&reg.host, "models", key),
        )
        .unwrap();
    };
    version("..2026_12_01_00_00_00.000000001", &good.public);
    symlink("..2026_12_01_00_00_00.000000001", mount.join("..data")).unwrap();
    symlink("..data/models.yaml", mount.join("models.yaml")).unwrap();
    let hook = Webhook::start_in(dir, &mount, &reg.flags());
    let pod = mutated(
        &hook,
        annotated_pod(&format!("oci://{}/models/m@{digest}", reg.host)),
    );
    let validate = || hook.review("/validate", &review("Pod", "CREATE", &pod));
    assert_eq!(validate()["allowed"], true, "{}", hook.log());
    assert_eq!(validate()["allowed"], true);
    assert_eq!(hook.metric("modelgate_admission_cache_hits_total"), 1);
    // The kubelet's update: the new data beside the old, then one rename.
    version("..2026_12_01_00_05_00.000000002", &other.public);
    symlink(
        "..2026_12_01_00_05_00.000000002",
        hook.dir.path().join("policies/..data_tmp"),
    )
    .unwrap();
    std::fs::rename(
        hook.dir.path().join("policies/..data_tmp"),
        hook.dir.path().join("policies/..data"),
    )
    .unwrap();
    std::fs::remove_dir_all(
        hook.dir
            .path()
            .join("policies/..2026_12_01_00_00_00.000000001"),
    )
    .unwrap();
    within_seconds(&hook, "the swapped data not taken", || {
        validate()["allowed"] == false
    });
    assert!(hook.log().contains("policy reloaded"), "{}", hook.log());
    assert_eq!(hook.get("/readyz"), (200, "ready\n".to_string()));
}

/// The pods the CEL ValidatingAdmissionPolicy is tested against
/// (fixtures/admission/, tests/it/admission_policies.rs), sent through
/// `/validate` under the gate image its parameter names: the webhook and
/// the policy allow and deny the same pods. The one deliberate difference
/// is the signature check, which only the webhook makes: with the model's
/// rule in warn mode and no registry at registry.example.com, each pod the
/// policy allows that names an `oci://` model is allowed with a warning
/// (in enforce mode it would be denied, as the gate in the pod would).
#[test]
fn the_webhook_and_the_cel_policy_decide_the_same_fixtures_alike() {
    use crate::admission_policies::{case, fixture, gate_image, validate_all};
    let key = repo("fixtures/keys/test-signer.pub.pem");
    let policy = format!(
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata: {{name: fixtures}}\nspec:\n  models:\n    - name: fixtures\n      match: {{repositories: [\"registry.example.com/*\"]}}\n      authorities: [{{name: release, key: {{path: \"{}\"}}}}]\n      mode: warn\n",
        key.display()
    );
    let hook = Webhook::start(
        &policy,
        &[
            "--gate-image".into(),
            gate_image(),
            "--timeout".into(),
            "2".into(),
        ],
    );
    let mut names: Vec<String> = std::fs::read_dir(repo("fixtures/admission"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name != "params")
        .collect();
    names.sort();
    let cases: Vec<Value> = names.iter().map(|n| case(fixture(n))).collect();
    let cel = validate_all(&cases);
    let mut denied = 0;
    for (name, cel) in names.iter().zip(cel) {
        let pod = fixture(name);
        let cel_allows = cel.as_ref().is_none_or(Vec::is_empty);
        let answer = hook.review("/validate", &review("Pod", "CREATE", &pod));
        assert_eq!(
            answer["allowed"], cel_allows,
            "fixture {name}: the CEL policy says {cel:?}, the webhook {answer}"
        );
        // A model in a registry: an oci:// source, or an image volume from
        // a repository the rule names. Its signatures are looked up (none
        // can be: registry.example.com is not there) and, in warn mode,
        // warned about.
        let oci = pod["metadata"]["annotations"]["modelgate.dev/source"]
            .as_str()
            .is_some_and(|s| s.starts_with("oci://"))
            || pod["spec"]["volumes"].as_array().is_some_and(|vs| {
                vs.iter().any(|v| {
                    v["image"]["reference"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("registry.example.com/"))
                })
            });
        let warnings = answer["warnings"].as_array().map_or(0, Vec::len);
        assert_eq!(
            warnings > 0,
            cel_allows && oci,
            "fixture {name}: only an allowed model from a registry is warned about (its signatures): {answer}"
        );
        denied += usize::from(!cel_allows);
    }
    assert!(
        denied >= 6 && denied < names.len() - 1,
        "{denied} of {names:?}"
    );
}

#[test]
fn an_image_volume_from_a_repository_the_policy_names_has_its_signatures_checked() {
    use crate::admission_policies::{fixture, gate_image};
    let reg = Registry::start(Mode::Plain);
    let good = keypair("P-256");
    let signed = push(&reg, &reg.reference("models/signed:v1"), &good.private);
    let unsigned = push_unsigned(&reg);
    let mut flags = reg.flags();
    flags.extend(["--gate-image".into(), gate_image()]);
    let hook = Webhook::start(&policy(&reg.host, &good.public), &flags);
    let host = &reg.host;
    let with_image = |image: &str| {
        let mut pod = fixture("image-volume-right");
        for v in pod["spec"]["volumes"].as_array_mut().unwrap() {
            if v.get("image").is_some() {
                v["image"]["reference"] = Value::from(image);
            }
        }
        hook.review("/validate", &review("Pod", "CREATE", &pod))
    };
    let volume = fixture("image-volume-right")["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v.get("image").is_some())
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    // Signed as the rule requires: allowed.
    let response = with_image(&format!("{host}/models/signed@{signed}"));
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("warnings").is_none(), "{response}");
    // Unsigned: denied, naming the volume and the image.
    let response = with_image(&format!("{host}/models/unsigned@{unsigned}"));
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "modelgate: image volume {volume} (oci://{host}/models/unsigned@{unsigned}): "
        )) && message.contains("no signature in the registry"),
        "{message}"
    );
    // Without a gate and without an annotation: the mutation adds the gate,
    // verifying the image volume in place where the server mounts it; the
    // result is a valid pod, admitted, and a second pass changes nothing.
    let mut bare = fixture("image-volume-right");
    bare["spec"]["initContainers"] = Value::Array(Vec::new());
    for v in bare["spec"]["volumes"].as_array_mut().unwrap() {
        if v.get("image").is_some() {
            v["image"]["reference"] = Value::from(format!("{host}/models/signed@{signed}"));
        }
    }
    let denied = hook.review("/validate", &review("Pod", "CREATE", &bare));
    assert_eq!(denied["allowed"], false, "{denied}");
    let gated = mutated(&hook, bare);
    let gate = &gated["spec"]["initContainers"][0];
    assert_eq!(gate["name"], "modelgate", "{gated}");
    let source = gate["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "MODELGATE_SOURCE")
        .unwrap();
    assert_eq!(source["value"], "/mnt/models", "{gate}");
    assert!(
        gate["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == volume.as_str()
                && m["mountPath"] == "/mnt/models"
                && m["readOnly"] == true),
        "{gate}"
    );
    valid_pod(&gated, "1.36");
    let response = hook.review("/validate", &review("Pod", "CREATE", &gated));
    assert_eq!(response["allowed"], true, "{response}");
    assert!(
        patch_of(&hook.review("/mutate", &review("Pod", "CREATE", &gated))).is_empty(),
        "a second mutation changed the pod"
    );
    // An image from a repository no rule names is not a model: no lookup.
    let lookups = hook.metric("modelgate_admission_registry_lookups_total");
    let response = with_image(&format!("{host}/tools/other@{unsigned}"));
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        hook.metric("modelgate_admission_registry_lookups_total"),
        lookups
    );
}
