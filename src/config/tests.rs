use super::*;

#[test]
fn label_names_follow_prometheus_rules() {
    assert!(is_valid_label_name("team"));
    assert!(is_valid_label_name("_x1"));
    assert!(!is_valid_label_name("1x"));
    assert!(!is_valid_label_name("te-am"));
    assert!(!is_valid_label_name("__meta"));
    assert!(!is_valid_label_name(""));
}

#[test]
fn durations_accept_days() {
    assert_eq!(
        parse_duration("14d").unwrap(),
        Duration::from_secs(14 * 86_400)
    );
    assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
    assert!(parse_duration("soon").is_err());
}

mod generic_handler {
    //! The generic handler's no-secret guard, driven through a decoded inventory: a token
    //! without `secret:` under a kind that needs one.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use jiff::Timestamp;

    use crate::config::Config;
    use crate::model::{ProbeOutcome, Reason, Verdict};
    use crate::provider::{BoxFuture, NO_SECRET, Provider, run_probe};
    use crate::schema::TokenSpec;
    use crate::secret::Secret;

    /// A provider that needs a secret and counts the probes it is asked for.
    struct Counting(AtomicUsize);

    impl Provider for Counting {
        fn probe<'a>(
            &'a self,
            _token: &'a TokenSpec,
            _secret: &'a Secret,
            _now: Timestamp,
        ) -> BoxFuture<'a, ProbeOutcome> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { ProbeOutcome::bad_response("not asked in this test") })
        }
    }

    #[tokio::test]
    async fn the_generic_handler_answers_for_a_token_without_a_secret() {
        let config = Config::parse(
            "providers:\n  p:\n    kind: static\ntokens:\n  - name: t\n    provider: p\n",
        )
        .unwrap();
        let token = config.token("t").unwrap();
        assert!(token.secret.is_none());
        let provider = Counting(AtomicUsize::new(0));
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let run = run_probe(&provider, token, now).await;
        assert_eq!(
            (run.outcome.verdict, run.outcome.reason),
            (Verdict::Misconfigured, Reason::SecretUnavailable)
        );
        assert_eq!(run.outcome.detail, NO_SECRET);
        assert_eq!(run.fingerprint, None);
        assert_eq!(provider.0.load(Ordering::SeqCst), 0, "the kind was asked");
    }
}
