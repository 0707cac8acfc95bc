//! HTTP component that calls a second component through `hearth:types/echo@0.1.0`.
//!
//! - `GET /roundtrip` calls every `echo-*` function with non-trivial values and checks
//!   that each answer equals what was sent: `200 all <n> round-trips ok`, or `500` with
//!   one line per failed round trip.
//! - `GET /greet/<name>` (percent-decoded) calls `greet`: `200 <greeting>` on `Ok`,
//!   `502 greet failed: <err>` on `Err`. A trap in the callee traps this call too.
//!
//! The `wasi:http/incoming-handler` export comes from `#[wstd::http_server]`; the
//! `caller-imports` world only adds the `echo` import.

wit_bindgen::generate!({
    world: "caller-imports",
    additional_derives: [PartialEq],
});

use hearth::types::echo::{self, Colour, Perms, Point, Shape};
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    if request.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    let path = request.uri().path().to_owned();
    if path == "/roundtrip" {
        let (total, failures) = roundtrip();
        if failures.is_empty() {
            text(StatusCode::OK, format!("all {total} round-trips ok\n"))
        } else {
            let mut body = format!("{} of {total} round-trips failed:\n", failures.len());
            for f in &failures {
                body.push_str(f);
                body.push('\n');
            }
            text(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
    } else if let Some(raw) = path.strip_prefix("/greet/") {
        let Some(name) = percent_decode(raw) else {
            return text(StatusCode::BAD_REQUEST, "bad name encoding\n".into());
        };
        match echo::greet(&name) {
            Ok(greeting) => text(StatusCode::OK, format!("{greeting}\n")),
            Err(e) => text(StatusCode::BAD_GATEWAY, format!("greet failed: {e}\n")),
        }
    } else {
        text(StatusCode::NOT_FOUND, "not found\n".into())
    }
}

/// Records one round trip; a mismatch is described with both values.
struct Checker {
    total: usize,
    failures: Vec<String>,
}

impl Checker {
    fn check<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, sent: T, got: T) {
        self.total += 1;
        if sent != got {
            let mut line = format!("{name}: sent {sent:?}, got {got:?}");
            if line.len() > 300 {
                line.truncate(line.floor_char_boundary(300));
                line.push_str("...");
            }
            self.failures.push(line);
        }
    }
}

/// Calls every `echo-*` function; returns the number of round trips and the failures.
fn roundtrip() -> (usize, Vec<String>) {
    let mut c = Checker {
        total: 0,
        failures: Vec::new(),
    };

    for v in [true, false] {
        c.check("echo-bool", v, echo::echo_bool(v));
    }

    // Floats are compared bit for bit, so -0.0 vs 0.0 or a changed NaN would show.
    let nums = (
        u8::MAX,
        i8::MIN,
        u16::MAX,
        i16::MIN,
        u32::MAX,
        i32::MIN,
        u64::MAX,
        i64::MIN,
        1.5f32,
        -2.25f64,
        '🦀',
    );
    let (a, b, cc, d, e, f, g, h, i, j, k) = nums;
    let got = echo::echo_numbers(a, b, cc, d, e, f, g, h, i, j, k);
    let bits = |t: (u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, char)| {
        (
            t.0,
            t.1,
            t.2,
            t.3,
            t.4,
            t.5,
            t.6,
            t.7,
            t.8.to_bits(),
            t.9.to_bits(),
            t.10,
        )
    };
    c.check("echo-numbers (extremes)", bits(nums), bits(got));
    let nums = (
        0u8,
        i8::MAX,
        0u16,
        i16::MAX,
        0u32,
        i32::MAX,
        0u64,
        i64::MAX,
        f32::MIN_POSITIVE,
        f64::MAX,
        '\0',
    );
    let (a, b, cc, d, e, f, g, h, i, j, k) = nums;
    let got = echo::echo_numbers(a, b, cc, d, e, f, g, h, i, j, k);
    c.check("echo-numbers (other extremes)", bits(nums), bits(got));

    for s in ["", "héllo wörld — 你好 🦀", &"x".repeat(10_000)] {
        c.check("echo-string", s.to_string(), echo::echo_string(s));
    }

    let list: Vec<u8> = (0..1000u32).map(|n| (n * 7 % 256) as u8).collect();
    c.check(
        "echo-list (1000 bytes)",
        list.clone(),
        echo::echo_list(&list),
    );
    c.check("echo-list (empty)", Vec::new(), echo::echo_list(&[]));

    let point = Point {
        x: i32::MIN,
        y: i32::MAX,
        label: "ünïcödé 📍".into(),
    };
    c.check("echo-record", point.clone(), echo::echo_record(&point));

    for shape in [
        Shape::Circle(-2.25),
        Shape::Rect((u32::MAX, 7)),
        Shape::Empty,
    ] {
        c.check("echo-variant", shape, echo::echo_variant(shape));
    }

    for colour in [Colour::Red, Colour::Green, Colour::Blue] {
        c.check("echo-enum", colour, echo::echo_enum(colour));
    }

    for perms in [Perms::READ | Perms::EXEC, Perms::empty(), Perms::all()] {
        c.check("echo-flags", perms, echo::echo_flags(perms));
    }

    for opt in [Some("sömé 🦀".to_string()), Some(String::new()), None] {
        c.check(
            "echo-option",
            opt.clone(),
            echo::echo_option(opt.as_deref()),
        );
    }

    for res in [Ok(u32::MAX), Err("bad thing — ❌".to_string())] {
        let arg = res.as_ref().map(|n| *n).map_err(|e| e.as_str());
        c.check("echo-result", res.clone(), echo::echo_result(arg));
    }

    let nested = vec![
        (
            "first ✓".to_string(),
            Some(Point {
                x: -1,
                y: 1,
                label: "p1".into(),
            }),
        ),
        ("none".to_string(), None),
        (
            String::new(),
            Some(Point {
                x: 0,
                y: 0,
                label: String::new(),
            }),
        ),
    ];
    c.check("echo-nested", nested.clone(), echo::echo_nested(&nested));
    c.check("echo-nested (empty)", Vec::new(), echo::echo_nested(&[]));

    (c.total, c.failures)
}

/// Percent-decodes a path segment; `None` for a bad escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body))?)
}
