//! The rotate stage: renews or rotates the tokens that have a `rotate:` block, before they
//! expire, and puts the new value where it is read. Off for every other token: nothing here
//! runs, and no provider is written to, for a token without the block.
//!
//! One rotation follows AWS Secrets Manager's four steps (create, deliver, test, finish) as
//! the pure state machine in [`machine`]. Its record is saved to `rotation.json` under
//! `--storage.path` (mode 0600: it holds an issued value until the rotation finishes)
//! BEFORE each external step, under the [`lock::RotationLock`], so a crash or kill -9 at any
//! point resumes where it stopped, and two processes never rotate at once. Rotations run
//! one at a time, at most one start per [`machine::MIN_START_GAP`], with an exponential
//! backoff per token after a failure. Every step is logged by token name and step, never
//! with a value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

use crate::model::Verdict;
use crate::model::rotation::RotationResult;
use crate::probe::scheduler::Inventory;
use crate::provider::run_probe;
use crate::schema::rotate::{Deliver, RotateSpec, Rotator};
use crate::state::persist::StateFile;
use crate::state::store::Store;

pub mod deliver;
pub mod lock;
pub mod machine;
pub mod rotators;
pub mod service;

use machine::{Action, Observed, Pending, Rate, Record, RotationFile};

/// The state file's name under `--storage.path`.
pub const STATE_FILE: &str = "rotation.json";

/// Test-only: when this variable names a step (`creating`, `issued`, `delivered`,
/// `tested`, `finished`), the process aborts right after saving that step, as a kill -9
/// would stop it. Read only in debug builds; a release build ignores it.
pub const CRASH_AFTER_ENV: &str = "API_TOKEN_EXPORTER_TEST_CRASH_AFTER";

fn crash_after(step: &str) {
    #[cfg(debug_assertions)]
    if std::env::var(CRASH_AFTER_ENV).is_ok_and(|s| s == step) {
        tracing::warn!(step, "test crash hook: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}

/// How a run was asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ask {
    /// An operator asked (`rotate --token`): start even if not due, resume an interrupted
    /// rotation, ignore the backoff and the rate.
    pub forced: bool,
    /// Plan and log only, whatever the config says.
    pub dry_run: bool,
}

/// The rotations of one process: the state file, the rate, the counters by result.
pub struct Rotations {
    dir: PathBuf,
    file: StateFile,
    rate: Rate,
    counts: HashMap<String, [u64; 3]>,
    /// When a dry run last reported each token, so it reports once per provider answer.
    dry_runs: HashMap<String, Timestamp>,
    /// The inventory's `rotation_keys`: a discovered token's record is kept by identity.
    keys: Arc<std::collections::BTreeMap<String, String>>,
}

impl Rotations {
    pub fn new(dir: &Path) -> Self {
        Rotations {
            dir: dir.to_path_buf(),
            file: StateFile::private(dir, STATE_FILE),
            rate: Rate::new(machine::MIN_START_GAP),
            counts: HashMap::new(),
            dry_runs: HashMap::new(),
            keys: Arc::default(),
        }
    }

    /// Every rotating token once: publishes its status, and runs what is due.
    pub async fn tick(&mut self, inventory: &Inventory, store: &Store) {
        self.follow(inventory);
        let saved: RotationFile = self.file.load_read_only();
        for name in inventory.config.rotations.keys() {
            let record = saved
                .record(name, self.identity(name))
                .cloned()
                .unwrap_or_default();
            let spec = &inventory.config.rotations[name];
            let idle = {
                let inner = store.read();
                let Some(state) = inner.tokens.get(name) else {
                    continue;
                };
                let facts = planning_facts(&spec.rotator, &state.facts);
                let seen = observed(state, &facts);
                record.action(
                    spec.when,
                    &seen,
                    spec.rotator.idempotent(),
                    false,
                    Timestamp::now(),
                ) == Action::Wait
            };
            if idle {
                self.publish(store, name, spec, &record);
                continue;
            }
            if let Err(e) = self.run(inventory, store, name, Ask::default()).await {
                tracing::warn!(token = %name, error = %e, "rotation not run");
            }
        }
    }

    /// Runs `name`'s rotation as far as it goes now. `Ok(None)`: nothing was due (or the
    /// lock is held elsewhere, for a scheduled run).
    pub async fn run(
        &mut self,
        inventory: &Inventory,
        store: &Store,
        name: &str,
        ask: Ask,
    ) -> Result<Option<RotationResult>, String> {
        self.follow(inventory);
        let config = &inventory.config;
        let spec = config
            .rotations
            .get(name)
            .ok_or_else(|| format!("token {name:?} has no rotate: block"))?
            .clone();
        let token = config
            .tokens
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("no token {name:?} in this config"))?
            .clone();
        let provider_config = &config.providers[&token.provider];
        let provider = inventory.providers[&token.provider].clone();
        let _lock = if ask.forced {
            lock::RotationLock::take(&self.dir, std::time::Duration::from_secs(30)).await?
        } else {
            match lock::RotationLock::try_take(&self.dir)? {
                Some(l) => l,
                None => return Ok(None),
            }
        };
        // Read again under the lock: another process may have moved it on.
        let mut file: RotationFile = self.file.load();
        let mut record = file
            .record(name, self.identity(name))
            .cloned()
            .unwrap_or_default();
        let (facts, answered_at, first_seen, fingerprint) = {
            let inner = store.read();
            let state = inner
                .tokens
                .get(name)
                .ok_or_else(|| format!("token {name:?} is not in the store"))?;
            (
                state.facts.clone(),
                state.last_verdict_at,
                state.first_seen,
                state.fingerprint.clone(),
            )
        };
        let plan = planning_facts(&spec.rotator, &facts);
        let seen = Observed {
            facts: &plan,
            answered_at,
            first_seen,
        };
        let dry = spec.dry_run || ask.dry_run;
        let kind = spec.rotator.kind();
        let mut result = None;
        let mut forced = ask.forced;
        loop {
            let now = Timestamp::now();
            let action = record.action(spec.when, &seen, spec.rotator.idempotent(), forced, now);
            forced = false;
            match action {
                Action::Wait => break,
                Action::Create if dry => {
                    if !ask.forced
                        && self
                            .dry_runs
                            .get(name)
                            .is_some_and(|d| answered_at.is_none_or(|a| a <= *d))
                    {
                        break;
                    }
                    self.dry_runs.insert(name.to_string(), now);
                    for step in ["create", "deliver", "test", "finish"] {
                        tracing::info!(token = %name, rotator = kind, step, "dry run: would run this step");
                    }
                    for target in &spec.deliver {
                        tracing::info!(token = %name, target = %target.describe(), "dry run: would deliver here");
                    }
                    result = Some(RotationResult::DryRun);
                    break;
                }
                Action::Create => {
                    if !ask.forced && !self.rate.take(now) {
                        break;
                    }
                    record.begin(fingerprint.clone(), now);
                    self.save(&mut file, name, &record)?;
                    tracing::info!(token = %name, rotator = kind, step = "create", "rotation step");
                    crash_after("creating");
                    match rotators::create(&spec.rotator, &token, provider_config, &facts, now)
                        .await
                    {
                        Ok(pending) => {
                            record.issued(pending);
                            self.save(&mut file, name, &record)?;
                            crash_after("issued");
                        }
                        Err(e) => {
                            result = Some(self.fail(&mut file, name, &mut record, "create", &e)?);
                            break;
                        }
                    }
                }
                Action::Deliver => {
                    tracing::info!(token = %name, step = "deliver", "rotation step");
                    let pending = record.pending.clone().unwrap_or_default();
                    match deliver_all(
                        &spec,
                        name,
                        token.params.access_key_id_file.as_deref(),
                        &pending,
                    )
                    .await
                    {
                        Ok(()) => {
                            record.delivered();
                            self.save(&mut file, name, &record)?;
                            crash_after("delivered");
                        }
                        Err(e) => {
                            result =
                                Some(self.fail(&mut file, name, &mut record, "deliver", &e)?);
                            break;
                        }
                    }
                }
                Action::Test => {
                    tracing::info!(token = %name, step = "test", "rotation step");
                    let token = match as_delivered(&spec, &token).await {
                        Ok(t) => t,
                        Err(e) => {
                            result = Some(self.fail(&mut file, name, &mut record, "test", &e)?);
                            break;
                        }
                    };
                    let mut run = run_probe(provider.as_ref(), &token, now).await;
                    for wait in spec.rotator.settle_waits() {
                        if run.outcome.verdict != Verdict::Invalid {
                            break;
                        }
                        tracing::info!(token = %name, step = "test", wait_seconds = wait.as_secs(), "the provider does not accept the new value yet; testing again");
                        tokio::time::sleep(*wait).await;
                        run = run_probe(provider.as_ref(), &token, Timestamp::now()).await;
                    }
                    // The issuer's stated expiry stands in when the probe discloses none
                    // (GitHub does not for installation tokens): a `before` trigger needs it.
                    if run.outcome.facts.expiry == crate::model::Expiry::Undisclosed
                        && let Some(machine::Pending {
                            value: Some(_),
                            expires_at: Some(at),
                            ..
                        }) = record.pending
                    {
                        run.outcome.facts.expiry = crate::model::Expiry::At(at);
                    }
                    let verdict = run.outcome.verdict;
                    let reason = run.outcome.reason;
                    let read = run.fingerprint.clone();
                    store.record(name, run, now);
                    let expected = record
                        .pending
                        .as_ref()
                        .and_then(|p| p.value.as_deref())
                        .map(crate::secret::fingerprint);
                    let problem = if verdict != Verdict::Valid {
                        Some(format!(
                            "the provider did not accept the new value ({}, {})",
                            verdict.as_str(),
                            reason.as_str()
                        ))
                    } else if expected.is_some() && read != expected {
                        Some("the token's secret source does not read the delivered value".into())
                    } else {
                        None
                    };
                    match problem {
                        None => {
                            record.tested();
                            self.save(&mut file, name, &record)?;
                            crash_after("tested");
                        }
                        Some(e) => {
                            result = Some(self.fail(&mut file, name, &mut record, "test", &e)?);
                            break;
                        }
                    }
                }
                Action::Finish => {
                    // Retiring the old value: a renewal kept it, a refresh grant's server
                    // has already invalidated the old refresh token, and the old access
                    // token ends at its own expiry (the overlap the protocol allows). An
                    // AWS key is made inactive now and deleted after the grace.
                    let retire = match (&spec.rotator, record.pending.as_ref()) {
                        (Rotator::AwsRotate { retire_after }, Some(p)) => match &p.old_key_id {
                            Some(old) => {
                                if let Err(e) =
                                    rotators::aws::deactivate(&token, provider_config, old, now)
                                        .await
                                {
                                    result = Some(self.fail(
                                        &mut file,
                                        name,
                                        &mut record,
                                        "finish",
                                        &e,
                                    )?);
                                    break;
                                }
                                let grace = jiff::SignedDuration::try_from(*retire_after)
                                    .unwrap_or_default();
                                Some(machine::Retire {
                                    key_id: old.clone(),
                                    at: now.checked_add(grace).ok(),
                                })
                            }
                            None => None,
                        },
                        // The old secret goes now: the new one is delivered and works.
                        (Rotator::EntraIdPassword(e), Some(p)) => {
                            if let Some(old) = &p.old_key_id
                                && let Err(err) = rotators::entra_id_password::remove(
                                    e,
                                    &token,
                                    provider_config,
                                    old,
                                    p.key_id.as_deref(),
                                )
                                .await
                            {
                                result = Some(self.fail(
                                    &mut file,
                                    name,
                                    &mut record,
                                    "finish",
                                    &err,
                                )?);
                                break;
                            }
                            None
                        }
                        _ => None,
                    };
                    record.finished(now);
                    if retire.is_some() {
                        record.retire = retire;
                    }
                    self.save(&mut file, name, &record)?;
                    crash_after("finished");
                    tracing::info!(token = %name, rotator = kind, step = "finish", "rotation succeeded");
                    result = Some(RotationResult::Success);
                    if record
                        .retire
                        .as_ref()
                        .is_some_and(|r| r.at.is_none_or(|at| at <= now))
                    {
                        continue;
                    }
                    break;
                }
                Action::Retire => {
                    let Some(retire) = record.retire.clone() else {
                        break;
                    };
                    tracing::info!(token = %name, rotator = kind, step = "retire", "rotation step");
                    let done = match &spec.rotator {
                        Rotator::AwsRotate { .. } => {
                            rotators::aws::delete(&token, provider_config, &retire.key_id, now)
                                .await
                        }
                        _ => Ok(()),
                    };
                    match done {
                        Ok(()) => {
                            record.retire = None;
                            self.save(&mut file, name, &record)?;
                            tracing::info!(token = %name, rotator = kind, step = "retire", "old credential deleted");
                        }
                        Err(e) => {
                            let failed = self.fail(&mut file, name, &mut record, "retire", &e)?;
                            result = Some(result.unwrap_or(failed));
                            break;
                        }
                    }
                }
                Action::Interrupt => {
                    record.interrupted(now);
                    self.save(&mut file, name, &record)?;
                    tracing::error!(token = %name, rotator = kind, step = "create", error = machine::INTERRUPTED, "rotation interrupted");
                    result = Some(RotationResult::Failure);
                    break;
                }
            }
        }
        if let Some(r) = result {
            machine::counted(self.counts.entry(name.to_string()).or_default(), r);
        }
        self.publish(store, name, &spec, &record);
        Ok(result)
    }

    fn fail(
        &self,
        file: &mut RotationFile,
        name: &str,
        record: &mut Record,
        step: &'static str,
        error: &str,
    ) -> Result<RotationResult, String> {
        record.failed(error, Timestamp::now());
        self.save(file, name, record)?;
        tracing::warn!(token = %name, step, error, failures = record.failures, "rotation step failed");
        Ok(RotationResult::Failure)
    }

    fn save(&self, file: &mut RotationFile, name: &str, record: &Record) -> Result<(), String> {
        file.put(name, self.identity(name), record.clone());
        self.file.save(file).map_err(|e| e.to_string())
    }

    /// Takes the inventory's record keys (a discovered token's identity): one shared map.
    fn follow(&mut self, inventory: &Inventory) {
        self.keys = inventory.config.rotation_keys.clone();
    }

    /// Where a discovered token's record is kept; `None` for a configured token (by name).
    fn identity(&self, name: &str) -> Option<&str> {
        self.keys.get(name).map(String::as_str)
    }

    fn publish(&self, store: &Store, name: &str, spec: &RotateSpec, record: &Record) {
        let next_at = {
            let inner = store.read();
            inner.tokens.get(name).and_then(|s| {
                let facts = planning_facts(&spec.rotator, &s.facts);
                record.next_at(spec.when, &observed(s, &facts))
            })
        };
        let counts = self.counts.get(name).copied().unwrap_or_default();
        store.set_rotation(
            name,
            record.status(spec.rotator.kind(), spec.dry_run, next_at, counts),
        );
    }
}

fn observed<'a>(
    state: &crate::state::store::TokenState,
    facts: &'a crate::model::TokenFacts,
) -> Observed<'a> {
    Observed {
        facts,
        answered_at: state.last_verdict_at,
        first_seen: state.first_seen,
    }
}

/// The facts a rotation is planned from: the store's, except that a value the rotator
/// mints cheaply ([`Rotator::replaces_unknown`]) whose expiry is not known (a first start,
/// or a restart: the expiry the issuer stated is not kept across one) counts as expiring
/// now, so the daemon mints one instead of never planning.
fn planning_facts<'a>(
    rotator: &Rotator,
    facts: &'a crate::model::TokenFacts,
) -> std::borrow::Cow<'a, crate::model::TokenFacts> {
    if rotator.replaces_unknown() && facts.expiry == crate::model::Expiry::Undisclosed {
        let mut f = facts.clone();
        f.expiry = crate::model::Expiry::At(Timestamp::now());
        return std::borrow::Cow::Owned(f);
    }
    std::borrow::Cow::Borrowed(facts)
}

/// The rotator's own file first (a refresh token), then every target. Each write is whole
/// and repeatable, so a crash midway is repaired by delivering again.
async fn deliver_all(
    spec: &RotateSpec,
    name: &str,
    key_id_file: Option<&str>,
    pending: &Pending,
) -> Result<(), String> {
    if let (Some(path), Some(refresh)) = (spec.rotator.refresh_token_file(), &pending.refresh_token)
    {
        deliver::deliver(&Deliver::File(path.into()), name, refresh).await?;
    }
    // The new key's ID goes where the token reads it; its secret to every target below.
    if let (Some(path), Some(id)) = (key_id_file, &pending.key_id) {
        deliver::deliver(&Deliver::File(path.into()), name, id).await?;
    }
    let Some(value) = &pending.value else {
        return Ok(());
    };
    for target in &spec.deliver {
        deliver::deliver(target, name, value).await?;
        tracing::info!(token = %name, target = %target.describe(), "delivered");
    }
    Ok(())
}

/// The token as the test step probes it. A token a `kubernetes_secrets` source discovered
/// holds the value it was listed with until its source lists again, so its key is read back
/// from the Secret it was delivered to: the test proves what the source will read. Any
/// other token reads its own secret source.
async fn as_delivered<'a>(
    spec: &RotateSpec,
    token: &'a crate::schema::TokenSpec,
) -> Result<std::borrow::Cow<'a, crate::schema::TokenSpec>, String> {
    let target = spec.deliver.iter().find_map(|d| match d {
        Deliver::KubernetesSecret(k) => Some(k),
        _ => None,
    });
    let (Some(crate::secret::SecretSource::Memory(_)), Some(k)) = (&token.secret, target) else {
        return Ok(std::borrow::Cow::Borrowed(token));
    };
    let bytes = deliver::kubernetes_secret::read_key(k).await?;
    let mut read = token.clone();
    read.secret = Some(crate::secret::SecretSource::Memory(
        crate::secret::MemorySource::new(bytes),
    ));
    Ok(std::borrow::Cow::Owned(read))
}

/// Shared so the daemon's task and the subcommand use one engine type.
pub type Shared = Arc<tokio::sync::Mutex<Rotations>>;
