//! Which model files an OCI manifest carries, and where each goes: the
//! layouts ModelPack, KitOps, ORAS and Docker Model Runner write, detected
//! from `artifactType`, `config.mediaType` and the layers' media types.
//!
//! Every path comes from an annotation the registry served, so it is checked
//! like a manifest path (relative, no `..`, no empty or `.` component) before
//! it is used, and no two layers may claim the same path.

use std::collections::HashSet;

use serde::Deserialize;

use crate::model::Digest;
use crate::oms::manifest::validate_path;

/// The layouts modelgate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// CNCF ModelPack (`application/vnd.cncf.model.*`).
    ModelPack,
    /// The older ModelPack names (`application/vnd.cnai.model.*`).
    ModelPackCnai,
    /// KitOps ModelKit (`application/vnd.kitops.modelkit.*`).
    KitOps,
    /// Docker Model Runner (`application/vnd.docker.ai.*`).
    DockerModelRunner,
    /// Any other artifact whose layers are files named by
    /// `org.opencontainers.image.title` (what `oras push` writes).
    Oras,
    /// A plain container image carrying the model in a folder (`--subpath`):
    /// KServe modelcars and `olot` images keep it under `/models`.
    Image,
}

impl Layout {
    /// The layout's name in logs and measurements.
    pub fn name(self) -> &'static str {
        match self {
            Self::ModelPack => "modelpack",
            Self::ModelPackCnai => "modelpack-cnai",
            Self::KitOps => "kitops",
            Self::DockerModelRunner => "docker-model-runner",
            Self::Oras => "oras",
            Self::Image => "image",
        }
    }
}

/// How a layer becomes files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unpack {
    /// The layer is one file, stored at this model-relative path: its OCI
    /// digest is the file's SHA-256.
    Raw(String),
    /// The layer is a tar archive (possibly compressed) of files, unpacked
    /// below this model-relative folder (empty: the model root).
    Tar {
        /// Where the archive's entries go.
        under: String,
        /// Its compression.
        compression: Compression,
        /// Every entry must lie in this folder (an ORAS folder layer holds
        /// its folder by name); `None`: no such constraint.
        within: Option<String>,
        /// Only the entries below this folder are the model, unpacked
        /// relative to it; every other entry is skipped unread (a container
        /// image's files outside its model folder, `--subpath`).
        select: Option<String>,
    },
}

/// A tar layer's compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// One layer of the model, as the manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelLayer {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes, as the manifest says.
    pub size: u64,
    /// The layer's media type.
    pub media_type: String,
    /// What it becomes on disk.
    pub unpack: Unpack,
}

/// The model an image manifest describes.
#[derive(Clone, Debug)]
pub struct ModelArtifact {
    /// Which layout it is.
    pub layout: Layout,
    /// The config blob's digest (`sha256:<hex>`), from the checked manifest.
    pub config: String,
    /// Its layers, in manifest order.
    pub layers: Vec<ModelLayer>,
}

/// Why a manifest is not a model modelgate can read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LayoutError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

const TITLE: &str = "org.opencontainers.image.title";
const CNCF_PATH: &str = "org.cncf.model.filepath";
const CNAI_PATH: &str = "org.cnai.model.filepath";
const ORAS_UNPACK: &str = "io.deis.oras.content.unpack";
/// OCI image manifest media type.
pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Image layer media types (OCI and Docker), whose content is a tar archive
/// of the image's file system.
const IMAGE_LAYERS: &[(&str, Compression)] = &[
    ("application/vnd.oci.image.layer.v1.tar", Compression::None),
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Gzip,
    ),
    (
        "application/vnd.oci.image.layer.v1.tar+zstd",
        Compression::Zstd,
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        Compression::Gzip,
    ),
];
/// Container image config media types.
const IMAGE_CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The model folder inside a container image, as `--subpath` gives it
/// (`/models` or `models`): a checked relative path.
pub fn subpath(given: &str) -> Result<String, LayoutError> {
    let trimmed = given.trim_start_matches('/').trim_end_matches('/');
    validate_path(trimmed).map_err(|e| {
        LayoutError(format!(
            "--subpath {given:?} is not a folder inside the image: {e}"
        ))
    })?;
    Ok(trimmed.to_string())
}

/// Reads an image manifest's bytes (already checked against their digest)
/// and says which files it carries. With `subpath`, the manifest must be a
/// container image and the model is that folder in its file system.
pub fn read_manifest(bytes: &[u8], subpath: Option<&str>) -> Result<ModelArtifact, LayoutError> {
    let doc: ManifestDoc = serde_json::from_slice(bytes)
        .map_err(|e| LayoutError(format!("the manifest is not an OCI image manifest: {e}")))?;
    if let Some(mt) = &doc.media_type
        && mt != IMAGE_MANIFEST
        && mt != "application/vnd.docker.distribution.manifest.v2+json"
    {
        return Err(LayoutError(format!(
            "the manifest's media type is {mt}, not an image manifest"
        )));
    }
    let layout = match subpath {
        Some(_) => Layout::Image,
        None if IMAGE_CONFIGS.contains(&doc.config.media_type.as_str()) => {
            return Err(LayoutError(format!(
                "the manifest is a container image ({}), not a model artifact: name the folder that holds the model with --subpath (KServe modelcars and olot images use /models)",
                doc.config.media_type
            )));
        }
        None => detect(&doc),
    };
    let mut layers = Vec::with_capacity(doc.layers.len());
    for layer in &doc.layers {
        if !is_sha256_digest(&layer.digest) {
            return Err(LayoutError(format!(
                "layer digest {:?} is not sha256:<64 hex digits>",
                layer.digest
            )));
        }
        let unpack = match subpath {
            Some(folder) => image_layer(layer, folder)?,
            None => unpack_of(layout, layer)?,
        };
        layers.push(ModelLayer {
            digest: layer.digest.clone(),
            size: layer.size,
            media_type: layer.media_type.clone(),
            unpack,
        });
    }
    if layers.is_empty() {
        return Err(LayoutError(
            "the manifest lists no layers: there is no model in it".into(),
        ));
    }
    let mut raw_paths = HashSet::new();
    for layer in &layers {
        if let Unpack::Raw(path) = &layer.unpack
            && !raw_paths.insert(path.as_str())
        {
            return Err(LayoutError(format!(
                "two layers claim the file {path:?}; a model file has one layer"
            )));
        }
    }
    Ok(ModelArtifact {
        layout,
        config: doc.config.digest.clone(),
        layers,
    })
}

/// `sha256:` and 64 lowercase hex digits: a [`Digest`] in the one form it
/// prints (OCI digests are case-sensitive; an uppercase one is refused).
pub fn is_sha256_digest(digest: &str) -> bool {
    Digest::parse(digest).is_some_and(|d| d.to_string() == digest)
}

fn detect(doc: &ManifestDoc) -> Layout {
    let artifact = doc.artifact_type.as_deref().unwrap_or_default();
    let config = doc.config.media_type.as_str();
    let any_layer = |prefix: &str| doc.layers.iter().any(|l| l.media_type.starts_with(prefix));
    if artifact.starts_with("application/vnd.cncf.model.")
        || config.starts_with("application/vnd.cncf.model.")
        || any_layer("application/vnd.cncf.model.")
    {
        Layout::ModelPack
    } else if artifact.starts_with("application/vnd.cnai.model.")
        || config.starts_with("application/vnd.cnai.model.")
        || any_layer("application/vnd.cnai.model.")
    {
        Layout::ModelPackCnai
    } else if config.starts_with("application/vnd.kitops.modelkit.") {
        Layout::KitOps
    } else if config.starts_with("application/vnd.docker.ai.")
        || any_layer("application/vnd.docker.ai.")
    {
        Layout::DockerModelRunner
    } else {
        Layout::Oras
    }
}

fn unpack_of(layout: Layout, layer: &Descriptor) -> Result<Unpack, LayoutError> {
    let mt = layer.media_type.as_str();
    let named = |key: &str| -> Result<String, LayoutError> {
        let path = layer.annotations.get(key).ok_or_else(|| {
            LayoutError(format!(
                "layer {} ({mt}) has no {key} annotation, so it names no file",
                layer.digest
            ))
        })?;
        checked_path(path, &layer.digest)
    };
    let tar = |under: String, compression| {
        Ok(Unpack::Tar {
            under,
            compression,
            within: None,
            select: None,
        })
    };
    match layout {
        Layout::ModelPack | Layout::ModelPackCnai => {
            let (prefix, key) = if layout == Layout::ModelPack {
                ("application/vnd.cncf.model.", CNCF_PATH)
            } else {
                ("application/vnd.cnai.model.", CNAI_PATH)
            };
            let kind = mt.strip_prefix(prefix).ok_or_else(|| {
                LayoutError(format!(
                    "layer {} has media type {mt}, not a {} layer",
                    layer.digest,
                    layout.name()
                ))
            })?;
            let format = ["weight.config", "weight", "doc", "code", "dataset"]
                .iter()
                .find_map(|k| kind.strip_prefix(k).and_then(|r| r.strip_prefix(".v1.")))
                .ok_or_else(|| {
                    LayoutError(format!(
                        "layer {}: unknown {} layer type {mt}",
                        layer.digest,
                        layout.name()
                    ))
                })?;
            let path = layer
                .annotations
                .get(key)
                .or_else(|| layer.annotations.get(TITLE));
            match format {
                "raw" => named(if layer.annotations.contains_key(key) {
                    key
                } else {
                    TITLE
                })
                .map(Unpack::Raw),
                "tar" => tar(folder(path, &layer.digest)?, Compression::None),
                "tar+gzip" => tar(folder(path, &layer.digest)?, Compression::Gzip),
                "tar+zstd" => tar(folder(path, &layer.digest)?, Compression::Zstd),
                other => Err(LayoutError(format!(
                    "layer {}: unknown {} layer format {other:?}",
                    layer.digest,
                    layout.name()
                ))),
            }
        }
        Layout::KitOps => {
            let kind = mt
                .strip_prefix("application/vnd.kitops.modelkit.")
                .unwrap_or_default();
            let is_part = ["model", "modelpart", "dataset", "code", "docs"]
                .iter()
                .any(|k| kind.starts_with(&format!("{k}.v1.")));
            if !is_part {
                return Err(LayoutError(format!(
                    "layer {}: unknown KitOps layer type {mt}",
                    layer.digest
                )));
            }
            if mt.ends_with(".tar+gzip") {
                tar(String::new(), Compression::Gzip)
            } else if mt.ends_with(".tar") {
                tar(String::new(), Compression::None)
            } else {
                Err(LayoutError(format!(
                    "layer {}: KitOps layer {mt} is neither tar nor tar+gzip",
                    layer.digest
                )))
            }
        }
        Layout::DockerModelRunner | Layout::Oras => {
            // A folder: the oras CLI marks it with the unpack annotation,
            // oras-py only by the media type; both archive the folder by
            // its name, so the entries must lie below the title.
            let annotated = layer.annotations.get(ORAS_UNPACK).map(String::as_str);
            let folder = annotated == Some("true")
                || (annotated.is_none() && mt == "application/vnd.oci.image.layer.v1.tar+gzip");
            if layout == Layout::Oras && folder {
                let title = named(TITLE)?;
                let compression = if mt.ends_with("gzip") {
                    Compression::Gzip
                } else if mt.ends_with("zstd") {
                    Compression::Zstd
                } else {
                    Compression::None
                };
                return Ok(Unpack::Tar {
                    under: String::new(),
                    compression,
                    within: Some(title),
                    select: None,
                });
            }
            named(TITLE).map(Unpack::Raw)
        }
        Layout::Image => Err(LayoutError(
            "a container image is read only with --subpath".into(),
        )),
    }
}

/// A container image layer, of which only the entries below `folder` are
/// the model.
fn image_layer(layer: &Descriptor, folder: &str) -> Result<Unpack, LayoutError> {
    let compression = IMAGE_LAYERS
        .iter()
        .find(|(mt, _)| *mt == layer.media_type)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            LayoutError(format!(
                "layer {} has media type {}, not a container image layer; --subpath reads container images only",
                layer.digest, layer.media_type
            ))
        })?;
    Ok(Unpack::Tar {
        under: String::new(),
        compression,
        within: None,
        select: Some(folder.to_string()),
    })
}

/// The folder a ModelPack tar layer is unpacked into: its annotated path
/// when it names one, else the model root.
fn folder(path: Option<&String>, digest: &str) -> Result<String, LayoutError> {
    match path {
        None => Ok(String::new()),
        Some(p) if p.is_empty() || p == "." || p == "./" => Ok(String::new()),
        Some(p) => checked_path(p.trim_end_matches('/'), digest),
    }
}

fn checked_path(path: &str, digest: &str) -> Result<String, LayoutError> {
    let trimmed = path.strip_prefix("./").unwrap_or(path);
    validate_path(trimmed)
        .map_err(|e| LayoutError(format!("layer {digest}: {e}")))
        .map(|()| trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(
        config: &str,
        artifact: Option<&str>,
        layers: &[(&str, &[(&str, &str)])],
    ) -> Vec<u8> {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .enumerate()
            .map(|(i, (mt, ann))| {
                let annotations: serde_json::Map<String, serde_json::Value> = ann
                    .iter()
                    .map(|(k, v)| (k.to_string(), (*v).into()))
                    .collect();
                serde_json::json!({
                    "mediaType": mt,
                    "digest": format!("sha256:{:064x}", i + 1),
                    "size": 10,
                    "annotations": annotations,
                })
            })
            .collect();
        let mut doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "config": {"mediaType": config, "digest": format!("sha256:{:064x}", 0), "size": 2},
            "layers": layers,
        });
        if let Some(a) = artifact {
            doc["artifactType"] = a.into();
        }
        serde_json::to_vec(&doc).unwrap()
    }

    fn read(bytes: &[u8]) -> Result<ModelArtifact, LayoutError> {
        read_manifest(bytes, None)
    }

    #[test]
    fn container_images_need_a_subpath_and_give_only_that_folder() {
        let image = manifest(
            "application/vnd.oci.image.config.v1+json",
            None,
            &[("application/vnd.oci.image.layer.v1.tar+gzip", &[])],
        );
        let err = read(&image).unwrap_err();
        assert!(err.0.contains("--subpath"), "{err}");
        let read = read_manifest(&image, Some("models")).unwrap();
        assert_eq!(read.layout, Layout::Image);
        assert_eq!(
            read.layers[0].unpack,
            Unpack::Tar {
                under: String::new(),
                compression: Compression::Gzip,
                within: None,
                select: Some("models".into()),
            }
        );
        let artifact = manifest(
            "application/vnd.cncf.model.config.v1+json",
            None,
            &[("application/vnd.cncf.model.weight.v1.raw", &[])],
        );
        let err = read_manifest(&artifact, Some("models")).unwrap_err();
        assert!(err.0.contains("not a container image layer"), "{err}");
        assert_eq!(subpath("/models/").unwrap(), "models");
        assert!(subpath("/../etc").is_err());
        assert!(subpath("/").is_err());
    }

    #[test]
    fn each_layout_is_detected_and_its_paths_read() {
        let mp = read(&manifest(
            "application/vnd.cncf.model.config.v1+json",
            Some("application/vnd.cncf.model.manifest.v1+json"),
            &[
                (
                    "application/vnd.cncf.model.weight.v1.raw",
                    &[(CNCF_PATH, "model.safetensors")],
                ),
                (
                    "application/vnd.cncf.model.weight.config.v1.raw",
                    &[(CNCF_PATH, "config.json")],
                ),
                (
                    "application/vnd.cncf.model.doc.v1.tar+gzip",
                    &[(CNCF_PATH, "docs")],
                ),
            ],
        ))
        .unwrap();
        assert_eq!(mp.layout, Layout::ModelPack);
        assert_eq!(mp.layers[0].unpack, Unpack::Raw("model.safetensors".into()));
        assert_eq!(
            mp.layers[2].unpack,
            Unpack::Tar {
                under: "docs".into(),
                compression: Compression::Gzip,
                within: None,
                select: None,
            }
        );
        let cnai = read(&manifest(
            "application/vnd.cnai.model.config.v1+json",
            None,
            &[(
                "application/vnd.cnai.model.weight.v1.raw",
                &[(CNAI_PATH, "w.bin")],
            )],
        ))
        .unwrap();
        assert_eq!(cnai.layout, Layout::ModelPackCnai);
        let oras = read(&manifest(
            "application/vnd.unknown.config.v1+json",
            None,
            &[
                (
                    "application/vnd.oci.image.layer.v1.tar",
                    &[(TITLE, "a.txt")],
                ),
                (
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    &[(TITLE, "folder"), (ORAS_UNPACK, "true")],
                ),
            ],
        ))
        .unwrap();
        assert_eq!(oras.layout, Layout::Oras);
        assert_eq!(oras.layers[0].unpack, Unpack::Raw("a.txt".into()));
        assert_eq!(
            oras.layers[1].unpack,
            Unpack::Tar {
                under: String::new(),
                compression: Compression::Gzip,
                within: Some("folder".into()),
                select: None,
            }
        );
        let kit = read(&manifest(
            "application/vnd.kitops.modelkit.config.v1+json",
            None,
            &[("application/vnd.kitops.modelkit.model.v1.tar+gzip", &[])],
        ))
        .unwrap();
        assert_eq!(kit.layout, Layout::KitOps);
        let docker = read(&manifest(
            "application/vnd.docker.ai.model.config.v0.1+json",
            None,
            &[(
                "application/vnd.docker.ai.gguf.v3",
                &[(TITLE, "model.gguf")],
            )],
        ))
        .unwrap();
        assert_eq!(docker.layout, Layout::DockerModelRunner);
    }

    #[test]
    fn hostile_or_ambiguous_paths_are_refused() {
        for (ann, why) in [
            ("../etc/passwd", "unsafe path"),
            ("/abs", "unsafe path"),
            ("a//b", "unsafe path"),
        ] {
            let err = read(&manifest(
                "application/vnd.unknown.config.v1+json",
                None,
                &[("application/vnd.oci.image.layer.v1.tar", &[(TITLE, ann)])],
            ))
            .unwrap_err();
            assert!(err.0.contains(why), "{ann}: {err}");
        }
        let err = read(&manifest(
            "application/vnd.unknown.config.v1+json",
            None,
            &[
                ("application/vnd.oci.image.layer.v1.tar", &[(TITLE, "a")]),
                ("application/vnd.oci.image.layer.v1.tar", &[(TITLE, "./a")]),
            ],
        ))
        .unwrap_err();
        assert!(err.0.contains("two layers claim the file \"a\""), "{err}");
        let err = read(&manifest(
            "application/vnd.unknown.config.v1+json",
            None,
            &[("application/vnd.oci.image.layer.v1.tar", &[])],
        ))
        .unwrap_err();
        assert!(
            err.0
                .contains("has no org.opencontainers.image.title annotation"),
            "{err}"
        );
        let err = read(&manifest(
            "application/vnd.unknown.config.v1+json",
            None,
            &[],
        ))
        .unwrap_err();
        assert!(err.0.contains("lists no layers"), "{err}");
    }
}
