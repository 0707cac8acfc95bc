//! `hearth build`: turn each part's sources into the `image` its manifest names.
//!
//! Owns choosing a manifest's parts ([`plan`]), running cargo or a part's `build.command` once
//! per source directory ([`build_parts`]), putting cargo's output where `image` points (cargo
//! may write elsewhere, under `CARGO_TARGET_DIR` say), and checking that every image is a
//! component. Watching files and redeploying are `hearth dev`'s: it calls [`plan`] once,
//! [`Part::watches`] for each changed file, then [`build_parts`] with the stale parts and
//! [`Options::capture`] to keep the compiler's output for itself.

mod tools;
#[allow(
    dead_code,
    reason = "for `hearth dev` (dev.rs), not wired into main.rs yet"
)]
mod watch;

use crate::{EXIT_FAILED, EXIT_INVALID};
use hearth_manifest::{BuildSpec, ImageRef, Source};
use hearth_runtime::inspect::{WasmKind, kind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub use watch::Watch;

/// The manifest or the `--part` selection is wrong; nothing was built (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A build did not produce a usable component (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{message}{}", output.as_deref().map(|o| format!("\n{}", o.trim_end())).unwrap_or_default())]
pub struct Failed {
    /// What failed, where, and the fix when there is one.
    pub message: String,
    /// The tool's output, when it was captured rather than streamed.
    pub output: Option<String>,
}

impl Failed {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            output: None,
        }
    }
}

/// How [`build_parts`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep the tools' output in [`BuildReport::output`] (and in [`Failed::output`]) and
    /// print nothing, instead of streaming it and printing a progress line per build.
    pub capture: bool,
}

/// One buildable part of a workload: a component or the service.
#[derive(Debug, Clone)]
pub struct Part {
    /// `metadata.name` of its workload.
    pub workload: String,
    /// The component's name, or `service`.
    pub name: String,
    /// What messages call it: `name`, or `workload/name` when the manifest has several
    /// workloads.
    pub label: String,
    /// Where it is in the manifest, for messages: `app.yaml: spec.components[0]`.
    location: String,
    /// The component file, resolved against the manifest's directory.
    pub image: PathBuf,
    /// `build.path`, resolved against the manifest's directory.
    pub dir: PathBuf,
    /// `build.command`; `None` builds with cargo.
    pub command: Option<String>,
    /// Whether the manifest has a `build` for this part (otherwise the defaults apply).
    explicit: bool,
    /// The files whose changes make this part stale.
    #[allow(
        dead_code,
        reason = "for `hearth dev` (dev.rs), not wired into main.rs yet"
    )]
    pub watch: Watch,
}

impl Part {
    fn new(
        source: &Source,
        workload: &str,
        name: &str,
        field: &str,
        image: &Path,
        build: Option<&BuildSpec>,
    ) -> Self {
        let spec = build.cloned().unwrap_or_default();
        let dir = spec.dir(source);
        let mut location = format!("{}: ", source.file.display());
        if let Some(d) = source.document_label() {
            location.push_str(&format!("document {}: ", d + 1));
        }
        location.push_str(&source.field(field));
        Self {
            workload: workload.to_string(),
            name: name.to_string(),
            label: name.to_string(),
            location,
            watch: Watch::new(source.base_dir(), spec.watch.as_deref(), &dir, image),
            image: image.to_path_buf(),
            dir,
            command: spec.command,
            explicit: build.is_some(),
        }
    }

    /// Whether a change to `path` makes this part stale (see `build.watch`).
    #[allow(
        dead_code,
        reason = "for `hearth dev` (dev.rs), not wired into main.rs yet"
    )]
    pub fn watches(&self, path: &Path) -> bool {
        self.watch.matches(path)
    }

    /// `app.yaml: spec.components[0].rest`, for messages.
    fn at(&self, rest: &str) -> String {
        format!("{}.{rest}", self.location)
    }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Every part built, in manifest order.
    pub built: Vec<Built>,
    /// The tools' output, when [`Options::capture`] was set.
    #[allow(
        dead_code,
        reason = "for `hearth dev` (dev.rs), not wired into main.rs yet"
    )]
    pub output: String,
    /// Wall time of the whole build.
    pub elapsed: Duration,
}

/// One part that was built.
#[derive(Debug, Clone)]
pub struct Built {
    pub part: Part,
    /// Size of the image.
    pub bytes: u64,
    /// Whether the image's contents differ from before the build (a part whose sources did
    /// not change is rebuilt by cargo as a no-op and keeps its bytes).
    pub changed: bool,
}

/// The parts of every workload in `manifest`, or only those named in `only` (a component's
/// name or `service`, optionally as `workload/name`).
pub fn plan(manifest: &Path, only: Option<&[String]>) -> anyhow::Result<Vec<Part>> {
    let workloads = hearth_manifest::load_files(&[manifest.to_path_buf()])
        .map_err(|e| Invalid(e.to_string()))?;
    let several = workloads.len() > 1;
    let mut parts = Vec::new();
    // Parts whose image comes from a registry: pulled at deploy, never built.
    let mut pulled: Vec<(String, String)> = Vec::new();
    for w in &workloads {
        let s = &w.source;
        let mut add =
            |name: &str, field: &str, image: ImageRef, build: Option<&BuildSpec>| match image {
                ImageRef::File(image) => {
                    parts.push(Part::new(s, &w.name, name, field, &image, build));
                }
                _ => pulled.push((w.name.clone(), name.to_string())),
            };
        for part in w.parts() {
            let build = match part {
                hearth_manifest::Part::Component(i) => w.spec.components[i].build.as_ref(),
                hearth_manifest::Part::Service => {
                    w.spec.service.as_ref().and_then(|s| s.build.as_ref())
                }
            };
            if let Some(image) = w.image_of(part) {
                add(w.part_name(part), &part.to_string(), image, build);
            }
        }
    }
    if several {
        for p in &mut parts {
            p.label = format!("{}/{}", p.workload, p.name);
        }
    }
    let Some(only) = only.filter(|o| !o.is_empty()) else {
        return Ok(parts);
    };
    let named = |p: &Part, n: &str| p.name == n || format!("{}/{}", p.workload, p.name) == n;
    if let Some(missing) = only.iter().find(|n| !parts.iter().any(|p| named(p, n))) {
        if pulled
            .iter()
            .any(|(w, p)| p == missing || format!("{w}/{p}") == **missing)
        {
            return Err(Invalid(format!(
                "{}: part `{missing}` has an oci:// image, which is pulled when deployed, not built",
                manifest.display()
            ))
            .into());
        }
        let known: Vec<&str> = parts.iter().map(|p| p.label.as_str()).collect();
        return Err(Invalid(format!(
            "{}: no part named `{missing}`; its parts are: {}",
            manifest.display(),
            known.join(", ")
        ))
        .into());
    }
    parts.retain(|p| only.iter().any(|n| named(p, n)));
    Ok(parts)
}

/// Builds the parts of `manifest` (all, or those named in `only`), streaming the tools'
/// output and printing a progress line per build.
pub fn build(manifest: &Path, only: Option<&[String]>) -> anyhow::Result<BuildReport> {
    build_parts(&plan(manifest, only)?, &Options::default())
}

/// `hearth dev`'s rebuild: like [`build`] (streamed, with progress lines), for the parts
/// named in `parts` (component names or `service`), or all of them.
#[allow(
    dead_code,
    reason = "for `hearth dev` (dev.rs), not wired into main.rs yet"
)]
pub fn build_for_dev(manifest: &Path, parts: Option<&Vec<String>>) -> anyhow::Result<BuildReport> {
    build(manifest, parts.map(Vec::as_slice))
}

/// The directories and files to scan for changes to a part with this `build` (absent: the
/// defaults), resolved against the manifest's directory `base`. A glob entry is reduced to
/// the directory before its first wildcard; [`Part::watches`] has the exact rule.
#[allow(
    dead_code,
    reason = "for `hearth dev` (dev.rs), not wired into main.rs yet"
)]
pub fn watch_roots(base: &Path, build: Option<&BuildSpec>) -> Vec<PathBuf> {
    let spec = build.cloned().unwrap_or_default();
    let Some(entries) = &spec.watch else {
        return vec![base.join(&spec.path)];
    };
    entries
        .iter()
        .map(|e| {
            let literal: PathBuf = Path::new(e)
                .components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?']))
                .collect();
            base.join(literal)
        })
        .collect()
}

/// Builds `parts`: one cargo run per distinct `build.path` (and one run per distinct
/// `build.command`), then checks that every image is a component.
pub fn build_parts(parts: &[Part], opts: &Options) -> anyhow::Result<BuildReport> {
    let started = Instant::now();
    let mut output = String::new();
    let before: Vec<Option<u64>> = parts.iter().map(|p| fingerprint(&p.image)).collect();
    let mut toolchain_checked = false;
    for group in groups(parts) {
        let members: Vec<&Part> = group.iter().map(|&i| &parts[i]).collect();
        let Some(first) = members.first() else {
            continue;
        };
        let shown = shown(&first.dir);
        if !first.dir.is_dir() {
            let field = if first.explicit {
                "build.path"
            } else {
                "build"
            };
            return Err(Failed::new(format!(
                "{}: {shown} is not a directory{}",
                first.at(field),
                if first.explicit {
                    ""
                } else {
                    " (no `build` given: the manifest's directory is built)"
                }
            ))
            .into());
        }
        let labels: Vec<&str> = members.iter().map(|p| p.label.as_str()).collect();
        let labels = labels.join(", ");
        match &first.command {
            Some(command) => {
                if !opts.capture {
                    eprintln!("==> building {labels} (`{command}`, {shown})");
                }
                tools::shell(&first.dir, &shown, command, opts, &mut output)?;
                for p in &members {
                    check_image(p, &format!("`{command}` ran in {shown}, but"))?;
                }
            }
            None => {
                if !first.dir.join("Cargo.toml").is_file() {
                    let fix = if first.explicit {
                        format!("{}: {shown} has no Cargo.toml", first.at("build.path"))
                    } else {
                        format!(
                            "{}: no `build` given, and the manifest's directory ({shown}) has no Cargo.toml",
                            first.at("build")
                        )
                    };
                    return Err(Failed::new(format!(
                        "{fix}; set `build.path` to a cargo package or workspace, or `build.command` for another language"
                    ))
                    .into());
                }
                if !toolchain_checked {
                    tools::check_toolchain(&first.dir)?;
                    toolchain_checked = true;
                }
                if !opts.capture {
                    eprintln!("==> building {labels} (cargo, {shown})");
                }
                let artifacts = tools::cargo(&first.dir, &shown, opts, &mut output)?;
                for p in &members {
                    place(p, &artifacts, &shown)?;
                    check_image(p, "cargo ran, but")?;
                }
            }
        }
    }
    let mut built = Vec::new();
    for (p, before) in parts.iter().zip(before) {
        let bytes = std::fs::metadata(&p.image).map(|m| m.len()).unwrap_or(0);
        built.push(Built {
            part: p.clone(),
            bytes,
            changed: before != fingerprint(&p.image),
        });
    }
    Ok(BuildReport {
        built,
        output,
        elapsed: started.elapsed(),
    })
}

/// Indices of `parts` that share one build: the same directory and the same command.
fn groups(parts: &[Part]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(PathBuf, Option<&str>, Vec<usize>)> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let dir = watch::absolute(&p.dir);
        match groups
            .iter_mut()
            .find(|(d, c, _)| *d == dir && *c == p.command.as_deref())
        {
            Some((_, _, members)) => members.push(i),
            None => groups.push((dir, p.command.as_deref(), vec![i])),
        }
    }
    groups.into_iter().map(|(_, _, members)| members).collect()
}

/// Copies the `.wasm` cargo built for `p` to `p.image`, when cargo wrote it somewhere else
/// (`CARGO_TARGET_DIR`, `build.target-dir`). The artifact is the one with the image's file
/// name.
fn place(p: &Part, artifacts: &[PathBuf], shown: &str) -> Result<(), Failed> {
    let Some(file_name) = p.image.file_name() else {
        return Err(Failed::new(format!(
            "{}: expected a file path",
            p.at("image")
        )));
    };
    let Some(artifact) = artifacts.iter().find(|a| a.file_name() == Some(file_name)) else {
        let mut names: Vec<String> = artifacts
            .iter()
            .filter_map(|a| a.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        let built = if names.is_empty() {
            "no .wasm file".to_string()
        } else {
            names.join(", ")
        };
        return Err(Failed::new(format!(
            "{}: cargo built {built} in {shown}, but not `{}`; name one of those in `image` (under target/{}/release/), or set `build.path` to the crate that builds it",
            p.at("image"),
            file_name.to_string_lossy(),
            tools::TARGET
        )));
    };
    let same = match (artifact.canonicalize(), p.image.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Ok(());
    }
    if let Some(parent) = p.image.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            Failed::new(format!(
                "{}: cannot create {}: {e}",
                p.at("image"),
                parent.display()
            ))
        })?;
    }
    std::fs::copy(artifact, &p.image).map_err(|e| {
        Failed::new(format!(
            "{}: cannot copy {} to {}: {e}",
            p.at("image"),
            artifact.display(),
            p.image.display()
        ))
    })?;
    Ok(())
}

/// Checks that `p.image` exists and is a component; `after` starts the message when not.
fn check_image(p: &Part, after: &str) -> Result<(), Failed> {
    let image = shown(&p.image);
    let mut head = [0u8; 8];
    let read = std::fs::File::open(&p.image).and_then(|mut f| {
        use std::io::Read;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    });
    let n = match read {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failed::new(format!(
                "{}: {after} {image} does not exist; the build must write the component there",
                p.at("image")
            )));
        }
        Err(e) => {
            return Err(Failed::new(format!(
                "{}: cannot read {image}: {e}",
                p.at("image")
            )));
        }
    };
    match kind(&head[..n]) {
        WasmKind::Component => Ok(()),
        WasmKind::CoreModule => Err(Failed::new(format!(
            "{}: {image} is a core WebAssembly module, not a component; build for {} (a wasm32-wasip1 module can be wrapped with `wasm-tools component new`)",
            p.at("image"),
            tools::TARGET
        ))),
        WasmKind::NotWasm => Err(Failed::new(format!(
            "{}: {image} is not WebAssembly; expected a component built for {}",
            p.at("image"),
            tools::TARGET
        ))),
    }
}

/// A cheap identity of a file's contents, `None` when it cannot be read.
fn fingerprint(path: &Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// A path for messages: `.` components dropped, `./` in front of a bare relative name.
fn shown(path: &Path) -> String {
    let clean: PathBuf = path.components().collect();
    let text = clean.display().to_string();
    if text.is_empty() {
        ".".to_string()
    } else if clean.is_relative() && !text.starts_with('.') {
        format!("./{text}")
    } else {
        text
    }
}

/// `hearth build [MANIFEST] [--part NAME]...`.
pub fn main(manifest: &Path, only: &[String]) -> ExitCode {
    match build(manifest, Some(only)) {
        Ok(report) => {
            print_summary(&report);
            ExitCode::SUCCESS
        }
        Err(e) if e.is::<Invalid>() => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn print_summary(report: &BuildReport) {
    let n = report.built.len();
    println!(
        "built {n} part{} in {:.1}s",
        if n == 1 { "" } else { "s" },
        report.elapsed.as_secs_f64()
    );
    let label = report
        .built
        .iter()
        .map(|b| b.part.label.len())
        .max()
        .unwrap_or(0);
    let images: Vec<String> = report.built.iter().map(|b| shown(&b.part.image)).collect();
    let width = images.iter().map(String::len).max().unwrap_or(0);
    for (b, image) in report.built.iter().zip(&images) {
        println!(
            "  {:label$}  {image:width$}  {:>9}{}",
            b.part.label,
            size(b.bytes),
            if b.changed { "" } else { "  (unchanged)" }
        );
    }
}

/// `812 B`, `93.4 KiB`, `2.1 MiB`.
fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^52
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(812), "812 B");
        assert_eq!(size(95_642), "93.4 KiB");
        assert_eq!(size(2_202_009), "2.1 MiB");
    }

    /// A manifest in a fresh directory whose one component is built by `command`.
    fn project(tag: &str, command: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-build-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("workload.yaml");
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata: {{ name: app }}\nspec:\n  components:\n    - name: web\n      image: c.wasm\n      build: {{ command: {command:?} }}\n"
            ),
        )
        .unwrap();
        manifest
    }

    #[test]
    fn captured_output_lands_in_the_report_and_in_the_error() {
        // The 8-byte preamble of a component is all the check reads.
        let manifest = project(
            "capture",
            r"echo out; echo err >&2; printf '\000asm\015\000\001\000' > c.wasm",
        );
        let parts = plan(&manifest, None).unwrap();
        let report = build_parts(&parts, &Options { capture: true }).unwrap();
        assert!(report.output.contains("out\n"), "{}", report.output);
        assert!(report.output.contains("err\n"), "{}", report.output);
        assert_eq!(report.built.len(), 1);
        assert_eq!(report.built[0].bytes, 8);
        assert!(report.built[0].changed);
        let again = build_parts(&parts, &Options { capture: true }).unwrap();
        assert!(!again.built[0].changed);

        let manifest = project("capture-fail", "echo 'boom: line 3' >&2; exit 3");
        let parts = plan(&manifest, None).unwrap();
        let err = build_parts(&parts, &Options { capture: true }).unwrap_err();
        let failed = err.downcast_ref::<Failed>().unwrap();
        assert!(
            failed.message.contains("(exit status 3)"),
            "{}",
            failed.message
        );
        assert!(err.to_string().ends_with("boom: line 3"), "{err}");
        let _ = std::fs::remove_dir_all(manifest.parent().unwrap());
    }

    #[test]
    fn unknown_parts_are_invalid() {
        let manifest = project("parts", "true");
        let err = plan(&manifest, Some(&["db".to_string()])).unwrap_err();
        assert!(err.is::<Invalid>());
        assert!(
            err.to_string()
                .ends_with("no part named `db`; its parts are: web"),
            "{err}"
        );
        assert_eq!(
            plan(&manifest, Some(&["app/web".to_string()]))
                .unwrap()
                .len(),
            1
        );
        let _ = std::fs::remove_dir_all(manifest.parent().unwrap());
    }

    #[test]
    fn shown_paths() {
        assert_eq!(shown(Path::new(".")), ".");
        assert_eq!(shown(Path::new("x/.")), "./x");
        assert_eq!(shown(Path::new("./web")), "./web");
        assert_eq!(shown(Path::new("/abs/x")), "/abs/x");
    }
}
