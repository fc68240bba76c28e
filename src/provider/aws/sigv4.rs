//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), the few steps the `aws` kind needs: the
//! canonical request, the string to sign, the derived signing key and the `Authorization`
//! header. Pure; held to AWS's published test suite in `tests.rs`.
//!
//! The secret access key is only ever an HMAC key here: it is never part of a text that is
//! returned, and the key material derived from it is zeroed when dropped.

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The signing algorithm's name, as the `Authorization` header and the string to sign start.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The key pair to sign with. A session token is one more signed header (`x-amz-security-token`).
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

/// What is signed of a request. `headers` must hold every header to sign, `host` included,
/// with the values exactly as sent; `path` is the path as sent (percent-encoded), `query` the
/// query as sent, without `?`.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Where a signature is valid: the region and the service's signing name (`sts`, `iam`).
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// `X-Amz-Date`'s form of `now`: `YYYYMMDD'T'HHMMSS'Z'`, in UTC.
pub fn amz_date(now: Timestamp) -> String {
    now.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// The `Authorization` header's value for `request`, signed at `amz_date` (which must be the
/// request's `x-amz-date` header).
pub fn authorization(
    credentials: &Credentials<'_>,
    scope: Scope<'_>,
    request: &Request<'_>,
    amz_date: &str,
) -> String {
    let (canonical, signed_headers) = canonical_request(request);
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let to_sign = string_to_sign(amz_date, &credential_scope(date, scope), &canonical);
    let key = signing_key(credentials.secret_access_key, date, scope);
    let signature = hex(&hmac(&key[..], to_sign.as_bytes())[..]);
    format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id,
        credential_scope(date, scope)
    )
}

/// `date/region/service/aws4_request`.
pub fn credential_scope(date: &str, scope: Scope<'_>) -> String {
    format!("{date}/{}/{}/aws4_request", scope.region, scope.service)
}

/// The canonical request and its `SignedHeaders` list.
pub fn canonical_request(request: &Request<'_>) -> (String, String) {
    // Header names lowercased and sorted (stable, so repeated names keep their order);
    // the values of a repeated name joined with commas; each value trimmed, inner runs of
    // spaces made one.
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), collapse_spaces(value)))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut joined: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match joined.last_mut() {
            Some((last, values)) if *last == name => {
                values.push(',');
                values.push_str(&value);
            }
            _ => joined.push((name, value)),
        }
    }
    let mut canonical_headers = String::new();
    for (name, value) in &joined {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let signed_headers = joined
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        hex(&Sha256::digest(request.body)),
    );
    (canonical, signed_headers)
}

/// The string to sign: algorithm, time, scope and the hash of the canonical request.
pub fn string_to_sign(amz_date: &str, credential_scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The signing key: HMAC chained over the date, region, service and `aws4_request`, keyed
/// first with `AWS4` and the secret access key. Zeroed when dropped.
pub fn signing_key(secret_access_key: &str, date: &str, scope: Scope<'_>) -> Zeroizing<[u8; 32]> {
    let mut first = Zeroizing::new(Vec::with_capacity(4 + secret_access_key.len()));
    first.extend_from_slice(b"AWS4");
    first.extend_from_slice(secret_access_key.as_bytes());
    let k_date = hmac(&first, date.as_bytes());
    let k_region = hmac(&k_date[..], scope.region.as_bytes());
    let k_service = hmac(&k_region[..], scope.service.as_bytes());
    hmac(&k_service[..], b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// A header value trimmed, with each run of spaces inside made one space.
fn collapse_spaces(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.trim().to_string()
}

/// The canonical URI: each segment of the path as sent, URI-encoded (again, for services
/// other than S3: a `%` of the sent path becomes `%25`). An empty path is `/`.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query: each name and value decoded, then URI-encoded, the pairs sorted by
/// name, then value; a name without `=` has an empty value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&decode(k)), uri_encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-decoding of a query part (`+` stays `+`: AWS reads it as itself, not a space); a
/// `%` not followed by two hex digits stays as it is.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_digit = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|&b| hex_digit(b)),
                bytes.get(i + 2).and_then(|&b| hex_digit(b)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 encoding as SigV4 wants it: everything but `A-Z a-z 0-9 - _ . ~`, uppercase hex.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
