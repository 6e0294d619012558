//! Paths inside a model: which ones are left out, and where a path given on
//! the command line lies relative to the model root.

use std::path::{Path, PathBuf};

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

/// `path`'s location relative to the model root when it lies inside the model
/// (after resolving both), e.g. a signature kept next to the weights: it is
/// never part of what it signs. `path` itself need not exist yet.
pub fn relative_inside(model: &Path, path: &Path) -> Option<String> {
    let model = std::fs::canonicalize(model).ok()?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let full: PathBuf = std::fs::canonicalize(parent).ok()?.join(path.file_name()?);
    let rel = full.strip_prefix(&model).ok()?;
    rel.to_str().map(str::to_string).filter(|s| !s.is_empty())
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
