//! The `aws` provider against moto's server (a real implementation of STS and IAM, which
//! checks Signature Version 4 signatures and IAM policies), and against a local server for
//! the documented answers moto does not give (throttling, AWS's own failures, garbage).
//!
//! The test sets up users and keys in moto with administrator calls; the exporter's own
//! requests are read back from moto's recorder and must be only the three read calls.

use std::time::Duration;

use crate::support;
use crate::support::clock::now;
use crate::support::moto::{Moto, MotoRequest, between};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ExpiryModel, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use support::{Answer, MockServer, Recorded, SecretFiles, assert_outcome_hides, probe_once};

/// The calls the exporter may make to AWS. Every other action (CreateAccessKey,
/// UpdateAccessKey, DeleteAccessKey, GetSessionToken, AssumeRole...) fails the test.
const ALLOWED_ACTIONS: &[&str] = &[
    "GetCallerIdentity",
    "ListAccessKeys",
    "GetAccessKeyLastUsed",
];

fn yaml(url: &str, extra_provider: &str, key_id: &str, secret: &str, extra_token: &str) -> String {
    format!(
        "global:\n  probe_timeout: 10s\nproviders:\n  aws:\n    kind: aws\n    url: {url}\n{extra_provider}tokens:\n  - name: key\n    provider: aws\n    access_key_id: {key_id}\n    secret: {secret}\n{extra_token}"
    )
}

/// Probes a key against moto (STS and IAM both at moto's address), at the wall clock's now
/// (moto records last use at its own now).
async fn probe_moto(
    moto: &Moto,
    key_id: &str,
    secret: &str,
    session: Option<&str>,
) -> ProbeOutcome {
    let files = SecretFiles::new();
    let source = files.put("secret", secret);
    let token = session
        .map(|t| format!("    session_token: {}\n", files.put("session", t)))
        .unwrap_or_default();
    let iam = format!("    iam_url: {}\n", moto.url);
    probe_once(
        &yaml(&moto.url, &iam, key_id, &source, &token),
        "key",
        Timestamp::now(),
    )
    .await
}

/// Every request the exporter made is one of the allowed read calls, POSTed to `/` and
/// signed for the right service, with no secret in its URL, body or headers other than
/// the ones that carry it; returns the actions in order.
fn assert_only_reads(requests: &[MotoRequest], key_id: &str, secrets: &[&str]) -> Vec<String> {
    let mut actions = Vec::new();
    for r in requests {
        assert_eq!(r.method, "POST", "{r:?}");
        assert!(r.url.ends_with('/') && !r.url.contains('?'), "{}", r.url);
        let action = r.param("Action").unwrap_or_default();
        assert!(
            ALLOWED_ACTIONS.contains(&action.as_str()),
            "the exporter called {action}"
        );
        let service = if action == "GetCallerIdentity" {
            "sts"
        } else {
            "iam"
        };
        let auth = r.headers["Authorization"].as_str().unwrap();
        assert!(
            auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={key_id}/"))
                && auth.contains(&format!("/us-east-1/{service}/aws4_request, ")),
            "{auth}"
        );
        for secret in secrets {
            assert!(!r.url.contains(secret) && !r.body.contains(secret));
            for (name, value) in &r.headers {
                if name != "X-Amz-Security-Token" {
                    assert!(!value.to_string().contains(secret), "{name} holds a secret");
                }
            }
        }
        actions.push(action);
    }
    actions
}

#[tokio::test]
async fn a_key_allowed_to_read_itself_reports_its_age_and_last_use() {
    // Setup: CreateUser, CreateAccessKey, PutUserPolicy.
    let Some(moto) = Moto::start(3).await else {
        return;
    };
    let (key_id, secret) = moto.user_with_key("alice").await;
    moto.allow_own_key_reads("alice").await;
    moto.reset_recording().await;
    let before = Timestamp::now();
    let o = probe_moto(&moto, &key_id, &secret, None).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.subject.as_deref(),
        Some("arn:aws:iam::123456789012:user/alice")
    );
    assert_eq!(o.facts.extra["account"], "123456789012");
    assert_eq!(o.facts.extra["access_key_id"], key_id);
    assert_eq!(o.facts.extra["user_name"], "alice");
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.expiry_model, ExpiryModel::AgeOnly);
    let created = o.facts.issued_at.expect("IAM's CreateDate");
    assert!(
        created <= before && before.duration_since(created) < jiff::SignedDuration::from_secs(120),
        "{created} vs {before}"
    );
    // moto records the key's own IAM call as its last use, as AWS counts the exporter's.
    assert!(o.facts.last_used_at.is_some(), "{o:?}");
    assert!(o.facts.flags.is_empty(), "{:?}", o.facts.flags);
    assert_outcome_hides(&o, &secret);
    let actions = assert_only_reads(&moto.recorded().await, &key_id, &[&secret]);
    assert_eq!(
        actions,
        [
            "GetCallerIdentity",
            "ListAccessKeys",
            "GetAccessKeyLastUsed"
        ]
    );
}

#[tokio::test]
async fn a_key_without_iam_read_rights_stays_valid_with_its_age_undisclosed() {
    // Setup: CreateUser, CreateAccessKey.
    let Some(moto) = Moto::start(2).await else {
        return;
    };
    let (key_id, secret) = moto.user_with_key("bob").await;
    moto.reset_recording().await;
    let o = probe_moto(&moto, &key_id, &secret, None).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.issued_at, None);
    assert_eq!(o.facts.last_used_at, None);
    let flags = o.facts.flags.join("\n");
    assert!(flags.contains("allow iam:ListAccessKeys"), "{flags}");
    assert!(flags.contains("allow iam:GetAccessKeyLastUsed"), "{flags}");
    // moto's refusal names the user's ARN; the flag does not copy it.
    assert!(!flags.contains("arn:aws"), "{flags}");
    assert_outcome_hides(&o, &secret);
    assert_only_reads(&moto.recorded().await, &key_id, &[&secret]);
}

#[tokio::test]
async fn a_wrong_secret_for_a_known_key_is_invalid() {
    let Some(moto) = Moto::start(2).await else {
        return;
    };
    let (key_id, secret) = moto.user_with_key("carol").await;
    moto.reset_recording().await;
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    let o = probe_moto(&moto, &key_id, &wrong, None).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::BadSignature),
        "{o:?}"
    );
    assert!(o.detail.contains("SignatureDoesNotMatch"), "{}", o.detail);
    assert_outcome_hides(&o, &wrong);
    // An invalid key is not asked about at IAM.
    let actions = assert_only_reads(&moto.recorded().await, &key_id, &[&wrong, &secret]);
    assert_eq!(actions, ["GetCallerIdentity"]);
}

#[tokio::test]
async fn a_deleted_or_unknown_key_is_invalid() {
    // Setup: CreateUser, CreateAccessKey, DeleteAccessKey.
    let Some(moto) = Moto::start(3).await else {
        return;
    };
    let (key_id, secret) = moto.user_with_key("dave").await;
    let (status, body) = moto
        .iam(&[
            ("Action", "DeleteAccessKey"),
            ("UserName", "dave"),
            ("AccessKeyId", &key_id),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    moto.reset_recording().await;
    for id in [key_id.as_str(), "AKIANEVERCREATED0000"] {
        let o = probe_moto(&moto, id, &secret, None).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Invalid, Reason::UnknownToken),
            "{id}: {o:?}"
        );
        assert!(o.detail.contains("InvalidClientTokenId"));
        assert_outcome_hides(&o, &secret);
    }
    let requests = moto.recorded().await;
    assert_eq!(requests.len(), 2);
    assert_only_reads(&requests[..1], &key_id, &[&secret]);
}

#[tokio::test]
async fn session_credentials_are_checked_with_their_token_and_never_at_iam() {
    // Setup: CreateRole, AssumeRole.
    let Some(moto) = Moto::start(2).await else {
        return;
    };
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
    let (status, body) = moto
        .iam(&[
            ("Action", "CreateRole"),
            ("RoleName", "deployer"),
            ("AssumeRolePolicyDocument", trust),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = moto
        .call(
            "sts",
            "2011-06-15",
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", "arn:aws:iam::123456789012:role/deployer"),
                ("RoleSessionName", "ci"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let key_id = between(&body, "AccessKeyId");
    let secret = between(&body, "SecretAccessKey");
    let session = between(&body, "SessionToken");
    moto.reset_recording().await;

    let o = probe_moto(&moto, &key_id, &secret, Some(&session)).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.subject.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/deployer/ci")
    );
    assert_eq!(o.facts.token_type.as_deref(), Some("session"));
    // STS does not say when temporary credentials expire.
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.expiry_model, ExpiryModel::Fixed);
    assert_outcome_hides(&o, &secret);
    assert_outcome_hides(&o, &session);

    // The same key with another session token is refused.
    let o = probe_moto(&moto, &key_id, &secret, Some("not-the-session-token")).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );

    let requests = moto.recorded().await;
    let actions = assert_only_reads(&requests, &key_id, &[&secret]);
    assert_eq!(actions, ["GetCallerIdentity", "GetCallerIdentity"]);
    assert_eq!(
        requests[0].headers["X-Amz-Security-Token"].as_str(),
        Some(session.as_str())
    );
    let auth = requests[0].headers["Authorization"].as_str().unwrap();
    assert!(
        auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token"),
        "{auth}"
    );
    assert!(!requests[0].url.contains(&session) && !requests[0].body.contains(&session));
}

// ---------------------------------------------------------------------------------------
// What moto does not answer: documented error bodies, AWS's failures, garbage
// ---------------------------------------------------------------------------------------

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYcanaryAwsKey";

fn xml_error(code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"#
    )
}

async fn probe_mock(server: &MockServer) -> ProbeOutcome {
    let files = SecretFiles::new();
    let source = files.put("secret", SECRET);
    probe_once(
        &yaml(&server.url(), "    iam: false\n", KEY_ID, &source, ""),
        "key",
        now(),
    )
    .await
}

/// Every request is the signed GetCallerIdentity POST to `/`, the secret nowhere.
fn assert_sent_get_caller_identity(server: &MockServer) {
    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let r: &Recorded = r;
        assert_eq!((r.method.as_str(), r.path()), ("POST", "/"));
        assert_eq!(r.uri.query(), None);
        assert_eq!(r.body_text(), "Action=GetCallerIdentity&Version=2011-06-15");
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(r.header("x-amz-date"), Some("20231114T221320Z"));
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20231114/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        for (name, value) in &r.headers {
            assert!(
                !value.to_str().unwrap_or_default().contains(SECRET),
                "{name} holds the secret"
            );
        }
        assert!(!r.body_text().contains(SECRET));
    }
    server.assert_safe(&[], SECRET);
}

#[tokio::test]
async fn throttling_is_rate_limited() {
    let server = MockServer::start(|_| {
        Answer::text(400, "text/xml", &xml_error("Throttling", "Rate exceeded"))
    })
    .await;
    let o = probe_mock(&server).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited),
        "{o:?}"
    );
    assert_sent_get_caller_identity(&server);
    let server = MockServer::start(|_| {
        Answer::text(400, "text/xml", &xml_error("Throttling", "Rate exceeded"))
            .header("retry-after", "20")
    })
    .await;
    let o = probe_mock(&server).await;
    assert_eq!(o.retry_after, Some(Duration::from_secs(20)));
}

#[tokio::test]
async fn an_expired_session_token_is_invalid_expired() {
    let server = MockServer::start(|_| {
        Answer::text(
            403,
            "text/xml",
            &xml_error(
                "ExpiredToken",
                "The security token included in the request is expired",
            ),
        )
    })
    .await;
    let files = SecretFiles::new();
    let source = files.put("secret", SECRET);
    let session = files.put("session", "FwoGZXIvYXdzEJr//////////canarySessionToken");
    let o = probe_once(
        &yaml(
            &server.url(),
            "",
            "ASIAIOSFODNN7EXAMPLE",
            &source,
            &format!("    session_token: {session}\n"),
        ),
        "key",
        now(),
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::Expired),
        "{o:?}"
    );
    assert_outcome_hides(&o, "canarySessionToken");
    // Expired temporary credentials are never asked about at IAM (which is not configured
    // away here): one call.
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let token = requests[0].header("x-amz-security-token").unwrap();
    assert!(token.ends_with("canarySessionToken"));
    server.assert_safe(&[], "canarySessionToken");
}

#[tokio::test]
async fn aws_failures_and_garbage_are_unreachable() {
    for (status, body, reason) in [
        (
            500,
            xml_error("InternalFailure", "We encountered an internal error."),
            Reason::Http5xx,
        ),
        (
            503,
            xml_error("ServiceUnavailable", "Service unavailable."),
            Reason::Http5xx,
        ),
        (502, "<html>Bad Gateway</html>".to_string(), Reason::Http5xx),
        (
            200,
            "<html><body>Sign in</body></html>".to_string(),
            Reason::BadResponse,
        ),
        (200, "{\"Arn\": \"arn\"}".to_string(), Reason::BadResponse),
        (200, String::new(), Reason::BadResponse),
        (
            403,
            "<html>Forbidden by proxy</html>".to_string(),
            Reason::UnexpectedStatus,
        ),
    ] {
        let answer = body.clone();
        let server = MockServer::start(move |_| Answer::text(status, "text/xml", &answer)).await;
        let o = probe_mock(&server).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, reason),
            "{status} {body}: {o:?}"
        );
        assert_outcome_hides(&o, SECRET);
        assert_sent_get_caller_identity(&server);
    }
}

#[tokio::test]
async fn the_signature_covers_a_path_prefix_and_a_port() {
    let server = MockServer::start(|_| {
        Answer::text(
            200,
            "text/xml",
            "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/a</Arn><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
        )
    })
    .await;
    let files = SecretFiles::new();
    let source = files.put("secret", SECRET);
    let url = format!("{}/aws/sts", server.url());
    let o = probe_once(
        &yaml(
            &url,
            "    region: eu-west-1\n    iam: false\n",
            KEY_ID,
            &source,
            "",
        ),
        "key",
        now(),
    )
    .await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    let r = &server.requests()[0];
    assert_eq!(r.path(), "/aws/sts/");
    assert_eq!(r.header("host"), Some(server.addr.to_string().as_str()));
    let auth = r.header("authorization").unwrap();
    assert!(auth.contains("/eu-west-1/sts/aws4_request"), "{auth}");
    // The same request signed here, with the path and host the server saw.
    use api_token_exporter::provider::aws::sigv4;
    let host = server.addr.to_string();
    let headers = [("host", host.as_str()), ("x-amz-date", "20231114T221320Z")];
    let expected = sigv4::authorization(
        &sigv4::Credentials {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
        },
        sigv4::Scope {
            region: "eu-west-1",
            service: "sts",
        },
        &sigv4::Request {
            method: "POST",
            path: "/aws/sts/",
            query: "",
            headers: &headers,
            body: b"Action=GetCallerIdentity&Version=2011-06-15",
        },
        "20231114T221320Z",
    );
    assert_eq!(auth, expected);
}

#[test]
fn config_errors_name_the_token() {
    for (token, wanted) in [
        (
            "    secret: {env: X}\n",
            "access_key_id (or access_key_id_file) is required",
        ),
        (
            "    secret: {env: X}\n    access_key_id: AKIA/../x\n",
            "access_key_id must be an access key ID",
        ),
        (
            "    access_key_id: AKIAIOSFODNN7EXAMPLE\n",
            "secret is required for an aws provider",
        ),
        (
            "    secret: {env: X}\n    access_key_id: AKIAIOSFODNN7EXAMPLE\n    key_id: x\n",
            "key_id does not apply to a aws provider",
        ),
    ] {
        let yaml = format!(
            "providers:\n  aws:\n    kind: aws\ntokens:\n  - name: k\n    provider: aws\n{token}"
        );
        let err = Config::parse(&yaml).unwrap_err().to_string();
        assert!(err.contains("tokens[0]") && err.contains(wanted), "{err}");
    }
    // The AWS settings on another kind are refused, naming the setting.
    let err = Config::parse(
        "providers:\n  gh:\n    kind: github\ntokens:\n  - name: k\n    provider: gh\n    secret: {env: X}\n    session_token: {env: Y}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("session_token does not apply to a github provider"),
        "{err}"
    );
    let err = Config::parse("providers:\n  aws:\n    kind: aws\n    region: Mars\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("providers.aws") && err.contains("region"),
        "{err}"
    );
}

/// IAM through a local server: `ListAccessKeys` paged with `Marker` until the key is found,
/// then `GetAccessKeyLastUsed`; the creation date feeds the default age policy of an
/// age-only key, and the account the `expect.account` policy.
#[tokio::test]
async fn iam_pages_are_followed_and_the_age_policy_applies() {
    use api_token_exporter::policy;
    use api_token_exporter::provider::{BuildContext, run_probe};
    use api_token_exporter::store::Store;

    let server = MockServer::start(|r| {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&r.body)
            .into_owned()
            .collect();
        let param = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let xml = |body: String| Answer::text(200, "text/xml", &body);
        match (param("Action").as_deref(), param("Marker").as_deref()) {
            (Some("GetCallerIdentity"), _) => xml(
                "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/ci</Arn><UserId>AIDA1</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>".into(),
            ),
            (Some("ListAccessKeys"), None) => xml(
                "<ListAccessKeysResponse><ListAccessKeysResult><AccessKeyMetadata><member><UserName>ci</UserName><AccessKeyId>AKIAOTHERKEY00000000</AccessKeyId><Status>Active</Status><CreateDate>2023-10-01T00:00:00Z</CreateDate></member></AccessKeyMetadata><IsTruncated>true</IsTruncated><Marker>next/page+1</Marker></ListAccessKeysResult></ListAccessKeysResponse>".into(),
            ),
            (Some("ListAccessKeys"), Some("next/page+1")) => xml(format!(
                "<ListAccessKeysResponse><ListAccessKeysResult><AccessKeyMetadata><member><UserName>ci</UserName><AccessKeyId>{KEY_ID}</AccessKeyId><Status>Active</Status><CreateDate>2023-01-02T03:04:05Z</CreateDate></member></AccessKeyMetadata><IsTruncated>false</IsTruncated></ListAccessKeysResult></ListAccessKeysResponse>"
            )),
            (Some("GetAccessKeyLastUsed"), _) => xml(
                "<GetAccessKeyLastUsedResponse><GetAccessKeyLastUsedResult><AccessKeyLastUsed><Region>eu-west-1</Region><LastUsedDate>2023-11-10T08:00:00Z</LastUsedDate><ServiceName>s3</ServiceName></AccessKeyLastUsed><UserName>ci</UserName></GetAccessKeyLastUsedResult></GetAccessKeyLastUsedResponse>".into(),
            ),
            _ => Answer::text(400, "text/xml", &xml_error("InvalidAction", "no")),
        }
    })
    .await;
    let files = SecretFiles::new();
    let source = files.put("secret", SECRET);
    let yaml = format!(
        "providers:\n  aws:\n    kind: aws\n    url: {url}\n    iam_url: {url}/iam\ntokens:\n  - name: ours\n    provider: aws\n    access_key_id: {KEY_ID}\n    secret: {source}\n    policies: {{expect: {{account: \"123456789012\"}}}}\n  - name: theirs\n    provider: aws\n    access_key_id: {KEY_ID}\n    secret: {source}\n    policies: {{expect: {{account: \"210987654321\"}}}}\n",
        url = server.url()
    );
    let config = Config::parse(&yaml).unwrap();
    let store = Store::new();
    store.reconcile(&config);
    for name in ["ours", "theirs"] {
        let spec = config.token(name).unwrap();
        let provider = config.providers["aws"].build(&BuildContext::new()).unwrap();
        store.record(name, run_probe(provider.as_ref(), spec, now()).await, now());
    }
    let inner = store.read();
    let ours = &inner.tokens["ours"];
    assert_eq!(ours.verdict(), Some(Verdict::Valid), "{:?}", ours.last);
    assert_eq!(
        ours.facts.issued_at,
        Some("2023-01-02T03:04:05Z".parse().unwrap())
    );
    assert_eq!(
        ours.facts.last_used_at,
        Some("2023-11-10T08:00:00Z".parse().unwrap())
    );
    assert_eq!(ours.facts.extra["last_used_service"], "s3");
    let findings = policy::evaluate(ours, now());
    let find = |f: &[policy::Finding], name: &str| {
        f.iter()
            .find(|x| x.policy == name)
            .unwrap_or_else(|| panic!("no {name}: {f:?}"))
            .violated
    };
    // 316 days old, past the default 90 days of an age-only key.
    assert!(find(&findings, "max_age"), "{findings:?}");
    assert!(!find(&findings, "expect_account"), "{findings:?}");
    let theirs = policy::evaluate(&inner.tokens["theirs"], now());
    assert!(find(&theirs, "expect_account"), "{theirs:?}");

    // Per token: STS, two IAM pages (the second with the marker), the last use.
    let requests = server.requests();
    let actions: Vec<(String, String, Option<String>)> = requests
        .iter()
        .map(|r| {
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            let get = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            (r.path().to_string(), get("Action").unwrap(), get("Marker"))
        })
        .collect();
    let one = [
        ("/", "GetCallerIdentity", None),
        ("/iam/", "ListAccessKeys", None),
        ("/iam/", "ListAccessKeys", Some("next/page+1")),
        ("/iam/", "GetAccessKeyLastUsed", None),
    ];
    let wanted: Vec<(String, String, Option<String>)> = one
        .iter()
        .chain(one.iter())
        .map(|(p, a, m)| (p.to_string(), a.to_string(), m.map(str::to_string)))
        .collect();
    assert_eq!(actions, wanted);
    for r in &requests {
        assert_eq!(r.method, "POST");
        let auth = r.header("authorization").unwrap();
        let service = if r.path() == "/" { "sts" } else { "iam" };
        assert!(
            auth.contains(&format!("/us-east-1/{service}/aws4_request")),
            "{auth}"
        );
    }
    server.assert_safe(&[], SECRET);
}

/// The daemon with moto: a key, a session and a key with a wrong secret are probed; no
/// secret access key or session token reaches a log line, `/metrics`, the page or the API,
/// and moto saw only the three read calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_of_the_daemon() {
    use support::daemon::{Daemon, write};
    // Setup: CreateUser, CreateAccessKey, PutUserPolicy, CreateRole, AssumeRole.
    let Some(moto) = Moto::start(5).await else {
        return;
    };
    let (key_id, secret) = moto.user_with_key("canary").await;
    moto.allow_own_key_reads("canary").await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
    let (status, _) = moto
        .iam(&[
            ("Action", "CreateRole"),
            ("RoleName", "r"),
            ("AssumeRolePolicyDocument", trust),
        ])
        .await;
    assert_eq!(status, 200);
    let (status, body) = moto
        .call(
            "sts",
            "2011-06-15",
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", "arn:aws:iam::123456789012:role/r"),
                ("RoleSessionName", "s"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (session_id, session_secret, session_token) = (
        between(&body, "AccessKeyId"),
        between(&body, "SecretAccessKey"),
        between(&body, "SessionToken"),
    );
    let wrong = "CANARYwrongAwsSecretAccessKey0123456789";
    moto.reset_recording().await;

    let files = SecretFiles::new();
    let yaml = format!(
        "providers:\n  aws:\n    kind: aws\n    url: {url}\n    iam_url: {url}\n\
         tokens:\n  - name: key\n    provider: aws\n    access_key_id: {key_id}\n    secret: {s1}\n\
         \x20 - name: session\n    provider: aws\n    access_key_id: {session_id}\n    secret: {s2}\n    session_token: {t2}\n\
         \x20 - name: wrong\n    provider: aws\n    access_key_id: {key_id}\n    secret: {s3}\n",
        url = moto.url,
        s1 = files.put("s1", &secret),
        s2 = files.put("s2", &session_secret),
        t2 = files.put("t2", &session_token),
        s3 = files.put("s3", wrong),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "config.yml", &yaml);
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--log.level",
        "trace",
    ]);
    d.wait_for("/-/ready", Duration::from_secs(15));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut api = String::new();
    while std::time::Instant::now() < deadline {
        api = d.get("/api/v1/tokens").1;
        if api.matches("\"valid\"").count() >= 2 && api.contains("\"invalid\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        api.matches("\"valid\"").count() >= 2 && api.contains("\"invalid\""),
        "{api}"
    );
    assert!(api.contains("age_only"), "{api}");
    let outputs = [
        ("metrics", d.get("/metrics").1),
        ("page", d.get("/").1),
        ("api", api),
        ("api key", d.get("/api/v1/tokens/key").1),
        ("api session", d.get("/api/v1/tokens/session").1),
    ];
    let logs = d.logs();
    let _ = d.stop();
    assert!(
        logs.lines().count() > 5,
        "too few log lines to prove anything"
    );
    for (what, text) in outputs
        .iter()
        .map(|(w, t)| (*w, t.as_str()))
        .chain([("logs", logs.as_str())])
    {
        for canary in [
            secret.as_str(),
            session_secret.as_str(),
            session_token.as_str(),
            wrong,
        ] {
            assert!(!text.contains(canary), "{what} holds a secret:\n{text}");
        }
    }
    let requests = moto.recorded().await;
    assert!(requests.len() >= 4, "{requests:?}");
    for r in &requests {
        let action = r.param("Action").unwrap_or_default();
        assert!(
            ALLOWED_ACTIONS.contains(&action.as_str()),
            "the exporter called {action}"
        );
        assert!(!r.url.contains(&session_token) && !r.body.contains(&session_token));
    }
}
