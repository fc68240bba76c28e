use super::*;
use crate::provider::http::test_headers as headers;
use serde_json::json;

const NOW: i64 = 1_757_000_000; // 2025-09-04 15:33:20 UTC

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn user(status: u16, pairs: &[(&str, &str)], body: &str) -> ProbeOutcome {
    parse(
        Endpoint::User,
        status,
        &headers(pairs),
        body.as_bytes(),
        now(),
    )
}

const USER: &str = r#"{"login":"octocat","id":583231,"type":"User"}"#;

#[test]
fn expiration_header_both_formats() {
    assert_eq!(
        parse_expiration("2025-09-05 17:55:53 UTC")
            .unwrap()
            .to_string(),
        "2025-09-05T17:55:53Z"
    );
    assert_eq!(
        parse_expiration("2025-09-05 17:55:53 +0500")
            .unwrap()
            .to_string(),
        "2025-09-05T12:55:53Z"
    );
    assert_eq!(
        parse_expiration("2025-09-05 17:55:53 -0130")
            .unwrap()
            .to_string(),
        "2025-09-05T19:25:53Z"
    );
    assert!(parse_expiration("next tuesday").is_none());
    assert!(parse_expiration("2025-09-05").is_none());
}

#[test]
fn classic_pat_with_expiry_and_scopes() {
    let o = user(
        200,
        &[
            (
                "github-authentication-token-expiration",
                "2025-10-01 00:00:00 UTC",
            ),
            ("x-oauth-scopes", "repo, read:org,  gist"),
            ("x-ratelimit-remaining", "4990"),
            ("x-ratelimit-limit", "5000"),
        ],
        USER,
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(
        o.facts.expiry.timestamp().unwrap().to_string(),
        "2025-10-01T00:00:00Z"
    );
    assert_eq!(o.facts.scopes, ["gist", "read:org", "repo"]);
    assert_eq!(o.facts.subject.as_deref(), Some("octocat"));
    assert_eq!(o.facts.extra["user_id"], "583231");
    assert_eq!(o.facts.extra["account_type"], "User");
    assert_eq!(o.rate_limit.unwrap().remaining, Some(4990.0));
    assert!(o.facts.flags.is_empty());
}

#[test]
fn no_expiration_header_means_never() {
    let o = user(200, &[], USER);
    assert_eq!(o.facts.expiry, Expiry::Never);
    // Fine-grained tokens send no scopes header: no scopes, not an error.
    assert!(o.facts.scopes.is_empty());
}

#[test]
fn past_expiry_on_success_is_kept_and_flagged_not_expired() {
    let o = user(
        200,
        &[(
            "github-authentication-token-expiration",
            "2025-09-04 15:33:20 UTC",
        )],
        USER,
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW);
    assert_eq!(o.facts.flags.len(), 1, "{:?}", o.facts.flags);
}

#[test]
fn unreadable_expiration_is_undisclosed_and_flagged() {
    let o = user(
        200,
        &[("github-authentication-token-expiration", "soon")],
        USER,
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.flags.len(), 1);
    assert_eq!(o.facts.anomalies, [Anomaly::ExpiryUnreadable]);
}

#[test]
fn bad_credentials_is_invalid() {
    let o = user(
        401,
        &[],
        r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#,
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
}

#[test]
fn proxy_401_is_not_invalid() {
    let o = user(401, &[], "<html><body>Sign in to the VPN</body></html>");
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::BadResponse)
    );
}

#[test]
fn primary_rate_limit_on_403_and_429() {
    for status in [403, 429] {
        let o = user(
            status,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-reset", &(NOW + 600).to_string()),
            ],
            r#"{"message":"API rate limit exceeded for user ID 1."}"#,
        );
        assert_eq!(o.verdict, Verdict::RateLimited, "{status}");
        assert_eq!(o.retry_after, Some(Duration::from_secs(600)));
        assert_eq!(o.rate_limit.unwrap().remaining, Some(0.0));
    }
}

#[test]
fn secondary_rate_limit() {
    let body = r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#;
    let o = user(403, &[("retry-after", "90")], body);
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(90)));
    // Without retry-after, GitHub's advice is to wait at least a minute.
    let o = user(403, &[("x-ratelimit-remaining", "4000")], body);
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(SECONDARY_LIMIT_WAIT));
}

#[test]
fn sso_required_is_forbidden_with_its_own_reason() {
    let o = user(
        403,
        &[
            (
                "x-github-sso",
                "required; url=https://github.com/orgs/acme-corp/sso?authorization_request=AbC123",
            ),
            (
                "github-authentication-token-expiration",
                "2025-12-01 00:00:00 UTC",
            ),
        ],
        r#"{"message":"Resource protected by organization SAML enforcement. You must grant your Personal Access token access to this organization."}"#,
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::SsoRequired)
    );
    assert!(o.detail.contains("SAML single sign-on"), "{}", o.detail);
    assert!(!o.detail.contains("AbC123"));
    assert_eq!(o.facts.extra["sso_organization"], "acme-corp");
    assert!(o.facts.expiry.timestamp().is_some());
}

/// A refusal says nothing about expiry: without the expiration header it must not be read as
/// "never expires" (issue 18), for SSO and for a missing permission alike.
#[test]
fn refusal_without_expiration_header_leaves_expiry_undisclosed() {
    let sso = user(
        403,
        &[(
            "x-github-sso",
            "required; url=https://github.com/orgs/acme-corp/sso?authorization_request=AbC123",
        )],
        r#"{"message":"Resource protected by organization SAML enforcement. You must grant your Personal Access token access to this organization."}"#,
    );
    assert_eq!(sso.reason, Reason::SsoRequired);
    assert_eq!(sso.facts.expiry, Expiry::Undisclosed);
    let scope = user(
        403,
        &[("x-ratelimit-remaining", "4999")],
        r#"{"message":"Must have admin rights to Repository."}"#,
    );
    assert_eq!(scope.reason, Reason::InsufficientScope);
    assert_eq!(scope.facts.expiry, Expiry::Undisclosed);
    // The same headers on an accepted call still mean "never".
    assert_eq!(user(200, &[], USER).facts.expiry, Expiry::Never);
}

#[test]
fn other_403_is_forbidden() {
    let o = user(
        403,
        &[("x-ratelimit-remaining", "4999")],
        r#"{"message":"Resource not accessible by integration"}"#,
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
    let html = user(403, &[], "<html>Forbidden</html>");
    assert_eq!(html.verdict, Verdict::Unreachable);
}

#[test]
fn garbage_and_outages_are_unreachable() {
    for (status, body) in [
        (200, "<html>proxy</html>"),
        (200, r#"{"id":1}"#),
        (200, "[]"),
        (200, ""),
        (500, ""),
        (502, "<html>bad gateway</html>"),
        (503, r#"{"message":"Service unavailable"}"#),
        (404, r#"{"message":"Not Found"}"#),
        (302, ""),
    ] {
        let o = user(status, &[], body);
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}: {o:?}");
    }
}

#[test]
fn installation_repositories() {
    let body = json!({
        "total_count": 3,
        "repository_selection": "selected",
        "repositories": [{"full_name": "acme/api", "owner": {"login": "acme"}}]
    })
    .to_string();
    let o = parse(
        Endpoint::Installation,
        200,
        &headers(&[(
            "github-authentication-token-expiration",
            "2025-09-04 16:30:00 UTC",
        )]),
        body.as_bytes(),
        now(),
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.extra["repository_count"], "3");
    assert_eq!(o.facts.extra["repository_selection"], "selected");
    assert_eq!(o.facts.extra["installation_account"], "acme");
    assert_eq!(
        o.facts.expiry.timestamp().unwrap().to_string(),
        "2025-09-04T16:30:00Z"
    );
    // An installation token always expires, so a missing header is "not disclosed".
    let o = parse(
        Endpoint::Installation,
        200,
        &HeaderMap::new(),
        body.as_bytes(),
        now(),
    );
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
}

#[test]
fn endpoint_follows_the_prefix() {
    assert_eq!(
        endpoint_for("ghs_abc", false).unwrap(),
        Endpoint::Installation
    );
    assert_eq!(
        endpoint_for("ghs_abc", true).unwrap(),
        Endpoint::Installation
    );
    assert_eq!(endpoint_for("ghp_abc", true).unwrap(), Endpoint::User);
    assert_eq!(
        endpoint_for("github_pat_abc", true).unwrap(),
        Endpoint::User
    );
    assert_eq!(endpoint_for("gho_abc", true).unwrap(), Endpoint::AppCheck);
    assert_eq!(endpoint_for("ghu_abc", true).unwrap(), Endpoint::AppCheck);
    assert_eq!(endpoint_for("0123abcd", true).unwrap(), Endpoint::AppCheck);
    assert_eq!(endpoint_for("gho_abc", false).unwrap(), Endpoint::User);
    assert_eq!(endpoint_for("ghr_secretvalue", false), None);
    assert_eq!(endpoint_for("ghr_secretvalue", true), None);
    assert_eq!(refresh_token_outcome().verdict, Verdict::Misconfigured);
}

/// Issue 16 finding 6, GitHub's two expiry fields: every unusable value of the issue's
/// list is undisclosed with `expiry_unreadable`, never "never".
#[test]
fn unusable_expiries_are_flagged() {
    for bad in [
        json!("1900000000"),
        json!(1_900_000_000),
        json!(true),
        json!({}),
        json!("10000-01-01T00:00:00Z"),
        json!(i64::MAX),
    ] {
        let body = json!({"scopes": [], "expires_at": bad}).to_string();
        let o = parse(
            Endpoint::AppCheck,
            200,
            &HeaderMap::new(),
            body.as_bytes(),
            now(),
        );
        assert_eq!(o.verdict, Verdict::Valid, "{bad}");
        assert_eq!(o.facts.expiry, Expiry::Undisclosed, "{bad}");
        assert_eq!(o.facts.anomalies, [Anomaly::ExpiryUnreadable], "{bad}");
    }
    for bad in ["1900000000", "10000-01-01 00:00:00 UTC", "null"] {
        let o = user(
            200,
            &[("github-authentication-token-expiration", bad)],
            USER,
        );
        assert_eq!(o.facts.expiry, Expiry::Undisclosed, "{bad}");
        assert_eq!(o.facts.anomalies, [Anomaly::ExpiryUnreadable], "{bad}");
    }
}

#[test]
fn app_check_answers() {
    let body = json!({
        "id": 1, "token": "gho_must_not_be_read", "token_last_eight": "be_read1",
        "scopes": ["repo", "user"], "created_at": "2025-01-01T10:00:00Z",
        "expires_at": "2025-09-04T23:00:00Z",
        "user": {"login": "octocat", "id": 1},
        "app": {"client_id": "Iv1.8a61f9b3a7aba766", "name": "exporter-app"}
    })
    .to_string();
    let o = parse(
        Endpoint::AppCheck,
        200,
        &HeaderMap::new(),
        body.as_bytes(),
        now(),
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.scopes, ["repo", "user"]);
    assert_eq!(o.facts.subject.as_deref(), Some("octocat"));
    assert_eq!(o.facts.client_id.as_deref(), Some("Iv1.8a61f9b3a7aba766"));
    assert_eq!(
        o.facts.issued_at.unwrap().to_string(),
        "2025-01-01T10:00:00Z"
    );
    assert_eq!(
        o.facts.expiry.timestamp().unwrap().to_string(),
        "2025-09-04T23:00:00Z"
    );
    let shown = format!("{:?}", o.facts);
    assert!(!shown.contains("must_not_be_read") && !shown.contains("be_read1"));

    let never = json!({"scopes": [], "expires_at": null}).to_string();
    let o = parse(
        Endpoint::AppCheck,
        200,
        &HeaderMap::new(),
        never.as_bytes(),
        now(),
    );
    assert_eq!(o.facts.expiry, Expiry::Never);

    let o = parse(
        Endpoint::AppCheck,
        404,
        &HeaderMap::new(),
        br#"{"message":"Not Found"}"#,
        now(),
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    let o = parse(Endpoint::AppCheck, 401, &HeaderMap::new(), b"{}", now());
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Misconfigured, Reason::ClientAuth)
    );
    let o = parse(
        Endpoint::AppCheck,
        404,
        &HeaderMap::new(),
        b"<html/>",
        now(),
    );
    assert_eq!(o.verdict, Verdict::Unreachable);
    let o = parse(Endpoint::AppCheck, 422, &HeaderMap::new(), b"{}", now());
    assert_eq!(o.verdict, Verdict::Unreachable);
    let o = parse(
        Endpoint::AppCheck,
        200,
        &HeaderMap::new(),
        b"{\"id\":1}",
        now(),
    );
    assert_eq!(o.verdict, Verdict::Unreachable);
}

#[test]
fn config_checks() {
    let base = Config {
        url: None,
        api_url: None,
        app_client_id: None,
        app_client_secret: None,
        max_concurrency: None,
    };
    assert!(base.validate().is_ok());
    let ghes = Config {
        url: Some("https://ghe.example.com/api/v3".into()),
        ..base.clone()
    };
    assert!(ghes.validate().is_ok());
    let creds = Config {
        url: Some("https://user:pw@ghe.example.com/api/v3".into()),
        ..base.clone()
    };
    assert!(creds.validate().unwrap_err().contains("credentials"));
    let half = Config {
        app_client_id: Some("Iv1.abc".into()),
        ..base.clone()
    };
    assert!(half.validate().unwrap_err().contains("app_client_secret"));
    let bad_id = Config {
        app_client_id: Some("../user".into()),
        app_client_secret: Some(SecretSource::Env("X".into())),
        ..base
    };
    assert!(bad_id.validate().unwrap_err().contains("app_client_id"));
}

/// The old `api_url` is `url` under its old name: same meaning, reported as renamed, and
/// refused beside the new name.
#[test]
fn the_old_api_url_still_works() {
    let mut c = Config {
        url: None,
        api_url: Some("https://ghe.example.com/api/v3".into()),
        app_client_id: None,
        app_client_secret: None,
        max_concurrency: None,
    };
    assert!(c.validate().is_ok());
    assert_eq!(
        c.api().unwrap(),
        ("api_url", "https://ghe.example.com/api/v3")
    );
    assert_eq!(c.renamed_in_use()[0].new, "url");
    c.url = Some("https://ghe.example.com/api/v3".into());
    assert!(c.validate().unwrap_err().contains("url and api_url"));
}

/// GitHub counts a user's requests together (issue 18): the key is the user of the token's
/// last answer; an installation token pauses alone; app mode's check spends the app's own.
#[test]
fn rate_limit_key_is_the_user() {
    let build = |app: bool| {
        Config {
            url: None,
            api_url: None,
            app_client_id: app.then(|| "Iv1.8a61f9b3a7aba766".to_string()),
            app_client_secret: app.then(|| SecretSource::Env("GH_APP_SECRET".into())),
            max_concurrency: None,
        }
        .build(&BuildContext::new())
        .unwrap()
    };
    let facts = |token: &str, body: &str| -> TokenFacts {
        let o = parse(
            endpoint_for(token, false).unwrap(),
            200,
            &headers(&[]),
            body.as_bytes(),
            now(),
        );
        TokenFacts {
            token_type: token_type(token).map(str::to_owned),
            ..o.facts
        }
    };
    let pat = facts("ghp_x", USER);
    let installation = facts(
        "ghs_x",
        r#"{"total_count":1,"repositories":[{"owner":{"login":"acme"}}]}"#,
    );
    let oauth = facts("gho_x", USER);
    let bearer = build(false);
    assert_eq!(
        bearer.rate_limit_key(&pat),
        LimitKey::Identity("583231".into())
    );
    assert_eq!(
        bearer.rate_limit_key(&oauth),
        LimitKey::Identity("583231".into())
    );
    assert_eq!(bearer.rate_limit_key(&installation), LimitKey::Token);
    // Before any answer only the token itself is known.
    assert_eq!(
        bearer.rate_limit_key(&TokenFacts::default()),
        LimitKey::Token
    );
    let app = build(true);
    assert_eq!(app.rate_limit_key(&oauth), LimitKey::Entry);
    assert_eq!(
        app.rate_limit_key(&pat),
        LimitKey::Identity("583231".into())
    );
}
