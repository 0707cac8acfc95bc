//! Many hosts, one cluster.
//!
//! - [`protocol`]: the messages hosts and controllers exchange over NATS;
//! - [`scheduler`]: `plan(desired, hosts, current) -> actions`, pure;
//! - `store`: desired state, status and the leader lease in JetStream key-value buckets;
//! - `agent`: what makes a `hearth host` a cluster member (heartbeats, commands);
//! - `controller`: watches desired state and heartbeats and makes them meet (`status.rs`:
//!   the status it writes);
//! - [`commands`]: commands to hosts, bounded and timed out;
//! - [`observed`]: heartbeats with a controller's overlays, its view for planning;
//! - [`counts`]: replica counts and the availability minimum, shared with the operator;
//! - [`metrics`]: the cluster's Prometheus numbers (hosts, replicas, reschedules, leader);
//! - [`view`]: the cluster as one host sees it, for its dashboard.

pub mod agent;
pub mod commands;
pub mod controller;
pub mod counts;
pub mod deployment;
pub mod metrics;
pub mod nats;
pub mod observed;
pub mod protocol;
pub mod scheduler;
pub mod store;
pub mod view;
