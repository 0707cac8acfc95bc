//! The identity of one part of a workload ([`Part`]: a component by index, or the service),
//! and where each part's bytes are once fetched ([`LocalImages`]).
//!
//! Every crate names a part through [`Part`] and formats its field paths through
//! [`Workload::field_of`], so `spec.components[2].image` is spelled in one place.

use crate::error::ManifestError;
use crate::types::{ImageRef, Workload};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// One part of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// `spec.components[i]`.
    Component(usize),
    /// `spec.service`.
    Service,
}

impl fmt::Display for Part {
    /// The part's field prefix under the workload spec: `components[2]` or `service`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Component(i) => write!(f, "components[{i}]"),
            Part::Service => f.write_str("service"),
        }
    }
}

impl Workload {
    /// Every part, components in manifest order, then the service.
    pub fn parts(&self) -> Vec<Part> {
        let mut parts: Vec<Part> = (0..self.spec.components.len())
            .map(Part::Component)
            .collect();
        if self.spec.service.is_some() {
            parts.push(Part::Service);
        }
        parts
    }

    /// The full field path of `rest` under `part`: `spec.components[2].image`.
    pub fn field_of(&self, part: Part, rest: &str) -> String {
        self.source.field(&format!("{part}.{rest}"))
    }

    /// The part's name: the component's `name`, or `service`.
    pub fn part_name(&self, part: Part) -> &str {
        match part {
            Part::Component(i) => self.spec.components.get(i).map_or("?", |c| c.name.as_str()),
            Part::Service => "service",
        }
    }

    /// Where the part's bytes come from, if the part exists.
    pub fn image_of(&self, part: Part) -> Option<ImageRef> {
        match part {
            Part::Component(i) => self
                .spec
                .components
                .get(i)
                .map(|c| c.image_ref(&self.source)),
            Part::Service => self
                .spec
                .service
                .as_ref()
                .map(|s| s.image_ref(&self.source)),
        }
    }

    /// An error at `path` (a full field path, e.g. from [`Workload::field_of`]) of this
    /// workload's document.
    pub fn error_at(&self, path: String, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.source.file.clone(),
            document: self.source.document_label(),
            path,
            message: message.into(),
        }
    }

    /// The part's `allowedHosts` entries.
    pub fn allowed_hosts_of(&self, part: Part) -> &[String] {
        match part {
            Part::Component(i) => self
                .spec
                .components
                .get(i)
                .map_or(&[], |c| c.allowed_hosts.as_slice()),
            Part::Service => self
                .spec
                .service
                .as_ref()
                .map_or(&[], |s| s.allowed_hosts.as_slice()),
        }
    }
}

/// One part's component file on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// The file to read.
    pub path: PathBuf,
    /// How messages name it: the path, or the `oci://` reference.
    pub label: String,
}

/// The local file of each part of a workload: what fetching images produces and what
/// planning reads.
#[derive(Debug, Clone, Default)]
pub struct LocalImages {
    parts: HashMap<Part, LocalImage>,
}

impl LocalImages {
    /// The file of `part`, if known.
    pub fn get(&self, part: Part) -> Option<&LocalImage> {
        self.parts.get(&part)
    }

    /// Records the file of `part`.
    pub fn insert(&mut self, part: Part, image: LocalImage) {
        self.parts.insert(part, image);
    }

    /// Every file image of `workload` as it is, without fetching anything: enough for
    /// workloads that name no `oci://` image.
    pub fn files_of(workload: &Workload) -> Self {
        let mut images = Self::default();
        for part in workload.parts() {
            if let Some(ImageRef::File(path)) = workload.image_of(part) {
                images.insert(part, LocalImage::file(path));
            }
        }
        images
    }
}

impl LocalImage {
    /// A file used as it is, named by its path.
    pub fn file(path: PathBuf) -> Self {
        Self {
            label: path.display().to_string(),
            path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_their_fields() {
        let text = "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata: { name: w }\nspec:\n  components:\n    - { name: a, image: a.wasm }\n    - { name: b, image: oci://127.0.0.1:5000/b:v1 }\n  service: { image: /abs/s.wasm }\n";
        let w = crate::parse_str(std::path::Path::new("/m/w.yaml"), text)
            .unwrap()
            .remove(0);
        assert_eq!(
            w.parts(),
            vec![Part::Component(0), Part::Component(1), Part::Service]
        );
        assert_eq!(
            w.field_of(Part::Component(1), "image"),
            "spec.components[1].image"
        );
        assert_eq!(w.field_of(Part::Service, "ports"), "spec.service.ports");
        assert_eq!(w.part_name(Part::Component(1)), "b");
        let files = LocalImages::files_of(&w);
        assert_eq!(
            files.get(Part::Component(0)).unwrap().path,
            PathBuf::from("/m/a.wasm")
        );
        assert!(files.get(Part::Component(1)).is_none());
        assert_eq!(
            files.get(Part::Service).unwrap().path,
            PathBuf::from("/abs/s.wasm")
        );
    }
}
