//! The `/metrics` contract, written as OpenMetrics text. No I/O.
//!
//! This is the one place that names metrics and labels. Everything is derived at scrape time
//! from stored facts; nothing here calls a provider. Per-token series carry `token` and
//! `provider` only; the inventory's own labels go on `api_token_info` alone, so cardinality
//! stays one series per token per metric.
//!
//! A scrape copies what it needs out of the store under its lock ([`Metrics::snapshot`]):
//! one row of numbers per token and one string of every token's label text, both given
//! back to the system when the scrape ends ([`crate::expose::memory`]). It then writes the
//! text outside the lock, a chunk at a time ([`Exposition`] is an HTTP body), so a scrape
//! never holds the whole text in memory at once, however large the inventory. The encoder
//! is written here rather than taken from prometheus-client, which escapes and dispatches
//! every label of every series through `dyn fmt::Write`: a scrape's cost must stay a small
//! fraction of a scrape interval at the inventory sizes the exporter supports. The names
//! live in `metrics/families.rs`; the format is byte for byte
//! what prometheus-client wrote (`tests/testdata/metrics.golden`): floats as `dtoa` writes
//! them (`1803154033.0`), integers as `itoa` does, counters with `_total`, and `# EOF`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use crate::notify::NotifierStats;
use crate::state::store::ProviderState;

mod status;
pub use status::*;
mod snapshot;
pub use snapshot::*;
mod collectors;
pub use collectors::*;
mod families;
use families::*;
mod text;
use text::*;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How much text a chunk of the streamed body holds, about: large enough that a big scrape
/// is not hundreds of writes and reader wake-ups, small enough to stay under
/// [`crate::expose::memory::BIG`] so the allocator reuses it.
const CHUNK: usize = 256 * 1024;

/// A snapshot's text: every row's labels, spans of one string.
struct Text(String);

impl Text {
    fn get(&self, span: Span) -> &str {
        &self.0[span.start as usize..span.end as usize]
    }
}

/// The exposition of one scrape: a snapshot, written out a chunk at a time. It is also the
/// HTTP body of `/metrics`, so a scrape holds the snapshot and one chunk, not the whole text.
pub struct Exposition {
    text: Text,
    rows: Vec<Row>,
    providers: BTreeMap<String, ProviderState>,
    notifiers: BTreeMap<String, NotifierStats>,
    /// The rotating tokens (token, provider, status): few, so copied whole.
    rotations: Vec<(String, String, Arc<crate::model::rotation::RotationStatus>)>,
    reload_ok: bool,
    reload_at: i64,
    web: Arc<crate::expose::web::WebStats>,
    sources: BTreeMap<String, crate::sources::health::SourceHealth>,
    refused: [(&'static str, u64); 3],
    /// Open connections, the bound, and closed or refused ones per reason.
    connections: (
        u64,
        u64,
        [(&'static str, u64); crate::expose::listen::DropReason::ALL.len()],
    ),
    /// The per-token families to write (`--collector.<name>`).
    collectors: Collectors,
    /// The config's global thresholds (`api_token_default_*_threshold_seconds`).
    default_thresholds: Option<crate::model::Thresholds>,
    /// Each provider's tokens' last probes, summed up.
    probe_stats: BTreeMap<String, ProbeStats>,
    /// Where the writing stands: an index into `TOKEN_FAMILIES` (then the exporter-level
    /// families, then done), and the next row of that family.
    family: usize,
    row: usize,
}

impl Exposition {
    /// Appends the next part of the text to `out`, stopping once `out` holds `limit` bytes
    /// or more. Returns whether anything is left to write.
    pub fn write_chunk(&mut self, out: &mut String, limit: usize) -> bool {
        while let Some(f) = TOKEN_FAMILIES.get(self.family) {
            if !self.collectors.has(f.collector) {
                self.family += 1;
                continue;
            }
            if self.row == 0 {
                header(out, f.name, f.help, Kind::Gauge);
            }
            while let Some(r) = self.rows.get(self.row) {
                (f.write)(r, self.text.get(r.series), &self.text, out);
                self.row += 1;
                if out.len() >= limit {
                    return true;
                }
            }
            self.family += 1;
            self.row = 0;
        }
        if self.family == TOKEN_FAMILIES.len() {
            self.write_exporter_families(out);
            self.family += 1;
        }
        false
    }
}

impl crate::expose::compress::Chunks for Exposition {
    fn write_chunk(&mut self, out: &mut String, limit: usize) -> bool {
        Exposition::write_chunk(self, out, limit)
    }
}

impl http_body::Body for Exposition {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.family > TOKEN_FAMILIES.len() {
            return Poll::Ready(None);
        }
        let mut out = String::with_capacity(CHUNK + CHUNK / 8);
        this.write_chunk(&mut out, CHUNK);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.family > TOKEN_FAMILIES.len()
    }
}

#[cfg(test)]
mod tests;
