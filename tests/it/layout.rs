//! The source tree is the architecture: each top-level module belongs to one
//! layer, imports only from its own layer or the layers below, never in a
//! circle; and inside a folder, its files (submodules) do not import each
//! other in a circle either. The layers are written down once, in the table
//! at the top of the crate documentation (`src/lib.rs`), which these tests
//! read together with `src/`; they fail when a change breaks the rules.
//!
//! Imports are found by a small lexer, not by rustc: comments, strings and
//! character literals are blanked first, then every path that starts with
//! `crate::`, `super::` or `self::` (in `use` trees too) is made absolute,
//! taking inline modules (`mod tests { ... }`) into account. A name that a
//! folder's `mod.rs` (or `lib.rs`) re-exports by `pub use child::Name`
//! counts as an import of that child. What it cannot see: glob re-exports
//! (`pub use args::*`) and paths without one of those three prefixes (a
//! `mod.rs` naming its own children, which is no edge between siblings).

mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use scan::{reexported, references};

/// A module path from the crate root: `["oms", "manifest"]`.
type ModPath = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layers, top to bottom, and the top-level modules in each: the table
/// after the `//! | layer | modules |` line of src/lib.rs.
fn layers() -> Vec<(String, Vec<String>)> {
    parse_layers(&std::fs::read_to_string(src().join("lib.rs")).unwrap())
}

/// Reads the rows that follow the `| layer | modules |` header of a crate
/// documentation table (the `|---|` separator skipped) up to the first line
/// that is not a row: each layer's name and every backticked name in its
/// second column.
fn parse_layers(lib: &str) -> Vec<(String, Vec<String>)> {
    let cells = |row: &str| -> Vec<String> {
        row.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut rows = lib
        .lines()
        .map(|l| l.trim_start().strip_prefix("//!").map(str::trim));
    assert!(
        rows.by_ref()
            .any(|l| l.is_some_and(|l| l.starts_with('|') && cells(l) == ["layer", "modules"])),
        "src/lib.rs's documentation has no `| layer | modules |` table"
    );
    let mut layers = Vec::new();
    for row in rows {
        let Some(row) = row.filter(|r| r.starts_with('|')) else {
            break;
        };
        let cells = cells(row);
        if cells
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        assert_eq!(cells.len(), 2, "layer table row {row:?}: not two columns");
        let modules = cells[1]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect();
        layers.push((cells[0].clone(), modules));
    }
    assert!(
        !layers.is_empty(),
        "the layer table in src/lib.rs has no rows"
    );
    layers
}

fn layer_of(layers: &[(String, Vec<String>)], module: &str) -> Option<usize> {
    layers
        .iter()
        .position(|(_, modules)| modules.iter().any(|m| m == module))
}

/// One file of `src/`.
struct Source {
    /// Its path under src/, `/`-separated: `oms/manifest.rs`.
    rel: String,
    /// Its module path: `["oms", "manifest"]`; `[]` for lib.rs.
    module: ModPath,
    text: String,
}

/// Every `.rs` file of the library under `src/` (main.rs is another crate).
fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = src();
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if rel == "main.rs" {
                return None;
            }
            Some(Source {
                module: module_path(&rel),
                text: std::fs::read_to_string(&path).unwrap(),
                rel,
            })
        })
        .collect()
}

/// `oms/manifest.rs` -> `["oms", "manifest"]`, `oms/mod.rs` -> `["oms"]`,
/// `lib.rs` -> `[]`.
fn module_path(rel: &str) -> ModPath {
    let mut parts: ModPath = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// What the tree holds: each module's child modules (from the files), and
/// the names each `lib.rs`/`mod.rs` re-exports from a child.
struct Tree {
    children: BTreeMap<ModPath, BTreeSet<String>>,
    reexports: BTreeMap<ModPath, BTreeMap<String, String>>,
}

impl Tree {
    fn of(sources: &[Source]) -> Self {
        let mut children: BTreeMap<ModPath, BTreeSet<String>> = BTreeMap::new();
        for s in sources {
            for k in 1..=s.module.len() {
                children
                    .entry(s.module[..k - 1].to_vec())
                    .or_default()
                    .insert(s.module[k - 1].clone());
            }
        }
        // Only names re-exported from a child module of that file's own.
        let reexports = sources
            .iter()
            .filter(|s| s.rel == "lib.rs" || s.rel.ends_with("/mod.rs"))
            .map(|s| {
                let own = children.get(&s.module);
                let names = reexported(&s.text)
                    .into_iter()
                    .filter(|(_, child)| own.is_some_and(|c| c.contains(child)))
                    .collect();
                (s.module.clone(), names)
            })
            .collect();
        Self {
            children,
            reexports,
        }
    }

    /// Which child of `parent` the absolute path `path` reaches, directly
    /// (`parent::child::...`) or through a name `parent` re-exports.
    fn child_named(&self, parent: &[String], path: &[String]) -> Option<String> {
        let name = path.strip_prefix(parent)?.first()?;
        if self.children.get(parent).is_some_and(|c| c.contains(name)) {
            return Some(name.clone());
        }
        self.reexports.get(parent)?.get(name).cloned()
    }

    /// The top-level modules a file in top-level module `module` names.
    fn imports(&self, module: &[String], text: &str) -> BTreeSet<String> {
        references(module, text)
            .iter()
            .filter_map(|path| {
                self.child_named(&[], path).or_else(|| {
                    // Not a module, nor re-exported: a lowercase name is
                    // reported as a module in no layer, as it must be one.
                    path.first()
                        .filter(|n| n.starts_with(|c: char| c.is_lowercase()))
                        .cloned()
                })
            })
            .collect()
    }
}

/// The top-level modules a top-level file names through `crate::`, outside
/// comments and strings (names re-exported by lib.rs count as their module).
fn imports(text: &str) -> BTreeSet<String> {
    Tree::of(&sources()).imports(&["any".to_string()], text)
}

/// A circle in `graph`, as the modules along it (the first repeated last),
/// if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // A depth-first search that meets a module on its own path.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn every_module_belongs_to_a_layer_and_imports_only_downwards() {
    let layers = layers();
    let sources = sources();
    let tree = Tree::of(&sources);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for source in sources.iter().filter(|s| !s.module.is_empty()) {
        let module = &source.module[0];
        let Some(from) = layer_of(&layers, module) else {
            wrong.push(format!(
                "src/{module} is in no layer: add it to the layer table in src/lib.rs"
            ));
            continue;
        };
        for target in tree.imports(&source.module, &source.text) {
            if target == *module {
                continue;
            }
            match layer_of(&layers, &target) {
                None => wrong.push(format!(
                    "{module} imports crate::{target}, which is in no layer"
                )),
                Some(to) if to < from => wrong.push(format!(
                    "{module} ({}) imports {target} ({}), a layer above it",
                    layers[from].0, layers[to].0
                )),
                Some(_) => {
                    graph.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_files_of_a_folder_do_not_import_each_other_in_a_circle() {
    let sources = sources();
    let tree = Tree::of(&sources);
    let mut cycles = Vec::new();
    // Every folder: the modules whose files are below it, but not its own
    // mod.rs (which declares them; a child using an item defined there is
    // no circle between siblings).
    for (folder, children) in &tree.children {
        if folder.is_empty() || children.is_empty() {
            continue;
        }
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut evidence: BTreeMap<(String, String), String> = BTreeMap::new();
        for source in &sources {
            let Some(from) = source
                .module
                .strip_prefix(folder.as_slice())
                .and_then(|m| m.first())
            else {
                continue;
            };
            for path in references(&source.module, &source.text) {
                if let Some(to) = tree.child_named(folder, &path).filter(|to| to != from) {
                    evidence
                        .entry((from.clone(), to.clone()))
                        .or_insert_with(|| format!("src/{} uses {}", source.rel, path.join("::")));
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        if let Some(cycle) = find_cycle(&graph) {
            let why: Vec<&str> = cycle
                .windows(2)
                .map(|w| evidence[&(w[0].clone(), w[1].clone())].as_str())
                .collect();
            cycles.push(format!(
                "src/{}/: {} ({})",
                folder.join("/"),
                cycle.join(" -> "),
                why.join("; ")
            ));
        }
    }
    assert!(
        cycles.is_empty(),
        "files of one folder import each other in a circle; move what one side needs so that the imports go one way:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_import_scanner_sees_what_it_must() {
    let text = "use crate::model::{self, ModelRoot};\n// crate::cli in a comment\nlet e = crate::gate::Error::Usage(x); crate::io::read_bounded()";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["gate", "io", "model"]);
}

#[test]
fn the_submodule_scanner_resolves_super_inline_modules_and_reexports() {
    let text = r##"
        use super::legacy::{self, LEGACY_PREDICATE_TYPE as LEGACY};
        use super::{bundle, Format};
        /* nested /* block */ comment: super::sign */
        const S: &str = "super::sign"; const R: &str = r#"crate::oms::sign "quoted""#;
        const C: char = '"'; fn f<'a>(x: &'a str) -> &'a str { x }
        fn g() { crate::model::ModelRoot::open(p); self::helper(); }
        mod tests {
            use super::*;
            use super::super::sign::sign_model;
        }
    "##;
    let module: ModPath = vec!["oms".into(), "manifest".into()];
    let paths: Vec<String> = references(&module, text)
        .iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "oms::legacy",
            "oms::legacy::LEGACY_PREDICATE_TYPE",
            "oms::bundle",
            "oms::Format",
            "model::ModelRoot::open",
            "oms::manifest::helper",
            "oms::manifest::*",
            "oms::sign::sign_model",
        ]
    );
    // What each names in src/oms/: siblings directly; `model::ModelRoot`
    // through model/mod.rs's `pub use dir::{..., ModelRoot}`.
    let tree = Tree::of(&sources());
    let oms: ModPath = vec!["oms".into()];
    let siblings: Vec<Option<String>> = references(&module, text)
        .iter()
        .map(|p| tree.child_named(&oms, p))
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        siblings,
        [
            some("legacy"),
            some("legacy"),
            some("bundle"),
            None,
            None,
            some("manifest"),
            some("manifest"),
            some("sign"),
        ]
    );
    assert_eq!(
        tree.child_named(&["model".into()], &["model".into(), "ModelRoot".into()]),
        some("dir")
    );
}

#[test]
fn the_cycle_finder_finds_a_circle_and_only_one() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).unwrap(),
        ["a", "b", "c", "a"]
    );
}

#[test]
fn the_crate_documentation_puts_every_module_in_exactly_one_layer() {
    let layers = layers();
    let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (layer, modules) in &layers {
        for module in modules {
            seen.entry(module).or_default().push(layer);
        }
    }
    let in_src = Tree::of(&sources()).children[&ModPath::new()].clone();
    let mut wrong = Vec::new();
    for (module, in_layers) in &seen {
        if in_layers.len() > 1 {
            wrong.push(format!(
                "{module} is in {} layers: {in_layers:?}",
                in_layers.len()
            ));
        }
        if !in_src.contains(*module) {
            wrong.push(format!("the table names {module}, which is not in src/"));
        }
    }
    for module in &in_src {
        if !seen.contains_key(module.as_str()) {
            wrong.push(format!("src/{module} is in no row of the table"));
        }
    }
    assert!(
        wrong.is_empty(),
        "src/lib.rs's layer table:\n{}",
        wrong.join("\n")
    );
    // The parser itself: the header found, the separator skipped, every
    // backticked name of the second column taken, the first line after the
    // table ending it.
    let doc = "//! intro\n//!\n//! | layer | modules |\n//! |---|---|\n//! | top | [`cli`], [`error`] |\n//! | bottom | [`io`] |\n//!\n//! | layer | modules |\n";
    assert_eq!(
        parse_layers(doc),
        [
            (
                "top".to_string(),
                vec!["cli".to_string(), "error".to_string()]
            ),
            ("bottom".to_string(), vec!["io".to_string()]),
        ]
    );
}
