//! Which part a changed file belongs to: the meaning of a part's `build.watch`.
//!
//! An entry is a file or directory (a change anywhere under it counts) or a glob (`*` and `?`
//! within one path segment, `**` for any number of segments), relative to the manifest. The
//! default is the part's `build.path`. A build's own output never counts: `target/` under
//! `build.path`, and the part's `image`. Watching the file system is `hearth dev`'s job.

use std::path::{Component, Path, PathBuf};

/// The files whose changes make one part stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// Absolute, lexically normalised files, directories or globs.
    include: Vec<PathBuf>,
    /// Absolute, lexically normalised paths that never count.
    exclude: Vec<PathBuf>,
}

impl Watch {
    /// `entries` (relative to `base`, or absolute); `None` watches `dir`. `dir/target` and
    /// `image` are always left out.
    pub fn new(base: &Path, entries: Option<&[String]>, dir: &Path, image: &Path) -> Self {
        let include = match entries {
            Some(entries) => entries.iter().map(|e| absolute(&base.join(e))).collect(),
            None => vec![absolute(dir)],
        };
        Self {
            include,
            exclude: vec![absolute(&dir.join("target")), absolute(image)],
        }
    }

    /// The entries to hand to a file watcher: each directory, file or glob, absolute.
    pub fn entries(&self) -> &[PathBuf] {
        &self.include
    }

    /// Whether a change to `path` (absolute, or relative to the current directory) makes the
    /// part stale.
    pub fn matches(&self, path: &Path) -> bool {
        let path = absolute(path);
        let excluded = self.exclude.iter().any(|e| path.starts_with(e));
        !excluded
            && self
                .include
                .iter()
                .any(|pattern| path.ancestors().any(|p| glob(pattern, p)))
    }
}

/// `path` made absolute against the current directory, with `.` and `..` resolved lexically
/// (the file may not exist, so it is not canonicalised).
pub fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `path` matches `pattern` as a whole, segment by segment.
fn glob(pattern: &Path, path: &Path) -> bool {
    let pattern: Vec<String> = segments(pattern);
    let path: Vec<String> = segments(path);
    match_segments(&pattern, &path)
}

fn segments(path: &Path) -> Vec<String> {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

fn match_segments(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => path.split_first().is_some_and(|(p, path_rest)| {
            match_segment(first.as_bytes(), p.as_bytes()) && match_segments(rest, path_rest)
        }),
    }
}

/// `*` is any run of characters, `?` any one; everything else matches itself.
fn match_segment(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| match_segment(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && match_segment(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && match_segment(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(entries: Option<&[&str]>) -> Watch {
        let entries: Option<Vec<String>> =
            entries.map(|e| e.iter().map(|s| s.to_string()).collect());
        Watch::new(
            Path::new("/p"),
            entries.as_deref(),
            Path::new("/p/."),
            Path::new("/p/out/app.wasm"),
        )
    }

    #[test]
    fn default_is_the_build_path_without_target_and_image() {
        let w = watch(None);
        assert!(w.matches(Path::new("/p/http/src/lib.rs")));
        assert!(w.matches(Path::new("/p/Cargo.toml")));
        assert!(!w.matches(Path::new("/p/target/wasm32-wasip2/release/x.wasm")));
        assert!(!w.matches(Path::new("/p/out/app.wasm")));
        assert!(w.matches(Path::new("/p/out/other")));
        assert!(!w.matches(Path::new("/elsewhere/lib.rs")));
    }

    #[test]
    fn directories_files_and_globs() {
        let w = watch(Some(&["http", "Cargo.toml", "wit/*.wit", "**/*.proto"]));
        assert!(w.matches(Path::new("/p/http/src/lib.rs")));
        assert!(w.matches(Path::new("/p/./Cargo.toml")));
        assert!(!w.matches(Path::new("/p/service/src/main.rs")));
        assert!(w.matches(Path::new("/p/wit/world.wit")));
        assert!(!w.matches(Path::new("/p/wit/deps/x.wit")));
        assert!(w.matches(Path::new("/p/a/b/c.proto")));
        assert!(!w.matches(Path::new("/p/target/x.proto")));
    }

    #[test]
    fn segment_wildcards() {
        assert!(match_segment(b"*.rs", b"lib.rs"));
        assert!(match_segment(b"l?b.*", b"lib.rs"));
        assert!(!match_segment(b"*.rs", b"lib.rsx"));
        assert!(match_segment(b"*", b""));
    }
}
