//! Fuzz target `manifest`: arbitrary bytes as a manifest file.
//!
//! Checks that `hearth_manifest::parse_str` (YAML documents → typed workloads → validation,
//! the path of `hearth validate`, `hearth run`, the lifecycle API and the cluster store) never
//! panics, whatever the input, and that what it accepts is usable:
//! - every error renders, naming the file;
//! - the helpers the runtime calls on an accepted workload (`parts`, `field_of`, `image_of`,
//!   the rollout arithmetic, route keys, `bare_host`, `prefix_matches`) do not panic;
//! - an accepted spec written back as YAML (as `hearth get -o yaml` and the operator do) parses
//!   again to the same spec.

#![no_main]

use hearth_manifest::{
    OciReference, Part, RouteKey, Strategy, Workload, WorkloadKind, bare_host, dns_label,
    parse_str, prefix_matches,
};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const FILE: &str = "/fuzz/manifests/app.yaml";

fuzz_target!(|data: &[u8]| {
    // Manifests are read as UTF-8 text; other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_str(Path::new(FILE), text) {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an Err carries at least one error");
            let rendered = errors.to_string();
            assert!(rendered.contains(FILE), "errors name the file: {rendered}");
        }
        Ok(workloads) => {
            for w in &workloads {
                use_accepted(w);
                round_trip(w);
            }
        }
    }
});

/// What the runtime and the CLI do with an accepted workload.
fn use_accepted(w: &Workload) {
    assert!(dns_label(&w.name).is_ok(), "accepted name `{}`", w.name);
    let _ = w.deployment();
    for part in w.parts() {
        let _ = w.field_of(part, "image");
        let _ = w.part_name(part);
        let _ = w.allowed_hosts_of(part);
        let _ = w.error_at(w.field_of(part, "limits"), "fuzz").to_string();
        match w.image_of(part) {
            Some(hearth_manifest::ImageRef::Oci { reference, .. }) => {
                // A reference prints back to one that parses to itself.
                let again = OciReference::parse(&reference.to_url());
                assert_eq!(again.as_ref(), Ok(&reference), "{reference}");
                let _ = reference.name();
            }
            Some(hearth_manifest::ImageRef::File(_)) => {}
            None => panic!("part {part} of `{}` has no image", w.name),
        }
    }
    assert!(
        w.image_of(Part::Component(w.spec.components.len()))
            .is_none()
    );
    if let Strategy::RollingUpdate { rolling_update } = &w.strategy {
        for replicas in [0, 1, w.replicas, u32::MAX] {
            let _ = rolling_update.max_surge.resolve(replicas, true);
            let _ = rolling_update.max_unavailable.resolve(replicas, false);
        }
    }
    for c in &w.spec.components {
        if let Some(route) = &c.http {
            let key = RouteKey::new(route.host.as_deref(), &route.path);
            let _ = key.to_string();
            assert!(prefix_matches(&key.path, &key.path), "{key}");
            if let Some(host) = &route.host {
                let _ = bare_host(host);
            }
        }
    }
}

/// The spec written back as YAML in a fresh document parses to the same spec.
fn round_trip(w: &Workload) {
    let Ok(spec) = serde_yaml::to_value(&w.spec) else {
        return;
    };
    let mut metadata = serde_yaml::Mapping::new();
    metadata.insert("name".into(), w.name.clone().into());
    let mut doc = serde_yaml::Mapping::new();
    doc.insert("apiVersion".into(), hearth_manifest::API_VERSION.into());
    doc.insert("metadata".into(), metadata.into());
    match w.kind {
        WorkloadKind::Workload => {
            doc.insert("kind".into(), "Workload".into());
            doc.insert("spec".into(), spec);
        }
        WorkloadKind::WorkloadDeployment => {
            let mut template = serde_yaml::Mapping::new();
            template.insert("spec".into(), spec);
            let mut dspec = serde_yaml::Mapping::new();
            dspec.insert("replicas".into(), w.replicas.into());
            dspec.insert("template".into(), template.into());
            doc.insert("kind".into(), "WorkloadDeployment".into());
            doc.insert("spec".into(), dspec.into());
        }
    }
    let Ok(text) = serde_yaml::to_string(&doc) else {
        return;
    };
    match parse_str(Path::new(FILE), &text) {
        Ok(again) => {
            assert_eq!(again.len(), 1, "one document in, one out:\n{text}");
            assert_eq!(
                again[0].spec, w.spec,
                "spec changed on a round trip:\n{text}"
            );
        }
        Err(e) => panic!("an accepted spec, written back, is refused: {e}\n{text}"),
    }
}
