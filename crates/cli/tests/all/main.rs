//! End-to-end tests: a real `hearth` process, real guests, real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod faults;
mod links;
mod manifests;
mod routing;
mod servers;
mod services;
mod shutdown;
mod support;
