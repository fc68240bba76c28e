//! How a secret source is written in a config file: `env`, `file` or `exec`, never the
//! value inline, and no key whose name or value could be a token quoted back in an error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::*;

/// The message for a token written inline. It must not quote the value.
pub const INLINE_SECRET_MESSAGE: &str = "a secret must not be written inline in the config file; \
     use {env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) env: Option<String>,
    pub(super) file: Option<PathBuf>,
    pub(super) exec: Option<Vec<String>>,
    #[serde(default, with = "crate::model::duration::duration_opt")]
    pub(super) timeout: Option<Duration>,
    #[serde(default)]
    pub(super) exec_env: BTreeMap<String, String>,
}

/// The message for a key a secret source does not know. serde's own message quotes the key,
/// and a token pasted as a key (`secret: {ghp_...: x}`) would be echoed in `--config.check`,
/// the log and the `/-/reload` answer; this one quotes nothing.
pub const UNKNOWN_SECRET_KEY_MESSAGE: &str = "a secret source takes the keys env, file, exec, \
     timeout and exec_env; another key is not shown, as it may be a token";

pub(super) const SOURCE_KEYS: [&str; 5] = ["env", "file", "exec", "timeout", "exec_env"];

/// A secret source's keys, each checked against [`SOURCE_KEYS`] before serde sees it.
pub(super) struct KnownKeys<A>(pub(super) A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for KnownKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(KnownKey(seed))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

pub(super) struct KnownKey<K>(pub(super) K);

impl<'de, K: de::DeserializeSeed<'de>> de::DeserializeSeed<'de> for KnownKey<K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        let key =
            String::deserialize(d).map_err(|_| de::Error::custom(UNKNOWN_SECRET_KEY_MESSAGE))?;
        if !SOURCE_KEYS.contains(&key.as_str()) {
            return Err(de::Error::custom(UNKNOWN_SECRET_KEY_MESSAGE));
        }
        self.0
            .deserialize(de::IntoDeserializer::<D::Error>::into_deserializer(key))
    }
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;

        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = SecretSource;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a secret source: {env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]}",
                )
            }

            // Every scalar is refused with the same message, which quotes nothing.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let raw =
                    RawSource::deserialize(de::value::MapAccessDeserializer::new(KnownKeys(map)))?;
                let exec_only = raw.timeout.is_some() || !raw.exec_env.is_empty();
                match (raw.env, raw.file, raw.exec) {
                    (Some(name), None, None) if !exec_only => {
                        if name.is_empty() {
                            return Err(de::Error::custom("env: the variable name is empty"));
                        }
                        Ok(SecretSource::Env(name))
                    }
                    (None, Some(path), None) if !exec_only => {
                        Ok(SecretSource::File(FileSource::new(path)))
                    }
                    (None, None, Some(argv)) => {
                        if argv.is_empty() || argv[0].is_empty() {
                            return Err(de::Error::custom("exec: the command is empty"));
                        }
                        Ok(SecretSource::Exec(ExecSource {
                            argv,
                            timeout: raw.timeout.unwrap_or(DEFAULT_EXEC_TIMEOUT),
                            env: raw.exec_env,
                        }))
                    }
                    (None, None, None) => Err(de::Error::custom(
                        "a secret source needs one of env, file or exec",
                    )),
                    (_, _, None) if exec_only => Err(de::Error::custom(
                        "timeout and exec_env apply only to an exec source",
                    )),
                    _ => Err(de::Error::custom(
                        "a secret source takes exactly one of env, file or exec",
                    )),
                }
            }
        }

        deserializer.deserialize_any(SourceVisitor)
    }
}
