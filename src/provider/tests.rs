use super::*;

fn caps(max_scopes: usize, max_label_length: usize) -> AnswerCaps {
    AnswerCaps {
        max_scopes,
        max_label_length,
    }
}

/// Issue 16 finding 5: 110,000 scopes and a 100 KB subject are cut to the caps, with
/// the anomalies on the token.
#[test]
fn caps_bound_scopes_and_label_lengths() {
    let mut facts = TokenFacts {
        subject: Some("s".repeat(100_000)),
        scopes: (0..110_000).rev().map(|i| format!("scope{i:06}")).collect(),
        ..TokenFacts::default()
    };
    let applied = apply_caps(&mut facts, AnswerCaps::DEFAULT);
    assert_eq!(
        applied,
        CapsApplied {
            scopes: true,
            label_length: true
        }
    );
    assert_eq!(facts.scopes.len(), 64);
    assert_eq!(facts.scopes[0], "scope000000");
    assert_eq!(facts.scopes[63], "scope000063");
    let subject = facts.subject.as_deref().unwrap();
    assert!(subject.len() <= 128, "{}", subject.len());
    assert!(subject.ends_with(CUT_MARKER));
    assert_eq!(
        facts.anomalies,
        [Anomaly::ScopesCapped, Anomaly::LabelTruncated]
    );
}

#[test]
fn caps_leave_ordinary_answers_alone() {
    let mut facts = TokenFacts {
        subject: Some("alice@example.com".into()),
        scopes: vec!["read".into(), "write".into()],
        ..TokenFacts::default()
    };
    let before = facts.clone();
    assert_eq!(apply_caps(&mut facts, caps(2, 17)), CapsApplied::default());
    assert_eq!(facts, before);
}

#[test]
fn cuts_land_on_character_boundaries() {
    for len in 16..40 {
        let mut s = "\u{e9}\u{1f600}x".repeat(20);
        assert!(truncate_label(&mut s, len));
        assert!(s.len() <= len, "{len}: {}", s.len());
        assert!(s.ends_with(CUT_MARKER));
    }
    // Scopes that read alike once cut are kept once.
    let long = "a".repeat(200);
    let mut facts = TokenFacts {
        scopes: vec![format!("{long}1"), format!("{long}2")],
        ..TokenFacts::default()
    };
    apply_caps(&mut facts, caps(64, 32));
    assert_eq!(facts.scopes.len(), 1);
}

/// The kind each variant is listed under. Exhaustive on purpose: a new variant does not
/// compile until it is given its `KINDS` name here.
fn listed_as(config: &ProviderConfig) -> &'static str {
    let i = match config {
        ProviderConfig::Oauth2Introspection(_) => 0,
        ProviderConfig::Jwt(_) => 1,
        ProviderConfig::Github(_) => 2,
        ProviderConfig::Gitlab(_) => 3,
        ProviderConfig::Vault(_) => 4,
        ProviderConfig::Slack(_) => 5,
        ProviderConfig::Cloudflare(_) => 6,
        ProviderConfig::Google(_) => 7,
        ProviderConfig::Kubernetes(_) => 8,
        ProviderConfig::Static(_) => 9,
        ProviderConfig::EntraId(_) => 10,
        ProviderConfig::Http(_) => 11,
        ProviderConfig::Aws(_) => 12,
        ProviderConfig::Atlassian(_) => 13,
        ProviderConfig::Grafana(_) => 14,
        ProviderConfig::Okta(_) => 15,
        ProviderConfig::Npm(_) => 16,
        ProviderConfig::DockerHub(_) => 17,
        ProviderConfig::Terraform(_) => 18,
    };
    KINDS[i]
}

/// The least a kind's config needs, as a document (not a `json!` map: the decoder reads
/// `kind` first, as written). Most kinds default every setting.
fn minimal(kind: &str) -> String {
    match kind {
        "vault" => r#"{"kind": "vault", "url": "https://vault.example.com"}"#.into(),
        "entra_id" => r#"{"kind": "entra_id", "tenant_id": "contoso.onmicrosoft.com", "client_id": "00000000-0000-0000-0000-000000000001"}"#.into(),
        "http" => r#"{"kind": "http", "url": "https://api.example.com", "path": "/v1/me", "rules": [{"status": 200, "verdict": "valid"}]}"#.into(),
        "atlassian" => r#"{"kind": "atlassian", "url": "https://acme.atlassian.net"}"#.into(),
        "grafana" => r#"{"kind": "grafana", "url": "https://grafana.example.com"}"#.into(),
        "okta" => r#"{"kind": "okta", "url": "https://acme.okta.com"}"#.into(),
        _ => format!(r#"{{"kind": "{kind}"}}"#),
    }
}

#[test]
fn every_kind_decodes_to_its_variant_and_names_itself() {
    for &kind in KINDS {
        let text = minimal(kind);
        let config: ProviderConfig = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("a minimal {kind} provider does not decode: {e}"));
        assert_eq!(config.kind(), kind);
        assert_eq!(listed_as(&config), kind);
    }
}

#[test]
fn an_old_endpoint_setting_is_taken_whole_and_url_gets_the_path() {
    let server = "http://127.0.0.1:9/prefix".to_string();
    let whole = "http://127.0.0.1:9/elsewhere/api".to_string();
    assert_eq!(
        url_or_old_endpoint(Some(&server), ("api_url", None), "https://d", "/api").unwrap(),
        ("url", "http://127.0.0.1:9/prefix/api".to_string())
    );
    assert_eq!(
        url_or_old_endpoint(None, ("api_url", Some(&whole)), "https://d", "/api").unwrap(),
        ("api_url", whole.clone())
    );
    assert_eq!(
        url_or_old_endpoint(None, ("api_url", None), "https://d", "/api").unwrap(),
        ("url", "https://d/api".to_string())
    );
    let both = url_or_old_endpoint(
        Some(&server),
        ("api_url", Some(&whole)),
        "https://d",
        "/api",
    );
    assert!(both.unwrap_err().contains("give only url"));
}
