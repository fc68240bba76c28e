//! No token value reaches any output. Canary secrets go through every path: valid, invalid,
//! provider errors that echo the token back, garbage tokens, exec sources that print the token
//! to stderr; then every log line (trace level, logfmt and JSON), `/metrics`, `/`,
//! `/api/v1/tokens`, `check` output and config errors are searched for them.

use std::time::Duration;

use crate::support;
use base64::Engine;
use serde_json::json;
use support::daemon::{BIN, Daemon, write};
use support::{Answer, MockServer};

fn canary(tag: &str) -> String {
    let bytes: [u8; 12] = rand::random();
    format!(
        "CANARY{tag}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(bytes)
            .replace(['-', '_'], "x")
    )
}

/// Whether `/metrics` counts at least one failed listing of `source` (of `kind`) for `reason`.
fn listing_failed(body: &str, source: &str, kind: &str, reason: &str) -> bool {
    let series = format!(
        "api_token_source_failures_total{{source=\"{source}\",kind=\"{kind}\",reason=\"{reason}\"}}"
    );
    body.lines()
        .any(|l| l.starts_with(&series) && !l.ends_with(" 0"))
}

/// Runs the daemon on `config` at trace level (plus `extra` flags) until `/metrics`
/// satisfies `listed` (the listings ran and failed as the test arranged), then returns every
/// output a secret could reach: `/metrics`, `/`, `/api/v1/tokens`, the logs (which must
/// record the failed listing) and `check`'s stdout and stderr.
fn listing_outputs(
    config: &std::path::Path,
    extra: &[&str],
    listed: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut args = vec![
        "--config.file",
        config.to_str().unwrap(),
        "--log.level",
        "trace",
    ];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    let start = std::time::Instant::now();
    loop {
        let body = d.get("/metrics").1;
        if listed(&body) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no listing yet: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut outputs = vec![];
    for path in ["/metrics", "/", "/api/v1/tokens"] {
        outputs.push(d.get(path).1);
    }
    let logs = d.logs();
    let _ = d.stop();
    assert!(logs.contains("source listing failed"), "{logs}");
    outputs.push(logs);
    let check = std::process::Command::new(BIN)
        .args(["check", "--config.file", config.to_str().unwrap()])
        .output()
        .unwrap();
    outputs.push(String::from_utf8_lossy(&check.stdout).into_owned());
    outputs.push(String::from_utf8_lossy(&check.stderr).into_owned());
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_value_reaches_any_output() {
    let opaque_ok = canary("OK");
    let opaque_echo = canary("ECHO");
    let opaque_code = canary("CODE");
    let opaque_sub = canary("SUB");
    let garbage = canary("GARBAGE");
    let exec_value = canary("EXEC");
    let sig = canary("SIG");
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let jwt = format!(
        "{}.{}.{sig}",
        b64(json!({"alg": "ES256"})),
        b64(json!({"sub": "svc", "exp": 4_000_000_000i64}))
    );

    let (ok, echo, code, sub) = (
        opaque_ok.clone(),
        opaque_echo.clone(),
        opaque_code.clone(),
        opaque_sub.clone(),
    );
    let server = MockServer::start(move |r| {
        let body = r.body_text();
        if body.contains(&ok) {
            Answer::json(
                200,
                json!({"active": true, "exp": 4_000_000_000i64, "sub": "svc"}),
            )
        } else if body.contains(&echo) {
            // A broken provider that echoes the token in an error page.
            Answer::text(
                500,
                "text/html",
                &format!("<h1>error for token {echo}</h1>"),
            )
        } else if body.contains(&sub) {
            // A provider that reports the token itself as the identity.
            Answer::json(
                200,
                json!({"active": true, "sub": sub.clone(), "scope": format!("read {sub}")}),
            )
        } else if body.contains(&code) {
            Answer::json(
                401,
                json!({"error": code.clone(), "error_description": format!("bad token {code}")}),
            )
        } else {
            Answer::text(
                200,
                "text/html",
                &format!("<html>proxy login {body}</html>"),
            )
        }
    })
    .await;

    let secrets = support::SecretFiles::new();
    let client = secrets.put("client", "client-secret");
    let yaml = format!(
        "providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: {url}/introspect\n    client_id: c\n    client_secret: {client}\n  local:\n    kind: jwt\n\
         tokens:\n\
         \x20 - name: ok\n    provider: idp\n    secret: {s_ok}\n\
         \x20 - name: echo\n    provider: idp\n    secret: {s_echo}\n\
         \x20 - name: code\n    provider: idp\n    secret: {s_code}\n\
         \x20 - name: sub\n    provider: idp\n    secret: {s_sub}\n\
         \x20 - name: garbage-jwt\n    provider: local\n    secret: {s_garbage}\n\
         \x20 - name: jwt\n    provider: local\n    secret: {s_jwt}\n\
         \x20 - name: exec\n    provider: idp\n    secret: {{exec: [sh, -c, \"echo {exec_value} >&2; printf %s {exec_value}\"]}}\n",
        url = server.url(),
        s_ok = secrets.put("ok", &opaque_ok),
        s_echo = secrets.put("echo", &opaque_echo),
        s_code = secrets.put("code", &opaque_code),
        s_sub = secrets.put("sub", &opaque_sub),
        s_garbage = secrets.put("garbage", &garbage),
        s_jwt = secrets.put("jwt", &jwt),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "config.yml", &yaml);
    let needles = [
        &opaque_ok,
        &opaque_echo,
        &opaque_code,
        &garbage,
        &exec_value,
        &sig,
        &jwt,
    ];

    let mut outputs: Vec<(String, String)> = Vec::new();
    for format in ["logfmt", "json"] {
        let d = Daemon::start(&[
            "--config.file",
            config.to_str().unwrap(),
            "--log.level",
            "trace",
            "--log.format",
            format,
        ]);
        d.wait_for("/-/ready", Duration::from_secs(15));
        for path in [
            "/metrics",
            "/",
            "/api/v1/tokens",
            "/api/v1/tokens/echo",
            "/api/v1/tokens/sub",
            "/api/v1/tokens/jwt",
        ] {
            outputs.push((format!("{format} GET {path}"), d.get(path).1));
        }
        // The run must have exercised the failure paths it claims to.
        let api = &d.get("/api/v1/tokens").1;
        assert!(
            api.contains("\"subject\": \"<secret>\"") || api.contains("\"subject\":\"<secret>\""),
            "{api}"
        );
        assert!(
            api.contains("\"unreachable\"")
                && api.contains("\"misconfigured\"")
                && api.contains("\"invalid\""),
            "{api}"
        );
        let logs = d.logs();
        let _ = d.stop();
        assert!(
            logs.lines().count() > 20,
            "trace logging produced too little to prove anything"
        );
        outputs.push((format!("{format} logs"), logs));
    }
    for args in [vec!["check"], vec!["check", "--output", "json"]] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .args([
                "--config.file",
                config.to_str().unwrap(),
                "--log.level",
                "trace",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        outputs.push((
            format!("{args:?} stdout"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        outputs.push((
            format!("{args:?} stderr"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    // Config errors: a token written inline, and one in a wrong-typed field.
    let inline = write(
        dir.path(),
        "inline.yml",
        &format!(
            "providers:\n  local:\n    kind: jwt\ntokens:\n  - name: a\n    provider: local\n    secret: {opaque_ok}\n    probe_interval: {garbage}\n"
        ),
    );
    let wrong_type = write(
        dir.path(),
        "typed.yml",
        &format!("global:\n  max_concurrency: {opaque_echo}\n"),
    );
    for file in [&inline, &wrong_type] {
        let out = std::process::Command::new(BIN)
            .args(["--config.check", "--config.file", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        outputs.push((
            format!("config.check {}", file.display()),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }

    for (what, text) in &outputs {
        assert!(!text.is_empty(), "{what} is empty");
        for needle in needles {
            assert!(
                !text.contains(needle.as_str()),
                "a token value leaked into {what}:\n{text}"
            );
        }
    }
}

/// A token pasted as a key under `secret:` (`secret: {ghp_...: x}`) reaches none of the three
/// places a config error is shown: `--config.check`, the error log line of a failed reload,
/// and the unauthenticated `POST /-/reload` answer. Under a provider's own credential too.
#[test]
fn a_token_written_as_a_key_under_secret_is_never_echoed() {
    let key = canary("KEY");
    let client_key = canary("CLIENTKEY");
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = write(dir.path(), "t", "x.y.z");
    let good = format!(
        "providers:\n  local:\n    kind: jwt\ntokens:\n  - name: a\n    provider: local\n    secret: {{file: {}}}\n",
        jwt_file.display()
    );
    let config = write(dir.path(), "config.yml", &good);
    let bad_configs = [
        format!(
            "providers:\n  local:\n    kind: jwt\ntokens:\n  - name: a\n    provider: local\n    secret: {{{key}: x}}\n"
        ),
        format!(
            "providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: http://127.0.0.1:9/\n    client_id: c\n    client_secret:\n      {client_key}: 1\ntokens: []\n"
        ),
    ];

    let mut outputs: Vec<(String, String)> = Vec::new();
    for (i, bad) in bad_configs.iter().enumerate() {
        let file = write(dir.path(), &format!("bad{i}.yml"), bad);
        let out = std::process::Command::new(BIN)
            .args(["--config.check", "--config.file", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("secret: a secret source takes the keys"),
            "{text}"
        );
        outputs.push((format!("config.check bad{i}"), text));
    }

    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    for (i, bad) in bad_configs.iter().enumerate() {
        std::fs::write(&config, bad).unwrap();
        let (code, body) = d.post("/-/reload");
        assert_eq!(code, 400, "{body}");
        assert!(
            body.contains("secret: a secret source takes the keys"),
            "{body}"
        );
        outputs.push((format!("POST /-/reload bad{i}"), body));
    }
    let logs = d.logs();
    assert!(
        logs.lines()
            .filter(|l| l.contains("config reload failed"))
            .count()
            == 2,
        "{logs}"
    );
    outputs.push(("logs".into(), logs));
    let _ = d.stop();

    for (what, text) in &outputs {
        for needle in [&key, &client_key] {
            assert!(
                !text.contains(needle.as_str()) && !text.contains("CANARY"),
                "a token written as a key leaked into {what}:\n{text}"
            );
        }
    }
}

/// A source's listing credential is more privileged than any token it lists: it must reach
/// no output either, even from a server that echoes it back in its errors, and neither may
/// the tokens a directory source reads.
#[test]
fn listing_credentials_and_listed_secrets_reach_no_output() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let list_cred = canary("LIST");
    let lookup_cred = canary("LOOKUP");
    let server = rt.block_on(MockServer::start(move |r| {
        // A broken proxy in front of Vault that echoes the request's token header.
        let token = r.header("x-vault-token").unwrap_or("").to_string();
        Answer::json(500, json!({ "errors": [format!("bad token {token}")] }))
    }));
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    std::fs::create_dir(&mount).unwrap();
    let github_canary = format!("ghp_{}", canary("GH"));
    let unknown_canary = canary("UNKNOWN");
    write(&mount, "gh", &github_canary);
    write(&mount, "mystery", &unknown_canary);
    let list_file = write(dir.path(), "list", &list_cred);
    let lookup_file = write(dir.path(), "lookup", &lookup_cred);
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  github: {{kind: github, url: {url}}}\n  bao: {{kind: vault, url: {url}, token: {{file: {}}}}}\n\
             tokens: []\n\
             sources:\n  - {{name: vt, kind: vault, provider: bao, credential: {{file: {}}}, refresh: 1s}}\n  - {{name: mounted, kind: directory, path: {}, refresh: 1s}}\n",
            lookup_file.display(),
            list_file.display(),
            mount.display(),
            url = server.url(),
        ),
    );
    let outputs = listing_outputs(&config, &["--collector.last_probe"], |body| {
        body.contains("reason=\"unreachable\"} ")
            && body.contains("api_token_last_probe_timestamp_seconds{token=\"mounted/gh\"")
            && listing_failed(body, "vt", "vault", "unreachable")
    });
    for out in &outputs {
        for needle in [&list_cred, &lookup_cred, &github_canary, &unknown_canary] {
            assert!(
                !out.contains(needle.as_str()),
                "a secret in an output: {out}"
            );
        }
        assert!(!out.contains("CANARY"), "{out}");
    }
    // Nothing but reads, and no credential in a URL.
    server.assert_safe(&[("PUT", "/"), ("PATCH", "/"), ("DELETE", "/")], &list_cred);
}

/// A github source holds two credentials: the app's private key and the installation token
/// it obtains with it. Neither may reach an output, even from a server that echoes the
/// request's `Authorization` header back in its errors.
#[test]
fn a_github_apps_key_and_installation_token_reach_no_output() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let pem = key.serialize_pem();
    // A line of the key's base64 body: what a leak of the key would show.
    let key_line = pem.lines().nth(3).unwrap().to_string();
    let installation = format!("ghs_{}", canary("INSTALL"));
    let minted = installation.clone();
    let server = rt.block_on(MockServer::start(move |r| {
        if r.method == "POST" && r.path() == "/app/installations/7/access_tokens" {
            return Answer::json(
                201,
                json!({"token": minted, "expires_at": "2099-01-01T00:00:00Z"}),
            );
        }
        // A broken proxy that echoes the request's credential.
        let auth = r.header("authorization").unwrap_or("").to_string();
        Answer::json(403, json!({ "message": format!("refused {auth}") }))
    }));
    let dir = tempfile::tempdir().unwrap();
    let key_file = write(dir.path(), "app.pem", &pem);
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  listed: {{kind: static}}\ntokens: []\n\
             sources:\n  - {{name: gh, kind: github, url: {}, provider: listed, org: acme, app_id: Iv23liX, installation_id: 7, credential: {{file: {}}}, refresh: 1s}}\n",
            server.url(),
            key_file.display()
        ),
    );
    let outputs = listing_outputs(&config, &[], |body| {
        listing_failed(body, "gh", "github", "forbidden")
    });
    for out in &outputs {
        assert!(
            !out.contains(&installation),
            "the installation token shown: {out}"
        );
        assert!(!out.contains(&key_line), "the app's key shown: {out}");
        assert!(!out.contains("PRIVATE KEY"), "{out}");
        assert!(!out.contains("CANARY") && !out.contains("Bearer"), "{out}");
    }
    // The token request and reads only; no credential in a URL.
    for r in server.requests() {
        assert!(
            (r.method == "POST" && r.path() == "/app/installations/7/access_tokens")
                || (r.method == "GET" && r.path() == "/orgs/acme/personal-access-tokens"),
            "{} {}",
            r.method,
            r.path()
        );
        assert!(!r.uri.to_string().contains("CANARY"));
    }
}

/// An `entra_id` source's client secret and the access token it is issued reach no output,
/// even from a token endpoint that echoes the secret in its error and a Graph that echoes the
/// bearer token in its: one source is refused, the other issued a token Graph then refuses.
#[test]
fn an_entra_listing_secret_and_its_access_token_reach_no_output() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refused_secret = canary("ENTRAREFUSED");
    let issued_secret = canary("ENTRAISSUED");
    let access = canary("ENTRAACCESS");
    let a = access.clone();
    let server = rt.block_on(MockServer::start(move |r| {
        if r.method == "POST" {
            let form: std::collections::BTreeMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            let secret = form.get("client_secret").cloned().unwrap_or_default();
            if r.path().starts_with("/refused.example.com/") {
                return Answer::json(
                    401,
                    json!({"error": "invalid_client",
                           "error_description": format!("AADSTS7000215: Invalid client secret provided: {secret}"),
                           "error_codes": [7000215]}),
                );
            }
            return Answer::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": a}),
            );
        }
        let bearer = r.header("authorization").unwrap_or("").to_string();
        Answer::json(
            503,
            json!({"error": {"code": "serviceNotAvailable", "message": format!("upstream said {bearer}")}}),
        )
    }));
    let dir = tempfile::tempdir().unwrap();
    let refused_file = write(dir.path(), "refused", &refused_secret);
    let issued_file = write(dir.path(), "issued", &issued_secret);
    let source = |name: &str, tenant: &str, file: &std::path::Path| {
        format!(
            "  - {{name: {name}, kind: entra_id, url: {url}, graph_url: {url}, tenant_id: {tenant}, client_id: 0c5e3d9a-4b1f-4a6e-9d2c-7f8e1a2b3c4d, provider: dates, credential: {{file: {}}}, refresh: 1s}}\n",
            file.display(),
            url = server.url(),
        )
    };
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  dates: {{kind: static}}\ntokens: []\nsources:\n{}{}",
            source("refused", "refused.example.com", &refused_file),
            source("issued", "issued.example.com", &issued_file),
        ),
    );
    let outputs = listing_outputs(&config, &[], |body| {
        listing_failed(body, "refused", "entra_id", "unauthorized")
            && listing_failed(body, "issued", "entra_id", "unreachable")
    });
    for out in &outputs {
        assert!(!out.contains("CANARY"), "a credential in an output: {out}");
    }
    // The secrets went in the token requests' bodies, the access token in a header only.
    for secret in [&refused_secret, &issued_secret, &access] {
        server.assert_safe(&[("PUT", "/"), ("PATCH", "/"), ("DELETE", "/")], secret);
    }
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .all(|r| r.header("authorization") == Some(format!("Bearer {access}").as_str()))
    );
    assert!(server.requests().iter().any(|r| r.method == "GET"));
}

/// A kubernetes_secrets source reads token values out of Secret lists: neither its listing
/// credential nor a listed value (also copied in kubectl's last-applied annotation) may reach
/// any output, even from servers that echo what they were sent.
#[test]
fn kubernetes_secret_values_and_the_listing_credential_reach_no_output() {
    use base64::Engine;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let list_cred = canary("K8SLIST");
    let value = format!("ghp_{}", canary("K8SVALUE"));
    let encoded = base64::engine::general_purpose::STANDARD.encode(&value);
    let server = rt.block_on(MockServer::start(move |r| {
        let auth = r.header("authorization").unwrap_or("").to_string();
        if r.path() == "/api/v1/namespaces/a/secrets" {
            return Answer::json(
                200,
                json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                       "items": [{"metadata": {"name": "s", "namespace": "a",
                           "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                               format!("{{\"data\":{{\"token\":\"{encoded}\"}}}}")}},
                         "type": "Opaque", "data": {"token": encoded}}]}),
            );
        }
        // The GitHub probe, from a server that echoes the header back.
        Answer::json(401, json!({"message": format!("Bad credentials {auth}")}))
    }));
    let dir = tempfile::tempdir().unwrap();
    let list_file = write(dir.path(), "list", &list_cred);
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  github: {{kind: github, url: {url}}}\ntokens: []\n\
             sources:\n  - {{name: k, kind: kubernetes_secrets, url: {url}, credential: {{file: {}}}, label_selector: watch=true, namespaces: [a], refresh: 1s}}\n",
            list_file.display(),
            url = server.url(),
        ),
    );
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--log.level",
        "trace",
        "--collector.last_probe",
    ]);
    let start = std::time::Instant::now();
    loop {
        let body = d.get("/metrics").1;
        if body.contains("api_token_last_probe_timestamp_seconds{token=\"k/a/s/token\"") {
            assert!(
                body.lines().any(|l| l.starts_with("api_token_info{")
                    && l.contains("token=\"k/a/s/token\"")
                    && l.contains("source=\"k\"")),
                "{body}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no listing yet");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut outputs = vec![];
    for path in ["/metrics", "/", "/api/v1/tokens"] {
        outputs.push(d.get(path).1);
    }
    outputs.push(d.logs());
    let _ = d.stop();
    for out in &outputs {
        assert!(
            !out.contains(list_cred.as_str()),
            "the listing credential: {out}"
        );
        assert!(!out.contains(value.as_str()), "a Secret's value: {out}");
        assert!(!out.contains("CANARY"), "{out}");
    }
    // The value was probed (where it is allowed to go), and only reads were made.
    assert!(
        server.requests().iter().any(|r| r.path() == "/user"
            && r.header("authorization")
                .is_some_and(|a| a.contains(&value))),
        "the listed token was probed with its value"
    );
    server.assert_safe(
        &[
            ("PUT", "/"),
            ("PATCH", "/"),
            ("POST", "/api"),
            ("DELETE", "/"),
        ],
        &list_cred,
    );
}

/// The listing credentials of the sources that read one list with a bearer or SSWS
/// credential (cloudflare, okta) reach no output, from a server that echoes the credential
/// header back in its error envelope.
#[test]
fn simple_source_listing_credentials_reach_no_output() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(MockServer::start(|r| {
        let echoed = r.header("authorization").unwrap_or("").to_string();
        if r.path().starts_with("/api/v1/") {
            return Answer::json(
                403,
                json!({"errorCode": "E0000006", "errorSummary": format!("denied {echoed}"),
                       "errorLink": "E0000006", "errorId": echoed.clone(), "errorCauses": []}),
            )
            .header("x-echo", &echoed);
        }
        Answer::json(
            403,
            json!({"success": false, "errors": [{"code": 9109, "message": format!("denied {echoed}")}],
                   "messages": [], "result": null}),
        )
        .header("x-echo", &echoed)
    }));
    let dir = tempfile::tempdir().unwrap();
    let cf = canary("CF");
    let cf_file = write(dir.path(), "cf", &cf);
    let okta = canary("OKTA");
    let okta_file = write(dir.path(), "okta", &okta);
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  listed: {{kind: static}}\ntokens: []\n\
             sources:\n  - {{name: cf, kind: cloudflare, url: '{url}', provider: listed, credential: {{file: {}}}, user: true, refresh: 1s}}\n  - {{name: okta, kind: okta, url: '{url}', provider: listed, credential: {{file: {}}}, refresh: 1s}}\n",
            cf_file.display(),
            okta_file.display(),
            url = server.url(),
        ),
    );
    let outputs = listing_outputs(&config, &[], |body| {
        listing_failed(body, "cf", "cloudflare", "forbidden")
            && listing_failed(body, "okta", "okta", "forbidden")
    });
    for out in &outputs {
        for needle in [&cf, &okta] {
            assert!(
                !out.contains(needle.as_str()),
                "a listing credential in an output: {out}"
            );
        }
        assert!(!out.contains("CANARY"), "{out}");
    }
    for needle in [&cf, &okta] {
        server.assert_safe(
            &[("POST", "/"), ("PUT", "/"), ("PATCH", "/"), ("DELETE", "/")],
            needle,
        );
    }
}

/// A docker_hub source's credential (sent in the sign-in body) and the bearer it is issued
/// reach no output, from a server that echoes both back: one source's sign-in is refused
/// with the posted body echoed, the other is issued a bearer its token list then refuses,
/// echoing the bearer.
#[test]
fn docker_hub_source_credential_and_bearer_reach_no_output() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bearer = canary("HUBBEARER");
    let issued = bearer.clone();
    let server = rt.block_on(MockServer::start(move |r| {
        if r.path() == "/v2/auth/token" {
            let posted = r.body_text();
            if posted.contains("\"refused\"") {
                return Answer::json(401, json!({"detail": posted, "message": posted}))
                    .header("x-echo", &posted.replace(['\n', '\r'], " "));
            }
            return Answer::json(200, json!({"access_token": issued}));
        }
        let echoed = r.header("authorization").unwrap_or("").to_string();
        Answer::json(
            403,
            json!({"detail": format!("denied {echoed}"), "message": echoed}),
        )
        .header("x-echo", &echoed)
    }));
    let dir = tempfile::tempdir().unwrap();
    let refused = canary("HUBREFUSED");
    let refused_file = write(dir.path(), "refused", &refused);
    let allowed = canary("HUBALLOWED");
    let allowed_file = write(dir.path(), "allowed", &allowed);
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  listed: {{kind: static}}\ntokens: []\n\
             sources:\n  - {{name: refused, kind: docker_hub, url: '{url}', provider: listed, username: refused, credential: {{file: {}}}, personal: true, refresh: 1s}}\n  - {{name: issued, kind: docker_hub, url: '{url}', provider: listed, username: issued, credential: {{file: {}}}, org: acme, refresh: 1s}}\n",
            refused_file.display(),
            allowed_file.display(),
            url = server.url(),
        ),
    );
    let outputs = listing_outputs(&config, &[], |body| {
        listing_failed(body, "refused", "docker_hub", "unauthorized")
            && listing_failed(body, "issued", "docker_hub", "forbidden")
    });
    for out in &outputs {
        for needle in [&refused, &allowed, &bearer] {
            assert!(
                !out.contains(needle.as_str()),
                "a listing credential or bearer in an output: {out}"
            );
        }
        assert!(!out.contains("CANARY"), "{out}");
    }
    for needle in [&refused, &allowed, &bearer] {
        server.assert_safe(&[("PUT", "/"), ("PATCH", "/"), ("DELETE", "/")], needle);
    }
    for r in server.requests() {
        assert!(
            r.method == "GET" || r.path() == "/v2/auth/token",
            "a write besides the sign-in: {} {}",
            r.method,
            r.path()
        );
    }
}

/// A token a `kubernetes_secrets` source discovered and rotates back into its Secret: the
/// listing credential, the old value and the issued one reach no log line (trace level),
/// page, metric or API answer, and `rotation.json` keeps no value once the rotation is over,
/// even from servers that echo the credential back in their errors.
#[test]
fn a_discovered_tokens_rotation_reaches_no_output() {
    use std::sync::{Arc, Mutex};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let list_cred = canary("ROTLIST");
    let old = format!("glpat-{}", canary("ROTOLD"));
    let new = format!("glpat-{}", canary("ROTNEW"));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // (the value in the Secret, its resourceVersion, the values GitLab accepts)
    let state = Arc::new(Mutex::new((old.clone(), 1u64, vec![old.clone()])));
    let (s, cred, issued) = (state.clone(), list_cred.clone(), new.clone());
    let server = rt.block_on(MockServer::start(move |r| {
        let mut st = s.lock().unwrap();
        let auth = r.header("authorization").unwrap_or("").to_string();
        let private = r.header("private-token").unwrap_or("").to_string();
        let secret = |st: &(String, u64, Vec<String>)| {
            json!({"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                   "metadata": {"name": "s", "namespace": "a", "resourceVersion": st.1.to_string(),
                                "annotations": {"api-token-exporter.io/provider": "gl"}},
                   "data": {"token": b64(&st.0)}})
        };
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24))
            .unwrap()
            .strftime("%Y-%m-%d")
            .to_string();
        match (r.method.as_str(), r.path()) {
            (_, p) if p.starts_with("/api/v1/") && auth != format!("Bearer {cred}") => {
                Answer::json(401, json!({"kind": "Status", "message": format!("Unauthorized {auth}")}))
            }
            ("GET", "/api/v1/namespaces/a/secrets") => Answer::json(
                200,
                json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {},
                       "items": [secret(&st)]}),
            ),
            ("GET", "/api/v1/namespaces/a/secrets/s") => Answer::json(200, secret(&st)),
            ("PATCH", "/api/v1/namespaces/a/secrets/s") => {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                let value = body["data"]["token"].as_str().unwrap();
                let bytes = base64::engine::general_purpose::STANDARD.decode(value).unwrap();
                st.0 = String::from_utf8(bytes).unwrap();
                st.1 += 1;
                Answer::json(200, secret(&st))
            }
            (_, p) if p.starts_with("/api/v4/") && !st.2.contains(&private) => Answer::json(
                401,
                json!({"message": format!("401 Unauthorized {private}")}),
            ),
            ("GET", "/api/v4/personal_access_tokens/self") => Answer::json(
                200,
                json!({"id": 1, "name": "ci", "revoked": false, "active": true, "scopes": ["api"],
                       "user_id": 7, "created_at": "2026-01-01T00:00:00.000Z",
                       "expires_at": if private == issued { "2099-01-01".to_string() } else { expires }}),
            ),
            ("POST", "/api/v4/personal_access_tokens/self/rotate") => {
                st.2 = vec![issued.clone()];
                Answer::json(
                    200,
                    json!({"id": 2, "name": "ci", "revoked": false, "active": true, "scopes": ["api"],
                           "user_id": 7, "created_at": "2026-01-01T00:00:00.000Z",
                           "expires_at": "2099-01-01", "token": issued}),
                )
            }
            (m, p) => Answer::json(404, json!({"message": format!("{m} {p} not found")})),
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let list_file = write(dir.path(), "list", &list_cred);
    let storage = dir.path().join("data");
    std::fs::create_dir_all(&storage).unwrap();
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  gl: {{kind: gitlab, url: {url}}}\ntokens: []\n\
             sources:\n  - {{name: k, kind: kubernetes_secrets, url: {url}, credential: {{file: {}}}, label_selector: watch=true, namespaces: [a], refresh: 1s, \
             rotate: {{before: 3d, rotator: {{kind: gitlab_rotate, expires_in: 30d}}}}}}\n",
            list_file.display(),
            url = server.url(),
        ),
    );
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        storage.to_str().unwrap(),
        "--log.level",
        "trace",
    ]);
    let start = std::time::Instant::now();
    loop {
        let body = d.get("/metrics").1;
        if body.contains(
            "api_token_rotations_total{token=\"k/a/s/token\",provider=\"gl\",result=\"success\"} 1",
        ) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no rotation yet:\n{body}\n{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The next listing reads the delivered value.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(state.lock().unwrap().0, new, "delivered into the Secret");
    let mut outputs = vec![];
    for path in ["/metrics", "/", "/api/v1/tokens"] {
        outputs.push(d.get(path).1);
    }
    outputs.push(d.logs());
    let _ = d.stop();
    outputs.push(std::fs::read_to_string(storage.join("rotation.json")).unwrap());
    for out in &outputs {
        for value in [&list_cred, &old, &new] {
            assert!(
                !out.contains(value.as_str()),
                "a value reached an output: {out}"
            );
        }
        assert!(!out.contains("CANARY"), "{out}");
    }
    server.assert_safe(&[("DELETE", "/"), ("PUT", "/")], &list_cred);
    for value in [&old, &new] {
        server.assert_safe(&[], value);
    }
}
