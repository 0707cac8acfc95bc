//! The scheduler, after the cron service of the services documentation: a long-running
//! service that calls the job component's `invoke()` every [`schedule::INTERVAL`]. hearth
//! connects the `wasmcloud:example/cron` import to the component of the workload that
//! exports it.
//!
//! What to log about each call is decided in [`schedule`], plain functions that `cargo test`
//! checks natively; only `main` is built for `wasm32-wasip2`.

// The schedule is only called from the wasm32 `main`; natively it exists for the tests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod schedule;

#[cfg(target_arch = "wasm32")]
wit_bindgen::generate!({
    world: "service",
    path: "../wit",
});

#[cfg(target_arch = "wasm32")]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("calling the job every {:?}", schedule::INTERVAL);
    let mut failures = 0;
    loop {
        tokio::time::sleep(schedule::INTERVAL).await;
        let result = wasmcloud::example::cron::invoke();
        if let Some(line) = schedule::report(&result, &mut failures) {
            eprintln!("{line}");
        }
    }
}

/// Native builds exist for `cargo test`; the service itself runs on hearth.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("build with `hearth build` and run with `hearth run workload.yaml`");
}
