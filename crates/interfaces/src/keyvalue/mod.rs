//! `wasi:keyvalue` (placeholder until the key-value module lands).

use crate::{Declared, FieldError};
use std::sync::Arc;

pub(crate) const PACKAGE: &str = "wasi:keyvalue";
pub(crate) const BACKENDS: &[&str] = &["memory", "filesystem", "redis"];

/// An open bucket.
pub struct Bucket;

#[derive(Default)]
pub(crate) struct Shared;

#[derive(Clone)]
pub(crate) struct Binding;

pub(crate) fn check(d: Declared<'_>) -> Result<(), FieldError> {
    if !BACKENDS.contains(&d.spec.backend.as_str()) {
        return Err(d.unknown_backend(BACKENDS));
    }
    Ok(())
}

pub(crate) async fn bind(
    _shared: &Shared,
    _workload: &Arc<str>,
    _decl: Option<Declared<'_>>,
) -> Result<Binding, FieldError> {
    Ok(Binding)
}
