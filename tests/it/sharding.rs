//! `--shard.count` / `--shard.index`: every token lands on exactly one shard, a token's
//! shard depends on its name alone (adding tokens moves none), two real replicas split an
//! inventory between them and keep splitting it across a reload, bad flags are refused, and
//! the Kubernetes StatefulSet in deploy/ (generated from the Helm chart) is consistent with
//! all that and writes its state to a mounted volume.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::shard::Shard;
use proptest::prelude::*;
use serde_json::Value;
use support::daemon::{BIN, Daemon, write};

/// An inventory of declared tokens: no secret, no network.
fn inventory(names: &[String]) -> String {
    let mut yaml = String::from("providers:\n  declared:\n    kind: static\ntokens:");
    if names.is_empty() {
        yaml.push_str(" []");
    }
    yaml.push('\n');
    for name in names {
        // Quoted: a generated name like `no` or `null` is a YAML boolean or null unquoted.
        yaml.push_str(&format!(
            "  - name: \"{name}\"\n    provider: declared\n    expires_at: 2099-01-01\n"
        ));
    }
    yaml
}

fn kept(config: &str, shard: Shard) -> BTreeSet<String> {
    let config = Config::parse(config).unwrap_or_else(|e| panic!("{e}"));
    shard
        .apply(config)
        .tokens
        .into_iter()
        .map(|t| t.name.clone())
        .collect()
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z][a-z0-9-]{0,24}", 0..60).prop_map(|s| s.into_iter().collect())
}

proptest! {
    // Failures print their minimal case; nothing is written next to the tests.
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_token_is_on_exactly_one_shard(names in names(), count in 1u64..=12) {
        let config = inventory(&names);
        let mut seen = BTreeSet::new();
        let mut total = 0;
        for index in 0..count {
            let part = kept(&config, Shard::new(index, count).unwrap());
            total += part.len();
            seen.extend(part);
        }
        prop_assert_eq!(total, names.len(), "a token was on two shards");
        prop_assert_eq!(seen, names.iter().cloned().collect::<BTreeSet<_>>());
    }

    #[test]
    fn adding_tokens_moves_none(
        before in names(),
        added in names(),
        count in 2u64..=8,
    ) {
        // Sorted, so new names land between old ones: a shard chosen by position in the
        // file would show here.
        let after: Vec<String> = before
            .iter()
            .chain(added.iter())
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let old: BTreeSet<String> = before.iter().cloned().collect();
        for index in 0..count {
            let shard = Shard::new(index, count).unwrap();
            let was = kept(&inventory(&before), shard);
            let is = kept(&inventory(&after), shard);
            let still: BTreeSet<String> = is.intersection(&old).cloned().collect();
            prop_assert_eq!(was, still, "shard {} changed its old tokens", index);
        }
    }
}

#[test]
fn shards_are_balanced() {
    // Deterministic (SHA-256 of fixed names): 3,000 tokens over 3 shards.
    let names: Vec<String> = (0..3000).map(|i| format!("token-{i}")).collect();
    for index in 0..3 {
        let shard = Shard::new(index, 3).unwrap();
        let n = names.iter().filter(|n| shard.owns(n)).count();
        assert!((900..=1100).contains(&n), "shard {index} has {n} of 3000");
    }
}

fn exported(d: &Daemon) -> BTreeSet<String> {
    let (code, body) = d.get("/metrics");
    assert_eq!(code, 200);
    body.lines()
        .filter_map(|l| l.strip_prefix("api_token_info{token=\""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_owned)
        .collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_replicas_split_the_inventory_and_keep_it_split_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = (0..12).map(|i| format!("svc-{i}")).collect();
    let config = write(dir.path(), "config.yml", &inventory(&names));
    let config = config.to_str().unwrap();
    let replicas: Vec<Daemon> = (0..2)
        .map(|i| {
            Daemon::start(&[
                "--config.file",
                config,
                "--shard.count",
                "2",
                "--shard.index",
                &i.to_string(),
            ])
        })
        .collect();
    for d in &replicas {
        d.wait_for("/-/ready", Duration::from_secs(15));
    }
    let check = |names: &[String]| {
        let parts: Vec<BTreeSet<String>> = replicas.iter().map(exported).collect();
        for (i, part) in parts.iter().enumerate() {
            let expected: BTreeSet<String> = names
                .iter()
                .filter(|n| Shard::of(n, 2) == i as u64)
                .cloned()
                .collect();
            assert_eq!(part, &expected, "replica {i}");
            assert!(!part.is_empty(), "replica {i} owns nothing of {names:?}");
        }
        assert!(parts[0].is_disjoint(&parts[1]));
        let union: BTreeSet<String> = parts.iter().flatten().cloned().collect();
        assert_eq!(union, names.iter().cloned().collect::<BTreeSet<_>>());
    };
    check(&names);

    // A token added to the file appears on exactly one replica after a reload; no other
    // token moves.
    names.push("svc-new".to_string());
    std::fs::write(config, inventory(&names)).unwrap();
    for d in &replicas {
        let (code, body) = d.post("/-/reload");
        assert_eq!(code, 200, "{body}");
    }
    let owner = Shard::of("svc-new", 2) as usize;
    wait_until("svc-new exported by its replica", || {
        exported(&replicas[owner]).contains("svc-new")
    });
    check(&names);
    for d in &replicas {
        assert!(d.logs().contains("shard="), "{}", d.logs());
    }
}

#[test]
fn bad_shard_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "config.yml", &inventory(&["a".to_string()]));
    for (args, expected) in [
        (
            vec!["--shard.count", "2", "--shard.index", "2"],
            "--shard.index must be below --shard.count (2)",
        ),
        (vec!["--shard.count", "0"], "shard.count"),
    ] {
        let out = Command::new(BIN)
            .arg("--config.file")
            .arg(&config)
            .args(&args)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn the_kubernetes_statefulset_is_consistent() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/statefulset.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let of_kind = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {}", path.display()))
    };
    let sts = of_kind("StatefulSet");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&format!("--shard.count={replicas}").as_str()),
        "replicas {replicas} and --shard.count differ: {args:?}"
    );
    assert!(args.contains(&"--shard.index=$(POD_INDEX)"), "{args:?}");
    let env = container["env"].as_array().unwrap();
    let pod_index = env.iter().find(|e| e["name"] == "POD_INDEX").unwrap();
    assert_eq!(
        pod_index["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    // The flags the StatefulSet passes parse, for every ordinal it can have.
    for ordinal in 0..replicas {
        let resolved: Vec<String> = args
            .iter()
            .map(|a| a.replace("$(POD_INDEX)", &ordinal.to_string()))
            .collect();
        let cli = <api_token_exporter::cli::Cli as clap::Parser>::try_parse_from(
            std::iter::once("api-token-exporter".to_string()).chain(resolved),
        )
        .unwrap();
        assert_eq!(cli.shard().unwrap(), Shard::new(ordinal, replicas).unwrap());
    }

    // The root filesystem is read-only, so --storage.path must be a writable mounted volume,
    // or the ledger and the notification state cannot be written.
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"], true,
        "{container}"
    );
    let storage = args
        .iter()
        .find_map(|a| a.strip_prefix("--storage.path="))
        .unwrap_or_else(|| panic!("no --storage.path in {args:?}"));
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == storage)
        .unwrap_or_else(|| panic!("nothing is mounted at --storage.path={storage}"));
    assert_ne!(mount["readOnly"], true, "{mount}");
    let pod = &sts["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_array().unwrap();
    let claims = sts["spec"]["volumeClaimTemplates"].as_array();
    assert!(
        volumes.iter().any(|v| v["name"] == mount["name"])
            || claims.is_some_and(|c| c.iter().any(|t| t["metadata"]["name"] == mount["name"])),
        "no volume {} for --storage.path",
        mount["name"]
    );

    let service = of_kind("Service");
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "the Service is headless"
    );
    assert_eq!(sts["spec"]["serviceName"], service["metadata"]["name"]);
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&service["spec"]["selector"], pod_labels);
    let monitor = of_kind("PodMonitor");
    assert_eq!(&monitor["spec"]["selector"]["matchLabels"], pod_labels);

    // The inventory it mounts is a valid config.
    let inventory = of_kind("ConfigMap")["data"]["config.yml"].as_str().unwrap();
    let config = Config::parse(inventory).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.tokens.is_empty());
}
