//! The signer against AWS's Signature Version 4 test suite (the `aws-sig-v4-test-suite`
//! files AWS published with the signing documentation: each case's request, canonical
//! request, string to sign and `Authorization` header), and the signing-key example of the
//! signing documentation.

use super::*;

/// The suite's credentials, scope and time.
const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AMZ_DATE: &str = "20150830T123600Z";
const HOST: &str = "example.amazonaws.com";
const SCOPE: Scope<'static> = Scope {
    region: "us-east-1",
    service: "service",
};
/// The suite's session token (post-sts-token).
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

fn creds() -> Credentials<'static> {
    Credentials {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
    }
}

fn authz(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

fn sign(method: &str, path: &str, query: &str, extra: &[(&str, &str)], body: &[u8]) -> String {
    let mut headers = vec![("Host", HOST), ("X-Amz-Date", AMZ_DATE)];
    headers.extend_from_slice(extra);
    let request = Request {
        method,
        path,
        query,
        headers: &headers,
        body,
    };
    authorization(&creds(), SCOPE, &request, AMZ_DATE)
}

#[test]
fn get_vanilla() {
    assert_eq!(
        sign("GET", "/", "", &[], b""),
        authz(
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        )
    );
}

#[test]
fn get_vanilla_canonical_request() {
    let headers = [("Host", HOST), ("X-Amz-Date", AMZ_DATE)];
    let (canonical, signed) = canonical_request(&Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    });
    assert_eq!(
        canonical,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(signed, "host;x-amz-date");
}

#[test]
fn post_vanilla() {
    assert_eq!(
        sign("POST", "/", "", &[], b""),
        authz(
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        )
    );
}

#[test]
fn get_vanilla_query_order_key_case() {
    assert_eq!(
        sign("GET", "/", "Param2=value2&Param1=value1", &[], b""),
        authz(
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        )
    );
}

#[test]
fn get_vanilla_empty_query_key() {
    assert_eq!(
        sign("GET", "/", "Param1=value1", &[], b""),
        authz(
            "host;x-amz-date",
            "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"
        )
    );
}

#[test]
fn post_vanilla_empty_query_value() {
    assert_eq!(
        sign("POST", "/", "Param1=value1", &[], b""),
        authz(
            "host;x-amz-date",
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
        )
    );
}

#[test]
fn get_vanilla_query_unreserved() {
    let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    assert_eq!(
        sign("GET", "/", &format!("{unreserved}={unreserved}"), &[], b""),
        authz(
            "host;x-amz-date",
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"
        )
    );
}

#[test]
fn get_header_key_duplicate() {
    // Repeated names: values joined in the order sent.
    assert_eq!(
        sign(
            "GET",
            "/",
            "",
            &[
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1")
            ],
            b""
        ),
        authz(
            "host;my-header1;x-amz-date",
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"
        )
    );
}

#[test]
fn get_header_value_trim() {
    assert_eq!(
        sign(
            "GET",
            "/",
            "",
            &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            b""
        ),
        authz(
            "host;my-header1;my-header2;x-amz-date",
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
        )
    );
}

#[test]
fn post_header_key_sort() {
    assert_eq!(
        sign("POST", "/", "", &[("My-Header1", "value1")], b""),
        authz(
            "host;my-header1;x-amz-date",
            "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"
        )
    );
}

/// The case the probe is: a form POST. Checked at each step the suite gives.
#[test]
fn post_x_www_form_urlencoded() {
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Host", HOST),
        ("X-Amz-Date", AMZ_DATE),
    ];
    let request = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: b"Param1=value1",
    };
    let (canonical, _) = canonical_request(&request);
    assert_eq!(
        canonical,
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    );
    assert_eq!(
        string_to_sign(AMZ_DATE, &credential_scope("20150830", SCOPE), &canonical),
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"
    );
    assert_eq!(
        authorization(&creds(), SCOPE, &request, AMZ_DATE),
        authz(
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        )
    );
}

#[test]
fn post_x_www_form_urlencoded_parameters() {
    assert_eq!(
        sign(
            "POST",
            "/",
            "",
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf8"
            )],
            b"Param1=value1"
        ),
        authz(
            "content-type;host;x-amz-date",
            "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"
        )
    );
}

/// Temporary credentials: the session token signed as a header.
#[test]
fn post_sts_header_before() {
    assert_eq!(
        sign("POST", "/", "", &[("X-Amz-Security-Token", STS_TOKEN)], b""),
        authz(
            "host;x-amz-date;x-amz-security-token",
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        )
    );
}

/// The signing documentation's example of a derived key.
#[test]
fn signing_key_example() {
    let key = signing_key(
        SECRET,
        "20120215",
        Scope {
            region: "us-east-1",
            service: "iam",
        },
    );
    assert_eq!(
        hex(&key[..]),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

#[test]
fn amz_date_is_utc_basic_format() {
    let t: Timestamp = "2015-08-30T12:36:00Z".parse().unwrap();
    assert_eq!(amz_date(t), AMZ_DATE);
}

#[test]
fn the_secret_is_never_in_the_header() {
    let header = sign("POST", "/", "", &[], b"Action=GetCallerIdentity");
    assert!(!header.contains(SECRET));
    assert!(!header.contains("wJalrXUtnFEMI"));
}

#[test]
fn encoding_and_paths() {
    assert_eq!(uri_encode("a b/c~"), "a%20b%2Fc~");
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/prefix/"), "/prefix/");
    // A path sent percent-encoded is encoded once more, as every service but S3 expects.
    assert_eq!(canonical_uri("/a%20b/"), "/a%2520b/");
    assert_eq!(canonical_query("b=2&a=&c"), "a=&b=2&c=");
    assert_eq!(canonical_query("k=%41%zz"), "k=A%25zz");
}
