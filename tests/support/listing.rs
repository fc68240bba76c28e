//! Listing a source once, as a refresh does, and the failure checks every source kind's
//! test makes against its test server's modes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use jiff::Timestamp;

use api_token_exporter::config::{Config, TokenSpec};
use api_token_exporter::provider::{BuildContext, ProbeRun, Provider, run_probe};
use api_token_exporter::sources::{self, FailReason, ListError, Listing};

/// Lists the first source of `yaml`.
pub async fn list(yaml: &str) -> Result<Listing, ListError> {
    let config = Config::parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    sources::list(&config.sources[0], &config, &BuildContext::new()).await
}

/// Sets `mode` to each case's mode in turn and lists `yaml`: the whole listing fails with the
/// case's reason, and its detail quotes no credential (the tests' credentials hold
/// "CANARY"). Returns each mode's error, for the kind's own checks (Retry-After, wording).
pub async fn each_failure(
    mode: &AtomicU8,
    yaml: &str,
    cases: &[(u8, FailReason)],
) -> Vec<(u8, ListError)> {
    let mut errors = Vec::new();
    for &(m, want) in cases {
        mode.store(m, Ordering::SeqCst);
        let e = list(yaml)
            .await
            .map(|l| l.tokens.len())
            .expect_err(&format!("mode {m}"));
        assert_eq!(e.reason, want, "mode {m}: {e:?}");
        assert!(!e.detail.contains("CANARY"), "{e:?}");
        errors.push((m, e));
    }
    errors
}

/// With `mode` set to `empty`, the listing succeeds with no token and nothing skipped.
pub async fn assert_lists_nothing(mode: &AtomicU8, empty: u8, yaml: &str) {
    mode.store(empty, Ordering::SeqCst);
    let listing = list(yaml).await.unwrap();
    assert!(listing.tokens.is_empty() && listing.skipped.is_empty());
}

/// `yaml`'s config with one source's listing composed in, as the daemon takes it in, and
/// one of its providers built to probe the listed tokens with.
pub struct Listed {
    pub composed: Config,
    pub provider: Arc<dyn Provider>,
}

impl Listed {
    pub fn new(yaml: &str, source: &str, listing: Listing, provider: &str) -> Listed {
        let config = Config::parse(yaml).unwrap();
        let (composed, _) =
            sources::compose(&config, &BTreeMap::from([(source.to_string(), listing)]));
        let provider = config.providers[provider]
            .build(&BuildContext::new())
            .unwrap();
        Listed { composed, provider }
    }

    /// Probes `token` now, as the scheduler would.
    pub async fn probe(&self, token: &TokenSpec) -> ProbeRun {
        run_probe(self.provider.as_ref(), token, Timestamp::now()).await
    }
}
