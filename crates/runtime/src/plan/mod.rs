//! Planning: a workload and its fetched files become a [`Plan`], everything `hearth validate`
//! checks, decided before anything is compiled: which parts there are and what each file is
//! ([`world`]), who serves each import ([`links`]), each part's egress policy and its
//! host-interface declarations ([`check`]), and the order components must be built in.
//!
//! A plan is pure data: making one touches no engine, network or backend, so a failed plan
//! leaves whatever runs untouched.

pub(crate) mod check;
pub mod links;
pub mod world;

use crate::DeployError;
use hearth_manifest::{LocalImages, Part, Workload};
use hearth_net::EgressPolicy;
use links::Link;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use world::{PartFile, World};

/// A checked workload, ready to build.
pub struct Plan {
    /// The workload as applied.
    pub workload: Workload,
    /// One per component, in manifest order.
    pub(crate) components: Vec<PlannedPart>,
    /// The service, if the workload has one.
    pub(crate) service: Option<PlannedPart>,
    /// Component indices, each after every component it imports from.
    pub(crate) order: Vec<usize>,
    /// What the plan is made of, to tell an unchanged workload or service from a changed one.
    pub fingerprint: Fingerprint,
}

/// One part's file, what it imports from the workload, and where it may connect.
pub(crate) struct PlannedPart {
    pub part: Part,
    /// Its file: digest, world (what it imports and exports) and bytes.
    pub file: PartFile,
    pub links: Vec<Link>,
    pub policy: Arc<EgressPolicy>,
}

/// Content hashes of a plan: the whole workload (spec and every file), and the service on its
/// own (its spec and file, the workload-wide interfaces it binds, and what its imports link
/// to). An update that leaves the service's hash alone keeps the running service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub workload: String,
    pub service: Option<String>,
}

/// Plans `workload` from `images`. Every problem found is returned; any one fails the plan.
pub fn plan(workload: &Workload, images: &LocalImages) -> Result<Plan, Vec<DeployError>> {
    let mut errors = check::host_interfaces(workload);
    let policies = check::policies(workload).unwrap_or_else(|e| {
        errors.extend(e);
        HashMap::new()
    });
    let mut files = HashMap::new();
    for part in workload.parts() {
        match images.get(part) {
            Some(image) => match world::read_part(workload, part, image) {
                Ok(file) => {
                    files.insert(part, file);
                }
                Err(e) => errors.push(e),
            },
            None => errors.push(DeployError::at(
                workload,
                workload.field_of(part, "image"),
                "the image was not fetched to a local file".into(),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    link(workload, files, &policies).map_err(|e| vec![e])
}

/// For `hearth validate` without network: [`plan`]'s checks on the parts whose files are at
/// hand (an `oci://` image not in the cache is skipped); links only when every file is.
pub fn check(workload: &Workload, images: &LocalImages) -> Vec<DeployError> {
    let all_present = workload.parts().iter().all(|p| images.get(*p).is_some());
    if all_present {
        return plan(workload, images).err().unwrap_or_default();
    }
    let mut errors = check::host_interfaces(workload);
    errors.extend(check::policies(workload).err().unwrap_or_default());
    for part in workload.parts() {
        if let Some(image) = images.get(part)
            && let Err(e) = world::read_part(workload, part, image)
        {
            errors.push(e);
        }
    }
    errors
}

/// Links every part's imports and orders the components.
fn link(
    workload: &Workload,
    mut files: HashMap<Part, PartFile>,
    policies: &HashMap<Part, Arc<EgressPolicy>>,
) -> Result<Plan, DeployError> {
    let n = workload.spec.components.len();
    let worlds: Vec<Arc<World>> = (0..n)
        .map(|i| {
            files
                .get(&Part::Component(i))
                .map(|f| Arc::clone(&f.world))
                .unwrap_or_default()
        })
        .collect();
    let exports: Vec<&World> = worlds.iter().map(|w| &**w).collect();
    let service_world = files.get(&Part::Service).map(|f| Arc::clone(&f.world));
    let mut planned = |part: Part| -> Result<Option<PlannedPart>, DeployError> {
        let Some(file) = files.remove(&part) else {
            return Ok(None);
        };
        let links = links::link_imports(
            workload,
            part,
            &file.world,
            &exports,
            service_world.as_deref(),
        )?;
        Ok(Some(PlannedPart {
            part,
            file,
            links,
            policy: policies
                .get(&part)
                .cloned()
                .unwrap_or_else(|| Arc::new(EgressPolicy::deny_all())),
        }))
    };
    let mut components = Vec::with_capacity(n);
    for i in 0..n {
        components.extend(planned(Part::Component(i))?);
    }
    let service = planned(Part::Service)?;
    let component_links: Vec<Vec<Link>> = components.iter().map(|c| c.links.clone()).collect();
    let order = links::build_order(workload, &component_links)?;
    let fingerprint = fingerprint(workload, &components, service.as_ref());
    Ok(Plan {
        workload: workload.clone(),
        components,
        service,
        order,
        fingerprint,
    })
}

fn fingerprint(
    workload: &Workload,
    components: &[PlannedPart],
    service: Option<&PlannedPart>,
) -> Fingerprint {
    let mut whole = Sha256::new();
    whole.update(json(&workload.spec));
    for part in components.iter().chain(service) {
        whole.update(part.file.digest);
    }
    let service = service.map(|s| {
        let mut h = Sha256::new();
        h.update(json(&workload.spec.service));
        h.update(json(&workload.spec.host_interfaces));
        h.update(json(&workload.spec.links));
        for link in &s.links {
            h.update(link.import.as_bytes());
            h.update(
                workload
                    .part_name(Part::Component(link.provider))
                    .as_bytes(),
            );
        }
        h.update(s.file.digest);
        hex::encode(h.finalize())
    });
    Fingerprint {
        workload: hex::encode(whole.finalize()),
        service,
    }
}

/// A spec piece as JSON, for hashing (the spec types always serialise).
fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
