//! Cluster tests: real `nats-server` processes (JetStream; three clustered nodes where the
//! test needs them), real `hearth host` and `hearth controller` processes, on loopback.
//! They run one at a time ([`harness::serial`]): each starts several processes whose timing
//! matters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../all/browser.rs"]
#[allow(dead_code)]
mod browser;
mod dashboard;
mod harness;
mod logs;
mod metrics;
mod operator;
mod partition;
mod placement;
mod resilience;
mod security;
#[path = "../all/support.rs"]
#[allow(dead_code)]
mod support;
