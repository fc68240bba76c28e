use super::*;
use crate::provider::http::test_headers as headers;
use serde_json::json;

const NOW: i64 = 1_795_377_783;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn p(lookup: Lookup, status: u16, body: &str) -> ProbeOutcome {
    parse(lookup, status, &HeaderMap::new(), body.as_bytes(), now())
}

/// A lookup-self answer as OpenBao 2.7 gives it, with the token in `id`.
fn lookup_self_body() -> Value {
    json!({
        "request_id": "6f875cb5-81e5-aab6-51d3-e186f2edf2fa",
        "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": {
            "accessor": "vu7Jv3yBWA7JLKmz5yjBrFtY",
            "creation_time": 1795377783,
            "creation_ttl": 3600,
            "display_name": "token-ci",
            "entity_id": "",
            "expire_time": "2026-11-22T21:03:03.506067952Z",
            "explicit_max_ttl": 7200,
            "id": "s.EGpQ86dtQMd2p90GZrc7dgkA",
            "identity_policies": ["team-a"],
            "issue_time": "2026-11-22T20:03:03.506073831Z",
            "meta": {"team": "x"},
            "num_uses": 0,
            "orphan": false,
            "path": "auth/token/create",
            "policies": ["default", "ci"],
            "renewable": true,
            "ttl": 3599,
            "type": "service"
        },
        "wrap_info": null, "warnings": null, "auth": null
    })
}

#[test]
fn lookup_self_facts() {
    let o = p(Lookup::SelfToken, 200, &lookup_self_body().to_string());
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    let at = o.facts.expiry.timestamp().unwrap();
    assert_eq!(at.as_second(), 1_795_381_383);
    assert_eq!(at.subsec_nanosecond(), 506_067_952);
    assert_eq!(o.facts.issued_at.unwrap().as_second(), 1_795_377_783);
    assert_eq!(o.facts.subject.as_deref(), Some("token-ci"));
    assert_eq!(o.facts.token_type.as_deref(), Some("service"));
    assert_eq!(o.facts.scopes, ["ci", "default", "team-a"]);
    let extra = &o.facts.extra;
    assert_eq!(extra["ttl"], "3599");
    assert_eq!(extra["renewable"], "true");
    assert_eq!(extra["explicit_max_ttl"], "7200");
    assert_eq!(extra["num_uses"], "0");
    assert_eq!(extra["orphan"], "false");
    assert_eq!(extra["lookup"], "lookup-self");
    assert_eq!(extra["path"], "auth/token/create");
    assert!(!extra.contains_key("entity_id"));
    assert!(o.facts.flags.is_empty());
    // Neither the token (`id`) nor the accessor is exported anywhere.
    let shown = serde_json::to_string(&o).unwrap();
    assert!(!shown.contains("s.EGpQ86dtQMd2p90GZrc7dgkA"), "{shown}");
    assert!(!shown.contains("vu7Jv3yBWA7JLKmz5yjBrFtY"), "{shown}");
}

#[test]
fn expire_time_with_offset_and_null() {
    let mut body = lookup_self_body();
    body["data"]["expire_time"] = json!("2026-11-22T23:03:03.5+02:00");
    let o = p(Lookup::SelfToken, 200, &body.to_string());
    assert_eq!(
        o.facts.expiry.timestamp().unwrap().as_millisecond(),
        1_795_381_383_500
    );
    body["data"]["expire_time"] = Value::Null;
    body["data"]["ttl"] = json!(0);
    let o = p(Lookup::SelfToken, 200, &body.to_string());
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.verdict, Verdict::Valid);
}

#[test]
fn missing_expire_time_falls_back_to_ttl() {
    let mut body = lookup_self_body();
    body["data"].as_object_mut().unwrap().remove("expire_time");
    let o = p(Lookup::SelfToken, 200, &body.to_string());
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 3599);
    // Issue 16 finding 6: a ttl that is not a whole number was read as "never".
    for ttl in [json!("3599"), json!(true), json!({}), json!(3599.5)] {
        body["data"]["ttl"] = ttl.clone();
        let o = p(Lookup::SelfToken, 200, &body.to_string());
        assert_ne!(o.facts.expiry, Expiry::Never, "{ttl}");
        assert_eq!(o.reason, Reason::BadResponse, "{ttl}");
    }
}

#[test]
fn entity_is_the_subject_without_display_name() {
    let mut body = lookup_self_body();
    body["data"]["display_name"] = json!("");
    body["data"]["entity_id"] = json!("7d2e3179-f69b-450c-7179-ac8ee8bd8ca9");
    let o = p(Lookup::SelfToken, 200, &body.to_string());
    assert_eq!(
        o.facts.subject.as_deref(),
        Some("7d2e3179-f69b-450c-7179-ac8ee8bd8ca9")
    );
    assert_eq!(
        o.facts.extra["entity_id"],
        "7d2e3179-f69b-450c-7179-ac8ee8bd8ca9"
    );
}

#[test]
fn expiry_in_the_past_is_flagged() {
    let mut body = lookup_self_body();
    body["data"]["expire_time"] = json!("2026-11-22T19:00:00Z");
    let o = p(Lookup::Accessor, 200, &body.to_string());
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.flags.len(), 1);
    assert_eq!(o.facts.extra["lookup"], "lookup-accessor");
}

#[test]
fn spent_uses_are_revoked() {
    let mut body = lookup_self_body();
    body["data"]["num_uses"] = json!(-1);
    let o = p(Lookup::SelfToken, 200, &body.to_string());
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Revoked));
    assert!(o.facts.expiry.timestamp().is_some());
}

#[test]
fn use_limits_are_detected() {
    let mut body = lookup_self_body();
    assert_eq!(use_limited(body.to_string().as_bytes()), None);
    body["data"]["num_uses"] = json!(4);
    assert_eq!(
        use_limited(body.to_string().as_bytes()),
        Some(UseLimited {
            accessor: Some("vu7Jv3yBWA7JLKmz5yjBrFtY".into()),
            num_uses: 4
        })
    );
    body["data"]["num_uses"] = json!(-1);
    body["data"]["accessor"] = json!("");
    assert_eq!(
        use_limited(body.to_string().as_bytes()),
        Some(UseLimited {
            accessor: None,
            num_uses: -1
        })
    );
    assert_eq!(use_limited(b"<html>"), None);
}

#[test]
fn permission_denied_means_invalid_on_self_and_misconfigured_on_accessor() {
    for body in [
        r#"{"errors":["permission denied"]}"#,
        r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#,
        r#"{"errors":["permission denied","invalid token"]}"#,
    ] {
        let o = p(Lookup::SelfToken, 403, body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Invalid, Reason::UnknownToken),
            "{body}"
        );
        assert!(o.detail.contains("default policy"), "{}", o.detail);
        let o = p(Lookup::Accessor, 403, body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Misconfigured, Reason::ClientAuth),
            "{body}"
        );
    }
}

#[test]
fn invalid_accessor_is_invalid() {
    let o = p(
        Lookup::Accessor,
        400,
        r#"{"errors":["1 error occurred:\n\t* invalid accessor\n\n"]}"#,
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    // Any other 400 says nothing about the token.
    let o = p(Lookup::Accessor, 400, r#"{"errors":["missing accessor"]}"#);
    assert_eq!(o.verdict, Verdict::Unreachable);
    let o = p(Lookup::SelfToken, 400, r#"{"errors":["invalid accessor"]}"#);
    assert_eq!(o.verdict, Verdict::Unreachable);
}

#[test]
fn sealed_standby_and_412_are_unreachable() {
    let o = p(Lookup::SelfToken, 503, r#"{"errors":["Vault is sealed"]}"#);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Sealed)
    );
    assert_eq!(o.detail, "Vault is sealed");
    let o = p(Lookup::Accessor, 503, "");
    assert_eq!(o.reason, Reason::Sealed);
    let o = parse(
        Lookup::SelfToken,
        412,
        &headers(&[("retry-after", "2")]),
        br#"{"errors":["required index state not present"]}"#,
        now(),
    );
    assert_eq!(o.verdict, Verdict::Unreachable);
    assert_eq!(o.retry_after, Some(Duration::from_secs(2)));
    let o = p(Lookup::SelfToken, 307, "");
    assert_eq!(o.verdict, Verdict::Unreachable);
    assert!(o.detail.contains("active node"), "{}", o.detail);
}

#[test]
fn rate_limited_with_vault_quota_headers() {
    let h = headers(&[
        ("retry-after", "1"),
        ("x-ratelimit-limit", "10"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1795377784"),
    ]);
    let o = parse(
        Lookup::SelfToken,
        429,
        &h,
        br#"{"errors":["request path \"auth/token/lookup-self\": rate limit quota exceeded"]}"#,
        now(),
    );
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(1)));
    assert_eq!(o.rate_limit.unwrap().remaining, Some(0.0));
}

#[test]
fn rate_headers_are_kept_on_success() {
    let h = headers(&[("x-ratelimit-remaining", "7"), ("x-ratelimit-limit", "10")]);
    let o = parse(
        Lookup::SelfToken,
        200,
        &h,
        lookup_self_body().to_string().as_bytes(),
        now(),
    );
    assert_eq!(o.rate_limit.unwrap().remaining, Some(7.0));
}

#[test]
fn unknown_namespace_is_misconfigured() {
    let o = p(
        Lookup::SelfToken,
        404,
        r#"{"errors":["namespace not found"]}"#,
    );
    assert_eq!(o.verdict, Verdict::Misconfigured);
    let o = p(Lookup::SelfToken, 404, r#"{"errors":[]}"#);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::UnexpectedStatus)
    );
}

#[test]
fn garbage_and_outages_are_unreachable_never_invalid() {
    let mut wrong_types = lookup_self_body();
    wrong_types["data"]["expire_time"] = json!(12);
    let mut bad_time = lookup_self_body();
    bad_time["data"]["expire_time"] = json!("next tuesday");
    let mut bad_policies = lookup_self_body();
    bad_policies["data"]["policies"] = json!("root");
    for lookup in [Lookup::SelfToken, Lookup::Accessor] {
        for (status, body) in [
            (
                200,
                "<html><body>Sign in to the proxy</body></html>".to_string(),
            ),
            (200, String::new()),
            (200, "[]".to_string()),
            (200, r#"{"data":null}"#.to_string()),
            (200, r#"{"data":"x"}"#.to_string()),
            (200, wrong_types.to_string()),
            (200, bad_time.to_string()),
            (200, bad_policies.to_string()),
            (403, "<html>Forbidden by proxy</html>".to_string()),
            (403, r#"{"message":"forbidden"}"#.to_string()),
            (500, r#"{"errors":["internal error"]}"#.to_string()),
            (502, "bad gateway".to_string()),
            (503, "<html>maintenance</html>".to_string()),
            (404, "not found".to_string()),
        ] {
            let o = p(lookup, status, &body);
            assert_eq!(
                o.verdict,
                Verdict::Unreachable,
                "{lookup:?} {status} {body}: {o:?}"
            );
        }
    }
}

#[test]
fn details_never_echo_vault_errors() {
    let o = p(
        Lookup::SelfToken,
        403,
        r#"{"errors":["permission denied for s.EGpQ86dtQMd2p90GZrc7dgkA"]}"#,
    );
    assert_eq!(o.verdict, Verdict::Invalid);
    assert!(!o.detail.contains("s.EGpQ"), "{}", o.detail);
}

fn config(yaml: &str) -> Config {
    serde_saphyr::from_str(yaml).unwrap()
}

#[test]
fn config_validation() {
    assert!(config("url: http://127.0.0.1:8200").validate().is_ok());
    assert_eq!(config("{}").server().unwrap(), ("url", DEFAULT_URL));
    let err = config("url: ftp://vault").validate().unwrap_err();
    assert!(
        err.contains("url: ") && err.contains("http or https"),
        "{err}"
    );
    let err = config("url: http://u:p@vault").validate().unwrap_err();
    assert!(err.contains("credentials"), "{err}");
    let err = config("{url: 'http://vault', namespace: '/'}")
        .validate()
        .unwrap_err();
    assert!(err.contains("namespace"), "{err}");
    let err = config("{url: 'http://vault', require_accessor: true}")
        .validate()
        .unwrap_err();
    assert!(err.contains("require_accessor needs token"), "{err}");
    assert!(
        config("{url: 'http://vault', require_accessor: true, token: {env: X}}")
            .validate()
            .is_ok()
    );
}

/// The old `address` is `url` under its old name: same meaning, reported as renamed, and
/// refused beside the new name.
#[test]
fn the_old_address_still_works() {
    let old = config("address: http://127.0.0.1:8200/vault");
    assert!(old.validate().is_ok());
    assert_eq!(
        old.server().unwrap(),
        ("address", "http://127.0.0.1:8200/vault")
    );
    assert_eq!(old.renamed_in_use()[0].old, "address");
    assert!(config("url: http://v").renamed_in_use().is_empty());
    let err = config("{url: 'http://v', address: 'http://v'}")
        .validate()
        .unwrap_err();
    assert!(err.contains("url and address"), "{err}");
}
