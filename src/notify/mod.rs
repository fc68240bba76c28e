//! Direct notifications: Slack, email, a webhook, Alertmanager.
pub mod config;
pub mod engine;
pub mod event;
pub mod route;
