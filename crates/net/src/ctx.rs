//! Per-store state and the view the bindings borrow: [`NetCtx`] (which network, which role,
//! which IPs came from lookups of allowed names), [`NetCtxView`], [`NetView`], the `network`
//! capability resource, and the `wasi:sockets/network` and `instance-network` host traits.
//! Socket state machines live in `tcp.rs` and `udp.rs`.

use crate::bindings::sockets::{instance_network, network};
use crate::bindings::{ErrorCode, SocketError};
use crate::network::Network;
use crate::policy::{EgressPolicy, always_denied, denied_for_names};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};

/// What a store runs: a stateless component (may connect, may not listen) or the workload's
/// long-running service (may bind and listen; it *is* the workload's localhost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Component,
    Service,
}

/// How many distinct looked-up IPs a store remembers for egress checks.
const MAX_RESOLVED: usize = 4096;

/// Per-store networking state.
pub struct NetCtx {
    network: Arc<Network>,
    role: Role,
    /// Where this store may connect outside the workload: the workload's policy, or the
    /// component's own `allowedHosts`.
    policy: Arc<EgressPolicy>,
    /// IPs returned by lookups of names the policy allows, with those names.
    resolved: HashMap<IpAddr, Vec<Arc<str>>>,
}

impl std::fmt::Debug for NetCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetCtx")
            .field("workload", &self.network.workload())
            .field("role", &self.role)
            .field("resolved", &self.resolved.len())
            .finish()
    }
}

impl NetCtx {
    /// A store that follows the workload network's own policy.
    pub fn new(network: Arc<Network>, role: Role) -> Self {
        let policy = Arc::new(network.policy().clone());
        Self::with_policy(network, role, policy)
    }

    /// A store with its own egress policy (a component's `allowedHosts`).
    pub fn with_policy(network: Arc<Network>, role: Role, policy: Arc<EgressPolicy>) -> Self {
        Self {
            network,
            role,
            policy,
            resolved: HashMap::new(),
        }
    }

    /// This store's egress policy.
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    pub fn network(&self) -> &Arc<Network> {
        &self.network
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this store may open `addr` on the real network: allowed as an IP literal, or
    /// looked up from a name whose entry allows the port. Never for always-denied addresses.
    pub(crate) fn egress_allowed(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        if always_denied(ip) {
            return false;
        }
        let policy = &self.policy;
        policy.allows_ip(ip, addr.port())
            || !denied_for_names(ip)
                && self.resolved.get(&ip).is_some_and(|names| {
                    names
                        .iter()
                        .any(|name| policy.allows_name(name, Some(addr.port())))
                })
    }

    /// Records that looking up `name` (allowed by the policy) produced `ips`.
    pub(crate) fn remember_lookup(&mut self, name: &Arc<str>, ips: &[IpAddr]) {
        for ip in ips {
            let ip = ip.to_canonical();
            if self.resolved.len() >= MAX_RESOLVED && !self.resolved.contains_key(&ip) {
                tracing::debug!(workload = self.network.workload(), "lookup memory full");
                return;
            }
            let names = self.resolved.entry(ip).or_default();
            if !names.iter().any(|n| n == name) {
                names.push(name.clone());
            }
        }
    }
}

/// What the bindings borrow from the store for one host call.
pub struct NetCtxView<'a> {
    pub ctx: &'a mut NetCtx,
    pub table: &'a mut ResourceTable,
}

/// Implemented by a store's data to hand out its networking state.
pub trait NetView: Send {
    fn net(&mut self) -> NetCtxView<'_>;
}

/// The `network` resource: a capability token. All checks use the store's [`NetCtx`].
#[derive(Debug)]
pub struct NetworkResource {
    _priv: (),
}

impl network::Host for NetCtxView<'_> {
    fn convert_error_code(&mut self, err: SocketError) -> wasmtime::Result<ErrorCode> {
        match err {
            SocketError::Code(code) => Ok(code),
            SocketError::Trap(trap) => Err(trap),
        }
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        if let Some(code) = err.downcast_ref::<ErrorCode>() {
            return Ok(Some(*code));
        }
        Ok(err
            .downcast_ref::<std::io::Error>()
            .map(crate::addr::io_error_code))
    }
}

impl network::HostNetwork for NetCtxView<'_> {
    fn drop(&mut self, this: Resource<NetworkResource>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl instance_network::Host for NetCtxView<'_> {
    fn instance_network(&mut self) -> wasmtime::Result<Resource<NetworkResource>> {
        Ok(self.table.push(NetworkResource { _priv: () })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::EgressPolicy;

    #[test]
    fn egress_follows_policy_and_lookups() {
        let policy = EgressPolicy::parse(&[
            "api.example.com:443".to_string(),
            "93.184.216.34:80".to_string(),
        ])
        .unwrap();
        let mut ctx = NetCtx::new(Network::new("w", policy), Role::Component);
        let literal: SocketAddr = "93.184.216.34:80".parse().unwrap();
        let other_port: SocketAddr = "93.184.216.34:81".parse().unwrap();
        let looked_up: SocketAddr = "203.0.113.7:443".parse().unwrap();
        assert!(ctx.egress_allowed(literal));
        assert!(!ctx.egress_allowed(other_port));
        assert!(!ctx.egress_allowed(looked_up));

        ctx.remember_lookup(&Arc::from("api.example.com"), &[looked_up.ip()]);
        assert!(ctx.egress_allowed(looked_up));
        assert!(!ctx.egress_allowed("203.0.113.7:80".parse().unwrap()));

        // A lookup can never open always-denied addresses.
        let metadata: SocketAddr = "169.254.169.254:443".parse().unwrap();
        ctx.remember_lookup(&Arc::from("api.example.com"), &[metadata.ip()]);
        assert!(!ctx.egress_allowed(metadata));
    }
}
