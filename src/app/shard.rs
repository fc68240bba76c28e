//! Sharding: which tokens of the inventory this replica probes and exports. Pure.
//!
//! With `--shard.count N --shard.index I`, a replica keeps the tokens whose name hashes to
//! `I` modulo `N`. The hash is the first 8 bytes of the SHA-256 of the name, big-endian:
//! stable across processes, machines and releases (std's `DefaultHasher` is seeded at
//! random per process, so two replicas would disagree), and it depends on nothing but the
//! name, so adding or removing a token never moves another one.

use sha2::{Digest, Sha256};

use crate::config::Config;

/// This replica's part of the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// The whole inventory: one replica.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` (0-based) of `count`. Refuses a count of 0 and an index past the end.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err("--shard.count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "--shard.index must be below --shard.count ({count}): shards are numbered 0 to {}, got {index}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when this shard is the whole inventory.
    pub fn is_all(&self) -> bool {
        self.count == 1
    }

    /// The shard a token name belongs to among `count` shards (`count` >= 1).
    pub fn of(name: &str, count: u64) -> u64 {
        let digest = Sha256::digest(name.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % count
    }

    /// Whether this replica probes the token called `name`.
    pub fn owns(&self, name: &str) -> bool {
        Shard::of(name, self.count) == self.index
    }

    /// Keeps only this shard's tokens. Providers stay: they cost nothing unused, and a
    /// provider's settings are validated the same way on every replica.
    pub fn apply(&self, mut config: Config) -> Config {
        if !self.is_all() {
            config.tokens.retain(|t| self.owns(&t.name));
            // Two replicas must never rotate the same token.
            config.rotations.retain(|name, _| self.owns(name));
        }
        config
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests;
