//! Manifest errors: each one names the file, the field path and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a manifest file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{}", file.display(), location(*document, path), message)]
pub struct ManifestError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Which YAML document of the file (0-based), when the file has several.
    pub document: Option<usize>,
    /// The field path, e.g. `spec.components[1].http.path`; empty for the document itself.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

fn location(document: Option<usize>, path: &str) -> String {
    match (document, path.is_empty()) {
        (Some(d), true) => format!("document {}: ", d + 1),
        (Some(d), false) => format!("document {}: {path}: ", d + 1),
        (None, true) => String::new(),
        (None, false) => format!("{path}: "),
    }
}

impl ManifestError {
    pub(crate) fn new(
        file: &Path,
        document: Option<usize>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_path_buf(),
            document,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in a set of manifests; validation reports them all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

impl From<ManifestError> for ManifestErrors {
    fn from(e: ManifestError) -> Self {
        Self(vec![e])
    }
}
