//! A large HTTP component: `GET /N` answers `f_(N mod FUNCTIONS)(N)` from a table of
//! generated functions. Its size, not its answer, is the point (see `build.rs`).

use wstd::http::{Body, Error, Request, Response};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let n: u64 = request.uri().path().trim_start_matches('/').parse().unwrap_or(1);
    let f = generated::TABLE[(n as usize) % generated::TABLE.len()];
    Ok(Response::new(format!("{}\n", f(n)).into()))
}
