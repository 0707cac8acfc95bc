//! `wasi:config/store`: the `config` map a component or the service declares in the manifest.
//!
//! A value may reference the host's environment (`${env:NAME}`) or a file's contents
//! (`${file:path}`, relative to the working directory, trailing newline dropped); references
//! are resolved once, at deploy, and a missing variable or unreadable file fails the deploy
//! naming the key. `$${` writes a literal `${`. There is one backend: the manifest.

use crate::bindings::config::store::{self, Error};
use crate::{Declared, FieldError, InterfacesView};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) const PACKAGE: &str = "wasi:config";
pub(crate) const BACKENDS: &[&str] = &["manifest"];

/// A part's resolved configuration.
pub(crate) type Values = Arc<BTreeMap<String, String>>;

pub(crate) fn check_declared(d: Declared<'_>) -> Result<(), FieldError> {
    if !BACKENDS.contains(&d.spec.backend.as_str()) {
        return Err(d.unknown_backend(BACKENDS));
    }
    d.config().finish(&[])
}

/// One piece of a value: literal text or a reference.
enum Piece<'a> {
    Text(&'a str),
    Env(&'a str),
    File(&'a str),
}

fn pieces(value: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push(Piece::Text(&rest[..start - 1]));
            out.push(Piece::Text("${"));
            rest = &rest[start + 2..];
            continue;
        }
        out.push(Piece::Text(&rest[..start]));
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in `{value}`"))?;
        let reference = &after[..end];
        out.push(match reference.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Piece::Env(name),
            Some(("file", path)) if !path.is_empty() => Piece::File(path),
            _ => {
                return Err(format!(
                    "`${{{reference}}}`: expected `${{env:NAME}}` or `${{file:path}}`"
                ));
            }
        });
        rest = &after[end + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Checks the syntax of every value (no environment or file access).
pub(crate) fn check(values: &BTreeMap<String, String>, at: &str) -> Vec<FieldError> {
    values
        .iter()
        .filter_map(|(key, value)| {
            pieces(value)
                .err()
                .map(|why| FieldError::new(format!("{at}.{key}"), why))
        })
        .collect()
}

/// Resolves every reference in `values`.
pub(crate) fn resolve(values: &BTreeMap<String, String>, at: &str) -> Result<Values, FieldError> {
    let mut resolved = BTreeMap::new();
    for (key, value) in values {
        let field = || format!("{at}.{key}");
        let mut out = String::with_capacity(value.len());
        for piece in pieces(value).map_err(|why| FieldError::new(field(), why))? {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Env(name) => match std::env::var(name) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => {
                        return Err(FieldError::new(
                            field(),
                            format!(
                                "`${{env:{name}}}`: the environment variable `{name}` is not set (or not UTF-8)"
                            ),
                        ));
                    }
                },
                Piece::File(path) => match std::fs::read_to_string(path) {
                    Ok(v) => out.push_str(v.strip_suffix('\n').unwrap_or(&v)),
                    Err(e) => {
                        return Err(FieldError::new(
                            field(),
                            format!("`${{file:{path}}}`: cannot read `{path}`: {e}"),
                        ));
                    }
                },
            }
        }
        resolved.insert(key.clone(), out);
    }
    Ok(Arc::new(resolved))
}

impl store::Host for InterfacesView<'_> {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, Error>> {
        Ok(Ok(self.ctx.part.config.get(&key).cloned()))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, Error>> {
        Ok(Ok(self
            .ctx
            .part
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Result<String, FieldError> {
        let map = BTreeMap::from([("k".to_string(), value.to_string())]);
        resolve(&map, "config").map(|v| v["k"].clone())
    }

    #[test]
    fn references_resolve_and_fail_by_name() {
        let dir = std::env::temp_dir().join(format!("hearth-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(one("plain").unwrap(), "plain");
        assert_eq!(
            one(&format!("pw=${{file:{}}}!", file.display())).unwrap(),
            "pw=s3cret!"
        );
        assert_eq!(one("$${env:HOME}").unwrap(), "${env:HOME}");
        let path = std::env::var("PATH").unwrap();
        assert_eq!(one("${env:PATH}").unwrap(), path);
        let e = one("${env:HEARTH_SURELY_UNSET_VAR}").unwrap_err();
        assert_eq!(e.field, "config.k");
        assert!(
            e.message.contains("`HEARTH_SURELY_UNSET_VAR` is not set"),
            "{e}"
        );
        let e = one("${file:/nonexistent/x}").unwrap_err();
        assert!(e.message.contains("cannot read `/nonexistent/x`"), "{e}");
        let e = one("${vault:x}").unwrap_err();
        assert!(e.message.contains("expected `${env:NAME}`"), "{e}");
        assert!(
            one("${env:X")
                .unwrap_err()
                .message
                .contains("without a closing")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
