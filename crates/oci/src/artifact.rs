//! The shape of a Wasm component as an OCI artifact: an image manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is `application/wasm`.
//!
//! Owns building the config and manifest JSON for a push and reading a pulled manifest back
//! (checking it really is such an artifact), plus SHA-256 digests. No I/O.

use crate::error::OciError;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The OCI image manifest media type, the only manifest kind hearth pushes or accepts.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config blob's media type (the Wasm OCI artifact layout of the CNCF TAG Runtime).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The component layer's media type.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A content descriptor, as in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// An OCI image manifest, the fields hearth reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The config blob.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig<'a> {
    created: &'a str,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<&'a str>,
}

/// The blobs and manifest of one component, ready to push.
#[derive(Debug)]
pub struct Packed {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layer_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

/// Packs a component: config and manifest for `layer` (the component's bytes).
pub fn pack(layer: &[u8]) -> Result<Packed, serde_json::Error> {
    let layer_digest = sha256_digest(layer);
    let created = rfc3339(created_time());
    let config = serde_json::to_vec(&WasmConfig {
        created: &created,
        architecture: "wasm",
        os: "wasip2",
        layer_digests: vec![&layer_digest],
    })?;
    let config_digest = sha256_digest(&config);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
        artifact_type: None,
        config: Descriptor {
            media_type: CONFIG_MEDIA_TYPE.to_string(),
            digest: config_digest.clone(),
            size: config.len() as u64,
        },
        layers: vec![Descriptor {
            media_type: LAYER_MEDIA_TYPE.to_string(),
            digest: layer_digest.clone(),
            size: layer.len() as u64,
        }],
        annotations: BTreeMap::from([(
            "org.opencontainers.image.created".to_string(),
            created.clone(),
        )]),
    };
    let manifest = serde_json::to_vec(&manifest)?;
    Ok(Packed {
        manifest_digest: sha256_digest(&manifest),
        config,
        config_digest,
        layer_digest,
        manifest,
    })
}

/// Reads a pulled manifest and returns its one `application/wasm` layer.
pub fn component_layer(manifest: &[u8], reference: &str) -> Result<Descriptor, OciError> {
    let not = |why: String| OciError::NotAComponent {
        reference: reference.to_string(),
        why,
    };
    let parsed: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| not(format!("the manifest is not an OCI image manifest ({e})")))?;
    if let Some(media_type) = &parsed.media_type
        && media_type != MANIFEST_MEDIA_TYPE
    {
        return Err(not(format!(
            "its manifest is `{media_type}`, expected `{MANIFEST_MEDIA_TYPE}`"
        )));
    }
    let wasm: Vec<&Descriptor> = parsed
        .layers
        .iter()
        .filter(|l| l.media_type == LAYER_MEDIA_TYPE)
        .collect();
    let [layer] = wasm.as_slice() else {
        let found: Vec<&str> = parsed
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        return Err(not(format!(
            "expected exactly one `{LAYER_MEDIA_TYPE}` layer, found layers [{}]",
            found.join(", ")
        )));
    };
    if parsed.layers.len() != 1 {
        return Err(not(format!(
            "expected one layer, found {} (one `{LAYER_MEDIA_TYPE}` and others)",
            parsed.layers.len()
        )));
    }
    if !is_sha256(&layer.digest) {
        return Err(not(format!(
            "the layer digest `{}` is not `sha256:` and 64 hex digits",
            layer.digest
        )));
    }
    Ok((*layer).clone())
}

/// `sha256:` and 64 lower-case hex digits (safe to use as a file name).
pub fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Now, or `SOURCE_DATE_EPOCH` for reproducible pushes.
fn created_time() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn packed_manifest_reads_back() {
        let packed = pack(b"\0asm component bytes").unwrap();
        let layer = component_layer(&packed.manifest, "r/x:1").unwrap();
        assert_eq!(layer.digest, packed.layer_digest);
        assert_eq!(layer.size, 20);
        assert_eq!(packed.manifest_digest, sha256_digest(&packed.manifest));
        let config: serde_json::Value = serde_json::from_slice(&packed.config).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["layerDigests"][0], packed.layer_digest.as_str());
        let manifest: serde_json::Value = serde_json::from_slice(&packed.manifest).unwrap();
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
    }

    #[test]
    fn other_artifacts_are_refused() {
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":1},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:00","size":1}]}"#;
        let e = component_layer(image, "r/x:1").unwrap_err().to_string();
        assert!(e.contains("not a Wasm component artifact"), "{e}");
        assert!(e.contains("tar+gzip"), "{e}");
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let e = component_layer(index, "r/x:1").unwrap_err().to_string();
        assert!(e.contains("not a Wasm component artifact"), "{e}");
    }
}
