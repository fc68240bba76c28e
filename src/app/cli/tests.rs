use super::*;

#[test]
fn flags_parse_with_dots() {
    let cli = Cli::try_parse_from([
        "x",
        "--config.file",
        "a.yml",
        "--web.listen-address",
        "127.0.0.1:1",
        "--log.format",
        "json",
        "check",
        "--output",
        "json",
    ])
    .unwrap();
    assert_eq!(cli.config_file, PathBuf::from("a.yml"));
    assert_eq!(cli.log_format, LogFormat::Json);
    assert!(matches!(
        cli.command,
        Some(Command::Check {
            output: OutputFormat::Json,
            fail_on: FailOn::Critical,
            ..
        })
    ));
    assert_eq!(listen_addr(":10042"), "0.0.0.0:10042");
    assert_eq!(cli.shard().unwrap(), Shard::ALL);
    assert!(cli.web_config_file.is_none());
}

#[test]
fn answer_cap_flags() {
    let parse = |args: &[&str]| Cli::try_parse_from([&["x"], args].concat());
    let caps = parse(&[]).unwrap().answer_caps();
    assert_eq!(caps, crate::provider::AnswerCaps::DEFAULT);
    let caps = parse(&[
        "--provider.max-scopes=5",
        "--provider.max-label-length=40",
        "check",
    ])
    .unwrap()
    .answer_caps();
    assert_eq!((caps.max_scopes, caps.max_label_length), (5, 40));
    let err = parse(&["--provider.max-label-length=3"]).unwrap_err();
    assert!(
        err.to_string().contains("provider.max-label-length"),
        "{err}"
    );
}

#[test]
fn shard_flags_are_validated() {
    let parse = |args: &[&str]| Cli::try_parse_from([&["x"], args].concat());
    let cli = parse(&[
        "--shard.count=3",
        "--shard.index=2",
        "--web.config.file=w.yml",
    ])
    .unwrap();
    assert_eq!(cli.shard().unwrap(), Shard::new(2, 3).unwrap());
    assert_eq!(cli.web_config_file, Some(PathBuf::from("w.yml")));
    assert!(parse(&["--shard.count=0"]).is_err());
    let err = parse(&["--shard.count=2", "--shard.index=2"])
        .unwrap()
        .shard()
        .unwrap_err();
    assert!(err.contains("below --shard.count"), "{err}");
}

#[test]
fn connection_flags_default_to_the_listener_defaults_and_refuse_zero() {
    let cli = Cli::try_parse_from(["x"]).unwrap();
    let defaults = crate::expose::listen::Limits::default();
    assert_eq!(cli.max_connections, defaults.max_connections);
    assert_eq!(cli.read_header_timeout, defaults.read_header_timeout);
    assert_eq!(cli.idle_timeout, defaults.idle_timeout);
    let cli = Cli::try_parse_from([
        "x",
        "--web.max-connections=20",
        "--web.read-header-timeout=1s",
        "--web.idle-timeout=500ms",
    ])
    .unwrap();
    assert_eq!(cli.max_connections, 20);
    assert_eq!(cli.read_header_timeout, Duration::from_secs(1));
    assert_eq!(cli.idle_timeout, Duration::from_millis(500));
    for bad in [
        "--web.max-connections=0",
        "--web.idle-timeout=0s",
        "--web.read-header-timeout=soon",
    ] {
        let err = Cli::try_parse_from(["x", bad]).unwrap_err().to_string();
        let flag = bad.split('=').next().unwrap();
        assert!(err.contains(flag), "{bad}: {err}");
    }
}

#[test]
fn demo_and_notify_test_flags() {
    let cli = Cli::try_parse_from([
        "x",
        "demo",
        "--demo.smtp",
        "127.0.0.1:2525",
        "--demo.webhook",
        "http://127.0.0.1:9000/hook",
    ])
    .unwrap();
    assert!(matches!(
        cli.command,
        Some(Command::Demo { smtp: Some(ref s), webhook: Some(ref w) })
            if s == "127.0.0.1:2525" && w == "http://127.0.0.1:9000/hook"
    ));
    let cli = Cli::try_parse_from(["x", "notify-test", "--receiver", "team-slack"]).unwrap();
    assert!(matches!(
        cli.command,
        Some(Command::NotifyTest { ref receiver }) if receiver == "team-slack"
    ));
}

fn collectors(args: &[&str]) -> Collectors {
    let mut argv = vec!["x"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .collectors
        .0
}

#[test]
fn each_collector_flag_switches_its_collector() {
    assert_eq!(collectors(&[]), Collectors::defaults());
    for c in Collector::ALL {
        let (name, on, off) = c.flags();
        let (on, off) = (format!("--{on}"), format!("--{off}"));
        assert_eq!(on, format!("--collector.{name}"));
        // On and off from the defaults, whatever the default is.
        let mut want = Collectors::defaults();
        want.set(c, true);
        assert_eq!(collectors(&[&on]), want, "{on}");
        want.set(c, false);
        assert_eq!(collectors(&[&off]), want, "{off}");
        // The last of the pair counts.
        assert!(collectors(&[&off, &on]).has(c), "{off} {on}");
        assert!(!collectors(&[&on, &off]).has(c), "{on} {off}");
        // From none: only the named one.
        assert_eq!(
            collectors(&["--collector.disable-defaults", &on]),
            Collectors::of([c]),
            "{on}"
        );
        // Flags are global: they go after a subcommand too (the demo).
        assert!(collectors(&["demo", &on]).has(c), "demo {on}");
    }
    assert_eq!(
        collectors(&["--collector.disable-defaults"]),
        Collectors::none()
    );
    assert!(Cli::try_parse_from(["x", "--collector.nope"]).is_err());
}
