//! `hearth validate`: parse and check manifests and their component files, without network
//! access (`oci://` images are checked from the pull cache, or skipped with a note).

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
    // Offline: `oci://` images are checked when the pull cache has them and skipped (with a
    // note) when not; `imagePullPolicy: Never` without a cached copy is an error.
    let oci = hearth_oci::Oci::new(hearth_oci::OciOptions::from_env());
    let mut failed = false;
    for w in &workloads {
        let (images, mut errors, notes) = hearth_oci::fetch::available(&oci, w);
        errors.extend(
            hearth_runtime::plan::check(w, &images)
                .into_iter()
                .map(|e| e.0),
        );
        for note in notes {
            eprintln!("note: {note}");
        }
        for e in &errors {
            eprintln!("{e}");
        }
        failed |= !errors.is_empty();
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
