use super::*;

/// A 1 KB file whose aliases expand nine-fold at each of nine levels.
fn alias_bomb() -> String {
    let mut y = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let p = i - 1;
        y.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    y.push_str("tokens: *a8\n");
    y
}

/// The same with merge keys: each level merges the previous one nine times under new keys.
fn merge_bomb() -> String {
    let mut y = String::from("x0: &x0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}\n");
    for i in 1..9 {
        let p = i - 1;
        y.push_str(&format!(
                "x{i}: &x{i} {{k1: *x{p}, k2: *x{p}, k3: *x{p}, k4: *x{p}, k5: *x{p}, k6: *x{p}, k7: *x{p}, k8: *x{p}, <<: *x{p}}}\n"
            ));
    }
    y.push_str("global:\n  <<: *x8\n");
    y
}

/// Wide: one anchor just under the recording budget, aliased as often as allowed.
fn wide_bomb() -> String {
    let mut y = String::from("a: &a [");
    for _ in 0..3000 {
        y.push_str("x, ");
    }
    y.push_str("x]\nb: [");
    for _ in 0..2000 {
        y.push_str("*a, ");
    }
    y.push_str("*a]\n");
    y
}

#[test]
fn an_empty_document_is_refused_and_an_explicit_empty_inventory_is_not() {
    for text in [
        "",
        "\n\n",
        "# only a comment\n",
        "---\n",
        "---\n...\n",
        "null\n",
        "~\n",
    ] {
        let err = Config::parse(text).expect_err(text);
        assert_eq!(err.issues.len(), 1, "{text:?}: {err}");
        assert_eq!(err.issues[0].message, EMPTY_DOCUMENT_MESSAGE, "{text:?}");
        assert!(
            err.to_string().starts_with("the config file is empty"),
            "{err}"
        );
    }
    assert_eq!(Config::parse("tokens: []\n").unwrap().tokens.len(), 0);
}

/// Each bomb is under 30 KB (the first two under 1 KB). Decoding one stops at a budget
/// of this file, named in the error with the count that breached it; serde-saphyr's own
/// budgets let the first two copy a million events first. The config load that reads it
/// is refused too; its time bound is loose on purpose (an unoptimised build on a busy
/// machine).
#[test]
fn alias_and_merge_key_bombs_are_refused_by_a_named_limit() {
    for (name, yaml) in [
        ("alias", alias_bomb()),
        ("merge", merge_bomb()),
        ("wide", wide_bomb()),
    ] {
        let err =
            serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(&yaml, decode_options())
                .expect_err(name)
                .to_string();
        let count = |label: &str| -> Option<usize> {
            let at = err.find(label)? + label.len();
            err[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        match (
            count("recorded_anchor_events: "),
            count("total_replayed_events="),
        ) {
            (Some(n), _) => assert_eq!(n, MAX_RECORDED_ANCHOR_EVENTS + 1, "{name}: {err}"),
            (None, Some(n)) => assert_eq!(n, MAX_REPLAYED_EVENTS + 1, "{name}: {err}"),
            _ => panic!("{name}: no limit named: {err}"),
        }
        let started = std::time::Instant::now();
        Config::parse(&yaml).expect_err(name);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} took {:?}",
            started.elapsed()
        );
    }
    // Where the decoder meets the limit inside the schema, the message says what it is.
    let mut yaml = String::from("global:\n  policies:\n    allowed_scopes: &a [");
    yaml.push_str(&"s, ".repeat(3000));
    yaml.push_str("s]\nproviders:\n  k: {kind: jwt}\ntokens:\n");
    for i in 0..100 {
        yaml.push_str(&format!(
                "  - {{name: t{i}, provider: k, secret: {{env: X}}, policies: {{forbidden_scopes: *a}}}}\n"
            ));
    }
    let err = Config::parse(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("total_replayed_events=250001")
            && err.contains("may not expand the file by more than 250000 events"),
        "{err}"
    );
    // What anchors are for still works: one provider block shared by many tokens.
    let mut yaml = String::from(
        "providers:\n  k:\n    kind: jwt\nx-labels: &labels {team: a, env: prod, owner: b}\n",
    );
    yaml = yaml.replace("x-labels: &labels {team: a, env: prod, owner: b}\n", "");
    yaml.push_str("tokens:\n  - name: t0\n    provider: k\n    secret: {env: T}\n    labels: &labels {team: a, env: prod, owner: b}\n");
    for i in 1..2000 {
        yaml.push_str(&format!(
            "  - name: t{i}\n    provider: k\n    secret: {{env: T}}\n    labels: *labels\n"
        ));
    }
    let c = Config::parse(&yaml).unwrap();
    assert_eq!(c.tokens.len(), 2000);
    assert_eq!(c.tokens[1999].labels["owner"], "b");
}

#[test]
fn provider_fields_take_plain_scalars_as_strings() {
    let c = Config::parse(
            "providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: http://x/\n    client_id: 12345\n    client_secret: {env: Y}\n  v:\n    url: http://x\n    namespace: no\n    kind: vault\n  v2:\n    kind: vault\n    url: http://x\n    namespace: 1.0\n  v3:\n    kind: vault\n    url: http://x\n    namespace: on\n",
        )
        .unwrap();
    let debug = |name: &str| format!("{:?}", c.providers[name]);
    assert!(
        debug("idp").contains("client_id: Some(\"12345\")"),
        "{}",
        debug("idp")
    );
    assert!(
        debug("idp").contains("client_secret: Some(Env(\"Y\"))"),
        "{}",
        debug("idp")
    );
    assert!(
        debug("v").contains("namespace: Some(\"no\")"),
        "{}",
        debug("v")
    );
    assert!(
        debug("v2").contains("namespace: Some(\"1.0\")"),
        "{}",
        debug("v2")
    );
    assert!(
        debug("v3").contains("namespace: Some(\"on\")"),
        "{}",
        debug("v3")
    );
}

#[test]
fn notifier_fields_take_plain_scalars_as_strings_and_errors_name_the_field() {
    let c = Config::parse(
            "tokens: []\nnotifiers:\n  mail:\n    host: smtp.example.com\n    from: a@example.com\n    to: [b@example.com]\n    username: 12345\n    password: {env: Y}\n    hello: no\n    kind: email\n",
        )
        .unwrap();
    let debug = format!("{:?}", c.notify);
    assert!(debug.contains("username: Some(\"12345\")"), "{debug}");
    assert!(debug.contains("password: Some(Env(\"Y\"))"), "{debug}");
    assert!(debug.contains("hello: Some(\"no\")"), "{debug}");
    let err = Config::parse("tokens: []\nnotifiers:\n  mail:\n    kind: email\n    host: [x]\n")
        .unwrap_err();
    assert_eq!(
        (err.issues[0].path.as_str(), err.issues[0].line),
        ("notifiers.mail.host", Some(5)),
        "{err}"
    );
    let err = Config::parse("tokens: []\nnotifiers:\n  n:\n    kind: pager\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("notifiers.n.kind: unknown notifier kind `pager`"),
        "{err}"
    );
}

#[test]
fn provider_field_errors_name_the_path_and_line() {
    let cases = [
        (
            "providers:\n  v:\n    url: http://x\n    kind: vault\n    namespace: [a]\n",
            "providers.v.namespace",
            5,
        ),
        (
            "providers:\n  a:\n    kind: jwt\n  b:\n    kind: oauth2_introspection\n    introspection_endpoint: http://x/\n    client_secret: {env: [x]}\n",
            "providers.b.client_secret.env",
            7,
        ),
        (
            "providers:\n  v:\n    kind: gihtub\n",
            "providers.v.kind",
            3,
        ),
        ("providers:\n  v:\n    url: x\n", "providers.v", 3),
        (
            "providers:\n  v:\n    kind: jwt\n    jwks_endpoint: x\n",
            "providers.v.jwks_endpoint",
            4,
        ),
    ];
    for (yaml, path, line) in cases {
        let err = Config::parse(yaml).expect_err(yaml);
        assert_eq!(
            (err.issues[0].path.as_str(), err.issues[0].line),
            (path, Some(line)),
            "{err}"
        );
    }
}

#[test]
fn nothing_under_secret_is_echoed() {
    let canary = "ghp_CANARY0123456789abcdef";
    for (yaml, path) in [
        (
            format!(
                "providers:\n  k:\n    kind: jwt\ntokens:\n  - name: a\n    provider: k\n    secret: {{{canary}: foo}}\n"
            ),
            "tokens[0].secret",
        ),
        (
            format!(
                "providers:\n  k:\n    kind: jwt\ntokens:\n  - name: a\n    provider: k\n    secret: {{env: A, {canary}.x: foo}}\n"
            ),
            "tokens[0].secret",
        ),
        (
            format!(
                "providers:\n  k:\n    kind: oauth2_introspection\n    introspection_endpoint: http://x/\n    client_id: c\n    client_secret:\n      {canary}: 1\n"
            ),
            "providers.k.client_secret",
        ),
        (
            format!(
                "providers:\n  k:\n    kind: jwt\ntokens:\n  - name: a\n    provider: k\n    secret: {{exec: [x], timeout: {canary}}}\n"
            ),
            "tokens[0].secret.timeout",
        ),
        (
            format!(
                "providers:\n  k:\n    kind: jwt\ntokens:\n  - name: a\n    provider: k\n    secret: {{exec: {canary}}}\n"
            ),
            "tokens[0].secret.exec",
        ),
    ] {
        let err = Config::parse(&yaml).expect_err(&yaml);
        let text = format!("{err} {err:?}");
        assert!(!text.contains("CANARY"), "{text}");
        assert_eq!(err.issues[0].path, path, "{text}");
    }
}

fn specs(names: &[&str]) -> Vec<Arc<TokenSpec>> {
    let mut yaml = String::from("providers:\n  k:\n    kind: jwt\ntokens:\n");
    for n in names {
        yaml.push_str(&format!(
            "  - {{name: {n}, provider: k, secret: {{env: X}}}}\n"
        ));
    }
    Config::parse(&yaml).unwrap().tokens
}

#[test]
fn a_reload_may_drop_at_most_the_allowed_share() {
    let running = specs(&["a", "b", "c", "d"]);
    assert!(check_drop(&running, &specs(&["a", "b", "x"]), 0.5).is_ok());
    let err = check_drop(&running, &specs(&["a", "b", "x"]), 0.4).unwrap_err();
    assert!(
        err.contains("removes 2 of the 4 running tokens (50%)"),
        "{err}"
    );
    assert!(err.contains("force=true"), "{err}");
    assert!(check_drop(&running, &specs(&["x"]), 0.5).is_err());
    assert!(check_drop(&running, &[], 0.99).is_err());
    assert!(check_drop(&running, &[], 1.0).is_ok());
    assert!(check_drop(&running, &specs(&["a", "b", "c"]), 0.0).is_err());
    assert!(check_drop(&[], &[], 0.0).is_ok());
}

#[test]
fn a_year_9999_expiry_means_never() {
    let c = Config::parse(
            "providers:\n  s:\n    kind: static\ntokens:\n  - {name: a, provider: s, expires_at: 9999-12-31}\n  - {name: b, provider: s, expires_at: 9999-12-31T23:59:59Z, issued_at: 2024-01-01}\n  - {name: c, provider: s, expires_at: '9999-12-31T23:59:59.999+00:00'}\n",
        )
        .unwrap();
    assert_eq!(c.tokens.len(), 3);
    let err = Config::parse(
            "providers:\n  s:\n    kind: static\ntokens:\n  - {name: a, provider: s, expires_at: 10000-01-01}\n",
        )
        .unwrap_err();
    assert_eq!(err.issues[0].path, "tokens[0]", "{err}");
    assert!(err.issues[0].message.starts_with("expires_at: "), "{err}");
}
