//! `hearth apply -f FILE...`: sends each `Workload` document of some manifests to a running
//! host's lifecycle API (`PUT /v1/workloads/{name}`), like `kubectl apply`.
//!
//! Everything that can be checked here is checked before anything is sent: the manifests are
//! parsed and validated exactly as `hearth validate` does, and only `kind: Workload` is taken.
//! Each document then goes as JSON with its relative file paths made absolute against the
//! manifest's directory (the host does not know where the manifest was), labelled with the
//! file (and document number) the host should name in its errors. Deciding what a deploy
//! does is the host's; talking to it is [`crate::admin_client`]'s.

use crate::admin_client::{AdminArgs, AdminClient, AdminError, Body, Response, workload_path};
use crate::{EXIT_FAILED, EXIT_INVALID};
use hearth_manifest::{ImageRef, ManifestError, ManifestErrors, Source, Workload, WorkloadKind};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Manifest files (YAML, one or more `Workload` documents each).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

/// One document, ready to send.
#[derive(Debug, Clone, PartialEq)]
struct PreparedWorkload {
    name: String,
    /// `FILE` or `FILE#N`: what the host names in its messages.
    label: String,
    /// The document as JSON, with absolute file paths.
    json: serde_json::Value,
}

pub fn main(args: &ApplyArgs) -> ExitCode {
    if args.cluster.url.is_some() {
        return apply_to_cluster(args);
    }
    let prepared = match hearth_manifest::load_files(&args.files)
        .and_then(|workloads| single_host_kinds(&workloads).map(|()| workloads))
        .and_then(|workloads| prepare(&workloads))
    {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let client = match args.admin.client_or_usage_error() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut failed = false;
    for workload in &prepared {
        match send(&client, workload) {
            Ok(Ok(result)) => println!("workload/{} {result}", workload.name),
            Ok(Err(message)) => {
                eprintln!("error: workload/{}: {message}", workload.name);
                failed = true;
            }
            // The host cannot be reached, refuses the token or has no lifecycle API: the
            // remaining documents would fail the same way.
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--cluster`: both kinds go to the cluster's store.
fn apply_to_cluster(args: &ApplyArgs) -> ExitCode {
    let workloads = match hearth_manifest::load_files(&args.files) {
        Ok(w) => w,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let prepared = match prepare(&workloads) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let documents = prepared
        .into_iter()
        .zip(workloads)
        .map(|(p, w)| (p.label, w, p.json))
        .collect();
    crate::cluster::apply(documents, &args.cluster)
}

/// A single host runs `Workload`s; a `WorkloadDeployment` (replicas) is for clusters.
fn single_host_kinds(workloads: &[Workload]) -> Result<(), ManifestErrors> {
    let errors: Vec<ManifestError> = workloads
        .iter()
        .filter(|w| w.kind != WorkloadKind::Workload)
        .map(|w| ManifestError {
            file: w.source.file.clone(),
            document: w.source.document_label(),
            path: "kind".into(),
            message: format!(
                "`{:?}` (workload `{}`) cannot be applied to a single host: expected `Workload` (a host runs one copy of each workload; apply a deployment to a cluster with --cluster nats://HOST:4222)",
                w.kind, w.name
            ),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Reads each manifest file once more, as JSON documents, and prepares the document of every
/// workload `load_files` found in it.
fn prepare(workloads: &[Workload]) -> Result<Vec<PreparedWorkload>, ManifestErrors> {
    let mut files: HashMap<&Path, Vec<Result<serde_json::Value, String>>> = HashMap::new();
    let mut prepared = Vec::new();
    let mut errors = Vec::new();
    for w in workloads {
        let file = w.source.file.as_path();
        if !files.contains_key(file) {
            let documents = read_documents(file).map_err(ManifestErrors::from)?;
            files.insert(file, documents);
        }
        let document = files
            .get(file)
            .and_then(|docs| docs.get(w.source.document))
            .cloned();
        match prepare_one(w, document) {
            Ok(p) => prepared.push(p),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(prepared)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn read_documents(file: &Path) -> Result<Vec<Result<serde_json::Value, String>>, ManifestError> {
    let text = std::fs::read_to_string(file).map_err(|e| ManifestError {
        file: file.to_path_buf(),
        document: None,
        path: String::new(),
        message: format!("cannot read the file: {e}"),
    })?;
    Ok(yaml_documents_as_json(&text))
}

/// Each YAML document of `text` as JSON, in order, split the way `hearth_manifest` splits
/// them (so [`Source::document`] indexes this list). A document is read as YAML first, then
/// converted: a syntax error ends the stream (serde_yaml cannot resynchronise after one and
/// would repeat it forever), a document JSON cannot carry does not.
fn yaml_documents_as_json(text: &str) -> Vec<Result<serde_json::Value, String>> {
    let mut documents = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        match serde_yaml::Value::deserialize(doc) {
            Ok(yaml) => documents.push(serde_json::to_value(yaml).map_err(|e| e.to_string())),
            Err(e) => {
                documents.push(Err(e.to_string()));
                break;
            }
        }
    }
    documents
}

fn prepare_one(
    w: &Workload,
    document: Option<Result<serde_json::Value, String>>,
) -> Result<PreparedWorkload, ManifestError> {
    let error = |path: &str, message: String| ManifestError {
        file: w.source.file.clone(),
        document: w.source.document_label(),
        path: path.into(),
        message,
    };
    let mut json = match document {
        Some(Ok(json)) => json,
        Some(Err(why)) => return Err(error("", format!("cannot turn into JSON: {why}"))),
        None => return Err(error("", "the file changed while it was read".into())),
    };
    absolutise(&mut json, w).map_err(|(path, message)| error(&path, message))?;
    Ok(PreparedWorkload {
        name: w.name.clone(),
        label: source_label(&w.source),
        json,
    })
}

/// Rewrites the relative file paths of a `Workload` document (`image` unless `oci://`, and
/// `build.path` when given) to absolute ones, with the manifest crate's own resolution rule
/// ([`ImageRef`], [`hearth_manifest::BuildSpec::dir`]) applied to the manifest's absolute path.
/// `Err` is a field path and what is wrong.
fn absolutise(json: &mut serde_json::Value, w: &Workload) -> Result<(), (String, String)> {
    let file = std::path::absolute(&w.source.file).map_err(|e| {
        (
            String::new(),
            format!("cannot make the manifest's path absolute: {e}"),
        )
    })?;
    let source = Source {
        file,
        ..w.source.clone()
    };
    // `/spec` or `/spec/template/spec`.
    let spec = format!("/{}", w.source.spec_path.replace('.', "/"));
    for (i, c) in w.spec.components.iter().enumerate() {
        if let ImageRef::File(path) = c.image_ref(&source) {
            let field = w.source.field(&format!("components[{i}].image"));
            set_path(json, &format!("{spec}/components/{i}/image"), &path, field)?;
        }
        if let Some(build) = &c.build {
            let field = w.source.field(&format!("components[{i}].build.path"));
            set_given_path(
                json,
                &format!("{spec}/components/{i}/build/path"),
                &build.dir(&source),
                field,
            )?;
        }
    }
    if let Some(service) = &w.spec.service {
        if let ImageRef::File(path) = service.image_ref(&source) {
            set_path(
                json,
                &format!("{spec}/service/image"),
                &path,
                w.source.field("service.image"),
            )?;
        }
        if let Some(build) = &service.build {
            let field = w.source.field("service.build.path");
            set_given_path(
                json,
                &format!("{spec}/service/build/path"),
                &build.dir(&source),
                field,
            )?;
        }
    }
    Ok(())
}

/// [`set_path`] when the document has a value at `pointer`; an absent `build.path` stays absent.
fn set_given_path(
    json: &mut serde_json::Value,
    pointer: &str,
    path: &Path,
    field: String,
) -> Result<(), (String, String)> {
    if json.pointer(pointer).is_some() {
        set_path(json, pointer, path, field)
    } else {
        Ok(())
    }
}

/// Puts `path` at the JSON `pointer` (which exists: the document is the one validated).
fn set_path(
    json: &mut serde_json::Value,
    pointer: &str,
    path: &Path,
    field: String,
) -> Result<(), (String, String)> {
    let Some(text) = path.to_str() else {
        let why = format!(
            "the absolute path `{}` is not UTF-8, which JSON cannot carry",
            path.display()
        );
        return Err((field, why));
    };
    match json.pointer_mut(pointer) {
        Some(slot) => {
            *slot = serde_json::Value::String(text.to_string());
            Ok(())
        }
        None => Err((field, "expected a value here".into())),
    }
}

/// `FILE`, or `FILE#N` (1-based, as `hearth validate` numbers documents) when the file has
/// several documents. Bytes that cannot go in a header value are percent-encoded.
fn source_label(source: &Source) -> String {
    let file = source.file.display().to_string();
    let label = match source.document_label() {
        Some(d) => format!("{file}#{}", d + 1),
        None => file,
    };
    label
        .bytes()
        .map(|b| {
            if b == b' ' || (b.is_ascii_graphic() && b != b'%') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sends one workload. `Ok(Ok(result))` is the word to print, `Ok(Err(text))` the host's
/// refusal of this workload, `Err` a failure that would stop every other one too.
fn send(
    client: &AdminClient,
    workload: &PreparedWorkload,
) -> Result<Result<String, String>, ApplyError> {
    let body = serde_json::to_vec(&workload.json).map_err(ApplyError::Encode)?;
    // The manifest crate has checked the name already.
    let path = workload_path(&workload.name).map_err(ApplyError::Name)?;
    let response = client.put(
        &path,
        &[("X-Hearth-Source", &workload.label)],
        Body {
            content_type: "application/json",
            bytes: &body,
        },
    )?;
    outcome(client.addr(), &response)
}

/// What an answer to `PUT /v1/workloads/{name}` means.
fn outcome(
    addr: std::net::SocketAddr,
    response: &Response,
) -> Result<Result<String, String>, ApplyError> {
    match response.status {
        200 | 201 => {
            let json = response.json().ok();
            let result = json.as_ref().and_then(|j| j["result"].as_str());
            // Without a `result`, the status still says whether the workload is new.
            Ok(Ok(match (result, response.status) {
                (Some(result), _) => result.to_string(),
                (None, 201) => "created".to_string(),
                (None, _) => "configured".to_string(),
            }))
        }
        404 | 405 => Err(ApplyError::NoLifecycleApi {
            addr,
            answer: format!("{} {}", response.status, response.reason),
        }),
        _ => Ok(Err(response.error_text())),
    }
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("{0}")]
    Name(String),
    #[error("cannot encode the document as JSON: {0}")]
    Encode(serde_json::Error),
    #[error(
        "the host at {addr} does not take workloads ({answer}): its admin API predates `hearth apply`"
    )]
    NoLifecycleApi {
        addr: std::net::SocketAddr,
        answer: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses `text` as the manifest `file` and prepares its documents as `hearth apply` does.
    fn prepared(file: &str, text: &str) -> Vec<PreparedWorkload> {
        let workloads = hearth_manifest::parse_str(Path::new(file), text).unwrap();
        let documents = yaml_documents_as_json(text);
        workloads
            .iter()
            .map(|w| prepare_one(w, documents.get(w.source.document).cloned()).unwrap())
            .collect()
    }

    const TWO_DOCUMENTS: &str = "\
apiVersion: hearth.dev/v1alpha1
kind: Workload
metadata:
  name: web
spec:
  components:
    - name: site
      image: build/site.wasm
      http: {path: /}
      limits: {memoryMiB: 128}
      build: {path: site}
    - name: pulled
      image: oci://127.0.0.1:5000/pulled:v1
      http: {host: api.example.com, path: /v1}
---
apiVersion: hearth.dev/v1alpha1
kind: Workload
metadata:
  name: db
spec:
  service:
    image: /opt/wasm/db.wasm
    build: {command: make}
";

    #[test]
    fn each_document_becomes_json_with_relative_images_made_absolute() {
        let docs = prepared("/srv/app/app.yaml", TWO_DOCUMENTS);
        let names: Vec<(&str, &str)> = docs
            .iter()
            .map(|d| (d.name.as_str(), d.label.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("web", "/srv/app/app.yaml#1"),
                ("db", "/srv/app/app.yaml#2")
            ]
        );
        let web = &docs[0].json;
        assert_eq!(web["kind"], "Workload");
        assert_eq!(
            web["spec"]["components"][0]["image"],
            "/srv/app/build/site.wasm"
        );
        assert_eq!(
            web["spec"]["components"][0]["build"]["path"],
            "/srv/app/site"
        );
        // Numbers stay numbers; everything else is sent as written.
        assert_eq!(
            web["spec"]["components"][0]["limits"],
            json!({"memoryMiB": 128})
        );
        assert_eq!(
            web["spec"]["components"][1],
            json!({
                "name": "pulled",
                "image": "oci://127.0.0.1:5000/pulled:v1",
                "http": {"host": "api.example.com", "path": "/v1"}
            })
        );
    }

    #[test]
    fn absolute_images_stay_and_an_absent_build_path_stays_absent() {
        let docs = prepared("/srv/app/app.yaml", TWO_DOCUMENTS);
        assert_eq!(
            docs[1].json["spec"]["service"],
            json!({"image": "/opt/wasm/db.wasm", "build": {"command": "make"}})
        );
    }

    #[test]
    fn a_manifest_named_relative_to_the_working_directory_resolves_from_it() {
        let one = TWO_DOCUMENTS.split("---\n").next().unwrap();
        let cwd = std::env::current_dir().unwrap();
        let bare = prepared("app.yaml", one);
        assert_eq!(bare[0].label, "app.yaml");
        assert_eq!(
            bare[0].json["spec"]["components"][0]["image"],
            cwd.join("build/site.wasm").to_str().unwrap()
        );
        let nested = prepared("deploy/app.yaml", one);
        assert_eq!(
            nested[0].json["spec"]["components"][0]["image"],
            cwd.join("deploy/build/site.wasm").to_str().unwrap()
        );
    }

    #[test]
    fn documents_are_split_like_the_manifest_crate_splits_them() {
        let docs = yaml_documents_as_json("a: 1\n---\n? [1, 2]\n: x\n---\nb: [2]\n");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0], Ok(json!({"a": 1})));
        assert!(
            docs[1]
                .as_ref()
                .unwrap_err()
                .contains("key must be a string"),
            "{docs:?}"
        );
        assert_eq!(docs[2], Ok(json!({"b": [2]})));
        // A syntax error ends the stream instead of repeating forever.
        let docs = yaml_documents_as_json("a: 1\n---\nb: [unclosed\n---\nc: 3\n");
        assert_eq!(docs.len(), 2);
        assert!(docs[1].is_err());
    }

    #[test]
    fn a_deployment_is_refused_naming_the_file_and_document() {
        let text = format!(
            "{TWO_DOCUMENTS}---
apiVersion: hearth.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: many
spec:
  replicas: 3
  template:
    spec:
      components:
        - name: c
          image: c.wasm
"
        );
        let workloads = hearth_manifest::parse_str(Path::new("app.yaml"), &text).unwrap();
        let e = single_host_kinds(&workloads).unwrap_err().to_string();
        assert_eq!(
            e,
            "app.yaml: document 3: kind: `WorkloadDeployment` (workload `many`) cannot be applied to a single host: expected `Workload` (a host runs one copy of each workload; apply a deployment to a cluster with --cluster nats://HOST:4222)"
        );
    }

    #[test]
    fn labels_keep_spaces_and_percent_encode_what_a_header_cannot_carry() {
        let source = Source {
            file: PathBuf::from("my app/caf\u{e9}%.yaml"),
            document: 0,
            documents_in_file: 1,
            spec_path: "spec",
        };
        assert_eq!(source_label(&source), "my app/caf%C3%A9%25.yaml");
    }

    fn answer(status: u16, reason: &str, body: &str) -> Response {
        Response {
            status,
            reason: reason.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_become_the_word_to_print_or_the_hosts_text() {
        let addr: std::net::SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let word = |r: Response| outcome(addr, &r).unwrap();
        assert_eq!(
            word(answer(
                201,
                "Created",
                r#"{"name":"web","result":"created"}"#
            )),
            Ok("created".into())
        );
        assert_eq!(
            word(answer(200, "OK", r#"{"name":"web","result":"unchanged"}"#)),
            Ok("unchanged".into())
        );
        assert_eq!(
            word(answer(
                422,
                "Unprocessable Entity",
                "app.yaml: spec.components[0].image: cannot read\n"
            )),
            Err("app.yaml: spec.components[0].image: cannot read".into())
        );
        let old_host = outcome(addr, &answer(404, "Not Found", "404 Not Found\n")).unwrap_err();
        assert_eq!(
            old_host.to_string(),
            "the host at 127.0.0.1:9090 does not take workloads (404 Not Found): its admin API predates `hearth apply`"
        );
    }
}
