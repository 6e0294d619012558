//! A folder of `ModelPolicy` files as one policy (a ConfigMap with a key
//! per team, mounted as a folder). The files are the folder's `*.yaml`,
//! `*.yml` and `*.json` entries whose names do not start with `.` (the
//! kubelet's `..data` link and its timestamped folders do), read in name
//! order through any symlink. Their rules are concatenated in that order, so
//! the first matching rule of the first file wins, as within one file. A
//! rule name is used once in the whole folder, and `spec.allowedRegistries`
//! and `spec.gpu` (which apply to every model) are set in one file at most:
//! either would otherwise depend on the order the files happen to sort in.
//! Each such clash is an error naming both files; a folder with no policy
//! file is an error too, never a policy that trusts nothing by accident.

use std::path::{Path, PathBuf};

use super::error::FolderError;
use super::{Policy, PolicyError, PolicyReason};

impl Policy {
    /// A policy file ([`Policy::from_file`]), or a folder of them
    /// ([`Policy::from_folder`]).
    pub fn from_path(path: &Path) -> Result<Self, PolicyError> {
        if path.is_dir() {
            Self::from_folder(path)
        } else {
            Self::from_file(path)
        }
    }

    /// The policy files of `folder`, in the order their rules apply.
    pub fn files_in(folder: &Path) -> Result<Vec<PathBuf>, PolicyError> {
        let err = |source: std::io::Error| PolicyError {
            path: folder.display().to_string(),
            reason: PolicyReason::Folder(FolderError::List(source)),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(folder).map_err(err)? {
            let name = entry.map_err(err)?.file_name();
            let name = name.to_string_lossy();
            let policy_file = [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if policy_file && !name.starts_with('.') {
                files.push(folder.join(&*name));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Every policy file of `folder` as one policy (the module's rules).
    pub fn from_folder(folder: &Path) -> Result<Self, PolicyError> {
        let files = Self::files_in(folder)?;
        if files.is_empty() {
            return Err(PolicyError {
                path: folder.display().to_string(),
                reason: PolicyReason::Folder(FolderError::Empty),
            });
        }
        let mut names = Vec::new();
        let mut rule_files: Vec<(String, PathBuf)> = Vec::new();
        let mut registries_from: Option<PathBuf> = None;
        let mut gpu_from: Option<PathBuf> = None;
        let mut out = Policy {
            name: String::new(),
            rules: Vec::new(),
            allowed_registries: Vec::new(),
            gpu: None,
        };
        for file in files {
            let clash = |reason: FolderError| PolicyError {
                path: file.display().to_string(),
                reason: PolicyReason::Folder(reason),
            };
            let policy = Self::from_file(&file)?;
            for rule in &policy.rules {
                if let Some((_, first)) = rule_files.iter().find(|(name, _)| *name == rule.name) {
                    return Err(clash(FolderError::DuplicateRule {
                        name: rule.name.clone(),
                        first: first.clone(),
                    }));
                }
                rule_files.push((rule.name.clone(), file.clone()));
            }
            if !policy.allowed_registries.is_empty() {
                set_once("spec.allowedRegistries", &mut registries_from, &file).map_err(clash)?;
                out.allowed_registries = policy.allowed_registries;
            }
            if policy.gpu.is_some() {
                set_once("spec.gpu", &mut gpu_from, &file).map_err(clash)?;
                out.gpu = policy.gpu;
            }
            names.push(policy.name);
            out.rules.extend(policy.rules);
        }
        out.name = names.join("+");
        Ok(out)
    }
}

/// Records that `file` sets `field`, which an earlier file must not have.
fn set_once(
    field: &'static str,
    from: &mut Option<PathBuf>,
    file: &Path,
) -> Result<(), FolderError> {
    if let Some(first) = from {
        return Err(FolderError::SetTwice {
            field,
            first: first.clone(),
        });
    }
    *from = Some(file.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const KEY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/keys/test-signer.pub.pem"
    );

    fn doc(name: &str, rules: &[&str], extra: &str) -> String {
        let rules: String = rules
            .iter()
            .map(|rule| {
                format!(
                    "    - name: {rule}\n      match: {{repositories: [\"r.example/{rule}/*\"]}}\n      authorities: [{{name: k, key: {{path: {KEY}}}}}]\n"
                )
            })
            .collect();
        format!(
            "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata: {{name: {name}}}\nspec:\n{extra}  models:\n{rules}"
        )
    }

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn the_rules_of_every_policy_file_apply_in_file_name_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.yaml", &doc("b", &["two", "three"], ""));
        write(dir.path(), "a.json.yml", &doc("a", &["one"], ""));
        // Not policy files: hidden (as kubelet's `..data`), or another kind.
        write(dir.path(), ".hidden.yaml", "not: [a policy");
        write(dir.path(), "README.md", "not a policy");
        std::fs::create_dir(dir.path().join("..2026_01_01")).unwrap();
        let policy = Policy::from_path(dir.path()).unwrap();
        let rules: Vec<&str> = policy.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(rules, ["one", "two", "three"]);
        assert_eq!(policy.name, "a+b");
        assert_eq!(
            policy.select("x", Some("r.example/three/m")).unwrap().name,
            "three"
        );
    }

    #[test]
    fn a_clash_between_files_is_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        write(dir.path(), "a.yaml", &doc("a", &["one"], ""));
        write(dir.path(), "b.yaml", &doc("b", &["two", "one"], ""));
        let err = Policy::from_path(dir.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "policy {}: rule \"one\" is defined in {} too; give each rule of the folder its own name",
                b.display(),
                a.display()
            )
        );
        let registries = "  allowedRegistries: [r.example]\n";
        write(dir.path(), "a.yaml", &doc("a", &["one"], registries));
        write(dir.path(), "b.yaml", &doc("b", &["two"], registries));
        let err = Policy::from_path(dir.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "policy {}: spec.allowedRegistries is set in {} too; set it in one file of the folder, as it applies to every model",
                b.display(),
                a.display()
            )
        );
        // Set once, it applies to the rules of every file.
        write(dir.path(), "b.yaml", &doc("b", &["two"], ""));
        let policy = Policy::from_path(dir.path()).unwrap();
        assert_eq!(policy.allowed_registries, ["r.example"]);
    }

    #[test]
    fn a_folder_without_a_policy_file_or_with_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "notes.txt", "");
        let err = Policy::from_path(dir.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "policy {}: no policy file (*.yaml, *.yml, *.json) in the folder; a folder that names no rule trusts nothing",
                dir.path().display()
            )
        );
        write(dir.path(), "a.yaml", &doc("a", &["one"], ""));
        write(dir.path(), "b.yaml", "apiVersion: v1\nkind: ConfigMap\n");
        let err = Policy::from_path(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("policy {}: ", dir.path().join("b.yaml").display())),
            "{err}"
        );
    }
}
