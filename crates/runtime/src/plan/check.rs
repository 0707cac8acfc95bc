//! The checks of a plan that need no component file: each part's `allowedHosts`, and the
//! host-interface declarations and `config` values. Both run once per deploy, here; the build
//! uses what they produced instead of checking again.

use crate::DeployError;
use hearth_manifest::{Part, Workload};
use hearth_net::EgressPolicy;
use std::collections::HashMap;
use std::sync::Arc;

/// Every part's parsed `allowedHosts`, or the entries that do not parse.
pub(crate) fn policies(
    workload: &Workload,
) -> Result<HashMap<Part, Arc<EgressPolicy>>, Vec<DeployError>> {
    let mut policies = HashMap::new();
    let mut errors = Vec::new();
    for part in workload.parts() {
        match EgressPolicy::parse(workload.allowed_hosts_of(part)) {
            Ok(policy) => {
                policies.insert(part, Arc::new(policy));
            }
            Err(e) => errors.push(DeployError::at(
                workload,
                workload.field_of(part, &format!("allowedHosts[{}]", e.index)),
                format!("expected {}, found `{}`", e.expected, e.entry),
            )),
        }
    }
    if errors.is_empty() {
        Ok(policies)
    } else {
        Err(errors)
    }
}

/// Every problem with the workload's `hostInterfaces` and `config` values.
pub(crate) fn host_interfaces(workload: &Workload) -> Vec<DeployError> {
    hearth_interfaces::HostInterfaces::check(workload)
        .into_iter()
        .map(|e| DeployError::at(workload, workload.source.field(&e.field), e.message))
        .collect()
}
