//! The `static` provider through the real config loader and the generic handler: declared
//! dates, no network, and clear errors for bad dates.

use jiff::Timestamp;

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, Reason, Verdict};
use api_token_exporter::provider::{BuildContext, run_probe};
use support::{SecretFiles, probe_once};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn yaml(tokens: &str) -> String {
    format!("providers:\n  declared:\n    kind: static\ntokens:\n{tokens}")
}

#[tokio::test]
async fn date_only_expiry_is_midnight_utc() {
    let y = yaml("  - name: legacy\n    provider: declared\n    expires_at: 2030-06-30\n");
    let before = probe_once(&y, "legacy", ts("2030-06-29T23:59:59Z")).await;
    assert_eq!(
        (before.verdict, before.reason),
        (Verdict::Valid, Reason::Ok)
    );
    assert_eq!(before.facts.expiry, Expiry::At(ts("2030-06-30T00:00:00Z")));
    assert_eq!(before.facts.extra["declared"], "true");
    assert!(
        before
            .detail
            .contains("declared in the config, not checked with a provider"),
        "{}",
        before.detail
    );
    let after = probe_once(&y, "legacy", ts("2030-06-30T00:00:00Z")).await;
    assert_eq!(
        (after.verdict, after.reason),
        (Verdict::Invalid, Reason::Expired)
    );
    assert_eq!(after.facts.expiry, Expiry::At(ts("2030-06-30T00:00:00Z")));
    assert!(after.detail.contains("declared"), "{}", after.detail);
}

#[tokio::test]
async fn rfc3339_expiry_and_issue_time_with_offsets() {
    let y = yaml(
        "  - name: partner\n    provider: declared\n    expires_at: 2030-06-30T12:00:00+02:00\n    issued_at: '2029-06-30T12:00:00.5Z'\n",
    );
    let o = probe_once(&y, "partner", ts("2030-06-30T09:59:59Z")).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::At(ts("2030-06-30T10:00:00Z")));
    assert_eq!(o.facts.issued_at, Some(ts("2029-06-30T12:00:00.5Z")));
    let o = probe_once(&y, "partner", ts("2030-06-30T10:00:01Z")).await;
    assert_eq!(o.verdict, Verdict::Invalid);
}

#[tokio::test]
async fn no_expiry_declared_never_expires() {
    let y = yaml("  - name: forever\n    provider: declared\n");
    let o = probe_once(&y, "forever", ts("2099-01-01T00:00:00Z")).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.extra["declared"], "true");
}

#[tokio::test]
async fn a_secret_is_only_fingerprinted() {
    let files = SecretFiles::new();
    let y = yaml(&format!(
        "  - name: fp\n    provider: declared\n    secret: {}\n    expires_at: 2030-01-01\n",
        files.put("fp", "partner-api-key-123")
    ));
    let config = Config::parse(&y).unwrap();
    let spec = config.token("fp").unwrap();
    let provider = config.providers["declared"]
        .build(&BuildContext::new())
        .unwrap();
    let run = run_probe(provider.as_ref(), spec, ts("2029-01-01T00:00:00Z")).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid);
    assert_eq!(
        run.fingerprint.as_deref(),
        Some(api_token_exporter::secret::fingerprint("partner-api-key-123").as_str())
    );
    let shown = format!("{:?}", run.outcome);
    assert!(!shown.contains("partner-api-key-123"), "{shown}");
}

fn load_err(yaml: &str) -> String {
    match Config::parse(yaml) {
        Ok(_) => panic!("config should not load:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_dates_are_refused_at_load_naming_the_value() {
    let err = load_err(&yaml(
        "  - name: t\n    provider: declared\n    expires_at: 2030-02-30\n",
    ));
    assert!(
        err.contains("tokens[0]") && err.contains("expires_at") && err.contains("\"2030-02-30\""),
        "{err}"
    );
    assert!(
        err.contains("YYYY-MM-DD") && err.contains("(line 5)"),
        "{err}"
    );
    let err = load_err(&yaml(
        "  - name: t\n    provider: declared\n    issued_at: 2030-01-01T00:00:00\n",
    ));
    assert!(
        err.contains("issued_at") && err.contains("\"2030-01-01T00:00:00\""),
        "{err}"
    );
    let err = load_err(&yaml(
        "  - name: t\n    provider: declared\n    expires_at: 2030-01-01\n    issued_at: 2031-01-01\n",
    ));
    assert!(err.contains("issued_at lies after expires_at"), "{err}");
    let err = load_err(&yaml(
        "  - name: t\n    provider: declared\n    accessor: abc\n",
    ));
    assert!(
        err.contains("accessor does not apply to a static provider"),
        "{err}"
    );
    let err = load_err("providers:\n  declared:\n    kind: static\n    address: http://x\n");
    assert!(err.contains("address"), "{err}");
}
