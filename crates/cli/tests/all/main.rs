//! End-to-end tests: a real `hearth` process, real guests, real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod blobstore;
mod browser;
mod config_logging;
mod dashboard;
mod dev;
mod faults;
mod guest_limits;
mod ingress_limits;
mod inspect;
mod keyvalue;
mod lifecycle;
mod links;
mod logs;
mod manifests;
mod messaging;
mod metrics;
mod metrics_interfaces;
mod new;
mod oci;
mod routing;
mod servers;
mod services;
mod shutdown;
mod support;
mod tls;
mod traces;
