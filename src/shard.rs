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
mod tests {
    use super::*;

    #[test]
    fn flags_are_validated() {
        assert!(Shard::new(0, 0).is_err());
        let err = Shard::new(2, 2).unwrap_err();
        assert!(err.contains("0 to 1, got 2"), "{err}");
        assert_eq!(Shard::new(1, 2).unwrap().index(), 1);
        assert!(Shard::ALL.is_all());
    }

    #[test]
    fn the_hash_is_pinned() {
        // Fixed values (computed independently from SHA-256): a different hash in a new
        // release would silently move tokens between running replicas.
        assert_eq!(Shard::of("deploy-bot", 1000), 184); // 0x6a40c950b2151210
        assert_eq!(Shard::of("ci-runner", 1000), 894);
        assert_eq!(Shard::of("alpha", 3), 2);
        assert_eq!(Shard::of("alpha", 1), 0);
        assert!(Shard::new(2, 3).unwrap().owns("alpha"));
        assert!(!Shard::new(0, 3).unwrap().owns("alpha"));
    }
}
