//! `hearth new`: start a project from a template compiled into the binary.
//!
//! Owns the template table (the files under `crates/cli/templates/`, pulled in with
//! `include_str!`), the `{{name}}`/`{{crate_name}}` substitution and writing a project into an
//! empty directory. Building the result is `hearth build`'s job (see `build.rs`).

use crate::{EXIT_FAILED, EXIT_INVALID};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One file of a template: where it goes in the project, and its text with placeholders.
struct File {
    path: &'static str,
    text: &'static str,
}

/// A project template.
struct Template {
    name: &'static str,
    summary: &'static str,
    /// What to do after `hearth new`, shown to the user; `{dir}` is the project directory.
    next: &'static str,
    files: &'static [File],
}

macro_rules! template_file {
    ($path:literal => $source:literal) => {
        File {
            path: $path,
            text: include_str!(concat!("../templates/", $source)),
        }
    };
}

const GITIGNORE: File = template_file!(".gitignore" => "common-gitignore");

const TEMPLATES: &[Template] = &[
    Template {
        name: "http",
        summary: "an HTTP component (wstd), a fresh instance per request",
        next: "  hearth run workload.yaml\n  curl http://127.0.0.1:8080/hello/you",
        files: &[
            GITIGNORE,
            template_file!("Cargo.toml" => "http/Cargo.toml.tmpl"),
            template_file!("README.md" => "http/README.md.tmpl"),
            template_file!("workload.yaml" => "http/workload.yaml.tmpl"),
            template_file!("http/Cargo.toml" => "http/http/Cargo.toml.tmpl"),
            template_file!("http/src/lib.rs" => "http/http/src/lib.rs"),
        ],
    },
    Template {
        name: "service",
        summary: "a TCP service (wstd) on 127.0.0.1:7070, published on host port 17070",
        next: "  hearth run workload.yaml\n  nc 127.0.0.1 17070",
        files: &[
            GITIGNORE,
            template_file!("Cargo.toml" => "service/Cargo.toml.tmpl"),
            template_file!("README.md" => "service/README.md.tmpl"),
            template_file!("workload.yaml" => "service/workload.yaml.tmpl"),
            template_file!("service/Cargo.toml" => "service/service/Cargo.toml.tmpl"),
            template_file!("service/src/main.rs" => "service/service/src/main.rs"),
            template_file!("service/src/lines.rs" => "service/service/src/lines.rs"),
        ],
    },
    Template {
        name: "cron",
        summary: "a service calling a job component over WIT every second (wit-bindgen, tokio)",
        next: "  hearth run workload.yaml    # the job's line appears in the log every second",
        files: &[
            GITIGNORE,
            template_file!("Cargo.toml" => "cron/Cargo.toml.tmpl"),
            template_file!("README.md" => "cron/README.md.tmpl"),
            template_file!("workload.yaml" => "cron/workload.yaml.tmpl"),
            template_file!("wit/world.wit" => "cron/wit/world.wit"),
            template_file!("service/Cargo.toml" => "cron/service/Cargo.toml.tmpl"),
            template_file!("service/src/main.rs" => "cron/service/src/main.rs"),
            template_file!("service/src/schedule.rs" => "cron/service/src/schedule.rs"),
            template_file!("job/Cargo.toml" => "cron/job/Cargo.toml.tmpl"),
            template_file!("job/src/lib.rs" => "cron/job/src/lib.rs"),
        ],
    },
    Template {
        name: "cache",
        summary: "an in-memory key-value service on 127.0.0.1:6380 and an HTTP component using it",
        next: "  hearth run workload.yaml\n  curl http://127.0.0.1:8080/set/greeting/hello\n  curl http://127.0.0.1:8080/get/greeting",
        files: &[
            GITIGNORE,
            template_file!("Cargo.toml" => "cache/Cargo.toml.tmpl"),
            template_file!("README.md" => "cache/README.md.tmpl"),
            template_file!("workload.yaml" => "cache/workload.yaml.tmpl"),
            template_file!("service/Cargo.toml" => "cache/service/Cargo.toml.tmpl"),
            template_file!("service/src/main.rs" => "cache/service/src/main.rs"),
            template_file!("service/src/store.rs" => "cache/service/src/store.rs"),
            template_file!("http/Cargo.toml" => "cache/http/Cargo.toml.tmpl"),
            template_file!("http/src/lib.rs" => "cache/http/src/lib.rs"),
        ],
    },
];

/// `hearth new --list`.
pub fn list() -> ExitCode {
    let width = TEMPLATES.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in TEMPLATES {
        println!("{:width$}  {}", t.name, t.summary);
    }
    ExitCode::SUCCESS
}

/// `hearth new TEMPLATE NAME [--dir PATH]`.
pub fn main(template: &str, name: &str, dir: Option<&Path>) -> ExitCode {
    let Some(t) = TEMPLATES.iter().find(|t| t.name == template) else {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        eprintln!(
            "error: unknown template `{template}`; the templates are: {} (see `hearth new --list`)",
            names.join(", ")
        );
        return ExitCode::from(EXIT_INVALID);
    };
    if let Err(why) = hearth_manifest::dns_label(name) {
        eprintln!("error: `{name}` cannot name a workload: {why}");
        return ExitCode::from(EXIT_INVALID);
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    match occupied(&dir) {
        Ok(None) => {}
        Ok(Some(why)) => {
            eprintln!(
                "error: {} {why}; hearth new only writes into a new or empty directory (pick another NAME or --dir)",
                dir.display()
            );
            return ExitCode::from(EXIT_INVALID);
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    if let Err(e) = write(t, name, &dir) {
        eprintln!("error: {e:#}");
        return ExitCode::from(EXIT_FAILED);
    }
    println!(
        "created {} project `{name}` in {}\n\nnext:\n  cd {}\n  hearth build\n  cargo test\n{}",
        t.name,
        dir.display(),
        dir.display(),
        t.next
    );
    ExitCode::SUCCESS
}

/// Why `dir` cannot take a project (`None`: it does not exist or is an empty directory).
fn occupied(dir: &Path) -> anyhow::Result<Option<&'static str>> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot look at {}", dir.display())),
        Ok(meta) if !meta.is_dir() => Ok(Some("exists and is not a directory")),
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
            Ok(entries
                .next()
                .is_some()
                .then_some("exists and is not empty"))
        }
    }
}

/// Writes every file of `t` under `dir`, with the placeholders filled in.
fn write(t: &Template, name: &str, dir: &Path) -> anyhow::Result<()> {
    let crate_name = crate_name(name);
    for file in t.files {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let text = file
            .text
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The Rust spelling of a workload name: `-` becomes `_`, and a leading digit (which cargo
/// refuses in package names) gets a `_` in front.
fn crate_name(name: &str) -> String {
    let name = name.replace('-', "_");
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{name}")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_are_valid_rust() {
        assert_eq!(crate_name("my-app"), "my_app");
        assert_eq!(crate_name("9lives"), "_9lives");
    }

    #[test]
    fn every_template_has_a_manifest_a_readme_and_no_stray_placeholders() {
        for t in TEMPLATES {
            let paths: Vec<&str> = t.files.iter().map(|f| f.path).collect();
            for needed in ["workload.yaml", "README.md", "Cargo.toml", ".gitignore"] {
                assert!(paths.contains(&needed), "{} lacks {needed}", t.name);
            }
            for f in t.files {
                let text = f
                    .text
                    .replace("{{name}}", "x")
                    .replace("{{crate_name}}", "x");
                assert!(
                    !text.contains("{{"),
                    "{}: {} has a placeholder left",
                    t.name,
                    f.path
                );
            }
        }
    }
}
