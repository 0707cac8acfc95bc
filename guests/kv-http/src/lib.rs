//! HTTP front end for `wasi:keyvalue@0.2.0-draft` (store, atomics, batch), for the tests, the
//! `examples/counter` workload and `bench/kv`. Bucket and key segments are percent-decoded;
//! an empty bucket segment (`/get//k`) opens `""`, the host's default bucket.
//!
//! | route                                   | call                    | `200` body                   |
//! |-----------------------------------------|-------------------------|------------------------------|
//! | `GET /get/<bucket>/<key>`               | `get`                   | the value (`404 absent`)     |
//! | `PUT` or `POST /set/<bucket>/<key>`     | `set` (body = value)    | `ok`                         |
//! | `DELETE` or `POST /delete/<bucket>/<key>` | `delete`              | `ok`                         |
//! | `GET /exists/<bucket>/<key>`            | `exists`                | `true` or `false`            |
//! | `GET /keys/<bucket>[?cursor=N]`         | one `list-keys` page    | one key per line             |
//! | `GET /all-keys/<bucket>`                | every page              | one key per line, sorted     |
//! | `GET` or `POST /incr/<bucket>/<key>[?by=N]` | `increment` (default 1) | the new value            |
//! | `GET /get-many/<bucket>?keys=a,b`       | `get-many`              | `a=value` or `a absent` lines |
//! | `POST /set-many/<bucket>` (`k=v` lines) | `set-many`              | `ok`                         |
//! | `POST /delete-many/<bucket>?keys=a,b`   | `delete-many`           | `ok`                         |
//!
//! `/keys` sets `x-cursor` when there is a next page. Any key-value `Err` gives `503` with
//! `keyvalue error: <error>` (e.g. `keyvalue error: other(redis at …)`), so a test sees
//! exactly what the host returned.

wit_bindgen::generate!({
    world: "wasi:keyvalue/imports@0.2.0-draft",
    path: "../../crates/interfaces/wit/deps/keyvalue.wit",
});

use wasi::keyvalue::store::{self, Bucket, Error as KvError};
use wasi::keyvalue::{atomics, batch};
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

/// What a route answers: a status and a body.
type Reply = (StatusCode, Vec<u8>);

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (status, body, cursor) = match handle(request).await {
        Ok((status, body, cursor)) => (status, body, cursor),
        Err((status, body)) => (status, body, None),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/octet-stream");
    if let Some(c) = cursor {
        response = response.header("x-cursor", c.to_string());
    }
    Ok(response.body(Body::from(body))?)
}

fn plain(status: StatusCode, text: &str) -> Reply {
    (status, format!("{text}\n").into_bytes())
}

fn kv_error(e: KvError) -> Reply {
    let text = match e {
        KvError::NoSuchStore => "no-such-store".to_string(),
        KvError::AccessDenied => "access-denied".to_string(),
        KvError::Other(why) => format!("other({why})"),
    };
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("keyvalue error: {text}"),
    )
}

async fn handle(request: Request<Body>) -> Result<(StatusCode, Vec<u8>, Option<u64>), Reply> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| -> Option<String> {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| percent_decode(v))?
        })
    };
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    let (op, bucket, key) = match segments.as_slice() {
        [op, bucket] => (*op, decode(bucket)?, None),
        [op, bucket, key] => (*op, decode(bucket)?, Some(decode(key)?)),
        _ => return Err(plain(StatusCode::NOT_FOUND, "no such route")),
    };
    let allowed: &[Method] = match op {
        "get" | "exists" | "keys" | "all-keys" | "get-many" => &[Method::GET],
        "set" => &[Method::PUT, Method::POST],
        "delete" => &[Method::DELETE, Method::POST],
        "incr" => &[Method::GET, Method::POST],
        "set-many" | "delete-many" => &[Method::POST],
        _ => return Err(plain(StatusCode::NOT_FOUND, "no such route")),
    };
    if !allowed.contains(&method) {
        return Err(plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    let needs_key = matches!(op, "get" | "set" | "delete" | "exists" | "incr");
    let key = match (needs_key, key) {
        (true, Some(k)) => k,
        (false, None) => String::new(),
        _ => return Err(plain(StatusCode::NOT_FOUND, "no such route")),
    };
    let keys_param = || -> Vec<String> {
        param("keys")
            .map(|s| {
                s.split(',')
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };

    let b = store::open(&bucket).map_err(kv_error)?;
    let ok = |body: Vec<u8>| Ok((StatusCode::OK, body, None));
    match op {
        "get" => match b.get(&key).map_err(kv_error)? {
            Some(value) => ok(value),
            None => Err(plain(StatusCode::NOT_FOUND, "absent")),
        },
        "set" => {
            let value = read_body(request).await?;
            b.set(&key, &value).map_err(kv_error)?;
            ok(b"ok\n".to_vec())
        }
        "delete" => {
            b.delete(&key).map_err(kv_error)?;
            ok(b"ok\n".to_vec())
        }
        "exists" => ok(format!("{}\n", b.exists(&key).map_err(kv_error)?).into_bytes()),
        "incr" => {
            let by = match param("by") {
                None => 1,
                Some(n) => n
                    .parse()
                    .map_err(|_| plain(StatusCode::BAD_REQUEST, "by: expected a u64"))?,
            };
            let n = atomics::increment(&b, &key, by).map_err(kv_error)?;
            ok(format!("{n}\n").into_bytes())
        }
        "keys" => {
            let cursor = match param("cursor") {
                None => None,
                Some(c) => Some(
                    c.parse()
                        .map_err(|_| plain(StatusCode::BAD_REQUEST, "cursor: expected a u64"))?,
                ),
            };
            let page = b.list_keys(cursor).map_err(kv_error)?;
            Ok((StatusCode::OK, lines(&page.keys), page.cursor))
        }
        "all-keys" => ok(lines(&all_keys(&b)?)),
        "get-many" => {
            let found = batch::get_many(&b, &keys_param()).map_err(kv_error)?;
            let mut out = Vec::new();
            for (key, entry) in keys_param().iter().zip(found) {
                match entry {
                    Some((k, v)) => {
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(&v);
                        out.push(b'\n');
                    }
                    None => out.extend_from_slice(format!("{key} absent\n").as_bytes()),
                }
            }
            ok(out)
        }
        "set-many" => {
            let body = read_body(request).await?;
            let text = String::from_utf8(body)
                .map_err(|_| plain(StatusCode::BAD_REQUEST, "body is not UTF-8"))?;
            let mut entries = Vec::new();
            for line in text.lines().filter(|l| !l.is_empty()) {
                let (k, v) = line
                    .split_once('=')
                    .ok_or_else(|| plain(StatusCode::BAD_REQUEST, "expected key=value lines"))?;
                entries.push((k.to_string(), v.as_bytes().to_vec()));
            }
            batch::set_many(&b, &entries).map_err(kv_error)?;
            ok(b"ok\n".to_vec())
        }
        "delete-many" => {
            batch::delete_many(&b, &keys_param()).map_err(kv_error)?;
            ok(b"ok\n".to_vec())
        }
        _ => Err(plain(StatusCode::NOT_FOUND, "no such route")),
    }
}

/// Every key of the bucket, following cursors, sorted and without duplicates.
fn all_keys(b: &Bucket) -> Result<Vec<String>, Reply> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = b.list_keys(cursor).map_err(kv_error)?;
        keys.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

fn lines(keys: &[String]) -> Vec<u8> {
    keys.iter()
        .flat_map(|k| format!("{k}\n").into_bytes())
        .collect()
}

async fn read_body(request: Request<Body>) -> Result<Vec<u8>, Reply> {
    let mut body = request.into_body();
    body.contents().await.map(<[u8]>::to_vec).map_err(|e| {
        plain(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the body: {e}"),
        )
    })
}

fn decode(segment: &str) -> Result<String, Reply> {
    percent_decode(segment).ok_or_else(|| plain(StatusCode::BAD_REQUEST, "bad percent-encoding"))
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}
