//! The grammar of `image: oci://...` references and `imagePullPolicy`.
//!
//! Owns parsing and printing an OCI reference (`registry/repository[:tag][@sha256:digest]`) so
//! the manifest can reject a bad one with the field path, and `hearth push`/`hearth pull`
//! accept exactly the same syntax. Fetching and caching what a reference names belongs to
//! `hearth-oci`; this module does no I/O.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The scheme that marks an `image` as a registry reference rather than a file path.
pub const OCI_SCHEME: &str = "oci://";

/// What a reference must look like, for error messages.
pub const OCI_REFERENCE_SHAPE: &str =
    "`oci://REGISTRY/REPOSITORY:TAG` or `oci://REGISTRY/REPOSITORY@sha256:DIGEST`";

/// A parsed OCI reference: which registry, which repository, and a tag and/or a digest.
///
/// The registry is always explicit (`ghcr.io`, `127.0.0.1:5000`); there is no Docker Hub
/// default. Without a tag or digest the tag is `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciReference {
    /// `host[:port]`, e.g. `ghcr.io` or `127.0.0.1:5000`.
    pub registry: String,
    /// Slash-separated path components, e.g. `acme/hello`.
    pub repository: String,
    /// The tag, if one was given (or `latest` when neither tag nor digest was).
    pub tag: Option<String>,
    /// A pinned manifest digest, `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl OciReference {
    /// Parses a reference, with or without the `oci://` prefix. `Err` says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bare = text.strip_prefix(OCI_SCHEME).unwrap_or(text);
        let bad = |why: &str| -> String {
            format!("expected {OCI_REFERENCE_SHAPE}, found `{text}`: {why}")
        };
        if bare.is_empty() {
            return Err(bad("the reference is empty"));
        }
        let (name_tag, digest) = match bare.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (bare, None),
        };
        if let Some(d) = digest {
            check_digest(d).map_err(|why| bad(&why))?;
        }
        let Some((registry, rest)) = name_tag.split_once('/') else {
            return Err(bad(
                "a registry is required (like `ghcr.io/acme/hello:1.0` or `127.0.0.1:5000/hello:v1`)",
            ));
        };
        check_registry(registry).map_err(|why| bad(&why))?;
        let (repository, tag) = match rest.split_once(':') {
            Some((r, t)) => (r, Some(t)),
            None => (rest, None),
        };
        check_repository(repository).map_err(|why| bad(&why))?;
        if let Some(t) = tag {
            check_tag(t).map_err(|why| bad(&why))?;
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// The reference with its `oci://` prefix, as a manifest writes it.
    pub fn to_url(&self) -> String {
        format!("{OCI_SCHEME}{self}")
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for OciReference {
    /// `registry/repository[:tag][@digest]`, without the `oci://` prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for OciReference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// When hearth contacts the registry for an `oci://` image (after Kubernetes'
/// `imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
pub enum PullPolicy {
    /// Use the local cache when it has the image (a digest, or a tag pulled before); pull
    /// otherwise.
    #[default]
    IfNotPresent,
    /// Always ask the registry what the tag points to; blobs already cached are not fetched
    /// again.
    Always,
    /// Never contact the registry: the image must be in the local cache.
    Never,
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IfNotPresent => "IfNotPresent",
            Self::Always => "Always",
            Self::Never => "Never",
        })
    }
}

fn check_digest(d: &str) -> Result<(), String> {
    let Some(hex) = d.strip_prefix("sha256:") else {
        return Err(format!(
            "the digest `{d}` must be `sha256:` followed by 64 hex digits"
        ));
    };
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "the digest `{d}` must be `sha256:` followed by 64 lowercase hex digits"
        ))
    }
}

/// `host[:port]`: a host name with at least one dot, `localhost`, an IPv4 address, or a
/// bracketed IPv6 address.
fn check_registry(registry: &str) -> Result<(), String> {
    let explain = || {
        format!(
            "the registry `{registry}` must be a host with an optional port, like `ghcr.io` or `127.0.0.1:5000`"
        )
    };
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(explain());
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(explain());
        }
        match after {
            "" => (registry, None),
            p => match p.strip_prefix(':') {
                Some(port) => (registry, Some(port)),
                None => return Err(explain()),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(explain());
    }
    if host.starts_with('[') {
        return Ok(());
    }
    let labels_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !labels_ok {
        return Err(explain());
    }
    if !host.contains('.') && host != "localhost" && port.is_none() {
        return Err(format!(
            "`{host}` does not look like a registry host; name the registry explicitly (`ghcr.io/{host}/...`, `docker.io/{host}/...`)"
        ));
    }
    Ok(())
}

/// Slash-separated components of lowercase letters and digits, joined by `.`, `_` or `-`.
fn check_repository(repository: &str) -> Result<(), String> {
    let ok = !repository.is_empty()
        && repository.len() <= 255
        && repository.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b.iter().all(|&x| {
                    x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-')
                })
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the repository `{repository}` must be `/`-separated parts of lowercase letters, digits, `.`, `_` and `-`"
        ))
    }
}

/// 1 to 128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`.
fn check_tag(tag: &str) -> Result<(), String> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
        && !matches!(b.first(), Some(b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the tag `{tag}` must be 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tags_and_digests() {
        let r = OciReference::parse("oci://127.0.0.1:5000/hello:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "hello");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/hello:v1");

        let r = OciReference::parse(&format!("ghcr.io/acme/web/hello@{D}")).unwrap();
        assert_eq!(r.repository, "acme/web/hello");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.to_url(), format!("oci://ghcr.io/acme/web/hello@{D}"));

        let r = OciReference::parse("localhost/x").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = OciReference::parse(&format!("[::1]:5000/x:1.0@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("[::1]:5000/x:1.0@{D}"));
    }

    #[test]
    fn refuses_what_it_cannot_fetch() {
        for bad in [
            "",
            "oci://",
            "hello:v1",
            "acme/hello:v1",
            "ghcr.io/Acme/hello",
            "ghcr.io/acme//hello",
            "ghcr.io/acme/hello:",
            "ghcr.io/acme/hello:.x",
            "ghcr.io/acme/hello@sha256:abc",
            "ghcr.io/acme/hello@md5:0123",
            "127.0.0.1:0/x",
            "127.0.0.1:port/x",
            "ghcr.io/../x",
        ] {
            let e = OciReference::parse(bad).unwrap_err();
            assert!(e.starts_with("expected `oci://REGISTRY"), "{bad}: {e}");
        }
        let e = OciReference::parse("acme/hello:v1").unwrap_err();
        assert!(e.contains("name the registry explicitly"), "{e}");
    }
}
