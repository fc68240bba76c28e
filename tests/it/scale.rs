//! Inventories at the sizes the benchmarks use load, with every token (the YAML parser's
//! default node budget once refused anything over about 16,600 tokens).

use crate::support;
use api_token_exporter::config::Config;
use support::large_inventory as inventory;

#[test]
fn an_inventory_of_twenty_thousand_tokens_loads() {
    let config = Config::parse(&inventory(20_000)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.tokens.len(), 20_000);
    assert_eq!(config.tokens[19_999].name, "token-019999");
    assert_eq!(config.tokens[19_999].labels["team"], "team-49");
}
