//! `wasi:blobstore` end to end through the `blob-http` guest: every operation against the
//! `memory` and `filesystem` backends, a 1 MiB value through the streams byte for byte,
//! ranges, containers kept apart per workload (and shared by name when configured), files
//! that outlive a restart and a `kill -9`, and bad backend settings named by field.

use crate::support::{Hearth, RawResponse, TempDir, hearth_cmd, run_expecting_failure, wasm};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A workload named `name` serving `blob-http` on host `name.localhost`.
fn manifest(name: &str, interfaces: &str) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n{interfaces}  components:\n    - name: blob\n      image: {}\n      http: {{host: {name}.localhost, path: /}}\n",
        wasm("blob_http")
    )
}

fn filesystem(path: &Path) -> String {
    format!(
        "  hostInterfaces:\n    - interface: wasi:blobstore\n      backend: filesystem\n      config: {{path: {}}}\n",
        path.display()
    )
}

/// Requests to one workload's `blob-http`.
struct Blob<'a> {
    host: &'a Hearth,
    name: String,
}

impl<'a> Blob<'a> {
    fn new(host: &'a Hearth, workload: &str) -> Self {
        Self {
            host,
            name: format!("{workload}.localhost"),
        }
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> RawResponse {
        self.host.send(method, &self.name, path, body)
    }

    /// The status and text of a request without a body.
    fn text(&self, method: &str, path: &str) -> (u16, String) {
        let r = self.call(method, path, b"");
        (r.status, r.text())
    }

    fn put(&self, container: &str, object: &str, data: &[u8]) {
        let r = self.call("PUT", &format!("/o/{container}/{object}"), data);
        assert_eq!(r.status, 201, "PUT {container}/{object}: {}", r.text());
    }

    fn read(&self, container: &str, object: &str) -> Vec<u8> {
        let r = self.call("GET", &format!("/o/{container}/{object}"), b"");
        assert_eq!(r.status, 200, "GET {container}/{object}: {}", r.text());
        r.body
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `key=value` lines → the value of `key`.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no `{key}` in {text:?}"))
        .to_string()
}

/// Bytes that are not text, different at every offset.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Every operation of the interface, with the answers a user would see.
fn every_operation(b: &Blob<'_>) {
    let before = now();
    assert_eq!(b.text("GET", "/exists/docs"), (200, "false\n".into()));
    assert_eq!(b.text("PUT", "/c/docs"), (201, "created\n".into()));
    assert_eq!(
        b.text("PUT", "/c/docs"),
        (500, "container `docs` already exists\n".into())
    );
    assert_eq!(b.text("GET", "/exists/docs"), (200, "true\n".into()));
    let (status, info) = b.text("GET", "/c/docs");
    assert_eq!(status, 200, "{info}");
    assert_eq!(field(&info, "name"), "docs");
    let created: u64 = field(&info, "created-at").parse().unwrap();
    assert!((before..=now()).contains(&created), "{created} vs {before}");
    assert_eq!(
        b.text("GET", "/c/nope"),
        (404, "container `nope` does not exist\n".into())
    );

    // Write and read, names with `/` and spaces included.
    b.put("docs", "hello.txt", b"hello, blobs");
    b.put("docs", "a%2Fb%2Fc%20d", b"nested");
    b.put("docs", "empty", b"");
    assert_eq!(b.read("docs", "hello.txt"), b"hello, blobs");
    assert_eq!(b.read("docs", "a%2Fb%2Fc%20d"), b"nested");
    assert_eq!(b.read("docs", "empty"), b"");
    b.put("docs", "hello.txt", b"replaced");
    assert_eq!(b.read("docs", "hello.txt"), b"replaced");
    // `write-data` before the stream is written: `finish` stores the whole value.
    let r = b.call(
        "PUT",
        "/o/docs/late?order=data-first&chunk=3",
        b"written after write-data",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(b.read("docs", "late"), b"written after write-data");
    assert_eq!(
        b.text("PUT", "/o/nope/x"),
        (404, "container `nope` does not exist\n".into())
    );

    // Ranges are inclusive; an end past the object is clamped.
    let range = |q: &str| b.text("GET", &format!("/o/docs/hello.txt?{q}"));
    assert_eq!(range("start=2&end=4"), (200, "pla".into()));
    assert_eq!(range("start=0&end=0"), (200, "r".into()));
    assert_eq!(range("start=5&end=1000"), (200, "ced".into()));
    assert_eq!(range("start=7"), (200, "d".into()));
    assert_eq!(
        range("start=4&end=2"),
        (
            500,
            "invalid range 4..=2 of object `hello.txt`: start is after end\n".into()
        )
    );
    assert_eq!(
        range("start=8&end=9"),
        (
            500,
            "range start 8 is past the end of object `hello.txt` in container `docs` (8 bytes)\n"
                .into()
        )
    );
    assert_eq!(
        b.text("GET", "/o/docs/missing"),
        (
            404,
            "object `missing` does not exist in container `docs`\n".into()
        )
    );

    // has / info / list.
    assert_eq!(b.text("GET", "/has/docs/hello.txt"), (200, "true\n".into()));
    assert_eq!(b.text("GET", "/has/docs/missing"), (200, "false\n".into()));
    let (status, info) = b.text("GET", "/info/docs/a%2Fb%2Fc%20d");
    assert_eq!(status, 200, "{info}");
    assert_eq!(field(&info, "name"), "a/b/c d");
    assert_eq!(field(&info, "container"), "docs");
    assert_eq!(field(&info, "size"), "6");
    let created: u64 = field(&info, "created-at").parse().unwrap();
    assert!((before..=now()).contains(&created));
    assert_eq!(
        b.text("GET", "/info/docs/missing"),
        (
            404,
            "object `missing` does not exist in container `docs`\n".into()
        )
    );
    let all = "a/b/c d\nempty\nhello.txt\nlate\n";
    assert_eq!(b.text("GET", "/list/docs"), (200, all.into()));
    assert_eq!(b.text("GET", "/list/docs?page=1"), (200, all.into()));
    assert_eq!(
        b.text("GET", "/list/docs?page=100&skip=2"),
        (200, "hello.txt\nlate\n".into())
    );
    assert_eq!(b.text("GET", "/list/docs?skip=9"), (200, "".into()));

    // Copy and move, within a container and across two.
    assert_eq!(b.text("PUT", "/c/other"), (201, "created\n".into()));
    assert_eq!(
        b.text("POST", "/copy/docs/hello.txt/docs/copy.txt"),
        (200, "copy done\n".into())
    );
    assert_eq!(
        b.text("POST", "/copy/docs/hello.txt/other/there.txt"),
        (200, "copy done\n".into())
    );
    assert_eq!(b.read("docs", "copy.txt"), b"replaced");
    assert_eq!(b.read("other", "there.txt"), b"replaced");
    assert_eq!(b.read("docs", "hello.txt"), b"replaced");
    assert_eq!(
        b.text("POST", "/move/docs/copy.txt/other/moved.txt"),
        (200, "move done\n".into())
    );
    assert_eq!(b.text("GET", "/has/docs/copy.txt"), (200, "false\n".into()));
    assert_eq!(b.read("other", "moved.txt"), b"replaced");
    // Onto an existing name: replaced. Onto itself: nothing changes.
    b.put("other", "there.txt", b"old");
    assert_eq!(
        b.text("POST", "/move/other/moved.txt/other/there.txt"),
        (200, "move done\n".into())
    );
    assert_eq!(b.read("other", "there.txt"), b"replaced");
    assert_eq!(
        b.text("POST", "/move/other/there.txt/other/there.txt"),
        (200, "move done\n".into())
    );
    assert_eq!(
        b.text("POST", "/copy/other/there.txt/other/there.txt"),
        (200, "copy done\n".into())
    );
    assert_eq!(b.read("other", "there.txt"), b"replaced");
    assert_eq!(
        b.text("POST", "/copy/docs/hello.txt/nope/x"),
        (404, "container `nope` does not exist\n".into())
    );
    assert_eq!(
        b.text("POST", "/move/docs/missing/other/x"),
        (
            404,
            "object `missing` does not exist in container `docs`\n".into()
        )
    );

    // Delete one, several (a missing name is fine), clear, then the container.
    assert_eq!(b.text("DELETE", "/o/docs/empty"), (200, "deleted\n".into()));
    assert_eq!(b.text("DELETE", "/o/docs/empty"), (200, "deleted\n".into()));
    let r = b.call("POST", "/delete/docs", b"late\nmissing\n");
    assert_eq!((r.status, r.text()), (200, "deleted\n".into()));
    assert_eq!(
        b.text("GET", "/list/docs"),
        (200, "a/b/c d\nhello.txt\n".into())
    );
    assert_eq!(b.text("POST", "/clear/docs"), (200, "cleared\n".into()));
    assert_eq!(b.text("GET", "/list/docs"), (200, "".into()));
    assert_eq!(b.text("GET", "/exists/docs"), (200, "true\n".into()));
    assert_eq!(b.text("DELETE", "/c/docs"), (200, "deleted\n".into()));
    assert_eq!(b.text("GET", "/exists/docs"), (200, "false\n".into()));
    assert_eq!(
        b.text("DELETE", "/c/docs"),
        (404, "container `docs` does not exist\n".into())
    );
    assert_eq!(
        b.text("GET", "/list/docs"),
        (404, "container `docs` does not exist\n".into())
    );
    assert_eq!(b.read("other", "there.txt"), b"replaced");
}

/// A 1 MiB value written through the output stream in chunks and read back through the input
/// stream (and whole, and in part), byte for byte.
fn mebibyte_round_trip(b: &Blob<'_>) {
    assert_eq!(b.text("PUT", "/c/big"), (201, "created\n".into()));
    let data = pattern(1 << 20, 7);
    for chunk in ["4096", "65536", "1000003"] {
        let r = b.call("PUT", &format!("/o/big/blob?chunk={chunk}"), &data);
        assert_eq!((r.status, r.text()), (201, "wrote 1048576 bytes\n".into()));
        let r = b.call("GET", "/o/big/blob", b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-read-mode"), Some("async"));
        assert_eq!(r.body.len(), data.len());
        assert!(
            r.body == data,
            "the bytes read differ from the bytes written"
        );
    }
    let r = b.call("GET", "/o/big/blob?mode=sync", b"");
    assert_eq!(r.header("x-read-mode"), Some("sync"));
    assert!(r.body == data);
    let r = b.call("GET", "/o/big/blob?start=1000&end=600000", b"");
    assert_eq!(r.header("x-read-mode"), Some("async"));
    assert!(r.body == data[1000..=600_000]);
    let r = b.call(
        "GET",
        "/o/big/blob?start=1048570&end=99999999&mode=async",
        b"",
    );
    assert!(r.body == data[1_048_570..]);
    let (_, info) = b.text("GET", "/info/big/blob");
    assert_eq!(field(&info, "size"), "1048576");
}

#[test]
fn every_operation_against_the_memory_backend() {
    let dir = TempDir::new("blob-mem");
    let m = dir.write("w.yaml", manifest("mem", ""));
    let host = Hearth::start(&[&m]);
    let b = Blob::new(&host, "mem");
    every_operation(&b);
    mebibyte_round_trip(&b);
}

#[test]
fn every_operation_against_the_filesystem_backend() {
    let dir = TempDir::new("blob-fs");
    let store = dir.0.join("store");
    let m = dir.write("w.yaml", manifest("fs", &filesystem(&store)));
    let host = Hearth::start(&[&m]);
    let b = Blob::new(&host, "fs");
    every_operation(&b);
    mebibyte_round_trip(&b);
    // Names are percent-encoded into file names, under the workload's own directory.
    b.put("other", "x%2F..%2Fy", b"safe");
    assert!(store.join("fs/other/x%2F..%2Fy").is_file());
    assert_eq!(
        b.text("GET", "/list/other"),
        (200, "there.txt\nx/../y\n".into())
    );
}

#[test]
fn workloads_do_not_see_each_others_containers() {
    let dir = TempDir::new("blob-iso");
    let store = dir.0.join("store");
    let shared = |backend: &str| {
        format!(
            "  hostInterfaces:\n    - interface: wasi:blobstore\n      backend: {backend}\n      config: {{shared: [common]}}\n"
        )
    };
    let fs_shared = format!(
        "  hostInterfaces:\n    - interface: wasi:blobstore\n      backend: filesystem\n      config: {{path: {}, shared: [common]}}\n",
        store.display()
    );
    let files = [
        dir.write("one.yaml", manifest("one", &shared("memory"))),
        dir.write("two.yaml", manifest("two", &shared("memory"))),
        dir.write("three.yaml", manifest("three", &fs_shared)),
        dir.write("four.yaml", manifest("four", &fs_shared)),
    ];
    let host = Hearth::start(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>());

    for (a, b) in [("one", "two"), ("three", "four")] {
        let (a, b) = (Blob::new(&host, a), Blob::new(&host, b));
        assert_eq!(a.text("PUT", "/c/box"), (201, "created\n".into()));
        a.put("box", "secret", b"for a only");
        assert_eq!(b.text("GET", "/exists/box"), (200, "false\n".into()));
        assert_eq!(
            b.text("GET", "/o/box/secret"),
            (404, "container `box` does not exist\n".into())
        );
        assert_eq!(
            b.text("POST", "/copy/box/secret/box/mine"),
            (404, "container `box` does not exist\n".into())
        );
        // The same name in the other workload is another container.
        assert_eq!(b.text("PUT", "/c/box"), (201, "created\n".into()));
        assert_eq!(b.text("GET", "/list/box"), (200, "".into()));
        b.put("box", "other", b"for b only");
        assert_eq!(a.text("GET", "/list/box"), (200, "secret\n".into()));
        assert_eq!(b.text("DELETE", "/c/box"), (200, "deleted\n".into()));
        assert_eq!(a.read("box", "secret"), b"for a only");

        // A container both list as shared is one container.
        assert_eq!(a.text("PUT", "/c/common"), (201, "created\n".into()));
        assert_eq!(b.text("GET", "/exists/common"), (200, "true\n".into()));
        b.put("common", "note", b"from b");
        assert_eq!(a.read("common", "note"), b"from b");
        // Copy from a private container into the shared one.
        assert_eq!(
            a.text("POST", "/copy/box/secret/common/published"),
            (200, "copy done\n".into())
        );
        assert_eq!(b.read("common", "published"), b"for a only");
    }
}

/// Starts `hearth run` on the one manifest `m`.
fn start(m: &Path) -> Hearth {
    Hearth::start(&[m])
}

#[test]
fn filesystem_objects_survive_a_restart_and_a_kill() {
    let dir = TempDir::new("blob-restart");
    let store = dir.0.join("store");
    let m = dir.write("w.yaml", manifest("keep", &filesystem(&store)));
    let big = pattern(1 << 20, 3);

    let mut host = start(&m);
    let b = Blob::new(&host, "keep");
    assert_eq!(b.text("PUT", "/c/keep"), (201, "created\n".into()));
    b.put("keep", "big", &big);
    b.put("keep", "small", b"small");
    let (_, info_before) = b.text("GET", "/c/keep");
    host.signal("TERM");
    host.wait(Duration::from_secs(30));

    let host = start(&m);
    let b = Blob::new(&host, "keep");
    assert!(b.read("keep", "big") == big);
    assert_eq!(b.read("keep", "small"), b"small");
    assert_eq!(b.text("GET", "/c/keep"), (200, info_before));
    b.put("keep", "after-restart", b"one");
    // Dropping the handle kills the process with SIGKILL.
    drop(host);

    let host = start(&m);
    let b = Blob::new(&host, "keep");
    assert_eq!(b.read("keep", "after-restart"), b"one");
    assert_eq!(
        b.text("GET", "/list/keep"),
        (200, "after-restart\nbig\nsmall\n".into())
    );
}

#[test]
fn a_kill_during_writes_leaves_no_torn_object() {
    let dir = TempDir::new("blob-torn");
    let store = dir.0.join("store");
    let m = dir.write("w.yaml", manifest("torn", &filesystem(&store)));
    let data = pattern(1 << 20, 11);

    let host = start(&m);
    let addr = host.http;
    assert_eq!(
        Blob::new(&host, "torn").text("PUT", "/c/t"),
        (201, "created\n".into())
    );
    // Overwrite objects as fast as possible from two threads, then kill -9 mid-stream.
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let data = data.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let path = format!("/o/t/obj-{t}-{}", i % 3);
                    let ok = std::panic::catch_unwind(|| {
                        crate::support::send(addr, "PUT", "torn.localhost", &path, &data)
                    });
                    if ok.is_err() {
                        return i;
                    }
                }
                unreachable!()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    host.signal("KILL");
    let written: Vec<usize> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(
        written.iter().all(|&n| n > 0),
        "no write finished: {written:?}"
    );
    drop(host);

    let host = start(&m);
    let b = Blob::new(&host, "torn");
    let (status, list) = b.text("GET", "/list/t");
    assert_eq!(status, 200);
    assert!(!list.is_empty());
    for name in list.lines() {
        assert!(name.starts_with("obj-"), "unexpected object {name:?}");
        assert!(b.read("t", name) == data, "object {name} is torn");
    }
}

#[test]
fn bad_backend_settings_are_named() {
    let dir = TempDir::new("blob-bad");
    let validate = |interfaces: &str| {
        let m = dir.write("w.yaml", manifest("bad", interfaces));
        let (code, _, err) = hearth_cmd(&["validate", m.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        err
    };
    let entry = |backend: &str, config: &str| {
        format!(
            "  hostInterfaces:\n    - interface: wasi:blobstore\n      backend: {backend}\n      config: {config}\n"
        )
    };

    let err = validate(&entry("filesystem", "{}"));
    assert!(
        err.contains(
            "spec.hostInterfaces[0].config.path: missing: expected an absolute directory path"
        ),
        "{err}"
    );
    let err = validate(&entry("filesystem", "{path: data/blobs}"));
    assert!(
        err.contains("spec.hostInterfaces[0].config.path: `data/blobs` is relative: expected an absolute directory path"),
        "{err}"
    );
    let err = validate(&entry("filesystem", "{path: /tmp/x, colour: red}"));
    assert!(
        err.contains(
            "spec.hostInterfaces[0].config.colour: unknown key: expected one of path, shared"
        ),
        "{err}"
    );
    let err = validate(&entry("memory", "{path: /tmp/x}"));
    assert!(
        err.contains("spec.hostInterfaces[0].config.path: unknown key: expected one of shared"),
        "{err}"
    );
    let err = validate(&entry("memory", "{shared: common}"));
    assert!(
        err.contains("spec.hostInterfaces[0].config.shared: expected a list of container names, found `common`"),
        "{err}"
    );
    let err = validate(&entry("s3", "{}"));
    assert!(
        err.contains("spec.hostInterfaces[0].backend: unknown backend `s3` for `wasi:blobstore`: expected one of memory, filesystem"),
        "{err}"
    );

    // A path that cannot be a directory passes `validate` (no I/O) but fails the deploy.
    let file = dir.write("plain-file", "not a directory");
    let m = dir.write(
        "run.yaml",
        manifest("bad", &filesystem(&file.join("blobs"))),
    );
    let (code, _, err) = hearth_cmd(&["validate", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let err = run_expecting_failure(&m);
    assert!(
        err.contains("spec.hostInterfaces[0].config.path: cannot create directory"),
        "{err}"
    );
}
