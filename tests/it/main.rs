//! The integration tests: one binary, one module per area, one support tree.
//!
//! One binary instead of one per file: the library and its dependencies are linked once, not
//! once per area, and the tests of every area run in one process in parallel. Tests that must
//! run alone keep their own binary and say why at their top (`tests/memory.rs` and
//! `tests/memory_api.rs` measure this process's resident memory and tune its allocator).
//! Nothing here may set process-wide state (environment variables, rlimits, allocator
//! settings, global statics of the library): every area shares this process. Children get
//! their environment through `Command::env`.
//!
//! Run one area with `cargo test --test it <module>::`, e.g. `cargo test --test it faults::`.

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod canary;
mod canary_identity_rotators;
mod config_files;
mod connections;
mod daemon;
mod dashboards;
mod docs;
mod e2e_alerting;
mod faults;
mod fuzz_parse;
mod jwt_jwks;
mod layout;
mod notify_alertmanager;
mod notify_canary;
mod notify_cli;
mod notify_email;
mod notify_policy;
mod notify_reload;
mod notify_restart;
mod notify_slack;
mod oauth2_oidc_provider;
mod paging;
mod policies;
mod prometheus;
mod provider_atlassian;
mod provider_aws;
mod provider_cloudflare;
mod provider_docker_hub;
mod provider_entra_id;
mod provider_github;
mod provider_gitlab;
mod provider_google;
mod provider_grafana;
mod provider_http;
mod provider_kubernetes;
mod provider_npm;
mod provider_okta;
mod provider_slack;
mod provider_static;
mod provider_terraform;
mod provider_vault;
mod rotation_aws;
mod rotation_cloudflare;
mod rotation_crash;
mod rotation_demo;
mod rotation_entra_id;
mod rotation_github_app;
mod rotation_gitlab;
mod rotation_kubernetes_secret;
mod rotation_oauth;
mod rotation_slack;
mod rotation_sources;
mod rotation_vault;
mod rotation_vault_kv;
mod scale;
mod scheduler;
mod sharding;
mod source_cloudflare;
mod source_docker_hub;
mod source_entra_id;
mod source_github;
mod source_gitlab;
mod source_kubernetes_secrets;
mod source_okta;
mod source_vault;
mod sources;
mod state_files;
mod status_page;
mod support_selftest;
mod web_config;
