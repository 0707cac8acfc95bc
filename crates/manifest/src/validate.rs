//! Semantic checks that serde cannot express: names, routes, limits, and conflicts across
//! documents and files. Every check reports the field path it is about.

use crate::error::ManifestError;
use crate::image::{OCI_REFERENCE_SHAPE, OCI_SCHEME, OciReference, PullPolicy};
use crate::types::{BuildSpec, ComponentSpec, ServiceSpec, Strategy, Workload};
use std::collections::HashMap;

/// Largest memory limit a component may ask for.
const MAX_MEMORY_MIB: u32 = 4096;
/// Largest `maxConcurrency`; the engine's instance pool is sized from this.
const MAX_CONCURRENCY: u32 = 10_000;
/// Fewest resources a part may be limited to: a request, its response and their bodies
/// and pollables already take a handful.
const MIN_RESOURCES: u32 = 32;

/// A route's identity: two routes with the same key conflict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    /// Lower-cased host, or `None` for any host.
    pub host: Option<String>,
    /// Normalised path prefix: starts with `/`, no trailing `/` except for the root.
    pub path: String,
}

impl RouteKey {
    /// Normalises a manifest route.
    pub fn new(host: Option<&str>, path: &str) -> Self {
        let trimmed = path.trim_end_matches('/');
        Self {
            host: host.map(str::to_ascii_lowercase),
            path: if trimmed.is_empty() {
                "/".to_string()
            } else {
                trimmed.to_string()
            },
        }
    }
}

/// Whether a request for `path` falls under the route prefix `prefix` (normalised as
/// [`RouteKey`] makes it): the root takes every path, another prefix matches on a segment
/// boundary (`/api` takes `/api` and `/api/v1`, not `/apix`).
#[inline]
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

/// A `Host` header as routes name hosts: `Example.COM:8080` → `example.com`,
/// `[::1]:80` → `[::1]`; allocates only to lower-case.
#[inline]
pub fn bare_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// `wasi:keyvalue/store@0.2.0-draft` → `wasi:keyvalue`: the package a host-interface entry
/// or an import names.
pub fn package_of(interface: &str) -> &str {
    let unversioned = interface.split('@').next().unwrap_or(interface);
    unversioned.split('/').next().unwrap_or(unversioned)
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.host.as_deref().unwrap_or("*"), self.path)
    }
}

/// Checks one workload on its own.
pub(crate) fn workload(w: &Workload, doc: Option<usize>) -> Vec<ManifestError> {
    let file = &w.source.file;
    let mut errors = Vec::new();
    let mut err = |path: String, msg: String| errors.push(ManifestError::new(file, doc, path, msg));

    if let Err(why) = dns_label(&w.name) {
        err("metadata.name".into(), why);
    }
    if w.replicas == 0 {
        err("spec.replicas".into(), "expected at least 1".into());
    }
    if let Strategy::RollingUpdate { rolling_update } = &w.strategy {
        let surge = rolling_update.max_surge.resolve(w.replicas, true);
        let unavailable = rolling_update.max_unavailable.resolve(w.replicas, false);
        for (field, value) in [("maxSurge", surge), ("maxUnavailable", unavailable)] {
            if value.is_none() {
                err(
                    format!("spec.strategy.rollingUpdate.{field}"),
                    "expected a count (`1`) or a percentage (`\"25%\"`)".into(),
                );
            }
        }
        if surge == Some(0) && unavailable == Some(0) {
            err(
                "spec.strategy.rollingUpdate".into(),
                format!(
                    "maxSurge and maxUnavailable are both 0 for {} replicas: expected one of them to allow progress",
                    w.replicas
                ),
            );
        }
    }
    for (key, value) in &w.host_selector {
        if key.is_empty() || value.is_empty() {
            err(
                format!("spec.hostSelector.{key}"),
                "expected a non-empty label name and value".into(),
            );
        }
    }
    if w.spec.components.is_empty() && w.spec.service.is_none() {
        err(
            w.source.field("components"),
            "expected at least one component or a service".into(),
        );
    }
    for (i, link) in w.spec.links.iter().enumerate() {
        let (base, _) = link.import.split_once('@').unwrap_or((&link.import, ""));
        if !base.contains(':') || !base.contains('/') {
            err(
                w.source.field(&format!("links[{i}].import")),
                format!(
                    "expected an interface like `ns:pkg/iface@1.0.0`, found `{}`",
                    link.import
                ),
            );
        }
        if !w.spec.components.iter().any(|c| c.name == link.component) {
            err(
                w.source.field(&format!("links[{i}].component")),
                format!(
                    "expected the name of a component of this workload, found `{}`",
                    link.component
                ),
            );
        }
    }
    if let Some(service) = &w.spec.service {
        check_service(
            service,
            &|f: &str| w.source.field(&format!("service.{f}")),
            &mut err,
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut routes: HashMap<RouteKey, usize> = HashMap::new();
    for (i, c) in w.spec.components.iter().enumerate() {
        let at = |field: &str| w.source.field(&format!("components[{i}].{field}"));
        if let Err(why) = dns_label(&c.name) {
            err(at("name"), why);
        } else if let Some(first) = seen.insert(&c.name, i) {
            err(
                at("name"),
                format!(
                    "duplicate component name `{}` (also at {}): expected names unique within the workload",
                    c.name,
                    w.source.field(&format!("components[{first}].name"))
                ),
            );
        }
        check_component(c, &at, &mut err);
        if let Some(route) = &c.http {
            let key = RouteKey::new(route.host.as_deref(), &route.path);
            if let Some(first) = routes.insert(key.clone(), i) {
                err(
                    at("http"),
                    format!(
                        "route `{key}` is already taken by {}: expected each host and path pair once",
                        w.source.field(&format!("components[{first}].http"))
                    ),
                );
            }
        }
    }
    errors
}

fn check_component(
    c: &ComponentSpec,
    at: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
) {
    check_image(&c.image, c.image_pull_policy, at, err);
    if let Some(route) = &c.http {
        if !route.path.starts_with('/') {
            err(
                at("http.path"),
                format!("expected a path starting with `/`, found `{}`", route.path),
            );
        } else if route.path.contains(['?', '#', ' ']) {
            err(
                at("http.path"),
                format!(
                    "expected a plain path prefix without query, fragment or spaces, found `{}`",
                    route.path
                ),
            );
        }
        if let Some(host) = &route.host
            && let Err(why) = host_name(host)
        {
            err(at("http.host"), why);
        }
    }
    let l = &c.limits;
    if l.memory_mib == 0 || l.memory_mib > MAX_MEMORY_MIB {
        err(
            at("limits.memoryMiB"),
            format!("expected 1 to {MAX_MEMORY_MIB}, found {}", l.memory_mib),
        );
    }
    if l.timeout_ms == 0 {
        err(
            at("limits.timeoutMs"),
            "expected at least 1 millisecond".into(),
        );
    }
    if l.max_concurrency == 0 || l.max_concurrency > MAX_CONCURRENCY {
        err(
            at("limits.maxConcurrency"),
            format!(
                "expected 1 to {MAX_CONCURRENCY}, found {}",
                l.max_concurrency
            ),
        );
    }
    if l.max_resources < MIN_RESOURCES {
        err(
            at("limits.maxResources"),
            format!(
                "expected at least {MIN_RESOURCES}, found {}",
                l.max_resources
            ),
        );
    }
    if l.max_request_bytes == 0 {
        err(
            at("limits.maxRequestBytes"),
            "expected at least 1 byte".into(),
        );
    }
    for key in c.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            err(
                at(&format!("env.{key}")),
                "expected a variable name without `=` or NUL".into(),
            );
        }
    }
    for (i, subject) in c.subscriptions.iter().enumerate() {
        if let Err(why) = subject_pattern(subject) {
            err(at(&format!("subscriptions[{i}]")), why);
        }
    }
    if let Some(build) = &c.build {
        check_build(build, at, err);
    }
}

/// `build` is checked for shape only; whether `path` exists is for `hearth build` to say.
fn check_build(b: &BuildSpec, at: &dyn Fn(&str) -> String, err: &mut dyn FnMut(String, String)) {
    if b.path.trim().is_empty() {
        err(
            at("build.path"),
            "expected a directory relative to the manifest, found an empty string".into(),
        );
    }
    if b.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
        err(
            at("build.command"),
            "expected a shell command, found an empty string (leave `command` out to build with cargo)"
                .into(),
        );
    }
    for (i, w) in b.watch.iter().flatten().enumerate() {
        if w.trim().is_empty() {
            err(
                at(&format!("build.watch[{i}]")),
                "expected a file, directory or glob relative to the manifest, found an empty string"
                    .into(),
            );
        }
    }
}

/// `image` is a file path or an `oci://` reference; `imagePullPolicy` only goes with the latter.
fn check_image(
    image: &str,
    policy: Option<PullPolicy>,
    at: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
) {
    let oci = image.starts_with(OCI_SCHEME);
    if image.trim().is_empty() {
        err(
            at("image"),
            format!(
                "expected a path to a .wasm component or {OCI_REFERENCE_SHAPE}, found an empty string"
            ),
        );
    } else if oci {
        if let Err(why) = OciReference::parse(image) {
            err(at("image"), why);
        }
    } else if image.contains("://") {
        err(
            at("image"),
            format!(
                "`{image}`: expected a file path relative to the manifest or {OCI_REFERENCE_SHAPE}"
            ),
        );
    }
    if let Some(policy) = policy
        && !oci
    {
        err(
            at("imagePullPolicy"),
            format!(
                "`{policy}` applies to `oci://` images only: expected no imagePullPolicy for the file `{image}`"
            ),
        );
    }
}

/// A messaging subject or pattern: dot-separated non-empty tokens without spaces; `*` matches
/// one token, and `>` (last only) the rest.
fn subject_pattern(subject: &str) -> Result<(), String> {
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        let bad = token.is_empty()
            || token.chars().any(|c| c.is_whitespace() || c.is_control())
            || (token.len() > 1 && token.contains(['*', '>']))
            || (*token == ">" && i + 1 != tokens.len());
        if bad {
            return Err(format!(
                "expected a subject like `orders.created`, `orders.*` or `orders.>` (dot-separated tokens, no spaces, `>` only last), found `{subject}`"
            ));
        }
    }
    Ok(())
}

fn check_service(
    s: &ServiceSpec,
    at: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
) {
    check_image(&s.image, s.image_pull_policy, at, err);
    let mut ports: HashMap<u16, usize> = HashMap::new();
    for (i, p) in s.ports.iter().enumerate() {
        if p.port == 0 {
            err(
                at(&format!("ports[{i}].port")),
                "expected a port from 1 to 65535, found 0".into(),
            );
        } else if let Some(first) = ports.insert(p.port, i) {
            err(
                at(&format!("ports[{i}].port")),
                format!(
                    "port {} is already listed at {}",
                    p.port,
                    at(&format!("ports[{first}]"))
                ),
            );
        }
        if p.publish == Some(0) {
            err(
                at(&format!("ports[{i}].publish")),
                "expected a host port from 1 to 65535, found 0".into(),
            );
        }
    }
    if s.limits.memory_mib == 0 || s.limits.memory_mib > MAX_MEMORY_MIB {
        err(
            at("limits.memoryMiB"),
            format!(
                "expected 1 to {MAX_MEMORY_MIB}, found {}",
                s.limits.memory_mib
            ),
        );
    }
    if s.limits.max_resources < MIN_RESOURCES {
        err(
            at("limits.maxResources"),
            format!(
                "expected at least {MIN_RESOURCES}, found {}",
                s.limits.max_resources
            ),
        );
    }
    for key in s.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            err(
                at(&format!("env.{key}")),
                "expected a variable name without `=` or NUL".into(),
            );
        }
    }
    if let Some(build) = &s.build {
        check_build(build, at, err);
    }
}

/// Checks across all workloads of a run: names and routes must not collide.
pub(crate) fn across(workloads: &[Workload]) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let mut names: HashMap<&str, &Workload> = HashMap::new();
    let mut routes: HashMap<RouteKey, (&Workload, usize)> = HashMap::new();
    let mut published: HashMap<u16, (&Workload, usize)> = HashMap::new();
    for w in workloads {
        for (i, port) in w
            .spec
            .service
            .iter()
            .flat_map(|s| s.ports.iter())
            .enumerate()
        {
            let Some(host_port) = port.publish else {
                continue;
            };
            if let Some((other, j)) = published.insert(host_port, (w, i)) {
                errors.push(ManifestError::new(
                    &w.source.file,
                    w.source.document_label(),
                    w.source.field(&format!("service.ports[{i}].publish")),
                    format!(
                        "host port {host_port} is already published by workload `{}` ({}): expected each published port once",
                        other.name,
                        other.source.field(&format!("service.ports[{j}].publish"))
                    ),
                ));
            }
        }
        let doc = w.source.document_label();
        if let Some(first) = names.insert(&w.name, w) {
            errors.push(ManifestError::new(
                &w.source.file,
                doc,
                "metadata.name",
                format!(
                    "duplicate workload name `{}` (also in {} document {}): expected names unique across all manifests",
                    w.name,
                    first.source.file.display(),
                    first.source.document + 1
                ),
            ));
        }
        for (i, c) in w.spec.components.iter().enumerate() {
            let Some(route) = &c.http else { continue };
            let key = RouteKey::new(route.host.as_deref(), &route.path);
            match routes.get(&key) {
                Some((other, _)) if std::ptr::eq(*other, w) => {} // reported by `workload`
                Some((other, j)) => errors.push(ManifestError::new(
                    &w.source.file,
                    doc,
                    w.source.field(&format!("components[{i}].http")),
                    format!(
                        "route `{key}` is already taken by workload `{}` ({} {}): expected each host and path pair once",
                        other.name,
                        other.source.file.display(),
                        other.source.field(&format!("components[{j}].http"))
                    ),
                )),
                None => {
                    routes.insert(key, (w, i));
                }
            }
        }
    }
    errors
}

/// A Kubernetes-style DNS label: 1-63 of `a-z`, `0-9`, `-`, not starting or ending with `-`.
/// The rule for workload and component names; `Err` says what was expected.
pub fn dns_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a DNS label (1-63 lowercase letters, digits and `-`, not at either end), found `{name}`"
        ))
    }
}

fn host_name(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a host name without scheme or port, like `hello.localhost`, found `{host}`"
        ))
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/v1"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api", "/"));
    }

    #[test]
    fn hosts_lose_port_and_case() {
        assert_eq!(bare_host("Hello.Localhost:8080"), "hello.localhost");
        assert_eq!(bare_host("hello.localhost"), "hello.localhost");
        assert_eq!(bare_host("[::1]:80"), "[::1]");
        assert_eq!(bare_host("[::1]"), "[::1]");
    }

    #[test]
    fn packages_lose_interface_and_version() {
        assert_eq!(
            package_of("wasi:keyvalue/store@0.2.0-draft"),
            "wasi:keyvalue"
        );
        assert_eq!(package_of("wasi:keyvalue"), "wasi:keyvalue");
    }
}
