//! The admission policies under deploy/admission/policies/, evaluated as the
//! API server evaluates them, without a cluster: their CEL, read from the
//! YAML (never copied here), runs in cel-python through
//! tests/support/cel_eval.py against the pods of fixtures/admission/. The
//! webhook's tests use the same pods. For each pod the test states which
//! rules fail and with which message, word for word: the message is what a
//! user reads to fix the pod. Those messages, written out in full, are most
//! of this file's length; split it by rule rather than shorten them.
//!
//! Needs cel-python and kubernetes-validate in the test venv
//! (`MODELGATE_TEST_VENV`, default `.venv`; tests/requirements.txt).

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{repo, run, valid_pod, venv};

const VALIDATE: &str = "deploy/admission/policies/validate.yaml";
const INJECT: &str = "deploy/admission/policies/inject.yaml";

// The validations of validate.yaml, by their static `message`, which the
// driver reports as their id.
const GATE_FIRST: &str =
    "the modelgate init container must be the first entry of spec.initContainers";
const GATE_PINNED: &str = "the modelgate init container image must be pinned by digest";
const GATE_TRUSTED: &str = "the modelgate init container image must be the one this cluster trusts (ConfigMap modelgate-system/modelgate-admission, gateImage)";
const GATE_RUNS_INIT: &str = "the modelgate init container must run modelgate init, to completion";
const GATE_HARDENED: &str =
    "the modelgate init container must be hardened as in deploy/base/deployment.yaml";
const GATE_SOURCE: &str = "MODELGATE_SOURCE of the modelgate init container must equal the annotation modelgate.dev/source";
const SOURCE_PINNED: &str = "the annotation modelgate.dev/source must name the model by digest, or a folder with modelgate.dev/volume";
const MODEL_VOLUME: &str = "the model volume must be laid out as modelgate expects";
const IMAGE_VOLUMES_PINNED: &str = "every image volume must be pinned by digest";
const MODEL_READ_ONLY: &str =
    "only the modelgate init container may mount the model volume writable";

/// Every validation, in the policy's order.
const ALL: [&str; 10] = [
    GATE_FIRST,
    GATE_PINNED,
    GATE_TRUSTED,
    GATE_RUNS_INIT,
    GATE_HARDENED,
    GATE_SOURCE,
    SOURCE_PINNED,
    MODEL_VOLUME,
    IMAGE_VOLUMES_PINNED,
    MODEL_READ_ONLY,
];

/// What every standard CEL function and macro the policies may call is
/// called (cel-spec's standard definitions); anything else would be a
/// Kubernetes or cel-go extension.
const STANDARD_CEL: [&str; 12] = [
    "has",
    "all",
    "exists",
    "exists_one",
    "filter",
    "map",
    "size",
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "string",
];

const MISSING: &str = "is missing: install tests/requirements.txt into the venv (scripts/test.sh)";

// ---------------------------------------------------------------- helpers

pub(crate) fn fixture(name: &str) -> Value {
    let path = repo(&format!("fixtures/admission/{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The parameter the bindings name: ConfigMap modelgate-admission.
fn params() -> Value {
    fixture("params")
}

pub(crate) fn gate_image() -> String {
    params()["data"]["gateImage"].as_str().unwrap().to_owned()
}

/// A case for the driver: `object` under the shipped parameter, created.
pub(crate) fn case(object: Value) -> Value {
    json!({"object": object, "params": params()})
}

/// `pod` with `change` made to it.
fn with(mut pod: Value, change: impl FnOnce(&mut Value)) -> Value {
    change(&mut pod);
    pod
}

/// Runs tests/support/cel_eval.py on `policy` with `cases`; its JSON lines.
fn eval(policy: &str, cases: &[Value]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(cases).unwrap()).unwrap();
    let out = run(Command::new(venv().join("bin/python"))
        .arg(repo("tests/support/cel_eval.py"))
        .arg(repo(policy))
        .arg(&file));
    assert_eq!(
        out.code, 0,
        "cel_eval.py {policy} (cel-python {MISSING}):\n{}",
        out.stderr
    );
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What validate.yaml did with one pod: None when its matchConditions left
/// it out, else the (rule, message) of every rule it fails, in order.
pub(crate) type Outcome = Option<Vec<(String, String)>>;

pub(crate) fn validate_all(cases: &[Value]) -> Vec<Outcome> {
    let lines = eval(VALIDATE, cases);
    (0..cases.len())
        .map(|i| {
            let mine: Vec<&Value> = lines.iter().filter(|l| l["case"] == i).collect();
            assert!(!mine.is_empty(), "no result for case {i}");
            if mine[0]["matched"] == false {
                return None;
            }
            let ids: Vec<&str> = mine.iter().map(|l| l["id"].as_str().unwrap()).collect();
            assert_eq!(ids, ALL, "the validations, in order");
            let failures = mine
                .iter()
                .inspect(|l| {
                    assert!(
                        l["matched"] == true && l["error"].is_null(),
                        "case {i}: {l}"
                    )
                })
                .filter(|l| l["passed"] == false)
                .map(|l| {
                    let message = l["message"].as_str().unwrap().to_owned();
                    (l["id"].as_str().unwrap().to_owned(), message)
                })
                .collect();
            Some(failures)
        })
        .collect()
}

fn validate(object: Value) -> Outcome {
    validate_all(&[case(object)]).remove(0)
}

fn fails(rules: &[(&str, &str)]) -> Outcome {
    Some(
        rules
            .iter()
            .map(|(id, m)| ((*id).to_owned(), (*m).to_owned()))
            .collect(),
    )
}

/// The only failure of `pod`, which must fail `rule` alone.
fn only_failure(pod: Value, rule: &str) -> String {
    let failures = validate(pod).expect("the pod is evaluated");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].0, rule, "{failures:?}");
    failures[0].1.clone()
}

/// inject.yaml's result for `object`: the driver's line.
fn inject(object: Value) -> Value {
    let mut lines = eval(INJECT, &[case(object)]);
    assert_eq!(lines.len(), 1);
    let line = lines.remove(0);
    assert!(line["error"].is_null(), "{line}");
    line
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

// ------------------------------------------------------------------ tests

#[test]
fn every_fixture_fails_exactly_the_rules_it_breaks() {
    let gate = gate_image();
    let tagged_gate = "ghcr.io/modelgate/modelgate:v1";
    let other_gate = fixture("gate-not-the-clusters")["spec"]["initContainers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    let source = fixture("annotated")["metadata"]["annotations"]["modelgate.dev/source"]
        .as_str()
        .unwrap()
        .to_owned();
    let add_a_gate = |why: &str| {
        format!(
            "this pod carries a model ({why}) but has no modelgate init container: add one named \
             modelgate as the first entry of spec.initContainers, as in deploy/base/deployment.yaml \
             (with the annotation modelgate.dev/source, in a namespace labelled \
             modelgate.dev/enforce=enforce, it is added for you)"
        )
    };
    let expected: Vec<(&str, Outcome)> = vec![
        ("gate-right", fails(&[])),
        ("image-volume-right", fails(&[])),
        (
            "gate-second",
            fails(&[(
                GATE_FIRST,
                "the modelgate init container must be first in spec.initContainers; move it before warmup",
            )]),
        ),
        (
            "gate-by-tag",
            fails(&[
                (
                    GATE_PINNED,
                    &format!(
                        "the modelgate init container image {tagged_gate} is not pinned by digest: \
                         use IMAGE@sha256:<64 hex digits>; a tag can be moved to another image"
                    ),
                ),
                (
                    GATE_TRUSTED,
                    &format!(
                        "the modelgate init container image is {tagged_gate}; use the image this \
                         cluster trusts: {gate}"
                    ),
                ),
            ]),
        ),
        (
            "gate-not-the-clusters",
            fails(&[(
                GATE_TRUSTED,
                &format!(
                    "the modelgate init container image is {other_gate}; use the image this cluster \
                     trusts: {gate}"
                ),
            )]),
        ),
        (
            "oci-by-tag",
            fails(&[(
                SOURCE_PINNED,
                "the model oci://registry.example.com/models/llama:v1 is not pinned by digest: use \
                 oci://REGISTRY/REPO@sha256:<64 hex digits> (modelgate push prints it); a tag can be \
                 moved after the model was signed",
            )]),
        ),
        (
            "image-volume-by-tag",
            fails(&[(
                IMAGE_VOLUMES_PINNED,
                "the image volume model is not pinned by digest: set image.reference to \
                 REPO@sha256:<64 hex digits>; with a tag the kubelet may mount other bytes than the \
                 ones modelgate verified",
            )]),
        ),
        (
            "server-writes-model",
            fails(&[(
                MODEL_READ_ONLY,
                "container vllm mounts the model volume modelgate-model without readOnly: true; set \
                 readOnly: true on that volumeMount: only the modelgate init container may write the \
                 model",
            )]),
        ),
        ("no-model", None),
        // What a user writes when the cluster adds the gate (inject.yaml):
        // on its own, it is refused, and the message says how to fix it.
        (
            "annotated",
            fails(&[
                (
                    GATE_FIRST,
                    &add_a_gate(&format!("its annotation modelgate.dev/source is {source}")),
                ),
                (
                    MODEL_VOLUME,
                    "add an emptyDir volume named modelgate-model: the modelgate init container \
                     pulls the model into it",
                ),
            ]),
        ),
        (
            "annotated-pvc",
            fails(&[(
                GATE_FIRST,
                &add_a_gate("its annotation modelgate.dev/source is /mnt/models"),
            )]),
        ),
    ];
    let cases: Vec<Value> = expected.iter().map(|(f, _)| case(fixture(f))).collect();
    for ((name, want), got) in expected.iter().zip(validate_all(&cases)) {
        assert_eq!(&got, want, "fixture {name}");
    }
}

#[test]
fn every_fixture_is_a_valid_pod() {
    for entry in std::fs::read_dir(repo("fixtures/admission")).unwrap() {
        let path = entry.unwrap().path();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        valid_pod(&doc, "1.36.0");
    }
}

#[test]
fn each_rule_says_what_to_change() {
    let right = fixture("gate-right");
    let sidecar = with(right.clone(), |p| {
        p["spec"]["initContainers"][0]["restartPolicy"] = "Always".into()
    });
    assert_eq!(
        only_failure(sidecar, GATE_RUNS_INIT),
        "remove restartPolicy: Always from the modelgate init container: as a sidecar it would let \
         the server start before the model is verified"
    );
    for (field, value) in [
        ("args", json!(["version"])),
        ("command", json!(["/bin/sh"])),
    ] {
        let pod = with(right.clone(), |p| {
            p["spec"]["initContainers"][0][field] = value
        });
        assert_eq!(
            only_failure(pod, GATE_RUNS_INIT),
            "remove command and args from the modelgate init container (or set args: [init]): the \
             image runs modelgate init, anything else skips the verification"
        );
    }
    let explicit = with(right.clone(), |p| {
        p["spec"]["initContainers"][0]["args"] = json!(["init"])
    });
    assert_eq!(validate(explicit), fails(&[]));

    let soft = with(right.clone(), |p| {
        let sc = &mut p["spec"]["initContainers"][0]["securityContext"];
        sc.as_object_mut().unwrap().remove("runAsNonRoot");
        sc["allowPrivilegeEscalation"] = true.into();
        sc["capabilities"] = json!({"drop": ["NET_RAW"], "add": ["SYS_ADMIN"]});
    });
    assert_eq!(
        only_failure(soft, GATE_HARDENED),
        "the modelgate init container must run hardened, as in deploy/base/deployment.yaml: set in \
         its securityContext runAsNonRoot: true; allowPrivilegeEscalation: false; capabilities.drop: \
         [ALL]; no capabilities.add;"
    );
    let bare = with(right.clone(), |p| {
        p["spec"]["initContainers"][0]
            .as_object_mut()
            .unwrap()
            .remove("securityContext");
    });
    assert!(only_failure(bare, GATE_HARDENED).ends_with(
        "runAsNonRoot: true; readOnlyRootFilesystem: true; allowPrivilegeEscalation: false; \
         capabilities.drop: [ALL];"
    ));

    // The gate must verify the annotated model, and only that one: a second
    // MODELGATE_SOURCE would win (the last entry of env does).
    let source = right["metadata"]["annotations"]["modelgate.dev/source"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = with(right.clone(), |p| {
        let env = p["spec"]["initContainers"][0]["env"]
            .as_array_mut()
            .unwrap();
        env.push(json!({"name": "MODELGATE_SOURCE", "value": "oci://evil.example/m@sha256:00"}));
    });
    let expected = format!(
        "set MODELGATE_SOURCE of the modelgate init container to {source} (the annotation \
         modelgate.dev/source), as its only value"
    );
    assert_eq!(only_failure(second, GATE_SOURCE), expected);
    let unset = with(right.clone(), |p| {
        p["spec"]["initContainers"][0]["env"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["name"] != "MODELGATE_SOURCE");
    });
    assert_eq!(only_failure(unset, GATE_SOURCE), expected);

    // The model volume of an oci:// source.
    let not_empty_dir = with(right.clone(), |p| {
        p["spec"]["volumes"][0] =
            json!({"name": "modelgate-model", "hostPath": {"path": "/models"}});
    });
    assert_eq!(
        only_failure(not_empty_dir, MODEL_VOLUME),
        "make the volume modelgate-model an emptyDir: the modelgate init container pulls the model \
         into it, nothing else may fill it"
    );
    let elsewhere = with(right.clone(), |p| {
        p["spec"]["initContainers"][0]["volumeMounts"][0]["mountPath"] = "/mnt".into();
    });
    assert_eq!(
        only_failure(elsewhere, MODEL_VOLUME),
        "mount the volume modelgate-model in the modelgate init container at /mnt/models, writable: \
         it is where the model is pulled to (annotation modelgate.dev/target, default /mnt/models)"
    );

    // A folder: verified in place on a PVC or image volume the gate mounts.
    let folder = |volume: Option<&str>, model: Value| {
        with(right.clone(), |p| {
            let a = &mut p["metadata"]["annotations"];
            a["modelgate.dev/source"] = "/mnt/models".into();
            if let Some(v) = volume {
                a["modelgate.dev/volume"] = v.into();
            }
            p["spec"]["volumes"][0] = model;
            let g = &mut p["spec"]["initContainers"][0];
            g["env"][0]["value"] = "/mnt/models".into();
            g["env"].as_array_mut().unwrap().remove(1); // MODELGATE_TARGET
            g["volumeMounts"][0]["readOnly"] = true.into();
        })
    };
    let pvc = json!({"name": "modelgate-model", "persistentVolumeClaim": {"claimName": "llama"}});
    assert_eq!(
        validate(folder(Some("modelgate-model"), pvc.clone())),
        fails(&[])
    );
    assert_eq!(
        only_failure(folder(None, pvc.clone()), SOURCE_PINNED),
        "the model folder /mnt/models needs the annotation modelgate.dev/volume: the name of the PVC \
         or image volume that holds it"
    );
    assert_eq!(
        only_failure(folder(Some("models"), pvc), MODEL_VOLUME),
        "the pod has no volume models, which the annotation modelgate.dev/volume names: add it, or \
         name the volume that holds the model"
    );
    let host = json!({"name": "modelgate-model", "hostPath": {"path": "/models"}});
    assert_eq!(
        only_failure(folder(Some("modelgate-model"), host), MODEL_VOLUME),
        "the volume modelgate-model must be a persistentVolumeClaim or an image volume: the model is \
         verified where it lies"
    );
    let bad_source = with(right.clone(), |p| {
        p["metadata"]["annotations"]["modelgate.dev/source"] = "s3://bucket/llama".into();
        p["spec"]["initContainers"][0]["env"][0]["value"] = "s3://bucket/llama".into();
    });
    assert_eq!(
        only_failure(bad_source, SOURCE_PINNED),
        "the annotation modelgate.dev/source must be oci://REGISTRY/REPO@sha256:<digest> or an \
         absolute folder path, not s3://bucket/llama"
    );

    // Without the gate image in the parameter, no gate is the right one.
    let mut no_param = case(right.clone());
    no_param["params"]["data"] = json!({});
    let outcome = validate_all(&[no_param]).remove(0);
    assert_eq!(
        outcome,
        fails(&[(
            GATE_TRUSTED,
            "the ConfigMap modelgate-system/modelgate-admission has no gateImage: a cluster \
             administrator must set it to the modelgate image the cluster trusts"
        )])
    );
}

#[test]
fn no_other_container_writes_the_model() {
    let right = fixture("gate-right");
    // An init container after the gate, and a debug container added to a
    // running pod (the ephemeralcontainers subresource: an UPDATE).
    let init_writer = with(right.clone(), |p| {
        let inits = p["spec"]["initContainers"].as_array_mut().unwrap();
        inits.push(json!({"name": "convert", "image": "busybox@sha256:00",
            "volumeMounts": [{"name": "modelgate-model", "mountPath": "/models", "readOnly": false}]}));
    });
    assert_eq!(
        only_failure(init_writer, MODEL_READ_ONLY),
        "init container convert mounts the model volume modelgate-model without readOnly: true; set \
         readOnly: true on that volumeMount: only the modelgate init container may write the model"
    );
    let debug = with(right.clone(), |p| {
        p["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox@sha256:00",
            "volumeMounts": [{"name": "modelgate-model", "mountPath": "/models"}]}]);
    });
    let update = json!({"object": debug, "oldObject": right, "params": params()});
    let outcome = validate_all(&[update]).remove(0).unwrap();
    assert_eq!(
        outcome,
        [(
            MODEL_READ_ONLY.to_owned(),
            "ephemeral container debug mounts the model volume modelgate-model without readOnly: \
             true; set readOnly: true on that volumeMount: only the modelgate init container may \
             write the model"
                .to_owned()
        )]
    );
    // An image volume is a model volume too; two writers are counted.
    let image = with(fixture("image-volume-right"), |p| {
        let c = &mut p["spec"]["containers"][0];
        c["volumeMounts"][0]["readOnly"] = false.into();
        let mut second = c.clone();
        second["name"] = "sidecar".into();
        second["ports"] = json!([]);
        p["spec"]["containers"].as_array_mut().unwrap().push(second);
    });
    assert_eq!(
        only_failure(image, MODEL_READ_ONLY),
        "container vllm mounts the model volume model without readOnly: true; set readOnly: true on \
         that volumeMount: only the modelgate init container may write the model (1 more such \
         mount(s) in other containers)"
    );
}

#[test]
fn updates_are_evaluated_only_when_they_change_what_the_rules_read() {
    let old = fixture("gate-second");
    let update = |object: Value| json!({"object": object, "oldObject": old, "params": params()});
    // A label, a finalizer: let through, even on a pod that breaks a rule
    // (created before its namespace opted in; blocking would strand it).
    let relabelled = with(old.clone(), |p| {
        p["metadata"]["labels"]["tier"] = "gpu".into();
        p["metadata"]["finalizers"] = json!(["example.com/keep"]);
    });
    // A new image for the gate, a changed annotation: evaluated.
    let reimaged = with(old.clone(), |p| {
        p["spec"]["initContainers"][1]["image"] = "ghcr.io/modelgate/modelgate:v2".into();
    });
    let reannotated = with(old.clone(), |p| {
        p["metadata"]["annotations"]["modelgate.dev/source"] =
            "oci://registry.example.com/models/other@sha256:00".into();
    });
    let outcomes = validate_all(&[update(relabelled), update(reimaged), update(reannotated)]);
    assert_eq!(outcomes[0], None);
    let rules = |o: &Outcome| -> Vec<String> {
        o.as_ref().unwrap().iter().map(|(r, _)| r.clone()).collect()
    };
    assert_eq!(rules(&outcomes[1]), [GATE_FIRST, GATE_PINNED, GATE_TRUSTED]);
    assert_eq!(
        rules(&outcomes[2]),
        [GATE_FIRST, GATE_SOURCE, SOURCE_PINNED]
    );
}

#[test]
fn inject_adds_a_gate_that_passes_every_rule_and_only_once() {
    for name in ["annotated", "annotated-pvc"] {
        let pod = fixture(name);
        let line = inject(pod.clone());
        assert_eq!(line["matched"], true, "{name}: {line}");
        let mutated = line["object"].clone();

        // The gate, first, with the cluster's image and the pod's source.
        let gate = &mutated["spec"]["initContainers"][0];
        assert_eq!(gate["name"], "modelgate", "{name}");
        assert_eq!(gate["image"], gate_image().as_str(), "{name}");
        let source = &pod["metadata"]["annotations"]["modelgate.dev/source"];
        assert_eq!(env(gate, "MODELGATE_SOURCE").unwrap()["value"], *source);
        assert_eq!(
            env(gate, "MODELGATE_POLICY").unwrap()["value"],
            "/etc/modelgate/policy.yaml"
        );
        for var in ["POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME"] {
            let e = env(gate, var).unwrap_or_else(|| panic!("{name}: {var}"));
            assert!(e["valueFrom"]["fieldRef"]["fieldPath"].is_string());
        }
        let volumes: Vec<&str> = mutated["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for v in ["modelgate-trust", "modelgate-run"] {
            assert!(volumes.contains(&v), "{name}: {volumes:?}");
        }
        let server = &mutated["spec"]["containers"][0];
        if name == "annotated" {
            // Pulled into the emptyDir, which the server reads only; the
            // kubelet's pull secret is modelgate's too.
            assert_eq!(
                env(gate, "MODELGATE_TARGET").unwrap()["value"],
                "/mnt/models"
            );
            assert!(
                volumes.contains(&"modelgate-model") && volumes.contains(&"modelgate-registry")
            );
            let mount = server["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == "modelgate-model")
                .expect("the server mounts the model");
            assert_eq!(
                *mount,
                json!({"name": "modelgate-model", "mountPath": "/mnt/models", "readOnly": true})
            );
            assert!(env(gate, "MODELGATE_REGISTRY_CONFIG").is_some());
        } else {
            // Verified in place: nothing to pull, nothing added to the server.
            assert!(env(gate, "MODELGATE_TARGET").is_none());
            assert!(!volumes.contains(&"modelgate-model"));
            assert_eq!(server, &pod["spec"]["containers"][0]);
        }

        // Everything else of the pod is as it was.
        let mut unchanged = mutated.clone();
        unchanged["spec"]["initContainers"]
            .as_array_mut()
            .unwrap()
            .remove(0);
        assert_eq!(unchanged["metadata"], pod["metadata"]);
        assert_eq!(unchanged["spec"]["automountServiceAccountToken"], false);

        // A pod Kubernetes accepts, that every rule admits ...
        valid_pod(&mutated, "1.36.0");
        assert_eq!(validate(mutated.clone()), fails(&[]), "{name}");
        // ... and that a second pass leaves alone.
        let again = inject(mutated);
        assert_eq!(again["matched"], false, "{name}: {again}");
        assert_eq!(again["matchConditions"]["has-no-gate"], false);
    }
}

#[test]
fn inject_leaves_alone_pods_without_the_annotation_or_with_a_gate() {
    for name in [
        "gate-right",
        "gate-second",
        "gate-by-tag",
        "image-volume-right",
        "image-volume-by-tag",
        "no-model",
    ] {
        let line = inject(fixture(name));
        assert_eq!(line["matched"], false, "{name}: {line}");
    }
}

#[test]
fn policies_use_standard_cel_and_the_mutation_types_only() {
    for policy in [VALIDATE, INJECT] {
        let out = run(Command::new(venv().join("bin/python"))
            .arg(repo("tests/support/cel_eval.py"))
            .arg("--calls")
            .arg(repo(policy)));
        assert_eq!(out.code, 0, "cel_eval.py --calls {policy}: {}", out.stderr);
        let calls: Value = serde_json::from_str(&out.stdout).unwrap();
        for f in calls["functions"].as_object().unwrap().keys() {
            assert!(
                STANDARD_CEL.contains(&f.as_str()),
                "{policy} calls {f}, which is not standard CEL: {calls}"
            );
        }
        // Kubernetes' JSONPatch and Object types, in mutations only.
        for (t, wheres) in calls["types"].as_object().unwrap() {
            assert!(
                policy == INJECT && (t == "JSONPatch" || t == "Object" || t.starts_with("Object.")),
                "{policy} constructs {t}"
            );
            for w in wheres.as_array().unwrap() {
                assert!(w.as_str().unwrap().starts_with("mutations["), "{t} in {w}");
            }
        }
    }
}
