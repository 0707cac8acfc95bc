//! Registry credentials: where they are read from and where `hearth login` writes them.
//!
//! Two files in Docker's config format (`{"auths": {"REGISTRY": {"auth": base64("user:pass")}}}`)
//! are consulted, first match wins:
//!
//! 1. hearth's own, `$XDG_CONFIG_HOME/hearth/auth.json` (default `~/.config/hearth/auth.json`):
//!    `hearth login` writes it (mode 0600) and `hearth logout` removes entries from it;
//! 2. Docker's, `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`), only read, so a
//!    `docker login` also works for hearth.
//!
//! Credential helpers (`credsStore`, `credHelpers`) and identity tokens are not supported.
//! This module does no network I/O; checking credentials against a registry is `registry.rs`.

use crate::error::OciError;
use base64::Engine as _;
use std::fmt;
use std::path::{Path, PathBuf};

/// What to present to a registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// Nothing: fine for public repositories.
    #[default]
    Anonymous,
    /// A user name and password (or token), sent as HTTP Basic or exchanged for a Bearer token.
    Basic { username: String, password: String },
}

impl fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
        }
    }
}

/// The credential files hearth reads (and, for `hearth`, writes).
#[derive(Debug, Clone, Default)]
pub struct CredentialFiles {
    /// hearth's own file, written by `hearth login`.
    pub hearth: Option<PathBuf>,
    /// Docker's `config.json`, read only.
    pub docker: Option<PathBuf>,
}

impl CredentialFiles {
    /// The standard locations, from `XDG_CONFIG_HOME`, `DOCKER_CONFIG` and `HOME`.
    pub fn from_env() -> Self {
        let home = env_path("HOME");
        let config =
            env_path("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
        let docker = env_path("DOCKER_CONFIG").or_else(|| home.as_ref().map(|h| h.join(".docker")));
        Self {
            hearth: config.map(|c| c.join("hearth").join("auth.json")),
            docker: docker.map(|d| d.join("config.json")),
        }
    }

    /// The credentials stored for `registry` (`host[:port]`), or `Anonymous`.
    pub fn lookup(&self, registry: &str) -> Result<Credentials, OciError> {
        for file in [&self.hearth, &self.docker].into_iter().flatten() {
            if let Some(found) = lookup_in(file, registry)? {
                tracing::debug!(registry, file = %file.display(), "using stored registry credentials");
                return Ok(found);
            }
        }
        Ok(Credentials::Anonymous)
    }

    /// Stores credentials for `registry` in hearth's file; returns the file's path.
    pub fn store(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<PathBuf, OciError> {
        let file = self.hearth_file()?;
        let mut config = read_json(&file)?.unwrap_or_else(|| serde_json::json!({}));
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let Some(root) = config.as_object_mut() else {
            return Err(OciError::BadCredentialsFile {
                path: file,
                why: "expected a JSON object".into(),
            });
        };
        let auths = root.entry("auths").or_insert_with(|| serde_json::json!({}));
        let Some(auths) = auths.as_object_mut() else {
            return Err(OciError::BadCredentialsFile {
                path: file,
                why: "expected `auths` to be an object".into(),
            });
        };
        auths.retain(|key, _| normalise(key) != normalise(registry));
        auths.insert(registry.to_string(), serde_json::json!({ "auth": auth }));
        write_private(&file, &config)?;
        Ok(file)
    }

    /// Removes `registry`'s entry from hearth's file; `false` when there was none.
    pub fn remove(&self, registry: &str) -> Result<bool, OciError> {
        let file = self.hearth_file()?;
        let Some(mut config) = read_json(&file)? else {
            return Ok(false);
        };
        let Some(auths) = config.get_mut("auths").and_then(|a| a.as_object_mut()) else {
            return Ok(false);
        };
        let before = auths.len();
        auths.retain(|key, _| normalise(key) != normalise(registry));
        if auths.len() == before {
            return Ok(false);
        }
        write_private(&file, &config)?;
        Ok(true)
    }

    /// Whether Docker's file has an entry for `registry` (for `hearth logout` to mention).
    pub fn docker_has(&self, registry: &str) -> bool {
        self.docker
            .as_deref()
            .is_some_and(|f| matches!(lookup_in(f, registry), Ok(Some(_))))
    }

    fn hearth_file(&self) -> Result<PathBuf, OciError> {
        self.hearth
            .clone()
            .ok_or_else(|| {
                OciError::BadCredentialsFile {
            path: PathBuf::from("$XDG_CONFIG_HOME/hearth/auth.json"),
            why: "neither XDG_CONFIG_HOME nor HOME is set, so there is nowhere to keep credentials"
                .into(),
        }
            })
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A registry key as Docker writes it (`https://index.docker.io/v1/`, `ghcr.io`,
/// `http://127.0.0.1:5000`) reduced to `host[:port]`, lower-case, with Docker Hub's aliases
/// folded into `docker.io`.
fn normalise(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

fn read_json(file: &Path) -> Result<Option<serde_json::Value>, OciError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(OciError::io("cannot read the credentials file", file, e)),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| OciError::BadCredentialsFile {
            path: file.to_path_buf(),
            why: format!("not valid JSON: {e}"),
        })
}

fn lookup_in(file: &Path, registry: &str) -> Result<Option<Credentials>, OciError> {
    let Some(config) = read_json(file)? else {
        return Ok(None);
    };
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let wanted = normalise(registry);
    let Some((key, entry)) = auths.iter().find(|(key, _)| normalise(key) == wanted) else {
        return Ok(None);
    };
    let bad = |why: String| OciError::BadCredentialsFile {
        path: file.to_path_buf(),
        why: format!("auths.{key}: {why}"),
    };
    if let Some(auth) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(format!("`auth` is not base64: {e}")))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| bad("`auth` does not decode to UTF-8 text".into()))?;
        let Some((username, password)) = text.split_once(':') else {
            return Err(bad("`auth` must encode `user:password`".into()));
        };
        return Ok(Some(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).map(str::to_string);
    match (field("username"), field("password")) {
        (Some(username), Some(password)) => Ok(Some(Credentials::Basic { username, password })),
        // An entry without a secret (Docker writes those when a credential helper holds it).
        _ => Ok(None),
    }
}

/// Writes `value` to `file` readable by its owner only, through a temporary file and a rename
/// so a crash never leaves half a file.
fn write_private(file: &Path, value: &serde_json::Value) -> Result<(), OciError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)
        .map_err(|e| OciError::io("cannot create the credentials directory", dir, e))?;
    let text = serde_json::to_vec_pretty(value).map_err(|e| OciError::BadCredentialsFile {
        path: file.to_path_buf(),
        why: e.to_string(),
    })?;
    let tmp = dir.join(format!(".auth.json.{}.tmp", std::process::id()));
    let written = (|| {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        OciError::io("cannot write the credentials file", file, e)
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hearth-oci-cred-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn login_then_lookup_then_logout() {
        let dir = temp("roundtrip");
        let files = CredentialFiles {
            hearth: Some(dir.join("hearth/auth.json")),
            docker: Some(dir.join("docker/config.json")),
        };
        assert_eq!(
            files.lookup("127.0.0.1:5000").unwrap(),
            Credentials::Anonymous
        );
        files.store("127.0.0.1:5000", "alice", "pa:ss").unwrap();
        assert_eq!(
            files.lookup("127.0.0.1:5000").unwrap(),
            Credentials::Basic {
                username: "alice".into(),
                password: "pa:ss".into()
            }
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("hearth/auth.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(files.remove("127.0.0.1:5000").unwrap());
        assert!(!files.remove("127.0.0.1:5000").unwrap());
        assert_eq!(
            files.lookup("127.0.0.1:5000").unwrap(),
            Credentials::Anonymous
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_docker_config_keys_in_any_spelling() {
        let dir = temp("docker");
        std::fs::write(
            dir.join("config.json"),
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "Ym9iOnNlY3JldA=="},
                "http://127.0.0.1:5000": {"username": "u", "password": "p"},
                "ghcr.io": {}
            }, "credsStore": "desktop"}"#,
        )
        .unwrap();
        let files = CredentialFiles {
            hearth: Some(dir.join("missing.json")),
            docker: Some(dir.join("config.json")),
        };
        assert_eq!(
            files.lookup("docker.io").unwrap(),
            Credentials::Basic {
                username: "bob".into(),
                password: "secret".into()
            }
        );
        assert_eq!(
            files.lookup("127.0.0.1:5000").unwrap(),
            Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(files.lookup("ghcr.io").unwrap(), Credentials::Anonymous);
        assert!(files.docker_has("docker.io"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
