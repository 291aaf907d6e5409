//! Where `verify` reads an image from: a registry or an OCI layout directory, one interface.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::material::{ImageMaterial, OciError, RegistryOptions};
use super::registry::Registry;

/// Where `verify` reads an image from: a registry or a layout directory.
pub enum OciSource {
    Registry(Box<Registry>),
    Layout { dir: PathBuf },
}

impl OciSource {
    pub fn registry(o: &RegistryOptions) -> Result<Self, OciError> {
        Ok(OciSource::Registry(Box::new(Registry::new(o.clone(), 1, Duration::from_secs(60))?)))
    }

    pub fn layout(dir: &Path) -> Self {
        OciSource::Layout { dir: dir.to_path_buf() }
    }

    /// Fetch an image (by tag or digest; for layouts, `reference` may be empty) and its material.
    pub async fn image_material(&self, reference: &str) -> Result<ImageMaterial, OciError> {
        match self {
            OciSource::Registry(r) => r.image_material(reference).await,
            OciSource::Layout { dir } => super::layout::layout_material(dir, reference),
        }
    }
}
