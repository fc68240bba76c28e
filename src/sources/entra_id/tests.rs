use super::*;
use serde_json::json;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn app(name: &str, app_id: &str, secrets: Value, certs: Value) -> Value {
    json!({"id": format!("obj-{app_id}"), "appId": app_id, "displayName": name,
           "passwordCredentials": secrets, "keyCredentials": certs})
}

fn secret(key: &str, name: Value, start: &str, end: &str) -> Value {
    json!({"customKeyIdentifier": null, "displayName": name, "endDateTime": end, "hint": "Q~x",
           "keyId": key, "secretText": null, "startDateTime": start})
}

const K1: &str = "11111111-1111-1111-1111-111111111111";
const K2: &str = "22222222-2222-2222-2222-222222222222";
const K3: &str = "33333333-3333-3333-3333-333333333333";
const K4: &str = "44444444-4444-4444-4444-444444444444";

#[test]
fn every_credential_is_one_entry_with_its_dates_state_and_identity() {
    let now = at("2026-06-01T00:00:00Z");
    let billing = app(
        "billing",
        "aaaaaaaa-0000-0000-0000-000000000001",
        json!([
            secret(
                K1,
                json!("ci"),
                "2026-01-01T00:00:00Z",
                "2026-12-01T00:00:00Z"
            ),
            secret(
                K2,
                json!(null),
                "2024-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z"
            ),
            secret(
                K3,
                json!("never"),
                "2020-01-01T00:00:00Z",
                "2299-12-31T00:00:00Z"
            ),
        ]),
        json!([{"customKeyIdentifier": "AB", "displayName": "CN=billing", "endDateTime": "2027-01-01T00:00:00Z",
                "key": null, "keyId": K4, "startDateTime": "2026-07-01T00:00:00Z", "type": "AsymmetricX509Cert", "usage": "Verify"}]),
    );
    let mut with_owners = billing.clone();
    with_owners["owners"] = json!([
        {"@odata.type": "#microsoft.graph.user", "id": "u2", "userPrincipalName": "zed@contoso.com", "displayName": "Zed"},
        {"@odata.type": "#microsoft.graph.servicePrincipal", "id": "sp1", "displayName": "deployer"}
    ]);
    let objects = vec![("app", parse_object(with_owners).unwrap())];
    let l = listing("contoso", "dates", objects, now);
    let names: Vec<&str> = l.tokens.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "billing/CN=billing-44444444",
            "billing/ci-11111111",
            "billing/never-33333333",
            "billing/secret-22222222",
        ]
    );
    let by = |k: &str| l.tokens.iter().find(|d| d.name.ends_with(k)).unwrap();
    let ci = by("11111111");
    assert_eq!(ci.state.as_deref(), Some("active"));
    assert_eq!(ci.expires_at.as_deref(), Some("2026-12-01T00:00:00Z"));
    assert_eq!(ci.issued_at.as_deref(), Some("2026-01-01T00:00:00Z"));
    assert_eq!(ci.provider, "dates");
    assert!(ci.secret.is_none());
    assert_eq!(
        ci.identity,
        Identity::Listed(format!(
            "entra_id:contoso:app:aaaaaaaa-0000-0000-0000-000000000001:{K1}"
        ))
    );
    // Owners sorted; the first names the entry's owner.
    assert_eq!(ci.owner.as_deref(), Some("deployer"));
    assert_eq!(by("22222222").state.as_deref(), Some("expired"));
    assert_eq!(by("44444444").state.as_deref(), Some("future"));
    let never = by("33333333");
    assert_eq!(
        (never.state.as_deref(), never.expires_at.as_deref()),
        (Some("active"), None)
    );
}

#[test]
fn a_service_principal_is_told_apart_and_missing_ids_are_skipped() {
    let now = at("2026-06-01T00:00:00Z");
    let same = app(
        "api",
        "aaaaaaaa-0000-0000-0000-000000000002",
        json!([secret(
            K1,
            json!("s"),
            "2026-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z"
        )]),
        json!(null),
    );
    let no_key = app(
        "x",
        "aaaaaaaa-0000-0000-0000-000000000003",
        json!([{"displayName": "k", "endDateTime": "2027-01-01T00:00:00Z"}]),
        json!([]),
    );
    let objects = vec![
        ("app", parse_object(same.clone()).unwrap()),
        ("sp", parse_object(same).unwrap()),
        ("app", parse_object(no_key).unwrap()),
    ];
    let l = listing("t", "dates", objects, now);
    assert_eq!(l.tokens.len(), 2);
    assert_ne!(l.tokens[0].identity, l.tokens[1].identity);
    assert_eq!(l.tokens[1].name, "sp:api/s-11111111");
    assert_eq!(l.skipped.get("no_key_id"), Some(&1));
    assert!(l.tokens.iter().all(|d| d.owner.is_none()));
}

#[test]
fn an_entry_not_as_documented_is_a_bad_response_that_quotes_nothing() {
    for bad in [
        json!("CANARY"),
        json!({"appId": "a", "passwordCredentials": "CANARY"}),
        json!({"appId": "a", "owners": "CANARY"}),
        json!({"appId": "a", "passwordCredentials": [{"keyId": 7, "hint": "CANARY"}]}),
    ] {
        let e = parse_object(bad).unwrap_err();
        assert_eq!(e.reason, FailReason::BadResponse);
        assert!(!e.detail.contains("CANARY"), "{e:?}");
    }
}

#[test]
fn the_first_page_asks_for_the_credentials_and_owners_only_when_told() {
    assert_eq!(
        first_page("https://graph.microsoft.com/", "applications", false),
        "https://graph.microsoft.com/v1.0/applications?$select=id,appId,displayName,passwordCredentials,keyCredentials&$top=999"
    );
    assert!(
        first_page("http://127.0.0.1:1", "servicePrincipals", true)
            .ends_with("/v1.0/servicePrincipals?$select=id,appId,displayName,passwordCredentials,keyCredentials&$expand=owners&$top=100")
    );
}
