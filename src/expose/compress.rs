//! Content coding of `/metrics`: gzip when the scraper accepts it, identity otherwise.
//!
//! Prometheus asks for `Accept-Encoding: gzip` on every scrape (its client libraries answer
//! with gzip), and the exposition's text repeats the same label text once per family, so it
//! shrinks to a small fraction. The text is compressed as it is written, a chunk at a time:
//! a scrape holds the snapshot, one chunk of text and what the encoder has not yet sent,
//! never the whole text nor the whole compressed answer. Level 1 (fastest) because the
//! exporter pays the CPU on every scrape and higher levels gain little on this text.

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

/// A content coding `/metrics` can answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` value, or `None` for identity (which is never sent).
    pub fn header(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
        }
    }

    /// The coding to answer in, given the request's `Accept-Encoding` values (RFC 9110
    /// 12.5.3): gzip when `gzip` (or its alias `x-gzip`) is acceptable, directly or through
    /// `*`, with a q-value above 0 and not below one the header gives identity; identity otherwise, including
    /// when the header is absent or cannot be read. Identity is always acceptable to this
    /// server even where the header says `identity;q=0`: answering 406 to a scraper would
    /// only lose the scrape.
    pub fn negotiate<'a>(accept_encoding: impl IntoIterator<Item = &'a str>) -> Coding {
        let (mut gzip, mut identity, mut star) = (None, None, None);
        for value in accept_encoding {
            for item in value.split(',') {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or("").trim();
                let mut q = Some(1.0);
                for param in parts {
                    let (k, v) = param.split_once('=').unwrap_or((param, ""));
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(v.trim());
                    }
                }
                let Some(q) = q else { continue };
                let slot =
                    if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                        &mut gzip
                    } else if name.eq_ignore_ascii_case("identity") {
                        &mut identity
                    } else if name == "*" {
                        &mut star
                    } else {
                        continue;
                    };
                // A coding named twice keeps its highest weight.
                *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
            }
        }
        let gzip = gzip.or(star).unwrap_or(0.0);
        // Identity weighs against gzip only where the header gives it a weight.
        let identity = identity.or(star).unwrap_or(0.0);
        if gzip > 0.0 && gzip >= identity {
            Coding::Gzip
        } else {
            Coding::Identity
        }
    }
}

/// A q-value (`0`, `0.5`, `1.000`): a number from 0 to 1; `None` for anything else, and
/// the item carrying it is then ignored.
fn parse_q(v: &str) -> Option<f32> {
    let plain = !v.is_empty() && v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let q: f32 = v.parse().ok().filter(|_| plain)?;
    (0.0..=1.0).contains(&q).then_some(q)
}

/// A source of text written a chunk at a time: [`crate::expose::metrics::Exposition`].
pub trait Chunks {
    /// Appends the next part of the text to `out`, stopping once `out` holds `limit` bytes
    /// or more. Returns whether anything is left to write.
    fn write_chunk(&mut self, out: &mut String, limit: usize) -> bool;
}

/// How much text is compressed at a time: one chunk of the exposition.
const TEXT_CHUNK: usize = 256 * 1024;

/// A body that gzips a [`Chunks`] source as it is written: each frame is what the encoder
/// produced from the next chunk of text, the last one the gzip trailer.
pub struct Gzipped<S> {
    source: S,
    encoder: Option<GzEncoder<Vec<u8>>>,
    text: String,
}

impl<S: Chunks> Gzipped<S> {
    pub fn new(source: S) -> Self {
        Self::with_level(source, Compression::fast())
    }

    pub fn with_level(source: S, level: Compression) -> Self {
        Gzipped {
            source,
            encoder: Some(GzEncoder::new(Vec::with_capacity(TEXT_CHUNK / 4), level)),
            text: String::with_capacity(TEXT_CHUNK + TEXT_CHUNK / 8),
        }
    }

    /// The next piece of compressed output, or `None` once the trailer has been given.
    pub fn next_piece(&mut self) -> Option<Vec<u8>> {
        let encoder = self.encoder.as_mut()?;
        loop {
            self.text.clear();
            let more = self.source.write_chunk(&mut self.text, TEXT_CHUNK);
            encoder
                .write_all(self.text.as_bytes())
                .expect("writing into a Vec cannot fail");
            if !more {
                let out = self
                    .encoder
                    .take()
                    .expect("present above")
                    .finish()
                    .expect("writing into a Vec cannot fail");
                return Some(out);
            }
            // The encoder holds back what it has not yet matched; a chunk that produced
            // nothing yet goes on to the next rather than sending an empty frame.
            if !encoder.get_ref().is_empty() {
                let cap = encoder.get_ref().capacity();
                return Some(std::mem::replace(
                    encoder.get_mut(),
                    Vec::with_capacity(cap),
                ));
            }
        }
    }
}

impl<S: Chunks + Unpin> http_body::Body for Gzipped<S> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let piece = self.get_mut().next_piece();
        Poll::Ready(piece.map(|p| Ok(http_body::Frame::data(Bytes::from(p)))))
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none()
    }
}

#[cfg(test)]
mod tests;
