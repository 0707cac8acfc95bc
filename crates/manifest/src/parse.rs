//! Reading manifest files: YAML documents into [`Workload`]s, strictly.
//!
//! Each document is first read as plain YAML (syntax errors carry a line and column), then its
//! `kind` picks the typed shape, which is deserialised with the field path tracked so that a
//! wrong type, a missing field or an unknown key is reported where it is.

use crate::error::{ManifestError, ManifestErrors};
use crate::types::{
    DeploymentDocument, Source, Strategy, Workload, WorkloadDocument, WorkloadKind,
};
use crate::validate;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Reads and validates every document of every file, including checks across files
/// (duplicate workload names, conflicting routes). All problems are reported together.
pub fn load_files<P: AsRef<Path>>(files: &[P]) -> Result<Vec<Workload>, ManifestErrors> {
    let mut workloads = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let file = file.as_ref();
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let (mut w, mut e) = parse_file(file, &text);
                workloads.append(&mut w);
                errors.append(&mut e);
            }
            Err(e) => errors.push(ManifestError::new(
                file,
                None,
                "",
                format!("cannot read the file: {e}"),
            )),
        }
    }
    errors.extend(validate::across(&workloads));
    if errors.is_empty() {
        Ok(workloads)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Parses and validates the documents of one file, including checks across its documents.
/// `file` is used for messages and to resolve relative image paths.
pub fn parse_str(file: &Path, text: &str) -> Result<Vec<Workload>, ManifestErrors> {
    let (workloads, mut errors) = parse_file(file, text);
    errors.extend(validate::across(&workloads));
    if errors.is_empty() {
        Ok(workloads)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Every valid workload of one file, and every problem found in it.
fn parse_file(file: &Path, text: &str) -> (Vec<Workload>, Vec<ManifestError>) {
    let mut workloads = Vec::new();
    let mut errors = Vec::new();
    // Read every document as plain YAML first. The stream cannot be resynchronised after a
    // syntax error (serde_yaml would yield the same error forever), so stop at the first one.
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let failed = matches!(docs.last(), Some(Err(_)));
        if failed {
            break;
        }
        docs.push(serde_yaml::Value::deserialize(doc));
    }
    let several_count = docs.len();
    let several = several_count > 1;
    for (index, doc) in docs.into_iter().enumerate() {
        let doc_label = several.then_some(index);
        let value = match doc {
            Ok(serde_yaml::Value::Null) => continue, // an empty document, e.g. a trailing `---`
            Ok(v) => v,
            Err(e) => {
                errors.push(ManifestError::new(
                    file,
                    doc_label,
                    "",
                    format!("not valid YAML: {e}"),
                ));
                break;
            }
        };
        match parse_document(file, index, several_count, value) {
            Ok(w) => {
                let problems = validate::workload(&w, doc_label);
                if problems.is_empty() {
                    workloads.push(w);
                } else {
                    errors.extend(problems);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (workloads, errors)
}

fn parse_document(
    file: &Path,
    index: usize,
    documents_in_file: usize,
    value: serde_yaml::Value,
) -> Result<Workload, ManifestError> {
    let doc_label = (documents_in_file > 1).then_some(index);
    let err = |path: &str, msg: String| ManifestError::new(file, doc_label, path, msg);
    let serde_yaml::Value::Mapping(map) = &value else {
        return Err(err(
            "",
            "expected a mapping with apiVersion, kind, metadata and spec".into(),
        ));
    };
    let kind = match map.get("kind") {
        None => {
            return Err(err(
                "kind",
                "missing field: expected `Workload` or `WorkloadDeployment`".into(),
            ));
        }
        Some(serde_yaml::Value::String(k)) => k.clone(),
        Some(other) => {
            return Err(err(
                "kind",
                format!(
                    "expected the string `Workload` or `WorkloadDeployment`, found {}",
                    describe(other)
                ),
            ));
        }
    };
    let source = |spec_path| Source {
        file: file.to_path_buf(),
        document: index,
        documents_in_file,
        spec_path,
    };
    // `service` is one mapping; say so plainly when someone lists several.
    let spec_path = if kind == "WorkloadDeployment" {
        "spec.template.spec"
    } else {
        "spec"
    };
    let spec = match kind.as_str() {
        "WorkloadDeployment" => map
            .get("spec")
            .and_then(|s| s.get("template"))
            .and_then(|t| t.get("spec")),
        _ => map.get("spec"),
    };
    if let Some(serde_yaml::Value::Sequence(list)) = spec.and_then(|s| s.get("service")) {
        return Err(err(
            &format!("{spec_path}.service"),
            format!(
                "expected one service (a mapping with `image`), found a list of {}: a workload has at most one service",
                list.len()
            ),
        ));
    }
    let workload = match kind.as_str() {
        "Workload" => {
            let doc: WorkloadDocument = typed(file, doc_label, value)?;
            check_api_version(file, doc_label, &doc.api_version)?;
            Workload {
                name: doc.metadata.name,
                kind: WorkloadKind::Workload,
                replicas: 1,
                labels: doc.metadata.labels,
                strategy: Strategy::default(),
                host_selector: BTreeMap::new(),
                spec: doc.spec,
                source: source("spec"),
            }
        }
        "WorkloadDeployment" => {
            let doc: DeploymentDocument = typed(file, doc_label, value)?;
            check_api_version(file, doc_label, &doc.api_version)?;
            let mut labels = doc.metadata.labels;
            if let Some(meta) = doc.spec.template.metadata {
                labels.extend(meta.labels);
            }
            Workload {
                name: doc.metadata.name,
                kind: WorkloadKind::WorkloadDeployment,
                replicas: doc.spec.replicas,
                labels,
                strategy: doc.spec.strategy,
                host_selector: doc.spec.host_selector,
                spec: doc.spec.template.spec,
                source: source("spec.template.spec"),
            }
        }
        other => {
            return Err(err(
                "kind",
                format!("expected `Workload` or `WorkloadDeployment`, found `{other}`"),
            ));
        }
    };
    Ok(workload)
}

fn check_api_version(file: &Path, doc: Option<usize>, found: &str) -> Result<(), ManifestError> {
    if found == crate::API_VERSION {
        Ok(())
    } else {
        Err(ManifestError::new(
            file,
            doc,
            "apiVersion",
            format!("expected `{}`, found `{found}`", crate::API_VERSION),
        ))
    }
}

/// Deserialises with the field path tracked, turning serde's message into ours.
fn typed<T: serde::de::DeserializeOwned>(
    file: &Path,
    doc: Option<usize>,
    value: serde_yaml::Value,
) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = tidy_serde_message(&e.inner().to_string());
        ManifestError::new(file, doc, path, message)
    })
}

/// serde_yaml appends " at line N column M" to some messages; for values re-read from a
/// parsed tree those positions are meaningless, so drop them, and say "expected" plainly.
fn tidy_serde_message(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    msg.replace("invalid type: ", "wrong type: found ")
}

fn describe(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "null",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}
