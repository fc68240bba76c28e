//! Inventories at the sizes the benchmarks use load, with every token (the YAML parser's
//! default node budget once refused anything over about 16,600 tokens).

use api_token_exporter::config::Config;

fn inventory(n: usize) -> String {
    let mut yaml = String::from(
        "providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_url: https://idp.example.com/introspect\n    client_id: exporter\n    client_secret: {env: IDP_SECRET}\ntokens:\n",
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: token-{i:06}\n    provider: idp\n    secret: {{file: /run/secrets/t{i:06}}}\n    labels: {{team: team-{}, owner: owner-{}@example.com}}\n",
            i % 50,
            i % 500
        ));
    }
    yaml
}

#[test]
fn an_inventory_of_twenty_thousand_tokens_loads() {
    let config = Config::parse(&inventory(20_000)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.tokens.len(), 20_000);
    assert_eq!(config.tokens[19_999].name, "token-019999");
    assert_eq!(config.tokens[19_999].labels["team"], "team-49");
}
