//! Paths inside a model: which ones are left out, and where a path given on
//! the command line lies relative to the model root.

use std::path::{Component, Path, PathBuf};

/// The resource name the format gives a model that is one file, not a folder.
pub const SINGLE_FILE_NAME: &str = ".";

/// Paths excluded from a model: each rule covers itself and everything below it.
#[derive(Clone, Debug, Default)]
pub struct IgnoreRules {
    paths: Vec<String>,
}

impl IgnoreRules {
    /// Builds the rules from root-relative paths. `./` prefixes and trailing
    /// slashes are dropped; paths that could only point outside the root
    /// (absolute, `..`) can match nothing below it and are skipped.
    pub fn new<I, S>(paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let paths = paths
            .into_iter()
            .filter_map(|p| normalize_relative(p.as_ref()))
            .collect();
        Self { paths }
    }

    /// Whether `path` (root-relative) is excluded.
    pub fn is_ignored(&self, path: &str) -> bool {
        self.paths.iter().any(|p| {
            path.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// The normalized rules, sorted, for writing into a signature.
    pub fn to_sorted_vec(&self) -> Vec<String> {
        let mut out = self.paths.clone();
        out.sort();
        out.dedup();
        out
    }
}

/// `./a//b/` -> `a/b`; `None` for paths that cannot name anything inside a root.
pub fn normalize_relative(path: &str) -> Option<String> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if path.starts_with('/') || parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Resolves `path` as the kernel would, without requiring it to exist:
/// relative to the current folder, each existing symlink followed, each `..`
/// taken from the folder actually reached (a symlinked parent's `..` is the
/// target's parent, as for the kernel and Python's `Path.resolve`). Components
/// past the first one that does not exist are taken as written.
pub fn resolve(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut out = PathBuf::from("/");
    for component in absolute.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => out = PathBuf::from("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                let next = out.join(name);
                out = match std::fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        std::fs::canonicalize(&next).unwrap_or(next)
                    }
                    _ => next,
                };
            }
        }
    }
    Some(out)
}

/// Like [`resolve`], but a last component that is a symlink is not followed:
/// the path names an entry (a link to ignore, a signature to write), not
/// what it points to.
fn resolve_entry(path: &Path) -> Option<PathBuf> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Some(resolve(parent)?.join(name))
        }
        _ => resolve(path),
    }
}

/// `path`'s location relative to the model root when it lies inside the model
/// (after resolving both), e.g. a signature kept next to the weights: it is
/// never part of what it signs. `path` itself need not exist yet.
pub fn relative_inside(model: &Path, path: &Path) -> Option<String> {
    let root = std::fs::canonicalize(model).ok()?;
    below(&root, &resolve_entry(path)?).filter(|s| !s.is_empty())
}

fn below(root: &Path, full: &Path) -> Option<String> {
    full.strip_prefix(root).ok()?.to_str().map(str::to_string)
}

/// Why a path given on the command line names nothing inside the model.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    /// It resolves outside the model (or the model cannot be resolved).
    #[error("not a path inside the model")]
    Outside,
    /// It resolves to the model root itself.
    #[error("names the model itself, not a path inside it")]
    WholeModel,
    /// Read from the current folder and read from the model, it names two
    /// different things that both exist.
    #[error(
        "ambiguous: from the current folder it names {from_cwd:?} in the model, from the model root {from_model:?}; write it relative to the model root or as an absolute path"
    )]
    Ambiguous {
        /// The model-relative path, reading the argument from the current folder.
        from_cwd: String,
        /// The model-relative path, reading the argument from the model root.
        from_model: String,
    },
}

/// Where a path given on the command line (an `--ignore-paths` value) lies
/// inside the model, as a `/`-separated model-relative path.
///
/// The model and the path are resolved the same way ([`resolve`]), so any
/// spelling of a path inside the model is accepted: relative to the current
/// folder as the reference CLI reads it (`models/llama/tokenizer.json` for
/// model `models/llama`, or `$(dirname $0)/../models/...`), absolute, through
/// a symlinked parent, or relative to the model root (`tokenizer.json`). A
/// relative path that reads differently from the current folder and from the
/// model root takes the reading that exists; if both exist it is ambiguous,
/// and if neither does, it is read from the current folder only when it is
/// spelled through the model argument. Anything outside the model is an error,
/// and so is a relative path that names an existing file outside the model
/// unless it also names an existing one inside it.
pub fn locate(model: &Path, given: &Path) -> Result<String, LocateError> {
    let root = std::fs::canonicalize(model).map_err(|_| LocateError::Outside)?;
    let from_cwd = resolve_entry(given).and_then(|full| below(&root, &full));
    let picked = if given.is_absolute() {
        from_cwd
    } else {
        let from_model = resolve_entry(&root.join(given)).and_then(|full| below(&root, &full));
        let exists = |rel: &str| std::fs::symlink_metadata(root.join(rel)).is_ok();
        // A path that exists outside the model, read from the current folder,
        // names that file, even if the same words could name a (missing) path
        // inside the model.
        let outside_and_real = from_cwd.is_none()
            && resolve_entry(given).is_some_and(|p| std::fs::symlink_metadata(p).is_ok());
        if outside_and_real && !from_model.as_deref().is_some_and(exists) {
            return Err(LocateError::Outside);
        }
        match (from_cwd, from_model) {
            (Some(a), Some(b)) if a != b => match (exists(&a), exists(&b)) {
                (true, false) => Some(a),
                (false, true) => Some(b),
                (true, true) => {
                    return Err(LocateError::Ambiguous {
                        from_cwd: a,
                        from_model: b,
                    });
                }
                (false, false) if spelled_through(model, given) => Some(a),
                (false, false) => Some(b),
            },
            (a, b) => a.or(b),
        }
    };
    match picked {
        None => Err(LocateError::Outside),
        Some(rel) if rel.is_empty() => Err(LocateError::WholeModel),
        Some(rel) => Ok(rel),
    }
}

/// Whether `given` is written through the model argument (`models/m/x` for
/// model `models/m`), comparing components as written.
fn spelled_through(model: &Path, given: &Path) -> bool {
    fn lexical(p: &Path) -> Vec<Component<'_>> {
        p.components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    }
    lexical(given).starts_with(&lexical(model))
}

/// A model's name as the reference signer records it: the last component of
/// the path, or of its canonical form when the path ends in `.` or `..`.
pub fn display_name(path: &Path) -> String {
    let last = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    last(path)
        .or_else(|| std::fs::canonicalize(path).ok().and_then(|p| last(&p)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules_match_whole_components() {
        let rules = IgnoreRules::new(["./.git/", "sub/b", "/abs", "../up"]);
        assert!(rules.is_ignored(".git"));
        assert!(rules.is_ignored(".git/config"));
        assert!(!rules.is_ignored(".gitignore"));
        assert!(rules.is_ignored("sub/b"));
        assert!(!rules.is_ignored("sub/bc"));
        assert_eq!(rules.to_sorted_vec(), vec![".git", "sub/b"]);
    }
}
