use std::io::Read;

use super::*;

fn negotiate(values: &[&str]) -> Coding {
    Coding::negotiate(values.iter().copied())
}

#[test]
fn gzip_is_chosen_only_when_the_scraper_accepts_it() {
    // What Prometheus sends on every scrape.
    assert_eq!(negotiate(&["gzip"]), Coding::Gzip);
    // What curl --compressed and browsers send.
    assert_eq!(negotiate(&["deflate, gzip, br, zstd"]), Coding::Gzip);
    assert_eq!(negotiate(&["x-gzip"]), Coding::Gzip);
    assert_eq!(negotiate(&["GZIP;Q=0.5"]), Coding::Gzip);
    assert_eq!(negotiate(&["*"]), Coding::Gzip);
    assert_eq!(negotiate(&["br", "gzip;q=0.8"]), Coding::Gzip);
    assert_eq!(negotiate(&["identity;q=0, gzip"]), Coding::Gzip);

    assert_eq!(negotiate(&[]), Coding::Identity);
    assert_eq!(negotiate(&[""]), Coding::Identity);
    assert_eq!(negotiate(&["identity"]), Coding::Identity);
    assert_eq!(negotiate(&["deflate, br"]), Coding::Identity);
    assert_eq!(negotiate(&["gzip;q=0"]), Coding::Identity);
    assert_eq!(negotiate(&["gzip;q=0.000"]), Coding::Identity);
    assert_eq!(negotiate(&["*;q=0"]), Coding::Identity);
    assert_eq!(negotiate(&["*, gzip;q=0"]), Coding::Identity);
    // Identity preferred over gzip.
    assert_eq!(negotiate(&["gzip;q=0.5, identity"]), Coding::Identity);
    // A q-value that is not one is ignored with its item.
    assert_eq!(negotiate(&["gzip;q=2"]), Coding::Identity);
    assert_eq!(negotiate(&["gzip;q=-1"]), Coding::Identity);
    assert_eq!(negotiate(&["gzip;q=high"]), Coding::Identity);
    assert_eq!(negotiate(&["gzip;q=0.5e1"]), Coding::Identity);
}

/// A source writing `n` numbered lines, a chunk at a time.
struct Lines {
    next: usize,
    n: usize,
}

impl Chunks for Lines {
    fn write_chunk(&mut self, out: &mut String, limit: usize) -> bool {
        while self.next < self.n {
            out.push_str(&format!(
                "api_token_info{{token=\"t{}\",provider=\"p\"}} 1\n",
                self.next
            ));
            self.next += 1;
            if out.len() >= limit {
                return true;
            }
        }
        false
    }
}

fn plain(n: usize) -> String {
    let mut out = String::new();
    Lines { next: 0, n }.write_chunk(&mut out, usize::MAX);
    out
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("valid gzip");
    text
}

#[test]
fn the_gzipped_body_is_the_text_compressed_piece_by_piece() {
    for n in [0, 1, 100_000] {
        let mut body = Gzipped::new(Lines { next: 0, n });
        let mut pieces = Vec::new();
        while let Some(p) = body.next_piece() {
            assert!(!p.is_empty());
            pieces.push(p);
        }
        assert!(http_body::Body::is_end_stream(&body));
        let all: Vec<u8> = pieces.concat();
        assert_eq!(gunzip(&all), plain(n), "{n} lines");
        let text = plain(n).len();
        if n == 100_000 {
            // Written as it is produced: several frames, none near the whole answer.
            assert!(pieces.len() > 2, "{} pieces", pieces.len());
            assert!(pieces.iter().all(|p| p.len() < all.len() / 2));
            assert!(all.len() * 5 < text, "{} of {text}", all.len());
        }
    }
}
