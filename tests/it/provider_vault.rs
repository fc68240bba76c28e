//! The `vault` provider against a real OpenBao dev server (the Vault token API), and against
//! a recording mock for the answers a dev server cannot be made to give (429, 412, proxy
//! pages, slow answers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use api_token_exporter::provider::{BuildContext, Provider, run_probe};
use support::bao::Bao;
use support::{Answer, MockServer, SecretFiles, probe_once};

/// Calls the exporter must never make: they renew, revoke or create tokens. Every PUT,
/// PATCH and DELETE is refused as well, since the exporter only reads.
const NEVER: &[(&str, &str)] = &[
    ("POST", "/v1/auth/token/renew"),
    ("POST", "/v1/auth/token/revoke"),
    ("POST", "/v1/auth/token/create"),
    ("PUT", "/"),
    ("PATCH", "/"),
    ("DELETE", "/"),
];

/// The only paths a probe may touch.
const LOOKUPS: [&str; 2] = [
    "/v1/auth/token/lookup-self",
    "/v1/auth/token/lookup-accessor",
];

// ---------------------------------------------------------------------------------------
// A real OpenBao dev server.

/// A config loaded once and its providers built once, so that what a provider remembers
/// between probes (a token's limited uses) is exercised as the daemon would.
struct Setup {
    config: Config,
    providers: std::collections::BTreeMap<String, Arc<dyn Provider>>,
}

impl Setup {
    fn new(yaml: &str) -> Setup {
        let config = Config::parse(yaml).unwrap_or_else(|e| panic!("config does not load:\n{e}"));
        let ctx = BuildContext::new();
        let providers = config
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), p.build(&ctx).unwrap()))
            .collect();
        Setup { config, providers }
    }

    async fn probe(&self, token: &str) -> ProbeOutcome {
        let spec = self.config.token(token).expect("token in config");
        let provider = &self.providers[&spec.provider];
        run_probe(provider.as_ref(), spec, Timestamp::now())
            .await
            .outcome
    }
}

/// A provider at `addr`, with the root token as the exporter's own when `own` is set, plus
/// the given token entries.
fn vault_yaml(addr: &str, own: Option<&str>, extra_provider: &str, tokens: &str) -> String {
    let own = own.map(|s| format!("\n    token: {s}")).unwrap_or_default();
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  bao:\n    kind: vault\n    url: {addr}{own}{extra_provider}\ntokens:\n{tokens}"
    )
}

/// A [`Setup`] whose provider has the root token as its own, over `tokens` (token entries
/// in which `{secret}` stands for the file holding `secret`).
fn root_setup(addr: &str, files: &SecretFiles, secret: &str, tokens: &str) -> Setup {
    let tokens = tokens.replace("{secret}", &files.put("t", secret));
    Setup::new(&vault_yaml(
        addr,
        Some(&files.put("own", "root")),
        "",
        &tokens,
    ))
}

fn assert_near(expiry: Expiry, expected: Timestamp) {
    let at = expiry.timestamp().expect("an expiry");
    let off = (at.as_second() - expected.as_second()).abs();
    assert!(off <= 5, "expiry {at} is {off}s away from {expected}");
}

fn assert_no_secret(o: &ProbeOutcome, secret: &str) {
    let shown = format!("{o:?} {}", serde_json::to_string(o).unwrap());
    assert!(
        !shown.contains(secret),
        "the outcome shows the token: {shown}"
    );
}

#[tokio::test]
async fn real_token_with_ttl_reports_its_expiry_and_facts() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (secret, _) = bao
        .create(
            None,
            json!({"ttl": "1h", "explicit_max_ttl": "2h", "display_name": "ci",
                   "policies": ["default", "ci"], "no_parent": true}),
        )
        .await;
    let created = Timestamp::now();
    let files = SecretFiles::new();
    let yaml = vault_yaml(
        &bao.addr,
        None,
        "",
        &format!(
            "  - name: ci\n    provider: bao\n    secret: {}\n",
            files.put("ci", &secret)
        ),
    );
    let o = probe_once(&yaml, "ci", Timestamp::now()).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_near(o.facts.expiry, created + Duration::from_secs(3600));
    assert!(
        (o.facts.issued_at.unwrap().as_second() - created.as_second()).abs() <= 5,
        "{o:?}"
    );
    assert_eq!(o.facts.scopes, ["ci", "default"]);
    assert_eq!(o.facts.subject.as_deref(), Some("token-ci"));
    assert_eq!(o.facts.token_type.as_deref(), Some("service"));
    assert_eq!(o.facts.extra["renewable"], "true");
    assert_eq!(o.facts.extra["explicit_max_ttl"], "7200");
    assert_eq!(o.facts.extra["orphan"], "true");
    assert_eq!(o.facts.extra["num_uses"], "0");
    assert_eq!(o.facts.extra["lookup"], "lookup-self");
    let ttl: i64 = o.facts.extra["ttl"].parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    assert_no_secret(&o, &secret);
    // The token itself is still alive and unchanged: the probe wrote nothing.
    let (status, v) = bao
        .call("GET", "auth/token/lookup-self", &secret, None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["data"]["num_uses"], 0);
}

#[tokio::test]
async fn real_root_token_never_expires() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    // A root-policy token with a random value: the dev root token's value is literally
    // "root", the same text as its policy, and the generic handler redacts the secret's
    // value wherever it appears, so that one would read back as "<secret>".
    let (root_token, _) = bao
        .create(None, json!({"policies": ["root"], "no_parent": true}))
        .await;
    let files = SecretFiles::new();
    let yaml = vault_yaml(
        &bao.addr,
        None,
        "",
        &format!(
            "  - name: root\n    provider: bao\n    secret: {}\n",
            files.put("root", &root_token)
        ),
    );
    let o = probe_once(&yaml, "root", Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.scopes, ["root"]);
}

#[tokio::test]
async fn real_revoked_token_is_invalid_by_secret_and_by_accessor() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (secret, accessor) = bao.create(None, json!({"ttl": "1h"})).await;
    // The test revokes the token itself; the exporter never calls revoke-*.
    let (status, _) = bao
        .call("POST", "auth/token/revoke-self", &secret, None, None)
        .await;
    assert_eq!(status, 204);
    let files = SecretFiles::new();
    let setup = root_setup(
        &bao.addr,
        &files,
        &secret,
        &format!(
            "  - name: by-secret\n    provider: bao\n    secret: {{secret}}\n  - name: by-accessor\n    provider: bao\n    accessor: {accessor}\n"
        ),
    );
    let o = setup.probe("by-secret").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken),
        "{o:?}"
    );
    assert_no_secret(&o, &secret);
    let o = setup.probe("by-accessor").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken),
        "{o:?}"
    );
}

#[tokio::test]
async fn real_lookup_by_accessor_needs_no_secret() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    // Without the default policy the token cannot look itself up; by accessor it can be.
    let (secret, accessor) = bao
        .create(
            None,
            json!({"ttl": "2h", "no_default_policy": true, "policies": ["deploy"]}),
        )
        .await;
    let created = Timestamp::now();
    let files = SecretFiles::new();
    let setup = root_setup(
        &bao.addr,
        &files,
        &secret,
        &format!(
            "  - name: deploy\n    provider: bao\n    accessor: {accessor}\n  - name: deploy-self\n    provider: bao\n    secret: {{secret}}\n"
        ),
    );
    let o = setup.probe("deploy").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_near(o.facts.expiry, created + Duration::from_secs(7200));
    assert_eq!(o.facts.scopes, ["deploy"]);
    assert_eq!(o.facts.extra["lookup"], "lookup-accessor");
    assert_no_secret(&o, &secret);
    // lookup-self answers 403 for such a token, as the documentation warns.
    let o = setup.probe("deploy-self").await;
    assert_eq!(o.verdict, Verdict::Invalid, "{o:?}");
    assert!(o.detail.contains("default policy"), "{}", o.detail);
}

#[tokio::test]
async fn real_accessor_lookup_with_a_weak_own_token_is_misconfigured() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (_, accessor) = bao.create(None, json!({"ttl": "1h"})).await;
    let (weak, _) = bao
        .create(None, json!({"ttl": "1h", "policies": ["default"]}))
        .await;
    let files = SecretFiles::new();
    let yaml = vault_yaml(
        &bao.addr,
        Some(&files.put("own", &weak)),
        "",
        &format!("  - name: t\n    provider: bao\n    accessor: {accessor}\n"),
    );
    let o = probe_once(&yaml, "t", Timestamp::now()).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Misconfigured, Reason::ClientAuth),
        "{o:?}"
    );
    assert_no_secret(&o, &weak);
}

#[tokio::test]
async fn real_token_with_uses_configured_by_accessor_keeps_all_its_uses() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (secret, accessor) = bao.create(None, json!({"ttl": "1h", "num_uses": 3})).await;
    let files = SecretFiles::new();
    // The secret is configured too: with an accessor it is only fingerprinted, never sent.
    let setup = root_setup(
        &bao.addr,
        &files,
        &secret,
        &format!(
            "  - name: limited\n    provider: bao\n    accessor: {accessor}\n    secret: {{secret}}\n"
        ),
    );
    for _ in 0..5 {
        let o = setup.probe("limited").await;
        assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
        assert_eq!(o.facts.extra["num_uses"], "3");
        assert_eq!(o.facts.extra["lookup"], "lookup-accessor");
    }
    assert_eq!(bao.uses_left(&accessor).await, 3);
}

#[tokio::test]
async fn real_token_with_uses_found_by_lookup_self_switches_to_accessor() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (secret, accessor) = bao.create(None, json!({"ttl": "1h", "num_uses": 5})).await;
    let files = SecretFiles::new();
    let setup = root_setup(
        &bao.addr,
        &files,
        &secret,
        "  - name: limited\n    provider: bao\n    secret: {secret}\n",
    );
    // Nothing tells the exporter about the limit before the first answer: that lookup-self
    // spends one use, and the answer says so.
    let first = setup.probe("limited").await;
    assert_eq!(first.verdict, Verdict::Valid, "{first:?}");
    assert_eq!(first.facts.extra["lookup"], "lookup-self");
    assert!(
        first
            .facts
            .flags
            .iter()
            .any(|f| f.contains("limited uses") && f.contains("configure accessor")),
        "{first:?}"
    );
    assert_eq!(bao.uses_left(&accessor).await, 4);
    // From then on the token is looked up by accessor only: no further use is spent.
    for _ in 0..6 {
        let o = setup.probe("limited").await;
        assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
        assert_eq!(o.facts.extra["lookup"], "lookup-accessor");
        assert_eq!(o.facts.extra["num_uses"], "4");
        assert_no_secret(&o, &secret);
    }
    assert_eq!(bao.uses_left(&accessor).await, 4);
}

#[tokio::test]
async fn real_token_with_uses_and_no_own_token_is_not_looked_up_again() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (secret, accessor) = bao.create(None, json!({"ttl": "1h", "num_uses": 4})).await;
    let files = SecretFiles::new();
    let yaml = vault_yaml(
        &bao.addr,
        None,
        "",
        &format!(
            "  - name: limited\n    provider: bao\n    secret: {}\n",
            files.put("t", &secret)
        ),
    );
    let setup = Setup::new(&yaml);
    let first = setup.probe("limited").await;
    assert_eq!(first.verdict, Verdict::Valid, "{first:?}");
    assert!(
        first
            .facts
            .flags
            .iter()
            .any(|f| f.contains("not looked up again")),
        "{first:?}"
    );
    for _ in 0..4 {
        let o = setup.probe("limited").await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Misconfigured, Reason::ClientAuth),
            "{o:?}"
        );
    }
    assert_eq!(bao.uses_left(&accessor).await, 3);
}

#[tokio::test]
async fn real_stopped_and_sealed_servers_are_unreachable() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (secret, accessor) = bao.create(None, json!({"ttl": "1h"})).await;
    let files = SecretFiles::new();
    let setup = root_setup(
        &bao.addr,
        &files,
        &secret,
        &format!(
            "  - name: by-secret\n    provider: bao\n    secret: {{secret}}\n  - name: by-accessor\n    provider: bao\n    accessor: {accessor}\n"
        ),
    );
    assert_eq!(setup.probe("by-secret").await.verdict, Verdict::Valid);
    let (status, _) = bao.root("PUT", "sys/seal", None).await;
    assert_eq!(status, 204);
    for name in ["by-secret", "by-accessor"] {
        let o = setup.probe(name).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::Sealed),
            "{name}: {o:?}"
        );
        assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    }
    drop(bao);
    for name in ["by-secret", "by-accessor"] {
        let o = setup.probe(name).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::Connect),
            "{name}: {o:?}"
        );
        assert_no_secret(&o, &secret);
    }
}

#[tokio::test]
async fn real_namespace_is_sent_and_an_unknown_one_is_misconfigured() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (status, v) = bao
        .root("POST", "sys/namespaces/team", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{v}");
    let (secret, accessor) = bao
        .create(Some("team"), json!({"ttl": "1h", "policies": ["default"]}))
        .await;
    let files = SecretFiles::new();
    let own = files.put("own", "root");
    let t = files.put("t", &secret);
    let tokens = format!(
        "  - name: by-secret\n    provider: bao\n    secret: {t}\n  - name: by-accessor\n    provider: bao\n    accessor: {accessor}\n"
    );
    let setup = Setup::new(&vault_yaml(
        &bao.addr,
        Some(&own),
        "\n    namespace: team",
        &tokens,
    ));
    for name in ["by-secret", "by-accessor"] {
        let o = setup.probe(name).await;
        assert_eq!(o.verdict, Verdict::Valid, "{name}: {o:?}");
        assert_eq!(o.facts.extra["namespace_path"], "team/");
    }
    let wrong = Setup::new(&vault_yaml(
        &bao.addr,
        Some(&own),
        "\n    namespace: nope",
        &tokens,
    ));
    let o = wrong.probe("by-accessor").await;
    assert_eq!(o.verdict, Verdict::Misconfigured, "{o:?}");
    assert!(o.detail.contains("namespace"), "{}", o.detail);
}

// ---------------------------------------------------------------------------------------
// A recording mock, for what a dev server cannot be made to answer.

/// Not `support::clock::NOW`: the recorded answer below carries its own `expire_time`, and the
/// time left the assertions expect is counted from this instant.
const NOW: i64 = 1_795_377_783;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn data(num_uses: i64) -> Value {
    json!({
        "request_id": "4bb38b86-cbcc-cf6d-8774-6d1b699e203d",
        "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": {
            "accessor": "vu7Jv3yBWA7JLKmz5yjBrFtY",
            "creation_time": NOW - 60,
            "creation_ttl": 3600,
            "display_name": "token",
            "entity_id": "",
            "expire_time": "2026-11-22T21:02:03.506067952Z",
            "explicit_max_ttl": 0,
            "id": "",
            "issue_time": "2026-11-22T20:02:03.506073831Z",
            "meta": null,
            "num_uses": num_uses,
            "orphan": false,
            "path": "auth/token/create",
            "policies": ["root"],
            "renewable": true,
            "ttl": 3540,
            "type": "service"
        },
        "wrap_info": null, "warnings": null, "auth": null
    })
}

const SECRET: &str = "s.MockSecretValue0123456789";
const OWN: &str = "s.ExporterOwnToken987654321";

fn mock_yaml(
    server: &MockServer,
    files: &SecretFiles,
    extra_provider: &str,
    tokens: &str,
) -> String {
    format!(
        "global:\n  probe_timeout: 2s\nproviders:\n  v:\n    kind: vault\n    url: {}/prefix\n    token: {}{extra_provider}\ntokens:\n{tokens}",
        server.url(),
        files.put("own", OWN)
    )
}

fn by_secret(files: &SecretFiles) -> String {
    format!(
        "  - name: t\n    provider: v\n    secret: {}\n",
        files.put("t", SECRET)
    )
}

fn by_accessor() -> String {
    "  - name: t\n    provider: v\n    accessor: vu7Jv3yBWA7JLKmz5yjBrFtY\n".to_string()
}

fn assert_only_lookups(server: &MockServer) {
    server.assert_safe(NEVER, SECRET);
    server.assert_safe(NEVER, OWN);
    for r in server.requests() {
        let path = r.path().trim_start_matches("/prefix");
        assert!(
            LOOKUPS.contains(&path),
            "unexpected call {} {}",
            r.method,
            path
        );
    }
}

#[tokio::test]
async fn mock_lookup_self_sends_the_token_in_its_header_with_the_namespace() {
    let server = MockServer::start(|_| Answer::json(200, data(0))).await;
    let files = SecretFiles::new();
    let yaml = mock_yaml(
        &server,
        &files,
        "\n    namespace: team/a",
        &by_secret(&files),
    );
    let o = probe_once(&yaml, "t", now()).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path(), "/prefix/v1/auth/token/lookup-self");
    assert_eq!(r.header("x-vault-token"), Some(SECRET));
    assert_eq!(r.header("x-vault-namespace"), Some("team/a"));
    assert!(r.body.is_empty());
    assert_only_lookups(&server);
}

#[tokio::test]
async fn mock_lookup_accessor_sends_the_own_token_and_the_accessor_in_the_body() {
    let server = MockServer::start(|_| Answer::json(200, data(0))).await;
    let files = SecretFiles::new();
    let yaml = mock_yaml(&server, &files, "\n    namespace: team", &by_accessor());
    let o = probe_once(&yaml, "t", now()).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), "/prefix/v1/auth/token/lookup-accessor");
    assert_eq!(r.header("x-vault-token"), Some(OWN));
    assert_eq!(r.header("x-vault-namespace"), Some("team"));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, json!({"accessor": "vu7Jv3yBWA7JLKmz5yjBrFtY"}));
    assert_only_lookups(&server);
}

#[tokio::test]
async fn mock_no_namespace_header_without_a_namespace() {
    let server = MockServer::start(|_| Answer::json(200, data(0))).await;
    let files = SecretFiles::new();
    let yaml = mock_yaml(&server, &files, "", &by_secret(&files));
    probe_once(&yaml, "t", now()).await;
    assert_eq!(server.requests()[0].header("x-vault-namespace"), None);
}

#[tokio::test]
async fn mock_use_limited_token_is_looked_up_by_itself_once_only() {
    // Both lookups report two uses left: lookup-accessor spends none.
    let server = MockServer::start(|_| Answer::json(200, data(2))).await;
    let files = SecretFiles::new();
    let yaml = mock_yaml(&server, &files, "", &by_secret(&files));
    let setup = Setup::new(&yaml);
    for _ in 0..4 {
        let o = setup.probe("t").await;
        assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    }
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "lookup-self",
            "lookup-accessor",
            "lookup-accessor",
            "lookup-accessor"
        ]
    );
    for r in &server.requests()[1..] {
        assert_eq!(r.header("x-vault-token"), Some(OWN));
    }
    // A rotated secret is another token: its limits are unknown, so it is looked up once.
    files.put("t", "s.RotatedSecretValue00000");
    let o = setup.probe("t").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(
        server.requests().last().unwrap().path(),
        "/prefix/v1/auth/token/lookup-self"
    );
    assert_only_lookups(&server);
}

#[tokio::test]
async fn mock_require_accessor_never_looks_up_by_secret() {
    let server = MockServer::start(|_| Answer::json(200, data(0))).await;
    let files = SecretFiles::new();
    let yaml = mock_yaml(
        &server,
        &files,
        "\n    require_accessor: true",
        &format!(
            "  - name: t\n    provider: v\n    accessor: vu7Jv3yBWA7JLKmz5yjBrFtY\n    secret: {}\n",
            files.put("t", SECRET)
        ),
    );
    let o = probe_once(&yaml, "t", now()).await;
    assert_eq!(o.verdict, Verdict::Valid);
    server.assert_safe(&[("GET", "/prefix/v1/auth/token/lookup-self")], SECRET);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.body_text().find(SECRET).is_none())
    );
}

#[tokio::test]
async fn mock_rate_limited_429_with_quota_headers() {
    let server = MockServer::start(|_| {
        Answer::json(
            429,
            json!({"errors": ["request path \"auth/token/lookup-self\": rate limit quota exceeded"]}),
        )
        .header("retry-after", "3")
        .header("x-ratelimit-limit", "20")
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", &(NOW + 3).to_string())
    })
    .await;
    let files = SecretFiles::new();
    for tokens in [by_secret(&files), by_accessor()] {
        let o = probe_once(&mock_yaml(&server, &files, "", &tokens), "t", now()).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::RateLimited, Reason::RateLimited),
            "{o:?}"
        );
        assert_eq!(o.retry_after, Some(Duration::from_secs(3)));
        let rate = o.rate_limit.unwrap();
        assert_eq!((rate.remaining, rate.limit), (Some(0.0), Some(20.0)));
    }
    assert_only_lookups(&server);
}

#[tokio::test]
async fn mock_412_is_unreachable_and_retried_later() {
    let server = MockServer::start(|_| {
        Answer::json(412, json!({"errors": ["required index state not present"]}))
            .header("retry-after", "1")
    })
    .await;
    let files = SecretFiles::new();
    for tokens in [by_secret(&files), by_accessor()] {
        let o = probe_once(&mock_yaml(&server, &files, "", &tokens), "t", now()).await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{o:?}");
        assert_eq!(o.retry_after, Some(Duration::from_secs(1)));
        assert!(o.detail.contains("412"), "{}", o.detail);
    }
}

#[tokio::test]
async fn mock_sealed_503_and_other_5xx() {
    for (status, body, reason) in [
        (503, json!({"errors": ["Vault is sealed"]}), Reason::Sealed),
        (503, json!({"errors": []}), Reason::Sealed),
        (500, json!({"errors": ["internal error"]}), Reason::Http5xx),
        (502, json!({}), Reason::Http5xx),
    ] {
        let server = MockServer::start(move |_| Answer::json(status, body.clone())).await;
        let files = SecretFiles::new();
        for tokens in [by_secret(&files), by_accessor()] {
            let o = probe_once(&mock_yaml(&server, &files, "", &tokens), "t", now()).await;
            assert_eq!(
                (o.verdict, o.reason),
                (Verdict::Unreachable, reason),
                "{status}: {o:?}"
            );
        }
    }
}

#[tokio::test]
async fn mock_garbage_and_html_are_unreachable_never_invalid() {
    let answers = [
        Answer::text(
            200,
            "text/html",
            "<html><body>Sign in to the proxy</body></html>",
        ),
        Answer::text(200, "application/json", "{\"data\": {\"expire_time\": "),
        Answer::json(200, json!({"data": null})),
        Answer::json(200, json!(["not", "an", "object"])),
        Answer::text(
            403,
            "text/html",
            "<html>403 Forbidden by the corporate proxy</html>",
        ),
        Answer::text(400, "text/html", "<html>400 Bad Request</html>"),
        Answer::text(404, "text/plain", "404 page not found"),
    ];
    for answer in answers {
        let shown = String::from_utf8_lossy(&answer.body).into_owned();
        let server = MockServer::start(move |_| answer.clone()).await;
        let files = SecretFiles::new();
        for tokens in [by_secret(&files), by_accessor()] {
            let o = probe_once(&mock_yaml(&server, &files, "", &tokens), "t", now()).await;
            assert_eq!(o.verdict, Verdict::Unreachable, "{shown}: {o:?}");
            assert!(
                !o.detail.contains("proxy"),
                "the body is echoed: {}",
                o.detail
            );
        }
    }
}

#[tokio::test]
async fn mock_timeout_is_unreachable() {
    let server =
        MockServer::start(|_| Answer::json(200, data(0)).delayed(Duration::from_secs(3))).await;
    let files = SecretFiles::new();
    let yaml = mock_yaml(&server, &files, "", &by_secret(&files))
        .replace("probe_timeout: 2s", "probe_timeout: 300ms");
    let started = Instant::now();
    let o = probe_once(&yaml, "t", now()).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Timeout),
        "{o:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn mock_redirect_is_not_followed() {
    let server = MockServer::start(|r| {
        if r.path().starts_with("/elsewhere") {
            Answer::json(200, data(0))
        } else {
            Answer::text(307, "text/plain", "")
                .header("location", "/elsewhere/v1/auth/token/lookup-self")
        }
    })
    .await;
    let files = SecretFiles::new();
    let o = probe_once(
        &mock_yaml(&server, &files, "", &by_secret(&files)),
        "t",
        now(),
    )
    .await;
    assert_eq!(o.verdict, Verdict::Unreachable, "{o:?}");
    assert!(o.detail.contains("active node"), "{}", o.detail);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn mock_spent_token_and_expiry_facts() {
    let server = MockServer::start(|_| Answer::json(200, data(-1))).await;
    let files = SecretFiles::new();
    let o = probe_once(
        &mock_yaml(&server, &files, "", &by_secret(&files)),
        "t",
        now(),
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::Revoked),
        "{o:?}"
    );
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2026-11-22T21:02:03.506067952Z".parse().unwrap())
    );
    assert_eq!(
        o.facts.issued_at,
        Some(Timestamp::from_second(NOW - 60).unwrap())
    );
}

// ---------------------------------------------------------------------------------------
// Config.

fn load_err(yaml: &str) -> String {
    match Config::parse(yaml) {
        Ok(_) => panic!("config should not load:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_configs_load() {
    let c = Config::parse(
        "providers:\n  vault:\n    kind: vault\n    url: https://vault.example.com:8200\ntokens:\n  - name: ci\n    provider: vault\n    secret: {env: CI_VAULT_TOKEN}\n",
    )
    .unwrap();
    assert_eq!(c.providers["vault"].kind(), "vault");
    let c = Config::parse(
        "providers:\n  vault:\n    kind: vault\n    url: https://vault.example.com:8200\n    namespace: team\n    token: {file: /run/secrets/exporter}\n    require_accessor: true\ntokens:\n  - name: ci\n    provider: vault\n    accessor: vu7Jv3yBWA7JLKmz5yjBrFtY\n",
    )
    .unwrap();
    assert!(c.tokens[0].secret.is_none());
}

#[test]
fn wrong_configs_say_what_is_wrong() {
    let base = "providers:\n  v:\n    kind: vault\n    url: http://127.0.0.1:8200\n";
    let err = load_err(&format!(
        "{base}tokens:\n  - name: t\n    provider: v\n    accessor: abc\n"
    ));
    assert!(
        err.contains("tokens[0]") && err.contains("accessor needs the provider's own token"),
        "{err}"
    );
    let err = load_err(&format!("{base}tokens:\n  - name: t\n    provider: v\n"));
    assert!(
        err.contains("needs a secret") && err.contains("or an accessor"),
        "{err}"
    );
    let err = load_err(&format!(
        "{base}tokens:\n  - name: t\n    provider: v\n    secret: {{env: X}}\n    expires_at: 2030-01-01\n"
    ));
    assert!(
        err.contains("expires_at does not apply to a vault provider"),
        "{err}"
    );
    let err = load_err(
        "providers:\n  v:\n    kind: vault\n    url: http://127.0.0.1:8200\n    token: {env: X}\n    require_accessor: true\ntokens:\n  - name: t\n    provider: v\n    secret: {env: Y}\n",
    );
    assert!(err.contains("accessor is required"), "{err}");
    let err = load_err("providers:\n  v:\n    kind: vault\n    adress: http://x\n");
    assert!(err.contains("adress"), "{err}");
    let err = load_err("providers:\n  v:\n    kind: vault\n    url: not a url\n");
    assert!(err.contains("providers.v: url: invalid URL"), "{err}");
    let err = load_err("providers:\n  v:\n    kind: vault\n    token: s.inline\n");
    assert!(
        err.contains("must not be written inline") && !err.contains("s.inline"),
        "{err}"
    );
}
