//! Progress bars for transfers, drawn on stderr only when it is a terminal (and the caller
//! asked for them), one line per blob, stacked when several pulls run at once. Also the
//! in-memory sink a blob is downloaded into, which hashes and counts as bytes arrive.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest as _, Sha256};
use std::io::IsTerminal as _;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Where bars are drawn, if anywhere.
#[derive(Debug, Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars on stderr when `wanted` and stderr is a terminal; otherwise silent.
    pub fn new(wanted: bool) -> Self {
        let multi = (wanted && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { multi }
    }

    /// A bar for `len` bytes labelled `label` (hidden when silent).
    pub fn bar(&self, label: String, len: u64) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = multi.add(ProgressBar::new(len).with_style(style).with_prefix(label));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    }
}

/// An `AsyncWrite` that keeps a downloaded blob in memory, hashing it and moving a bar.
pub struct Sink {
    pub bytes: Vec<u8>,
    hasher: Sha256,
    bar: ProgressBar,
}

impl Sink {
    pub fn new(capacity: u64, bar: ProgressBar) -> Self {
        Self {
            // The size comes from the manifest; do not trust it for a huge allocation.
            bytes: Vec::with_capacity(usize::try_from(capacity.min(64 << 20)).unwrap_or(0)),
            hasher: Sha256::new(),
            bar,
        }
    }

    /// The bytes received and `sha256:<hex>` of them.
    pub fn finish(self) -> (Vec<u8>, String) {
        self.bar.finish_and_clear();
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.bytes, digest)
    }
}

impl tokio::io::AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.bytes.extend_from_slice(buf);
        this.hasher.update(buf);
        this.bar.inc(buf.len() as u64);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
