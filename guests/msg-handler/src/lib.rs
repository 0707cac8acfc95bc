//! Messaging handler: exports `wasmcloud:messaging/handler`, one fresh instance per message.
//!
//! - A message with `reply-to` gets a reply: `<greeting>, <body>` where the greeting is the
//!   `greeting` config value (default `hello`).
//! - Every message is logged through `wasi:logging` (`handled <subject>: <body>`) and
//!   forwarded to `audit.<subject>` (so a test can watch deliveries on the broker).
//! - A subject ending in `.fail` returns `Err`; one ending in `.trap` traps.

wit_bindgen::generate!({
    world: "hearth-test:msg-handler/handler",
    generate_all,
    path: [
        "../../crates/interfaces/wit/deps/config.wit",
        "../../crates/interfaces/wit/deps/logging.wit",
        "../../crates/interfaces/wit/deps/messaging.wit",
        "wit",
    ],
});

use exports::wasmcloud::messaging::handler::Guest;
use wasi::logging::logging::{Level, log};
use wasmcloud::messaging::consumer;
use wasmcloud::messaging::types::BrokerMessage;

struct Component;

impl Guest for Component {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let body = String::from_utf8_lossy(&msg.body).into_owned();
        if msg.subject.ends_with(".trap") {
            panic!("handler trapping on purpose");
        }
        if msg.subject.ends_with(".fail") {
            return Err(format!("refusing {}", msg.subject));
        }
        log(
            Level::Info,
            "msg-handler",
            &format!("handled {}: {body}", msg.subject),
        );
        if let Some(reply_to) = msg.reply_to {
            let greeting = wasi::config::store::get("greeting")
                .ok()
                .flatten()
                .unwrap_or_else(|| "hello".into());
            consumer::publish(&BrokerMessage {
                subject: reply_to,
                body: format!("{greeting}, {body}").into_bytes(),
                reply_to: None,
            })?;
        }
        if !msg.subject.starts_with("audit.") {
            consumer::publish(&BrokerMessage {
                subject: format!("audit.{}", msg.subject),
                body: msg.body,
                reply_to: None,
            })?;
        }
        Ok(())
    }
}

export!(Component);
