//! The source tree is the architecture: each top-level module belongs to one
//! layer, imports only from its own layer or the layers below, never in a
//! circle, and the README's layout table lists exactly the modules there are.
//! These tests read `src/` and fail when a change breaks that.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, top to bottom, and the top-level modules in each. Keep in
/// step with the README's "Layout" table.
const LAYERS: &[(&str, &[&str])] = &[
    ("entry points", &["cli", "error"]),
    (
        "verification, registries and records",
        &["verify", "oci", "measure"],
    ),
    ("format, trust and policy", &["oms", "trust", "policy"]),
    ("the model on disk", &["model", "node"]),
    ("support", &["io", "logging"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// Every `.rs` file under `src/`, with the top-level module it belongs to.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
            if top == "lib" || top == "main" {
                return None;
            }
            Some((top.to_string(), std::fs::read_to_string(&path).unwrap()))
        })
        .collect()
}

/// The top-level modules a file names through `crate::`, outside comments.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name.chars().next().unwrap().is_lowercase() {
                out.insert(name);
            } else if name == "Error" {
                out.insert("error".into());
            }
        }
    }
    out
}

#[test]
fn every_module_belongs_to_a_layer_and_imports_only_downwards() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (module, text) in sources() {
        let Some(from) = layer_of(&module) else {
            wrong.push(format!(
                "src/{module} is in no layer: add it to LAYERS and the README"
            ));
            continue;
        };
        for target in imports(&text) {
            if target == module {
                continue;
            }
            match layer_of(&target) {
                None => wrong.push(format!(
                    "{module} imports crate::{target}, which is in no layer"
                )),
                Some(to) if to < from => wrong.push(format!(
                    "{module} ({}) imports {target} ({}), a layer above it",
                    LAYERS[from].0, LAYERS[to].0
                )),
                Some(_) => {
                    graph.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    // No circles: a depth-first search never meets a module on its own path.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == node) {
            panic!("import cycle: {} -> {node}", path[at..].join(" -> "));
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_import_scanner_sees_what_it_must() {
    let text = "use crate::model::{self, ModelRoot};\n// crate::cli in a comment\nlet e = crate::Error::Usage(x); crate::io::read_bounded()";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["error", "io", "model"]);
}

#[test]
fn the_readme_layout_table_lists_every_module() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## Layout")
        .nth(1)
        .expect("the README has a '## Layout' section")
        .split("\n## ")
        .next()
        .unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (layer, modules) in LAYERS {
        assert!(
            section.contains(layer),
            "the README's layout table lacks the layer {layer:?}"
        );
        for module in *modules {
            let (dir, file) = (src.join(module), src.join(format!("{module}.rs")));
            let shown = if dir.is_dir() {
                format!("`src/{module}/`")
            } else {
                assert!(
                    file.is_file(),
                    "LAYERS names {module}, which is not in src/"
                );
                format!("`src/{module}.rs`")
            };
            assert!(
                section.contains(&shown),
                "the README's layout table lacks {shown}"
            );
        }
    }
}
