//! End-to-end tests: a real `hearth` process, real guests, real HTTP on loopback.

mod faults;
mod manifests;
mod routing;
mod shutdown;
mod support;
