//! Hard faults, for every provider kind that calls the network: 5xx, answers slower than the
//! token's `probe_timeout`, bodies that trickle past it, connections reset, refused or spoken
//! to in the wrong protocol, proxy pages, bodies far over the 1 MiB cap, and 429 storms.
//!
//! Each must end in `unreachable` or `rate_limited` with a stable reason (asserted exactly),
//! never `invalid` and never a panic, and the store must keep the last known expiry. The
//! kinds are one table ([`KINDS`]): a kind merged later is one more row.
//!
//! The faults are served by a raw TCP server ([`FaultServer`]) rather than an HTTP framework,
//! because the interesting faults are the ones a framework will not produce: a body that
//! stops half way, a socket closed with a reset, a chunked body without end.
//!
//! At the end, the binary itself: a provider goes down and comes back while `/metrics` keeps
//! serving; and a provider asking to be left alone for 2^64 seconds does not stop the
//! scheduler.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_token_exporter::config::Config;
use api_token_exporter::metrics::{ExporterStatus, Metrics, render};
use api_token_exporter::model::{Expiry, Reason, Verdict};
use api_token_exporter::provider::{self, BuildContext, ProbeRun, run_probe};
use api_token_exporter::store::Store;
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support;
use crate::support::clock::NOW;
use support::SecretFiles;
use support::daemon::{Daemon, free_port, write};
use support::peer_missing;

/// The probes' clock. Every good answer says the token expires at [`EXP`].
/// 2023-12-15T00:00:00Z: a midnight, so GitLab's date-only `expires_at` can say it too.
const EXP: i64 = 1_702_598_400;
/// Each token's `probe_timeout` in these tests; slow faults take well over it.
const PROBE_TIMEOUT: &str = "1s";
/// How long a slow answer waits before its headers: three times the probe timeout.
const SLOW: Duration = Duration::from_secs(3);
/// What the big-body faults send: five times the 1 MiB cap.
const HUGE: usize = 5 * 1024 * 1024;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

// The `jwt` row signs with the key `jwt_jwks` publishes as `k1`, so its token verifies
// against the JWKS the good server answers with.
use crate::jwt_jwks::{KEY_A_PEM as KEY_PEM, KEY_A_X as KEY_X, KEY_A_Y as KEY_Y};

/// A JWT with `claims`, signed with [`KEY_PEM`] under the key id `k1`.
fn signed(claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let key = EncodingKey::from_ec_pem(KEY_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// An answer the fault server sends when it is healthy.
#[derive(Clone, Debug)]
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Canned {
    fn json(value: serde_json::Value) -> Canned {
        Canned {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }

    fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One provider kind: how to configure it against a base URL, which path it calls, what a
/// healthy provider answers there, and the secret it is given.
struct Kind {
    kind: &'static str,
    /// The provider's settings, one per line; `{base}` is the server's base URL and
    /// `{client_secret}` a `{file: ...}` source for the exporter's own credential.
    provider: &'static str,
    /// Extra settings of the token, one per line.
    token: &'static str,
    /// The path the probe calls; `None` for kinds that make no call.
    path: Option<&'static str>,
    /// The secret value, and what a healthy provider answers at `path`.
    secret: fn() -> String,
    good: fn() -> Canned,
    /// Faults whose outcome differs from [`expected`] for this kind, and why.
    overrides: &'static [(Fault, Verdict, Reason)],
}

/// Every kind in the registry, in the order of [`provider::KINDS`] (a test holds them equal).
/// Adding a kind is one row.
const KINDS: &[Kind] = &[
    Kind {
        kind: "oauth2_introspection",
        provider: "introspection_endpoint: {base}/introspect\nclient_id: exporter\nclient_secret: {client_secret}",
        token: "",
        path: Some("/introspect"),
        secret: || "opaque-access-token-5f1d9c2a7b".into(),
        good: || {
            Canned::json(json!({
                "active": true, "exp": EXP, "iat": NOW - 600, "sub": "svc-deploy",
                "client_id": "deployer", "scope": "api:read api:write"
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "jwt",
        provider: "jwks_uri: {base}/jwks\nalgorithms: [ES256]",
        token: "",
        path: Some("/jwks"),
        secret: || signed(json!({"sub": "svc-ci", "iat": NOW - 600, "exp": EXP})),
        good: || {
            Canned::json(json!({"keys": [{
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "k1",
                "x": KEY_X, "y": KEY_Y
            }]}))
        },
        overrides: &[],
    },
    Kind {
        kind: "github",
        provider: "url: {base}",
        token: "",
        path: Some("/user"),
        secret: || "ghp_0123456789abcdefghijklmnopqrstuvwxyz".into(),
        good: || {
            Canned::json(json!({"login": "octocat", "id": 1, "type": "User"}))
                .header(
                    "github-authentication-token-expiration",
                    "2023-12-15 00:00:00 UTC",
                )
                .header("x-oauth-scopes", "repo, read:org")
        },
        overrides: &[],
    },
    Kind {
        kind: "gitlab",
        provider: "url: {base}",
        token: "",
        path: Some("/api/v4/personal_access_tokens/self"),
        secret: || "glpat-0123456789abcdefghij".into(),
        good: || {
            Canned::json(json!({
                "id": 4, "name": "ci", "revoked": false, "active": true, "scopes": ["api"],
                "user_id": 7, "created_at": "2023-11-01T00:00:00.000Z",
                "expires_at": "2023-12-15", "last_used_at": null
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "vault",
        provider: "url: {base}",
        token: "",
        path: Some("/v1/auth/token/lookup-self"),
        secret: || "hvs.CAESIJ0123456789abcdefghijklmnop".into(),
        good: || {
            Canned::json(json!({"data": {
                "accessor": "acc-1", "creation_time": NOW - 600, "display_name": "token-ci",
                "expire_time": "2023-12-15T00:00:00Z", "num_uses": 0,
                "policies": ["default", "ci"], "ttl": EXP - NOW, "type": "service"
            }}))
        },
        // Vault documents 503 as sealed, standby or in maintenance, and says so.
        overrides: &[(Fault::Http503, Verdict::Unreachable, Reason::Sealed)],
    },
    Kind {
        kind: "slack",
        provider: "url: {base}",
        token: "",
        path: Some("/api/auth.test"),
        // A rotating token: only those come with `expires_in`, which gives the expiry the
        // healthy probe must see.
        secret: || "xoxe.xoxp-1-0123456789-0123456789-abcdefghijklmnop".into(),
        good: || {
            Canned::json(json!({
                "ok": true, "url": "https://acme.slack.com/", "team": "Acme",
                "user": "deploy-bot", "team_id": "T0123", "user_id": "U0123",
                "expires_in": EXP - NOW
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "cloudflare",
        provider: "url: {base}",
        token: "",
        path: Some("/client/v4/user/tokens/verify"),
        secret: || "cf0123456789abcdefghijklmnopqrstuvwxyzAB".into(),
        good: || {
            Canned::json(json!({
                "success": true, "errors": [],
                "messages": [{"code": 10000, "message": "This API Token is valid and active"}],
                "result": {
                    "id": "ed17574386854bf78a67040be0a770b0", "status": "active",
                    "expires_on": "2023-12-15T00:00:00Z", "not_before": "2023-11-01T00:00:00Z"
                }
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "google",
        provider: "url: {base}",
        token: "",
        path: Some("/tokeninfo"),
        secret: || "ya29.a0AfB_byC0123456789abcdefghijklmnopqrstuv".into(),
        good: || {
            Canned::json(json!({
                "azp": "1234.apps.googleusercontent.com",
                "aud": "1234.apps.googleusercontent.com", "sub": "1098",
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "exp": EXP.to_string(), "expires_in": (EXP - NOW).to_string(),
                "email": "svc@example.iam.gserviceaccount.com", "email_verified": "true"
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "kubernetes",
        // The exporter's own token for the review is the `{client_secret}` file; with an
        // API server other than the in-cluster one it must be configured.
        provider: "url: {base}\ntoken: {client_secret}",
        token: "",
        path: Some("/apis/authentication.k8s.io/v1/tokenreviews"),
        // The expiry comes from the reviewed JWT's own `exp`; the API server only says
        // whether it accepts the token.
        secret: || {
            signed(json!({
                "iss": "https://kubernetes.default.svc.cluster.local",
                "sub": "system:serviceaccount:ci:deployer", "iat": NOW - 600, "exp": EXP
            }))
        },
        good: || Canned {
            status: 201,
            ..Canned::json(json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "status": {
                    "authenticated": true,
                    "user": {"username": "system:serviceaccount:ci:deployer", "uid": "u-1"},
                    "audiences": ["https://kubernetes.default.svc.cluster.local"]
                }
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "static",
        provider: "",
        token: "expires_at: 2023-12-15",
        path: None,
        secret: || "static-declared-token-value-0001".into(),
        good: || unreachable!("static makes no call"),
        overrides: &[],
    },
    Kind {
        kind: "entra_id",
        // With Graph on, the healthy probe asks the token endpoint and then Graph; the fault
        // server answers both with one body that is each answer at once (each reads only
        // its own members), and a fault at the token endpoint means Graph is never asked.
        provider: "tenant_id: contoso.onmicrosoft.com\nclient_id: 0c5e3d9a-4b1f-4a6e-9d2c-7f8e1a2b3c4d\nurl: {base}\ngraph_url: {base}\ngraph: true",
        token: "",
        path: Some("/contoso.onmicrosoft.com/oauth2/v2.0/token"),
        secret: || "Xy7Q~faultEntraClientSecret.0123456789ab".into(),
        good: || {
            Canned::json(json!({
                "token_type": "Bearer", "expires_in": 3599, "access_token": "eyJ0eXAi.minted.sig",
                "id": "03ef14b0-ca33-4840-8f4f-d6e91916010e",
                "appId": "0c5e3d9a-4b1f-4a6e-9d2c-7f8e1a2b3c4d", "displayName": "deployer",
                "keyCredentials": [],
                "passwordCredentials": [{
                    "displayName": "ci", "hint": "Xy7", "keyId": "f1e2d3c4-b5a6-4789-8abc-def012345678",
                    "startDateTime": "2023-11-01T00:00:00Z", "endDateTime": "2023-12-15T00:00:00Z"
                }]
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "http",
        // The documented introspection-style recipe: the token in a form field, rules on
        // the JSON body's `active`, the expiry from `/exp`.
        provider: "url: {base}\npath: /oauth2/introspect\nmethod: POST\ntoken: {in: form, name: token}\nrules:\n  - {status: 200, when: [{pointer: /active, equals: true}], verdict: valid}\n  - {status: 200, when: [{pointer: /active, equals: false}], verdict: invalid, reason: inactive}\n  - {status: 429, verdict: rate_limited}\nexpiry: {from: json_pointer, at: /exp, format: unix_seconds}\nscopes: {from: json_pointer, at: /scope}\nsubject: {from: json_pointer, at: /sub}",
        token: "",
        path: Some("/oauth2/introspect"),
        secret: || "generic-http-token-0123456789abcdef".into(),
        good: || {
            Canned::json(json!({
                "active": true, "exp": EXP, "sub": "svc-deploy", "scope": "read write"
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "aws",
        // IAM off: the fault server answers every path alike, and one call per probe is
        // what the table counts. A long-term key never expires (see `healthy_expiry`).
        provider: "url: {base}\niam: false",
        token: "access_key_id: AKIAIOSFODNN7EXAMPLE",
        path: Some("/"),
        secret: || "wJalrXUtnFEMI/K7MDENG+bPxRfiCYfaultAwsKey".into(),
        good: || {
            Canned {
            status: 200,
            headers: vec![("content-type".into(), "text/xml".into())],
            body: br#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/deployer</Arn><UserId>AIDACKCEVSQ6C2EXAMPLE</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#.to_vec(),
        }
        },
        overrides: &[],
    },
    Kind {
        kind: "atlassian",
        provider: "url: {base}",
        token: "email: mia@example.com",
        path: Some("/rest/api/3/myself"),
        secret: || "ATATT3xFfGF0canaryAtlassianApiToken0123456789=ABCDEF01".into(),
        // Jira's `myself`; the REST API never states the token's expiry.
        good: || {
            Canned::json(json!({
                "accountId": "5b10a2844c20165700ede21g", "accountType": "atlassian",
                "active": true, "displayName": "Mia Krystof",
                "emailAddress": "mia@example.com", "timeZone": "Australia/Sydney"
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "grafana",
        provider: "url: {base}",
        token: "",
        path: Some("/api/user"),
        secret: || "glsa_FaultGrafanaServiceAccountTok012_5b582697".into(),
        // The service account's identity; its token list (the expiry) is in LATER_CALLS.
        good: || {
            Canned::json(json!({
                "id": 0, "uid": "service-account:42", "login": "sa-1-deployer",
                "email": "sa-1-deployer", "name": "deployer", "orgId": 1,
                "isGrafanaAdmin": false
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "okta",
        provider: "url: {base}",
        token: "",
        path: Some("/api/v1/users/me"),
        secret: || "00FaultOktaApiToken-0123456789abcdefghijkLMNOP".into(),
        // The user; the token's own `expiresAt` comes from the token list (LATER_CALLS),
        // without which the expiry would be this probe plus 30 days.
        good: || {
            Canned::json(json!({
                "id": "00ub0oNGTSWTBKOLGLNR", "status": "ACTIVE",
                "profile": {"login": "isaac.brock@example.com", "email": "isaac.brock@example.com"}
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "npm",
        // The healthy probe asks whoami and then the token list; one body is both answers
        // (each reads only its own members), and a fault at whoami means the list is never
        // asked. The list entry fits the secret by npm's redacted form.
        provider: "url: {base}",
        token: "",
        path: Some("/-/whoami"),
        secret: || "npm_faultNpmGranular0123456789abcdefghij".into(),
        good: || {
            Canned::json(json!({
                "username": "deploy-bot", "total": 1, "urls": {},
                "objects": [{
                    "name": "ci", "key": "6f2b1c1e-3b1a-4c55-9f0e-2d4b8a7c9e11",
                    "token": "npm_faul...ghij", "expiry": "2023-12-15T00:00:00.000Z",
                    "created": "2023-11-01T00:00:00.000Z", "cidr": [], "bypass_2fa": false,
                    "revoked": null, "permissions": [{"name": "package", "action": "read"}]
                }]
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "docker_hub",
        // The healthy probe exchanges the token at /v2/auth/token and then reads the token
        // list with the bearer it got; one body is both answers, and the list holds this
        // one token, so it is the probed one.
        provider: "url: {base}",
        token: "username: deploybot",
        path: Some("/v2/auth/token"),
        secret: || "dckr_pat_faultDockerHub0123456789abcdef".into(),
        good: || {
            Canned::json(json!({
                "access_token": "eyJhbGciOiJSUzI1NiJ9.fault.sig",
                "count": 1, "next": null, "previous": null, "active_count": 1,
                "results": [{
                    "uuid": "b30bbf97-506c-4ecd-aabc-842f3cb484fb", "client_id": "HUB",
                    "created_at": "2023-11-01T00:00:00.000000Z", "last_used": null,
                    "generated_by": "manual", "is_active": true, "token": "",
                    "token_label": "ci", "scopes": ["repo:read"],
                    "expires_at": "2023-12-15T00:00:00.000000Z"
                }]
            }))
        },
        overrides: &[],
    },
    Kind {
        kind: "terraform",
        // An organization token: the healthy probe asks the account details and then the
        // organization's token record; one JSON:API body is both (the record reads only
        // `expired-at` and the dates of `data.attributes`).
        provider: "url: {base}",
        token: "",
        path: Some("/api/v2/account/details"),
        secret: || "faultTerraformOrg.atlasv1.0123456789abcdefghijklmnop".into(),
        good: || Canned {
            headers: vec![("content-type".into(), "application/vnd.api+json".into())],
            ..Canned::json(json!({"data": {
                "id": "user-svc0123456789", "type": "users",
                "attributes": {
                    "username": "api-org-acme-0123456789", "is-service-account": true,
                    "created-at": "2023-11-01T00:00:00.000Z", "last-used-at": null,
                    "description": null, "token": null,
                    "expired-at": "2023-12-15T00:00:00.000Z"
                },
                "relationships": {"authenticated-resource": {"data": {"id": "acme", "type": "organizations"}}}
            }}))
        },
        overrides: &[],
    },
];

/// Kinds whose provider never discloses an expiry on the call it answers (Atlassian's REST
/// API): their healthy probe leaves it undisclosed, and the faults must keep it so.
const EXPIRY_UNDISCLOSED: &[&str] = &["atlassian"];

/// An answer at another path than the row's `path`, for a kind that makes a second call
/// after a healthy first one (the expiry from a token list). A fault breaks the first call,
/// so the second is made only by the healthy probe.
struct Later {
    kind: &'static str,
    path: &'static str,
    answer: fn() -> Canned,
}

/// Every kind's later calls.
const LATER_CALLS: &[Later] = &[
    Later {
        kind: "okta",
        path: "/api/v1/api-tokens?limit=200",
        answer: || {
            Canned::json(json!([{
                "name": "ci", "userId": "00ub0oNGTSWTBKOLGLNR", "tokenWindow": "P30D",
                "id": "00Tabcdefg1234567890", "clientName": "Okta API",
                "expiresAt": "2023-12-15T00:00:00.000Z", "created": "2023-10-01T20:38:10.000Z"
            }]))
        },
    },
    Later {
        kind: "grafana",
        path: "/api/serviceaccounts/42/tokens",
        answer: || {
            Canned::json(json!([{
                "id": 2, "name": "ci", "role": "Viewer", "created": "2023-11-01T00:00:00Z",
                "expiration": "2023-12-15T00:00:00Z", "secondsUntilExpiration": 0,
                "hasExpired": false
            }]))
        },
    },
];

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// 502 Bad Gateway from a proxy, with its HTML page.
    Http502,
    /// 503 Service Unavailable.
    Http503,
    /// The whole answer comes after [`SLOW`], three times the probe timeout.
    SlowHeaders,
    /// Headers at once, then the (good) body one byte every 250 ms.
    SlowBody,
    /// The connection is accepted and reset before anything is read.
    ResetOnAccept,
    /// The request is read, then the connection is reset without an answer.
    ResetAfterRequest,
    /// Nothing listens on the port.
    Refused,
    /// An `https://` URL pointing at the plain-HTTP server.
    TlsToPlainHttp,
    /// 200 with a proxy's HTML login page.
    HtmlPage,
    /// 200 announcing (and sending) 5 MiB.
    HugeWithLength,
    /// 200 sending 5 MiB in chunks, without a content-length.
    HugeChunked,
    /// Headers announce the good body, half of it comes, then the connection closes.
    TruncatedBody,
    /// Every request answered 429 with `Retry-After: 30`.
    Storm429,
    /// 429 asking to wait 2^64-1 seconds: the provider's wish, not a reason to stop.
    AbsurdRetryAfter,
    /// The token's secret file is gone.
    SecretGone,
}

impl Fault {
    /// Faults that touch the network: they do not apply to kinds that make no call.
    fn is_network(self) -> bool {
        self != Fault::SecretGone
    }

    /// Whether the server reads the request (and so sees the path) under this fault.
    fn reads_request(self) -> bool {
        !matches!(
            self,
            Fault::ResetOnAccept | Fault::Refused | Fault::TlsToPlainHttp | Fault::SecretGone
        )
    }
}

/// The outcome every kind must reach under a fault, unless its row overrides it.
fn expected(fault: Fault) -> (Verdict, Reason) {
    use Fault::*;
    match fault {
        Http502 | Http503 => (Verdict::Unreachable, Reason::Http5xx),
        SlowHeaders | SlowBody => (Verdict::Unreachable, Reason::Timeout),
        ResetOnAccept | ResetAfterRequest | Refused => (Verdict::Unreachable, Reason::Connect),
        TlsToPlainHttp => (Verdict::Unreachable, Reason::Tls),
        HtmlPage | HugeWithLength | HugeChunked | TruncatedBody => {
            (Verdict::Unreachable, Reason::BadResponse)
        }
        Storm429 | AbsurdRetryAfter => (Verdict::RateLimited, Reason::RateLimited),
        SecretGone => (Verdict::Misconfigured, Reason::SecretUnavailable),
    }
}

/// The expiry a kind's healthy answer gives: [`EXP`], except for a kind whose tokens never
/// expire (an AWS access key), whose "never" the store must keep just the same, and a kind
/// whose provider never discloses one ([`EXPIRY_UNDISCLOSED`]).
fn healthy_expiry(kind: &Kind) -> Expiry {
    if EXPIRY_UNDISCLOSED.contains(&kind.kind) {
        return Expiry::Undisclosed;
    }
    match kind.kind {
        "aws" => Expiry::Never,
        _ => Expiry::At(at(EXP)),
    }
}

fn expected_for(kind: &Kind, fault: Fault) -> (Verdict, Reason) {
    kind.overrides
        .iter()
        .find(|(f, _, _)| *f == fault)
        .map(|(_, v, r)| (*v, *r))
        .unwrap_or_else(|| expected(fault))
}

/// What the fault server does with the next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Good,
    Fault(Fault),
}

struct ServerState {
    mode: Mutex<Mode>,
    good: Canned,
    /// Answers at other paths ([`LATER_CALLS`]).
    later: Mutex<Vec<(&'static str, Canned)>>,
    /// `METHOD PATH` of every request read.
    seen: Mutex<Vec<String>>,
    connections: AtomicUsize,
}

/// A provider on 127.0.0.1 that answers well or breaks in one of the ways of [`Fault`].
/// HTTP/1.1 by hand, one request per connection (`connection: close`).
struct FaultServer {
    addr: std::net::SocketAddr,
    state: Arc<ServerState>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FaultServer {
    async fn start(good: Canned) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState {
            mode: Mutex::new(Mode::Good),
            good,
            later: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        FaultServer {
            addr,
            state,
            task: Some(task),
        }
    }

    /// The server of a kind's row: its healthy answer, and those of its later calls.
    async fn start_for(kind: &Kind) -> FaultServer {
        let server = FaultServer::start((kind.good)()).await;
        let later = LATER_CALLS
            .iter()
            .filter(|l| l.kind == kind.kind)
            .map(|l| (l.path, (l.answer)()))
            .collect();
        *server.state.later.lock().unwrap() = later;
        server
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Stops listening: connections to the port are refused from now on.
    fn go_down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens on the same port again (the listener sets SO_REUSEADDR).
    async fn come_back(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.task = Some(tokio::spawn(accept_loop(listener, self.state.clone())));
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.go_down();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve(socket, state.clone()));
    }
}

/// The head of a response; `length: None` means chunked.
fn head(status: u16, headers: &[(String, String)], length: Option<usize>) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nconnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    match length {
        Some(n) => out.push_str(&format!("content-length: {n}\r\n")),
        None => out.push_str("transfer-encoding: chunked\r\n"),
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn html(status: u16, body: &str) -> Vec<u8> {
    let headers = [("content-type".to_string(), "text/html".to_string())];
    let mut out = head(status, &headers, Some(body.len()));
    out.extend_from_slice(body.as_bytes());
    out
}

/// Serves one connection. Write errors are ignored: under most faults the client gives up
/// first, which is the point.
async fn serve(mut socket: TcpStream, state: Arc<ServerState>) {
    state.connections.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    if mode == Mode::Fault(Fault::ResetOnAccept) {
        let _ = socket.set_zero_linger();
        return;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            // A TLS ClientHello: answer as a plain HTTP server answers a request it cannot
            // parse.
            let _ = socket
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            return;
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head_text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head_text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request_line = head_text.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    state.seen.lock().unwrap().push(format!("{method} {path}"));

    let later = state
        .later
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, answer)| answer.clone());
    let good = later.as_ref().unwrap_or(&state.good);
    let mut good_bytes = head(good.status, &good.headers, Some(good.body.len()));
    good_bytes.extend_from_slice(&good.body);
    match mode {
        Mode::Good => {
            let _ = socket.write_all(&good_bytes).await;
        }
        Mode::Fault(fault) => match fault {
            Fault::Http502 => {
                let page = "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>";
                let _ = socket.write_all(&html(502, page)).await;
            }
            Fault::Http503 => {
                let page = "<html><body><h1>503 Service Unavailable</h1></body></html>";
                let _ = socket.write_all(&html(503, page)).await;
            }
            Fault::SlowHeaders => {
                tokio::time::sleep(SLOW).await;
                let _ = socket.write_all(&good_bytes).await;
            }
            Fault::SlowBody => {
                let _ = socket
                    .write_all(&head(good.status, &good.headers, Some(good.body.len())))
                    .await;
                for byte in &good.body {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    if socket.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                }
            }
            Fault::ResetAfterRequest => {
                let _ = socket.set_zero_linger();
            }
            Fault::HtmlPage => {
                let page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>\
                    <form action=\"/login\"><input name=\"user\"></form></body></html>";
                let _ = socket.write_all(&html(200, page)).await;
            }
            Fault::HugeWithLength => {
                let json = [("content-type".to_string(), "application/json".to_string())];
                if socket
                    .write_all(&head(200, &json, Some(HUGE)))
                    .await
                    .is_err()
                {
                    return;
                }
                let filler = vec![b' '; 64 * 1024];
                for _ in 0..HUGE / filler.len() {
                    if socket.write_all(&filler).await.is_err() {
                        return;
                    }
                }
            }
            Fault::HugeChunked => {
                let json = [("content-type".to_string(), "application/json".to_string())];
                if socket.write_all(&head(200, &json, None)).await.is_err() {
                    return;
                }
                let filler = vec![b' '; 64 * 1024];
                for _ in 0..HUGE / filler.len() {
                    let mut piece = format!("{:x}\r\n", filler.len()).into_bytes();
                    piece.extend_from_slice(&filler);
                    piece.extend_from_slice(b"\r\n");
                    if socket.write_all(&piece).await.is_err() {
                        return;
                    }
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            }
            Fault::TruncatedBody => {
                let _ = socket
                    .write_all(&head(good.status, &good.headers, Some(good.body.len())))
                    .await;
                let _ = socket.write_all(&good.body[..good.body.len() / 2]).await;
            }
            Fault::Storm429 | Fault::AbsurdRetryAfter => {
                let wait = if fault == Fault::Storm429 {
                    "30".to_string()
                } else {
                    u64::MAX.to_string()
                };
                let headers = [
                    ("content-type".to_string(), "application/json".to_string()),
                    ("retry-after".to_string(), wait),
                ];
                let body = br#"{"message":"API rate limit exceeded","errors":["rate limited"]}"#;
                let mut out = head(429, &headers, Some(body.len()));
                out.extend_from_slice(body);
                let _ = socket.write_all(&out).await;
            }
            Fault::ResetOnAccept | Fault::Refused | Fault::TlsToPlainHttp | Fault::SecretGone => {
                unreachable!("{fault:?} never reaches the server's answer")
            }
        },
    }
}

/// The config of one kind against `base`, with token `t` (its secret read from
/// `token_source`) on provider `p`.
fn config_for(kind: &Kind, base: &str, files: &SecretFiles, token_source: &str) -> Config {
    let mut yaml = format!(
        "global:\n  probe_timeout: {PROBE_TIMEOUT}\nproviders:\n  p:\n    kind: {}\n",
        kind.kind
    );
    let client_secret = files.put("client_secret", "exporter-client-secret");
    for line in kind.provider.lines() {
        let line = line
            .replace("{base}", base)
            .replace("{client_secret}", &client_secret);
        yaml.push_str(&format!("    {line}\n"));
    }
    yaml.push_str(&format!(
        "tokens:\n  - name: t\n    provider: p\n    secret: {token_source}\n"
    ));
    for line in kind.token.lines() {
        yaml.push_str(&format!("    {line}\n"));
    }
    let config =
        Config::parse(&yaml).unwrap_or_else(|e| panic!("{} config does not load:\n{e}", kind.kind));
    assert_eq!(config.providers["p"].kind(), kind.kind);
    config
}

/// One probe of `t` through the generic handler, with a fresh provider (so no key cache
/// or discovered endpoint from an earlier probe hides the fault).
async fn probe(config: &Config, now: Timestamp) -> ProbeRun {
    let spec = config.token("t").unwrap();
    let provider = config.providers["p"].build(&BuildContext::new()).unwrap();
    run_probe(provider.as_ref(), spec, now).await
}

/// A healthy probe, then `fault`; returns the store and the fault's runs for more checks.
/// Asserts the verdict and reason, that the token is never reported invalid, and that the
/// store keeps the expiry the healthy probe saw.
async fn check(kind: &Kind, fault: Fault, repeat: usize) -> (Arc<Store>, Vec<ProbeRun>) {
    assert!(
        kind.path.is_some() || !fault.is_network(),
        "{} makes no call: {fault:?} does not apply",
        kind.kind
    );
    let name = format!("{} / {fault:?}", kind.kind);
    let secret = (kind.secret)();
    let files = SecretFiles::new();
    let mut server = match kind.path {
        Some(_) => Some(FaultServer::start_for(kind).await),
        None => None,
    };
    let base = server.as_ref().map(FaultServer::url).unwrap_or_default();
    let store = Arc::new(Store::new());
    let token_source = files.put("token", &secret);

    let good = config_for(kind, &base, &files, &token_source);
    store.reconcile(&good);
    let run = probe(&good, at(NOW)).await;
    assert_eq!(
        (run.outcome.verdict, run.outcome.reason),
        (Verdict::Valid, Reason::Ok),
        "{name}: the healthy probe: {}",
        run.outcome.detail
    );
    store.record("t", run, at(NOW));
    assert_eq!(
        store.read().tokens["t"].facts.expiry,
        healthy_expiry(kind),
        "{name}: the healthy probe's expiry"
    );

    let fault_base = match fault {
        Fault::Refused => format!("http://127.0.0.1:{}", free_port()),
        Fault::TlsToPlainHttp => base.replace("http://", "https://"),
        _ => base.clone(),
    };
    if fault == Fault::SecretGone {
        let file = token_source
            .strip_prefix("{file: ")
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{name}: not a file source: {token_source}"));
        std::fs::remove_file(file).unwrap();
    }
    if let Some(server) = &server {
        server.set(Mode::Fault(fault));
    }
    let faulty = if fault == Fault::SecretGone {
        good.clone()
    } else {
        config_for(kind, &fault_base, &files, &token_source)
    };
    store.reconcile(&faulty);

    let (verdict, reason) = expected_for(kind, fault);
    let mut runs = Vec::new();
    for i in 0..repeat {
        // tokio's clock, which is the wall clock unless a test pauses it: the slow faults run
        // on the paused clock, where the probe timeout is the only thing that moves time.
        let started = tokio::time::Instant::now();
        let run = probe(&faulty, at(NOW + 60 * (i as i64 + 1))).await;
        let took = started.elapsed();
        assert_eq!(
            (run.outcome.verdict, run.outcome.reason),
            (verdict, reason),
            "{name}: {}",
            run.outcome.detail
        );
        assert_ne!(run.outcome.verdict, Verdict::Invalid, "{name}");
        assert!(
            !run.outcome.detail.contains(&secret),
            "{name}: the detail holds the token"
        );
        // The probe timeout bounds every fault, slow ones included.
        assert!(
            took < Duration::from_millis(2500),
            "{name}: the probe took {took:?}"
        );
        store.record("t", run.clone(), at(NOW + 60 * (i as i64 + 1)));
        runs.push(run);
    }

    {
        let inner = store.read();
        let state = &inner.tokens["t"];
        assert_eq!(state.verdict(), Some(verdict), "{name}");
        assert_eq!(
            state.facts.expiry,
            healthy_expiry(kind),
            "{name}: the last known expiry is lost"
        );
        assert_eq!(
            state.last_verdict_at,
            Some(at(NOW)),
            "{name}: a fault moved the last verdict time"
        );
        let provider = &inner.providers["p"];
        assert_eq!(provider.probes, 1 + repeat as u64, "{name}");
        assert_eq!(
            provider.failures[&reason], repeat as u64,
            "{name}: failures counted under {reason}"
        );
    }
    let text = render(&Metrics::new(
        store.clone(),
        Arc::new(ExporterStatus::new()),
    ));
    let expiry_line =
        format!("api_token_expiry_timestamp_seconds{{token=\"t\",provider=\"p\"}} {EXP}.0");
    assert_eq!(
        text.lines().any(|l| l == expiry_line),
        healthy_expiry(kind) == Expiry::At(at(EXP)),
        "{name}: /metrics lost the expiry, or shows one never disclosed:\n{text}"
    );
    let state_line = format!(
        "api_token_state{{token=\"t\",provider=\"p\",state=\"{}\"}} 1",
        verdict.as_str()
    );
    assert!(text.lines().any(|l| l == state_line), "{name}: {text}");
    assert!(!text.contains(&secret), "{name}: /metrics holds the token");

    if let (Some(server), Some(path)) = (&server, kind.path) {
        let seen = server.seen();
        let calls = seen.iter().filter(|s| s.ends_with(path)).count();
        let wanted = if fault.reads_request() { 1 + repeat } else { 1 };
        assert_eq!(calls, wanted, "{name}: requests seen: {seen:?}");
        if matches!(fault, Fault::ResetOnAccept | Fault::TlsToPlainHttp) {
            assert!(
                server.state.connections.load(Ordering::SeqCst) > 1,
                "{name}: the fault was never reached"
            );
        }
    }
    if let Some(server) = server.as_mut() {
        server.go_down();
    }
    (store, runs)
}

async fn every_network_kind(fault: Fault) {
    for kind in KINDS.iter().filter(|k| k.path.is_some()) {
        check(kind, fault, 1).await;
    }
}

#[tokio::test]
async fn http_502_is_unreachable() {
    every_network_kind(Fault::Http502).await;
}

#[tokio::test]
async fn http_503_is_unreachable_and_sealed_for_vault() {
    every_network_kind(Fault::Http503).await;
}

/// On tokio's paused clock, like the trickling body below: the probe timeout and the fault
/// server's delays are timers of this runtime (the server is in it, on loopback), so the
/// timeout is tested without spending its seconds, and a busy machine cannot stretch them.
#[tokio::test(start_paused = true)]
async fn an_answer_slower_than_the_probe_timeout_is_a_timeout() {
    every_network_kind(Fault::SlowHeaders).await;
}

#[tokio::test(start_paused = true)]
async fn a_body_trickling_past_the_probe_timeout_is_a_timeout() {
    every_network_kind(Fault::SlowBody).await;
}

#[tokio::test]
async fn a_connection_reset_on_accept_is_a_connect_failure() {
    every_network_kind(Fault::ResetOnAccept).await;
}

#[tokio::test]
async fn a_connection_reset_after_the_request_is_a_connect_failure() {
    every_network_kind(Fault::ResetAfterRequest).await;
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    every_network_kind(Fault::Refused).await;
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_failure() {
    every_network_kind(Fault::TlsToPlainHttp).await;
}

#[tokio::test]
async fn a_proxy_login_page_is_a_bad_response() {
    every_network_kind(Fault::HtmlPage).await;
}

#[tokio::test]
async fn a_body_over_the_cap_is_a_bad_response() {
    every_network_kind(Fault::HugeWithLength).await;
    every_network_kind(Fault::HugeChunked).await;
}

#[tokio::test]
async fn a_truncated_body_is_a_bad_response() {
    every_network_kind(Fault::TruncatedBody).await;
}

#[tokio::test]
async fn an_absurd_retry_after_is_rate_limited() {
    every_network_kind(Fault::AbsurdRetryAfter).await;
}

#[tokio::test]
async fn a_429_storm_is_rate_limited_and_honours_retry_after() {
    for kind in KINDS.iter().filter(|k| k.path.is_some()) {
        let (_, runs) = check(kind, Fault::Storm429, 20).await;
        for run in runs {
            assert_eq!(
                run.outcome.retry_after,
                Some(Duration::from_secs(30)),
                "{}",
                kind.kind
            );
        }
    }
}

#[tokio::test]
async fn a_vanished_secret_is_misconfigured_for_every_kind() {
    for kind in KINDS {
        check(kind, Fault::SecretGone, 1).await;
    }
}

#[test]
fn every_fault_applies_to_every_network_kind() {
    // The table drives the tests above; a kind without a path would silently skip the
    // network faults, so only kinds that make no call at all may lack one.
    for kind in KINDS {
        assert_eq!(kind.path.is_none(), kind.kind == "static", "{}", kind.kind);
    }
}

#[test]
fn the_table_has_one_row_per_registry_kind() {
    let rows: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
    for kind in provider::KINDS {
        assert!(rows.contains(kind), "the registry kind {kind} has no row");
    }
    for row in &rows {
        assert!(
            provider::KINDS.contains(row),
            "the row {row} names no registry kind"
        );
    }
    assert_eq!(
        rows,
        provider::KINDS,
        "one row per kind, in the registry's order"
    );
}

/// Every endpoint setting renamed to the common `url` rule (or, for the OAuth kinds, to the
/// RFC 8414 metadata names), as a config written before the rename gives it: the kind, and
/// its row's provider settings under the old names, with the old values. A kind with no old
/// name has no row here.
const RENAMED: &[(&str, &str, &str, &str)] = &[
    (
        "oauth2_introspection",
        "introspection_url: {base}/introspect\nclient_id: exporter\nclient_secret: {client_secret}",
        "introspection_url",
        "introspection_endpoint",
    ),
    (
        "jwt",
        "jwks_url: {base}/jwks\nalgorithms: [ES256]",
        "jwks_url",
        "jwks_uri",
    ),
    ("github", "api_url: {base}", "api_url", "url"),
    ("vault", "address: {base}", "address", "url"),
    // The old values held the API path: Slack's `/api`, Cloudflare's `/client/v4`, the whole
    // tokeninfo endpoint.
    ("slack", "api_url: {base}/api", "api_url", "url"),
    ("cloudflare", "api_url: {base}/client/v4", "api_url", "url"),
    (
        "google",
        "tokeninfo_url: {base}/tokeninfo",
        "tokeninfo_url",
        "url",
    ),
    (
        "kubernetes",
        "api_server: {base}\ntoken: {client_secret}",
        "api_server",
        "url",
    ),
];

/// A config written with the old setting names keeps working as it did: the same call, the
/// same healthy answer, and one warning for the provider naming the old and the new name.
#[tokio::test]
async fn the_old_setting_names_still_work_and_warn() {
    for &(name, old, old_name, new_name) in RENAMED {
        let row = KINDS.iter().find(|k| k.kind == name).unwrap();
        let kind = Kind {
            provider: old,
            ..*row
        };
        let server = FaultServer::start((kind.good)()).await;
        let files = SecretFiles::new();
        let token_source = files.put("token", &(kind.secret)());
        let config = config_for(&kind, &server.url(), &files, &token_source);
        let run = probe(&config, at(NOW)).await;
        assert_eq!(
            (run.outcome.verdict, run.outcome.reason),
            (Verdict::Valid, Reason::Ok),
            "{name} with {old_name}: {}",
            run.outcome.detail
        );
        let path = kind.path.unwrap();
        assert!(
            server
                .seen()
                .iter()
                .any(|s| s.split(' ').nth(1) == Some(path)),
            "{name} with {old_name} called {:?}, not {path}",
            server.seen()
        );
        let warnings = config.deprecations();
        assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
        assert!(
            warnings[0].starts_with("providers.p: ")
                && warnings[0].contains(&format!("`{old_name}` is now `{new_name}`")),
            "{name}: {}",
            warnings[0]
        );
        // The same config under the new names warns about nothing.
        let current = config_for(row, &server.url(), &files, &token_source);
        assert_eq!(current.deprecations(), Vec::<String>::new(), "{name}");
    }
}

/// Both names of one setting at once is an error naming both: which would win is not
/// something a reader of the file can see.
#[test]
fn old_and_new_names_together_are_refused() {
    for &(name, old, old_name, new_name) in RENAMED {
        let row = KINDS.iter().find(|k| k.kind == name).unwrap();
        let new_line = row.provider.lines().next().unwrap();
        let yaml = format!(
            "providers:\n  p:\n    kind: {name}\n{}\n    {new_line}\n",
            old.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("{client_secret}", "{env: X}")
        )
        .replace("{base}", "http://127.0.0.1:9");
        let err = Config::parse(&yaml).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "providers.p: {new_name} and {old_name} are the same setting"
            )),
            "{name}: {err}"
        );
    }
}

/// A token without a secret is answered without a call: `misconfigured` for every kind that
/// needs a secret, with the same detail for all of them; Vault without an accessor says so;
/// a static declaration needs none.
#[tokio::test]
async fn a_token_without_a_secret_makes_no_call() {
    for kind in KINDS {
        let files = SecretFiles::new();
        let server = match kind.path {
            Some(_) => Some(FaultServer::start((kind.good)()).await),
            None => None,
        };
        let base = server.as_ref().map(FaultServer::url).unwrap_or_default();
        let token_source = files.put("token", &(kind.secret)());
        let config = config_for(kind, &base, &files, &token_source);
        let mut spec = config.token("t").unwrap().clone();
        spec.secret = None;
        let provider = config.providers["p"].build(&BuildContext::new()).unwrap();
        let run = run_probe(provider.as_ref(), &spec, at(NOW)).await;
        let o = &run.outcome;
        match kind.kind {
            "static" => assert_eq!(o.verdict, Verdict::Valid, "{}", o.detail),
            "vault" => assert_eq!(
                (o.verdict, o.reason, o.detail.as_str()),
                (
                    Verdict::Misconfigured,
                    Reason::SecretUnavailable,
                    "the token has neither a secret nor an accessor"
                )
            ),
            _ => assert_eq!(
                (o.verdict, o.reason, o.detail.as_str()),
                (
                    Verdict::Misconfigured,
                    Reason::SecretUnavailable,
                    "the token has no secret"
                ),
                "{}",
                kind.kind
            ),
        }
        assert_eq!(run.fingerprint, None, "{}", kind.kind);
        if let Some(server) = &server {
            assert_eq!(server.seen(), Vec::<String>::new(), "{}", kind.kind);
        }
    }
}

/// The value of the sample whose line starts with `series` (name and labels), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn scrape(d: &Daemon) -> String {
    let (code, body) = d.get("/metrics");
    assert_eq!(code, 200, "/metrics stopped serving: {body}");
    body
}

/// Polls `/metrics` until `done` holds, checking `always` on every scrape.
fn scrape_until(
    d: &Daemon,
    what: &str,
    limit: Duration,
    mut always: impl FnMut(&str),
    mut done: impl FnMut(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let body = scrape(d);
        always(&body);
        if done(&body) {
            return body;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; last scrape:\n{body}\nlog:\n{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn oauth2_config(dir: &std::path::Path, providers: &[(&str, &FaultServer)]) -> std::path::PathBuf {
    let client = write(dir, "client", "exporter-client-secret");
    let mut yaml = String::from(
        "global:\n  probe_interval: 1s\n  min_probe_interval: 1s\n  max_backoff: 1s\n  probe_timeout: 1s\nproviders:\n",
    );
    for (name, server) in providers {
        yaml.push_str(&format!(
            "  {name}:\n    kind: oauth2_introspection\n    introspection_endpoint: {}/introspect\n    client_id: exporter\n    client_secret: {{file: {}}}\n",
            server.url(),
            client.display()
        ));
    }
    yaml.push_str("tokens:\n");
    for (name, _) in providers {
        let secret = write(
            dir,
            &format!("{name}.token"),
            &format!("opaque-{name}-7c1e9a0d3b"),
        );
        yaml.push_str(&format!(
            "  - name: {name}-token\n    provider: {name}\n    secret: {{file: {}}}\n",
            secret.display()
        ));
    }
    write(dir, "config.yml", &yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_rides_out_an_outage_and_recovers() {
    if which("curl").is_none() && peer_missing("curl") {
        return;
    }
    let exp = Timestamp::now().as_second() + 30 * 86_400;
    let mut server = FaultServer::start(Canned::json(
        json!({"active": true, "exp": exp, "sub": "svc-deploy"}),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = oauth2_config(dir.path(), &[("idp", &server)]);
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    d.wait_for("/-/ready", Duration::from_secs(10));

    let expiry = "api_token_expiry_timestamp_seconds{token=\"idp-token\",provider=\"idp\"}";
    let state =
        |s: &str| format!("api_token_state{{token=\"idp-token\",provider=\"idp\",state=\"{s}\"}}");
    let failures =
        |r: &str| format!("api_token_probe_failures_total{{provider=\"idp\",reason=\"{r}\"}}");
    let probes = "api_token_probes_total{provider=\"idp\"}";
    let keeps_expiry = |body: &str| {
        assert_eq!(
            sample(body, expiry),
            Some(exp as f64),
            "the expiry is not the last known one:\n{body}"
        );
    };
    scrape_until(&d, "valid", Duration::from_secs(10), keeps_expiry, |b| {
        sample(b, &state("valid")) == Some(1.0)
    });

    // The provider answers 502 for a while: unreachable, counted, expiry kept.
    server.set(Mode::Fault(Fault::Http502));
    let body = scrape_until(
        &d,
        "three 5xx failures",
        Duration::from_secs(15),
        keeps_expiry,
        |b| sample(b, &failures("http_5xx")).unwrap_or(0.0) >= 3.0,
    );
    assert_eq!(sample(&body, &state("unreachable")), Some(1.0), "{body}");
    assert_eq!(sample(&body, &state("invalid")), Some(0.0), "{body}");

    // Then it goes away altogether: connections are refused.
    server.go_down();
    let body = scrape_until(
        &d,
        "two connect failures",
        Duration::from_secs(15),
        keeps_expiry,
        |b| sample(b, &failures("connect")).unwrap_or(0.0) >= 2.0,
    );
    assert_eq!(sample(&body, &state("unreachable")), Some(1.0), "{body}");
    let failed_5xx = sample(&body, &failures("http_5xx")).unwrap();
    let probed = sample(&body, probes).unwrap();

    // It comes back: the token is valid again, and the counters only went up.
    server.set(Mode::Good);
    server.come_back().await;
    let body = scrape_until(
        &d,
        "valid again",
        Duration::from_secs(15),
        keeps_expiry,
        |b| sample(b, &state("valid")) == Some(1.0),
    );
    assert_eq!(sample(&body, &state("unreachable")), Some(0.0), "{body}");
    assert!(sample(&body, &failures("http_5xx")).unwrap() >= failed_5xx);
    assert!(sample(&body, probes).unwrap() > probed);
    let (code, api) = d.get("/api/v1/tokens/idp-token");
    assert_eq!(code, 200);
    assert!(api.contains("\"state\":\"valid\""), "{api}");

    let logs = d.logs();
    assert!(
        !logs.contains("opaque-idp-7c1e9a0d3b"),
        "the token is in the log"
    );
    assert!(
        !body.contains("opaque-idp-7c1e9a0d3b"),
        "the token is in /metrics"
    );
    assert!(!logs.contains("panicked"), "{logs}");
    let status = d.stop();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_asking_to_wait_forever_does_not_stop_the_other_probes() {
    if which("curl").is_none() && peer_missing("curl") {
        return;
    }
    let exp = Timestamp::now().as_second() + 30 * 86_400;
    let good = Canned::json(json!({"active": true, "exp": exp}));
    let busy = FaultServer::start(good.clone()).await;
    busy.set(Mode::Fault(Fault::AbsurdRetryAfter));
    let idp = FaultServer::start(good).await;
    let dir = tempfile::tempdir().unwrap();
    let config = oauth2_config(dir.path(), &[("busy", &busy), ("idp", &idp)]);
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    d.wait_for("/-/ready", Duration::from_secs(10));
    let probes = "api_token_probes_total{provider=\"idp\"}";
    let body = scrape_until(
        &d,
        "busy rate limited",
        Duration::from_secs(10),
        |_| {},
        |b| {
            sample(
                b,
                "api_token_state{token=\"busy-token\",provider=\"busy\",state=\"rate_limited\"}",
            ) == Some(1.0)
        },
    );
    // The healthy provider's token is probed every second or so, on and on.
    let before = sample(&body, probes).unwrap();
    scrape_until(
        &d,
        "idp probed on",
        Duration::from_secs(10),
        |_| {},
        |b| sample(b, probes).unwrap() >= before + 3.0,
    );
    let logs = d.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    assert_eq!(busy.seen().len(), 1, "the busy provider was asked again");
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}
