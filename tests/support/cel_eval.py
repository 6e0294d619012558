"""Evaluates the CEL of a Kubernetes admission policy as the API server
would, for tests/it/admission_policies.rs: the expressions are read from the
policy's YAML, never copied.

usage:
  cel_eval.py POLICY.yaml CASES.json   evaluate each case, print JSON lines
  cel_eval.py --calls POLICY.yaml      list the functions, macros and types
                                       that the policy's CEL calls

POLICY.yaml holds a ValidatingAdmissionPolicy or a MutatingAdmissionPolicy
(admissionregistration.k8s.io/v1; the first one in the file). CASES.json is
a list of {"name", "object", "oldObject", "params", "namespaceObject",
"operation"}; all but "object" are optional, and "operation" defaults to
UPDATE when there is an oldObject and CREATE otherwise.

For a ValidatingAdmissionPolicy, a case that matchConditions leave out is
one line {"case", "name", "matched": false, "matchConditions": {...}}; a
matched case is one line per validation: {"case", "name", "matched": true,
"validation": index, "id": its static message, "passed": true | false | null
(an error), "message": the messageExpression's value when it failed (the
static message when that is empty or fails, as the API server does),
"error"}.

For a MutatingAdmissionPolicy, each case is one line {"case", "name",
"matched", "mutations": [{"patchType", "result"}], "object": the object
after every mutation, in order, each reading the object the previous one
left, "error"}.

The CEL library is cel-python (celpy, pure Python: standard CEL and its
macros, RE2 for matches()). What Kubernetes adds on top is done here:
  - the variables object, oldObject, request, params, namespaceObject and
    variables (spec.variables, evaluated lazily, each once per evaluation);
  - matchConditions: any false leaves the case out, an error is reported;
  - the message rule: a messageExpression that fails or is empty gives the
    static message;
  - SHIM, MutatingAdmissionPolicy only: the JSONPatch type, the Object types
    (Object, Object.spec, Object.spec.containers, ...: each one checks its
    field names against the Pod schema that kubernetes-validate ships, as
    the API server type-checks them) and the two ways of applying a
    mutation: RFC 6902 JSON patch, and the server-side-apply merge of an
    apply configuration (by key in list-type map lists, union in sets;
    atomic lists and maps refused, as the API server refuses them).
Not emulated: the API server's static type checking beyond field names,
its cost limits, and the order-blind equality of list-type map lists.
"""
import copy
import json
import os
import re
import sys

import celpy
import lark
import yaml
from celpy import celtypes

# ------------------------------------------------------------ values


def to_cel(value):
    return celpy.json_to_cel(value)


def to_json(value):
    """A celpy value as plain JSON data."""
    if value is None:
        return None
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    raise TypeError(f"no JSON for the CEL value {value!r}")


class EvalFailure(Exception):
    """An expression that did not evaluate to a value."""


def evaluate(program, activation):
    try:
        result = program.evaluate(activation)
    except celpy.CELEvalError as e:
        raise EvalFailure(str(e.args[0] if e.args else e)) from e
    if isinstance(result, celpy.CELEvalError):
        raise EvalFailure(str(result.args[0] if result.args else result))
    return result


ENV = celpy.Environment()


def compile_cel(text, where):
    try:
        return ENV.program(ENV.compile(text))
    except celpy.CELParseError as e:
        sys.exit(f"{where}: does not parse: {e}")


class Variables(celtypes.MapType):
    """spec.variables: each evaluated when first read, then kept for the
    rest of the evaluation (for a MutatingAdmissionPolicy, across its
    mutations, as the API server keeps them for one binding). A variable is
    evaluated with the activation of the expression that first reads it,
    less the JSONPatch and Object types: the API server declares those for
    the mutations' expressions only."""

    def __init__(self, programs):
        super().__init__()
        self.programs = programs
        self.activation = {}
        self.values = {}

    def bind(self, activation):
        self.activation = {k: v for k, v in activation.items() if k not in ("Object", "JSONPatch")}
        self.activation["variables"] = self

    def __getitem__(self, name):
        name = str(name)
        if name not in self.values:
            if name not in self.programs:
                return celpy.CELEvalError(f"no variable {name}")
            try:
                self.values[name] = evaluate(self.programs[name], self.activation)
            except EvalFailure as e:
                self.values[name] = celpy.CELEvalError(f"variables.{name}: {e}")
        return self.values[name]

    def __contains__(self, name):
        return str(name) in self.programs

    def get(self, name, default=None):
        return self[name] if name in self else default


# ------------------------------------------------ the Pod schema (shim)


def pod_schema():
    """The $defs of the newest Kubernetes version kubernetes-validate ships."""
    import kubernetes_validate

    root = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")

    def version(name):
        return tuple(int(x) for x in re.findall(r"\d+", name)[:3])

    newest = max((d for d in os.listdir(root) if d.endswith("-local")), key=version)
    with open(os.path.join(root, newest, "_definitions.json")) as f:
        return json.load(f)["$defs"]


DEFS = None


def resolve(node):
    while "$ref" in node:
        node = DEFS[node["$ref"].rsplit("/", 1)[-1]]
    return node


def is_array(node):
    t = node.get("type")
    return t == "array" or (isinstance(t, list) and "array" in t)


class ObjectType(celtypes.MapType):
    """SHIM for Kubernetes' Object types: Object is the Pod, Object.spec its
    spec, Object.spec.containers one container (the element of a list).
    Called with field initialisers, it makes the value; a field the schema
    does not have is an error, as the API server's type check makes it."""

    def __init__(self, node, path):
        super().__init__()
        self.node = resolve(node)
        self.path = path

    def _field(self, name):
        props = self.node.get("properties", {})
        if name not in props:
            raise EvalFailure(f"{self.path} has no field {name}")
        field = resolve(props[name])
        if is_array(field):
            field = field["items"]
        return field

    def __getitem__(self, name):
        return ObjectType(self._field(str(name)), f"{self.path}.{name}")

    def __contains__(self, name):
        return str(name) in self.node.get("properties", {})

    def get(self, name, default=None):
        return self[name]

    def __call__(self, fields):
        fields = fields or {}
        for name in fields:
            self._field(str(name))
        return celtypes.MapType({celtypes.StringType(k): v for k, v in fields.items()})

    def __repr__(self):
        return self.path


def json_patch_type(fields):
    """SHIM for Kubernetes' JSONPatch type: {op, path, from, value}."""
    fields = fields or {}
    unknown = set(map(str, fields)) - {"op", "path", "from", "value"}
    if unknown:
        raise EvalFailure(f"JSONPatch has no field {sorted(unknown)[0]}")
    return celtypes.MapType({celtypes.StringType(k): v for k, v in fields.items()})


# ------------------------------------------------ applying a mutation


def pointer(path):
    if not path.startswith("/"):
        raise EvalFailure(f"JSON patch path {path!r} is not a JSON pointer")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def walk(doc, parts, path):
    for p in parts:
        if isinstance(doc, list):
            doc = doc[int(p)]
        elif isinstance(doc, dict) and p in doc:
            doc = doc[p]
        else:
            raise EvalFailure(f"JSON patch path {path}: no {p}")
    return doc


def apply_json_patch(doc, ops):
    """RFC 6902: add, remove, replace, test (what a policy may return)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        parts = pointer(path)
        parent, key = walk(doc, parts[:-1], path), parts[-1]
        if kind == "add":
            value = copy.deepcopy(op["value"])
            if isinstance(parent, list):
                index = len(parent) if key == "-" else int(key)
                if not 0 <= index <= len(parent):
                    raise EvalFailure(f"JSON patch add {path}: index out of range")
                parent.insert(index, value)
            else:
                parent[key] = value
        elif kind in ("remove", "replace"):
            if isinstance(parent, list):
                index = int(key)
                if not 0 <= index < len(parent):
                    raise EvalFailure(f"JSON patch {kind} {path}: index out of range")
            elif key not in parent:
                raise EvalFailure(f"JSON patch {kind} {path}: no such member")
            else:
                index = key
            if kind == "remove":
                del parent[index]
            else:
                parent[index] = copy.deepcopy(op["value"])
        elif kind == "test":
            if walk(doc, parts, path) != op.get("value"):
                raise EvalFailure(f"JSON patch test {path} failed")
        else:
            raise EvalFailure(f"JSON patch op {kind!r} is not supported here")
    return doc


def smd_merge(live, applied, node, path="Object"):
    """The server-side-apply merge of an apply configuration into the
    object, by the Pod schema's list types (structured-merge-diff)."""
    node = resolve(node)
    if applied is None:
        return live
    if isinstance(applied, dict):
        if node.get("x-kubernetes-map-type") == "atomic":
            raise EvalFailure(f"apply configuration sets {path}, an atomic struct or map")
        out = dict(live) if isinstance(live, dict) else {}
        props, extra = node.get("properties"), node.get("additionalProperties")
        for k, v in applied.items():
            if props is not None:
                if k not in props:
                    raise EvalFailure(f"apply configuration: {path} has no field {k}")
                sub = props[k]
            elif isinstance(extra, dict):
                sub = extra
            else:
                raise EvalFailure(f"apply configuration: {path} is not an object")
            out[k] = smd_merge(out.get(k), v, sub, f"{path}.{k}")
        return out
    if isinstance(applied, list):
        kind = node.get("x-kubernetes-list-type")
        items = node.get("items", {})
        out = list(live) if isinstance(live, list) else []
        if kind == "map":
            keys = node["x-kubernetes-list-map-keys"]
            for item in applied:
                key = [item.get(k) for k in keys]
                at = next((i for i, e in enumerate(out) if [e.get(k) for k in keys] == key), None)
                if at is None:
                    out.append(smd_merge(None, item, items, f"{path}[{key}]"))
                else:
                    out[at] = smd_merge(out[at], item, items, f"{path}[{key}]")
            return out
        if kind == "set":
            return out + [x for x in applied if x not in out]
        raise EvalFailure(f"apply configuration sets {path}, an atomic list")
    return applied


# ------------------------------------------------ the policy


def load_policy(path):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") in ("ValidatingAdmissionPolicy", "MutatingAdmissionPolicy"):
                return doc
    sys.exit(f"{path}: no ValidatingAdmissionPolicy or MutatingAdmissionPolicy")


def expressions(policy):
    """(where, text) of every CEL expression of the policy."""
    spec = policy["spec"]
    for c in spec.get("matchConditions", []):
        yield f"matchConditions[{c['name']}]", c["expression"]
    for v in spec.get("variables", []):
        yield f"variables.{v['name']}", v["expression"]
    for i, v in enumerate(spec.get("validations", [])):
        yield f"validations[{i}].expression", v["expression"]
        if "messageExpression" in v:
            yield f"validations[{i}].messageExpression", v["messageExpression"]
    for i, m in enumerate(spec.get("mutations", [])):
        field = "jsonPatch" if m["patchType"] == "JSONPatch" else "applyConfiguration"
        yield f"mutations[{i}].{field}", m[field]["expression"]


def dotted(tree):
    """The dotted name a member subtree spells (Object.spec.containers)."""
    tokens = [t for t in tree.scan_values(lambda v: isinstance(v, lark.Token) and v.type == "IDENT")]
    return ".".join(tokens)


def calls(policy):
    """Every function, method or macro called, and every type constructed."""
    functions, types = {}, {}
    for where, text in expressions(policy):
        tree = ENV.compile(text)
        for t in tree.iter_subtrees():
            if t.data in ("member_dot_arg", "ident_arg", "dot_ident_arg"):
                name = next(str(c) for c in t.children if isinstance(c, lark.Token) and c.type == "IDENT")
                functions.setdefault(name, set()).add(where)
            elif t.data == "member_object":
                types.setdefault(dotted(t.children[0]), set()).add(where)
    return {
        "functions": {k: sorted(v) for k, v in sorted(functions.items())},
        "types": {k: sorted(v) for k, v in sorted(types.items())},
    }


class Policy:
    def __init__(self, doc):
        self.doc = doc
        spec = doc["spec"]
        self.kind = doc["kind"]
        self.match_conditions = [
            (c["name"], compile_cel(c["expression"], f"matchConditions[{c['name']}]"))
            for c in spec.get("matchConditions", [])
        ]
        self.variables = {
            v["name"]: compile_cel(v["expression"], f"variables.{v['name']}") for v in spec.get("variables", [])
        }
        self.validations = [
            (
                v.get("message", ""),
                compile_cel(v["expression"], f"validations[{i}]"),
                compile_cel(v["messageExpression"], f"validations[{i}].messageExpression")
                if "messageExpression" in v
                else None,
            )
            for i, v in enumerate(spec.get("validations", []))
        ]
        self.mutations = []
        for i, m in enumerate(spec.get("mutations", [])):
            field = "jsonPatch" if m["patchType"] == "JSONPatch" else "applyConfiguration"
            self.mutations.append((m["patchType"], compile_cel(m[field]["expression"], f"mutations[{i}]")))

    def activation(self, case, obj, variables=None):
        """The names an expression sees; `variables` carries the values of
        spec.variables from one expression to the next."""
        old = case.get("oldObject")
        operation = case.get("operation") or ("UPDATE" if old is not None else "CREATE")
        meta = (obj or {}).get("metadata", {})
        act = {
            "object": to_cel(obj),
            "oldObject": to_cel(old),
            "params": to_cel(case.get("params")),
            "namespaceObject": to_cel(case.get("namespaceObject")),
            "request": to_cel(
                {
                    "operation": operation,
                    "namespace": meta.get("namespace", ""),
                    "name": meta.get("name", ""),
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                }
            ),
        }
        if self.kind == "MutatingAdmissionPolicy":
            act["Object"] = ObjectType(DEFS["io.k8s.api.core.v1.Pod"], "Object")
            act["JSONPatch"] = json_patch_type
        act["variables"] = variables if variables is not None else Variables(self.variables)
        act["variables"].bind(act)
        return act

    def matches(self, act):
        """(matched: True | False | "error", {condition: value or error})."""
        seen, matched = {}, True
        for name, program in self.match_conditions:
            try:
                value = bool(evaluate(program, act))
                seen[name] = value
                if not value:
                    matched = False
            except EvalFailure as e:
                seen[name] = f"error: {e}"
                if matched is True:
                    matched = "error"
        return matched, seen

    def validate(self, index, name, case):
        act = self.activation(case, case["object"])
        matched, seen = self.matches(act)
        if matched is not True:
            return [{"case": index, "name": name, "matched": matched, "matchConditions": seen}]
        lines = []
        for i, (static, expression, message_expression) in enumerate(self.validations):
            line = {"case": index, "name": name, "matched": True, "validation": i, "id": static}
            line.update(passed=None, message=None, error=None)
            try:
                line["passed"] = bool(evaluate(expression, act))
            except EvalFailure as e:
                line["error"] = str(e)
            if line["passed"] is False:
                line["message"] = static
                if message_expression is not None:
                    try:
                        text = evaluate(message_expression, act)
                        if isinstance(text, str) and text.strip():
                            line["message"] = str(text)
                        else:
                            line["error"] = f"messageExpression gave {text!r}"
                    except EvalFailure as e:
                        line["error"] = f"messageExpression: {e}"
            lines.append(line)
        return lines

    def mutate(self, index, name, case):
        obj = case["object"]
        variables = Variables(self.variables)
        matched, seen = self.matches(self.activation(case, obj, variables))
        line = {"case": index, "name": name, "matched": matched, "matchConditions": seen}
        if matched is not True:
            return [line]
        line["mutations"] = []
        try:
            for patch_type, program in self.mutations:
                result = to_json(evaluate(program, self.activation(case, obj, variables)))
                line["mutations"].append({"patchType": patch_type, "result": result})
                if patch_type == "JSONPatch":
                    obj = apply_json_patch(obj, result)
                else:
                    obj = smd_merge(obj, result, DEFS["io.k8s.api.core.v1.Pod"])
        except (EvalFailure, KeyError, ValueError, IndexError, TypeError) as e:
            line["error"] = f"{type(e).__name__}: {e}"
        line["object"] = obj
        return [line]


def main(argv):
    global DEFS
    if len(argv) == 3 and argv[1] == "--calls":
        print(json.dumps(calls(load_policy(argv[2]))))
        return
    if len(argv) != 3:
        sys.exit(__doc__)
    DEFS = pod_schema()
    policy = Policy(load_policy(argv[1]))
    with open(argv[2]) as f:
        cases = json.load(f)
    for index, case in enumerate(cases):
        name = case.get("name", str(index))
        run = policy.validate if policy.kind == "ValidatingAdmissionPolicy" else policy.mutate
        for line in run(index, name, case):
            print(json.dumps(line))


if __name__ == "__main__":
    main(sys.argv)
