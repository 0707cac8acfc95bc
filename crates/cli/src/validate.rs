//! `hearth validate`: parse and check manifests and their component files.

use crate::EXIT_INVALID;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn main(manifests: &[PathBuf]) -> ExitCode {
    let workloads = match hearth_manifest::load_files(manifests) {
        Ok(w) => w,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let mut failed = false;
    for w in &workloads {
        if let Err(errors) = hearth_runtime::check_files(w) {
            for e in errors {
                eprintln!("{e}");
            }
            failed = true;
        }
    }
    if failed {
        return ExitCode::from(EXIT_INVALID);
    }
    for w in &workloads {
        let routes = w
            .spec
            .components
            .iter()
            .filter(|c| c.http.is_some())
            .count();
        println!(
            "ok: workload `{}` ({} component{}, {routes} HTTP route{}) from {}",
            w.name,
            w.spec.components.len(),
            if w.spec.components.len() == 1 {
                ""
            } else {
                "s"
            },
            if routes == 1 { "" } else { "s" },
            w.source.file.display()
        );
    }
    ExitCode::SUCCESS
}
