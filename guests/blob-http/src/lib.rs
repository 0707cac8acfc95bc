//! HTTP component over `wasi:blobstore@0.2.0-draft`, for hearth's end-to-end tests.
//!
//! Path segments are percent-decoded, so names may hold `/` (`%2F`) or spaces.
//!
//! | route                                  | call                                         |
//! |----------------------------------------|----------------------------------------------|
//! | `PUT /c/<c>`                           | `create-container` → `201 created`           |
//! | `GET /c/<c>`                           | `get-container` + `info` → `name=..\ncreated-at=..` |
//! | `DELETE /c/<c>`                        | `delete-container`                           |
//! | `GET /exists/<c>`                      | `container-exists` → `true` / `false`        |
//! | `PUT /o/<c>/<name>` (body = bytes)     | outgoing value written through its `output-stream` in chunks (`?chunk=`, default 64 KiB), then `write-data` and `finish`; `?order=data-first` calls `write-data` before writing the stream |
//! | `GET /o/<c>/<name>?start=&end=&mode=`  | `get-data` (defaults `0`, `u64::MAX`); `mode=sync` or `async` (default: sync up to 64 KiB, else the `input-stream`); the mode used is in `x-read-mode` |
//! | `DELETE /o/<c>/<name>`                 | `delete-object`                              |
//! | `POST /delete/<c>` (body = names, one per line) | `delete-objects`                    |
//! | `GET /has/<c>/<name>`                  | `has-object` → `true` / `false`              |
//! | `GET /info/<c>/<name>`                 | `object-info` → `name=..\ncontainer=..\nsize=..\ncreated-at=..` |
//! | `GET /list/<c>?page=&skip=`            | `list-objects`, skipping `skip`, read `page` names at a time (default 2): one name a line |
//! | `POST /copy/<c>/<name>/<c2>/<name2>`   | `copy-object`                                |
//! | `POST /move/<c>/<name>/<c2>/<name2>`   | `move-object`                                |
//! | `POST /clear/<c>`                      | `clear`                                      |
//!
//! A blobstore `Err` answers `404` when it says something "does not exist", else `500`; the
//! body is the error text and a newline.

wit_bindgen::generate!({
    path: [
        "../../crates/interfaces/wit/deps/io.wit",
        "../../crates/interfaces/wit/deps/blobstore.wit",
    ],
    world: "wasi:blobstore/imports@0.2.0-draft",
    with: {
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
    },
});

use wasi::blobstore::blobstore as store;
use wasi::blobstore::types::{IncomingValue, ObjectId, OutgoingValue};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

/// Values up to this size are read with `consume-sync` unless asked otherwise.
const SYNC_READ_MAX: u64 = 64 * 1024;

/// What a route answers on success.
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    read_mode: Option<&'static str>,
}

fn ok(body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status: StatusCode::OK,
        body: body.into(),
        read_mode: None,
    }
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let Some(segments) = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()
    else {
        return respond(
            StatusCode::BAD_REQUEST,
            b"bad percent-encoding\n".to_vec(),
            None,
        );
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut body = request.into_body();
    let param = |key: &str| query_param(&query, key);

    let result = match (&method, segs.as_slice()) {
        (&Method::PUT, ["c", c]) => store::create_container(c).map(|_| Reply {
            status: StatusCode::CREATED,
            ..ok("created\n")
        }),
        (&Method::GET, ["c", c]) => container_info(c),
        (&Method::DELETE, ["c", c]) => store::delete_container(c).map(|()| ok("deleted\n")),
        (&Method::GET, ["exists", c]) => store::container_exists(c).map(|b| ok(format!("{b}\n"))),
        (&Method::PUT, ["o", c, name]) => {
            let data = body.contents().await?.to_vec();
            let chunk = param("chunk")
                .and_then(|s| s.parse().ok())
                .unwrap_or(64 * 1024);
            let data_first = param("order").as_deref() == Some("data-first");
            write_object(c, name, &data, chunk, data_first)
        }
        (&Method::GET, ["o", c, name]) => {
            let number = |key: &str| param(key).and_then(|s| s.parse::<u64>().ok());
            let start = number("start").unwrap_or(0);
            let end = number("end").unwrap_or(u64::MAX);
            read_object(c, name, start, end, param("mode").as_deref())
        }
        (&Method::DELETE, ["o", c, name]) => {
            store::get_container(c).and_then(|c| c.delete_object(name).map(|()| ok("deleted\n")))
        }
        (&Method::POST, ["delete", c]) => {
            let names: Vec<String> = body
                .str_contents()
                .await?
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            store::get_container(c).and_then(|c| c.delete_objects(&names).map(|()| ok("deleted\n")))
        }
        (&Method::GET, ["has", c, name]) => {
            store::get_container(c).and_then(|c| c.has_object(name).map(|b| ok(format!("{b}\n"))))
        }
        (&Method::GET, ["info", c, name]) => store::get_container(c)
            .and_then(|c| c.object_info(name))
            .map(|m| {
                ok(format!(
                    "name={}\ncontainer={}\nsize={}\ncreated-at={}\n",
                    m.name, m.container, m.size, m.created_at
                ))
            }),
        (&Method::GET, ["list", c]) => {
            let number =
                |key: &str, default| param(key).and_then(|s| s.parse().ok()).unwrap_or(default);
            list(c, number("page", 2).max(1), number("skip", 0))
        }
        (&Method::POST, [op @ ("copy" | "move"), c, name, c2, name2]) => {
            let id = |container: &str, object: &str| ObjectId {
                container: container.to_string(),
                object: object.to_string(),
            };
            let (src, dest) = (id(c, name), id(c2, name2));
            let done = if *op == "copy" {
                store::copy_object(&src, &dest)
            } else {
                store::move_object(&src, &dest)
            };
            done.map(|()| ok(format!("{op} done\n")))
        }
        (&Method::POST, ["clear", c]) => {
            store::get_container(c).and_then(|c| c.clear().map(|()| ok("cleared\n")))
        }
        _ => return respond(StatusCode::NOT_FOUND, b"no such route\n".to_vec(), None),
    };
    match result {
        Ok(reply) => respond(reply.status, reply.body, reply.read_mode),
        Err(e) => {
            let status = if e.contains("does not exist") {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            respond(status, format!("{e}\n").into_bytes(), None)
        }
    }
}

fn container_info(name: &str) -> Result<Reply, String> {
    let info = store::get_container(name)?.info()?;
    Ok(ok(format!(
        "name={}\ncreated-at={}\n",
        info.name, info.created_at
    )))
}

fn write_object(
    container: &str,
    name: &str,
    data: &[u8],
    chunk: usize,
    data_first: bool,
) -> Result<Reply, String> {
    let container = store::get_container(container)?;
    let value = OutgoingValue::new_outgoing_value();
    if data_first {
        container.write_data(name, &value)?;
    }
    {
        let stream = value
            .outgoing_value_write_body()
            .map_err(|()| "the body stream was already taken".to_string())?;
        write_all(&stream, data, chunk.max(1))?;
    }
    if !data_first {
        container.write_data(name, &value)?;
    }
    OutgoingValue::finish(value)?;
    Ok(Reply {
        status: StatusCode::CREATED,
        ..ok(format!("wrote {} bytes\n", data.len()))
    })
}

/// Writes `data` in pieces of at most `chunk` bytes, as the stream permits.
fn write_all(stream: &OutputStream, mut data: &[u8], chunk: usize) -> Result<(), String> {
    while !data.is_empty() {
        let permit = match stream.check_write().map_err(stream_error)? {
            0 => {
                stream.subscribe().block();
                continue;
            }
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let n = data.len().min(permit).min(chunk);
        stream.write(&data[..n]).map_err(stream_error)?;
        data = &data[n..];
    }
    stream.blocking_flush().map_err(stream_error)
}

fn read_object(
    container: &str,
    name: &str,
    start: u64,
    end: u64,
    mode: Option<&str>,
) -> Result<Reply, String> {
    let value = store::get_container(container)?.get_data(name, start, end)?;
    let mode = match mode {
        Some("sync") => "sync",
        Some("async") => "async",
        _ if value.size() <= SYNC_READ_MAX => "sync",
        _ => "async",
    };
    let body = if mode == "sync" {
        IncomingValue::incoming_value_consume_sync(value)?
    } else {
        read_all(&IncomingValue::incoming_value_consume_async(value)?)?
    };
    Ok(Reply {
        read_mode: Some(mode),
        ..ok(body)
    })
}

fn read_all(stream: &InputStream) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(StreamError::Closed) => return Ok(out),
            Err(e) => return Err(stream_error(e)),
        }
    }
}

fn list(container: &str, page: u64, skip: u64) -> Result<Reply, String> {
    let names = store::get_container(container)?.list_objects()?;
    if skip > 0 {
        names.skip_stream_object_names(skip)?;
    }
    let mut out = String::new();
    loop {
        let (batch, end) = names.read_stream_object_names(page)?;
        for name in &batch {
            out.push_str(name);
            out.push('\n');
        }
        if end || batch.is_empty() {
            return Ok(ok(out));
        }
    }
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "stream closed".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn respond(
    status: StatusCode,
    body: Vec<u8>,
    read_mode: Option<&'static str>,
) -> Result<Response<Body>, Error> {
    let mut response = Response::builder().status(status);
    if let Some(mode) = read_mode {
        response = response
            .header("content-type", "application/octet-stream")
            .header("x-read-mode", mode);
    } else {
        response = response.header("content-type", "text/plain; charset=utf-8");
    }
    Ok(response.body(Body::from(body))?)
}
