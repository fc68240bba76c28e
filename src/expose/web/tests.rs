use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;

use super::*;

/// The web config is decoded with the inventory's bounds: a 1 KB file whose anchors and
/// merge keys expand a billionfold is refused by a named limit, not expanded.
#[test]
fn expansion_bombs_are_refused_by_a_named_limit() {
    // Every level merges the previous one nine times, inside the one map whose keys are
    // free (user names), so the file is well-formed up to the expansion.
    let mut yaml = String::from(
        "basic_auth_users:\n  <<: [&x0 {a: h, b: h, c: h, d: h, e: h, f: h, g: h, h: h, i: h}",
    );
    for i in 1..9 {
        let p = i - 1;
        yaml.push_str(&format!(
            ", &x{i} {{<<: [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]}}"
        ));
    }
    yaml.push_str("]\n");
    let Err(err) = parse(&yaml) else {
        panic!("a merge-key bomb was accepted")
    };
    assert!(
        err.contains("total_replayed_events") || err.contains("recorded_anchor_events"),
        "{err}"
    );
}

fn parse(yaml: &str) -> Result<Settings, String> {
    let raw = decode(yaml).map_err(|e| e.to_string())?;
    raw.validate(Path::new("/nonexistent")).map_err(|issues| {
        issues
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[test]
fn unknown_fields_are_named() {
    let err = parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: []\n")
        .err()
        .unwrap();
    assert!(err.contains("tls_server_config"), "{err}");
    assert!(err.contains("cipher_suites"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    let err = parse("basic_auth_user: {}\n").err().unwrap();
    assert!(err.contains("basic_auth_user"), "{err}");
}

#[test]
fn empty_file_is_open() {
    let s = parse("# nothing here\n\n").unwrap();
    assert!(s.tls.is_none() && s.users.is_empty() && s.headers.is_empty());
}

#[test]
fn bad_hash_is_refused_without_quoting_it() {
    let err = parse("basic_auth_users:\n  alice: hunter2-plain\n")
        .err()
        .unwrap();
    assert!(
        err.contains("basic_auth_users.alice: not a bcrypt hash"),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn user_names_cannot_hold_colons() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let err = parse(&format!("basic_auth_users:\n  'a:b': '{hash}'\n"))
        .err()
        .unwrap();
    assert!(err.contains("cannot contain ':'"), "{err}");
}

#[test]
fn headers_follow_the_toolkit() {
    let s = parse(
            "http_server_config:\n  headers:\n    x-frame-options: DENY\n    Strict-Transport-Security: max-age=31536000\n",
        )
        .unwrap();
    let names: Vec<&str> = s.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["strict-transport-security", "x-frame-options"]);
    let err = parse("http_server_config:\n  headers:\n    Content-Type: foo\n")
        .err()
        .unwrap();
    assert!(
        err.contains("http_server_config.headers.Content-Type: this header cannot be set"),
        "{err}"
    );
    let err = parse("http_server_config:\n  headers:\n    X-Frame-Options: allow\n")
        .err()
        .unwrap();
    assert!(err.contains("must be one of: deny, sameorigin"), "{err}");
}

#[test]
fn tls_rules() {
    let err = parse("tls_server_config:\n  min_version: TLS11\n")
        .err()
        .unwrap();
    assert!(
        err.contains("tls_server_config.min_version: TLS11 is not supported"),
        "{err}"
    );
    assert!(
        err.contains("tls_server_config.cert_file: is required"),
        "{err}"
    );
    assert!(
        err.contains("tls_server_config.key_file: is required"),
        "{err}"
    );
    let err = parse(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
        )
        .err()
        .unwrap();
    assert!(
        err.contains("client_ca_file: is required by client_auth_type RequireAndVerifyClientCert"),
        "{err}"
    );
    assert!(err.contains("cannot read /nonexistent/a"), "{err}");
    let err = parse("tls_server_config:\n  client_auth_type: Sometimes\n")
        .err()
        .unwrap();
    assert!(err.contains("client_auth_type"), "{err}");
    assert!(err.contains("RequireAndVerifyClientCert"), "{err}");
    let err = parse(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
        )
        .err()
        .unwrap();
    assert!(
        err.contains("min_version: is above max_version (line 4)"),
        "{err}"
    );
}

#[test]
fn credentials_are_parsed() {
    let mut h = HeaderMap::new();
    assert!(basic_credentials(&h).is_none());
    let encoded = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("basic {encoded}")).unwrap(),
    );
    let (user, password) = basic_credentials(&h).unwrap();
    assert_eq!(user, "alice");
    assert_eq!(password.as_slice(), b"pa:ss");
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer xyz"),
    );
    assert!(basic_credentials(&h).is_none());
}

#[test]
fn cache_keys_separate_their_parts() {
    assert_ne!(cache_key("ab", "h", b"c"), cache_key("a", "h", b"bc"));
    assert_ne!(cache_key("a", "h1", b"p"), cache_key("a", "h2", b"p"));
    assert_eq!(cache_key("a", "h", b"p"), cache_key("a", "h", b"p"));
}

#[tokio::test]
async fn basic_auth_checks_users_and_caches_successes() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let settings = Arc::new(parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap());
    // The dummy hash has the users' cost, so unknown names cost as much as known ones.
    assert_eq!(
        settings
            .dummy_hash
            .parse::<bcrypt::HashParts>()
            .unwrap()
            .get_cost(),
        4
    );
    let web = Web::open();
    let auth = |user: &str, pw: &str| {
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        h
    };
    let granted = Auth::Granted;
    let invalid = Auth::Refused(Refusal::Invalid);
    assert_eq!(
        web.authorized(&settings, &auth("alice", "wrong")).await,
        invalid
    );
    assert_eq!(
        web.authorized(&settings, &auth("bob", "s3cret")).await,
        invalid
    );
    assert!(settings.auth_cache.lock().unwrap().is_empty());
    assert_eq!(
        web.authorized(&settings, &auth("alice", "s3cret")).await,
        granted
    );
    let cache = settings.auth_cache.lock().unwrap().clone();
    assert_eq!(cache.len(), 1);
    assert!(cache.contains(&cache_key("alice", &hash, b"s3cret")));
    assert_eq!(
        web.authorized(&settings, &auth("alice", "s3cret")).await,
        granted
    );
    assert_eq!(
        web.authorized(&settings, &HeaderMap::new()).await,
        Auth::Refused(Refusal::Missing)
    );
}

fn basic(user: &str, pw: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
    );
    h
}

/// How many rounds of bcrypt's expensive key setup a wrong password for `user` costs:
/// 2^cost of every hash it is checked against.
/// The bcrypt rounds a wrong password for `user` costs, from what `authorized` checks.
fn rounds(settings: &Settings, user: &str) -> u64 {
    let cost = |h: &str| h.parse::<bcrypt::HashParts>().unwrap().get_cost();
    let (_, hash, padding) = settings.checks_for(user);
    std::iter::once(hash)
        .chain(padding)
        .map(|h| 1u64 << cost(&h))
        .sum()
}

#[tokio::test]
async fn unknown_users_cost_what_a_wrong_password_costs_whatever_the_users_costs() {
    let (cheap, dear) = (bcrypt::hash("a", 4).unwrap(), bcrypt::hash("b", 8).unwrap());
    let settings = Arc::new(
        parse(&format!(
            "basic_auth_users:\n  cheap: '{cheap}'\n  dear: '{dear}'\n  mid: '{}'\n",
            bcrypt::hash("c", 6).unwrap()
        ))
        .unwrap(),
    );
    // Every known user's wrong password does exactly the work of the dummy hash an unknown
    // name is checked against (counted in bcrypt rounds, which wall time on a shared
    // machine only blurs).
    let unknown = rounds(&settings, "nobody");
    assert_eq!(unknown, 1 << 8);
    for user in ["cheap", "mid", "dear"] {
        assert_eq!(rounds(&settings, user), unknown, "{user}");
    }
    // And a wrong password is refused for known and unknown names alike.
    let web = Web::open();
    for user in ["nobody", "cheap", "dear"] {
        let auth = web.authorized(&settings, &basic(user, "wrong")).await;
        assert_eq!(auth, Auth::Refused(Refusal::Invalid), "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_is_bounded_and_cached_logins_pass() {
    let hash = bcrypt::hash("s3cret", 6).unwrap();
    let settings = Arc::new(parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap());
    let web = Web::open();
    assert_eq!(
        web.authorized(&settings, &basic("alice", "s3cret")).await,
        Auth::Granted
    );
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let (web, settings) = (web.clone(), settings.clone());
            tokio::spawn(async move {
                web.authorized(&settings, &basic("alice", &format!("guess-{i}")))
                    .await
            })
        })
        .collect();
    // While the flood is being checked, the cached login is answered without waiting.
    tokio::task::yield_now().await;
    let start = std::time::Instant::now();
    assert_eq!(
        web.authorized(&settings, &basic("alice", "s3cret")).await,
        Auth::Granted
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    let mut busy = 0;
    for task in flood {
        match task.await.unwrap() {
            Auth::Refused(Refusal::Busy) => busy += 1,
            Auth::Refused(Refusal::Invalid) => {}
            other => panic!("a wrong password got {other:?}"),
        }
    }
    // Forty at once: at most AUTH_CHECKS_ADMITTED are checked, the rest refused at once.
    assert!(busy >= 40 - AUTH_CHECKS_ADMITTED, "{busy} refused");
    assert_eq!(web.admitted.available_permits(), AUTH_CHECKS_ADMITTED);
    // And once the flood is over, a login that is not cached is checked again.
    assert_eq!(
        web.authorized(&settings, &basic("alice", "s3cret")).await,
        Auth::Granted
    );
}

fn settings_with(f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::open();
    f(&mut s);
    s
}

#[test]
fn a_reload_never_lowers_protection() {
    let users = |s: &mut Settings| {
        s.empty = false;
        s.users.insert("alice".into(), "$2b$04$x".into());
    };
    let open = Settings::open();
    let auth = settings_with(users);
    let headers_only = settings_with(|s| s.empty = false);
    // Basic auth on -> off, and a file that configures nothing, are refused.
    assert_eq!(
        weakens(&auth, &headers_only, false).unwrap().0,
        "basic_auth_users"
    );
    assert_eq!(weakens(&auth, &open, false).unwrap().0, "");
    assert_eq!(weakens(&headers_only, &open, false).unwrap().0, "");
    // Turning protection on, or keeping it, is fine; so is an empty file that was empty.
    assert!(weakens(&open, &auth, false).is_none());
    assert!(weakens(&open, &open, false).is_none());
    assert!(weakens(&auth, &auth, false).is_none());
    // Client certificates: RequireAndVerifyClientCert cannot be given up.
    let mtls = settings_with(|s| {
        s.empty = false;
        s.client_auth = ClientAuthType::RequireAndVerifyClientCert;
    });
    for weaker in [
        ClientAuthType::NoClientCert,
        ClientAuthType::RequestClientCert,
        ClientAuthType::RequireAnyClientCert,
        ClientAuthType::VerifyClientCertIfGiven,
    ] {
        let new = settings_with(|s| {
            s.empty = false;
            s.client_auth = weaker;
        });
        assert_eq!(
            weakens(&mtls, &new, false).unwrap().0,
            "tls_server_config.client_auth_type",
            "{weaker:?}"
        );
        assert!(weakens(&new, &mtls, false).is_none(), "{weaker:?}");
    }
    // The lowest TLS version cannot go down.
    let tls13 = settings_with(|s| {
        s.empty = false;
        s.min_version = Some(TlsVersion::TLS13);
    });
    let tls12 = settings_with(|s| s.empty = false);
    assert_eq!(
        weakens(&tls13, &tls12, false).unwrap().0,
        "tls_server_config.min_version"
    );
    assert!(weakens(&tls12, &tls13, false).is_none());
}

#[test]
fn a_refused_reload_keeps_the_users_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    let (a, b) = (bcrypt::hash("a", 4).unwrap(), bcrypt::hash("b", 4).unwrap());
    std::fs::write(
        &path,
        format!("basic_auth_users:\n  a: '{a}'\n  b: '{b}'\n"),
    )
    .unwrap();
    let web = Web::load(&path).unwrap();
    let stats = web.stats();
    assert!(stats.last_reload_successful.load(Ordering::Relaxed));
    for bad in [
        "",
        "# cut short\n",
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        "basic_auth_users: {}\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = web.refresh(true).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("restart the exporter"), "{err}");
        assert!(!err.contains(&a) && !err.contains(&b), "{err}");
        assert!(web.basic_auth_enabled(), "{bad:?}");
        assert_eq!(web.current().users.len(), 2);
        assert!(!stats.last_reload_successful.load(Ordering::Relaxed));
    }
    // Removing one user of two is allowed (a leaked password is revoked without a
    // restart), and a success is remembered across the reload when its hash is kept.
    web.current()
        .auth_cache
        .lock()
        .unwrap()
        .insert(cache_key("a", &a, b"a"));
    std::fs::write(&path, format!("basic_auth_users:\n  a: '{a}'\n")).unwrap();
    assert!(web.refresh(true).unwrap());
    assert!(stats.last_reload_successful.load(Ordering::Relaxed));
    assert_eq!(web.current().users.len(), 1);
    assert!(
        web.current()
            .auth_cache
            .lock()
            .unwrap()
            .contains(&cache_key("a", &a, b"a"))
    );
}

#[test]
fn a_reload_cannot_give_up_client_certificates_or_lower_the_tls_version() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("tls.key"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.crt"), certified.cert.pem()).unwrap();
    let path = dir.path().join("web.yml");
    let tls = |auth: &str, min: &str| {
        format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_ca_file: ca.crt\n  client_auth_type: {auth}\n  min_version: {min}\n"
        )
    };
    std::fs::write(&path, tls("RequireAndVerifyClientCert", "TLS13")).unwrap();
    let web = Web::load(&path).unwrap();
    for (weaker, field) in [
        (
            tls("VerifyClientCertIfGiven", "TLS13"),
            "tls_server_config.client_auth_type",
        ),
        (
            tls("RequireAndVerifyClientCert", "TLS12"),
            "tls_server_config.min_version",
        ),
    ] {
        std::fs::write(&path, &weaker).unwrap();
        let err = web.refresh(true).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
        assert_eq!(
            web.current().client_auth,
            ClientAuthType::RequireAndVerifyClientCert
        );
        assert_eq!(web.current().min_version, Some(TlsVersion::TLS13));
        assert!(!web.stats.last_reload_successful.load(Ordering::Relaxed));
    }
    // The same policy with a rotated certificate is taken.
    std::fs::write(&path, tls("RequireAndVerifyClientCert", "TLS13")).unwrap();
    assert!(web.refresh(true).unwrap());
    assert!(web.stats.last_reload_successful.load(Ordering::Relaxed));
}
