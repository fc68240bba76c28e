//! Kind-tagged entries (`providers`, `notifiers`) decoded in two steps.
//!
//! serde's internally tagged enums buffer an entry into serde's `Content` before they know
//! its kind, and the buffer types every plain scalar the YAML 1.1 way (`12345` a number,
//! `no` a boolean) and loses the field path: a string field then refuses `client_id: 12345`
//! without saying where. Instead, [`kinds`] reads each entry's `kind` in a first pass, and
//! the second pass decodes each entry straight into its kind's struct ([`Tagged::decode`]),
//! through the tracked map access, so string fields take plain scalars and every error
//! names `providers.<name>.<field>` and its line.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor,
};

/// Where entries of a kind live in the file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Providers,
    Notifiers,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Providers => "providers",
            Section::Notifiers => "notifiers",
        }
    }
}

/// A kind-tagged config entry.
pub trait Tagged: Sized {
    /// The `kind:` values, in the order errors list them.
    const KINDS: &'static [&'static str];
    const SECTION: Section;
    /// Decodes the entry's other fields (`kind` removed) as `kind`'s struct.
    fn decode<'de, A: MapAccess<'de>>(kind: &str, fields: A) -> Result<Self, A::Error>;
}

/// Each section's kinds in document order (`None`: no readable `kind`).
#[derive(Default)]
pub struct Kinds {
    providers: VecDeque<Option<String>>,
    notifiers: VecDeque<Option<String>>,
}

impl Kinds {
    fn of(&mut self, section: Section) -> &mut VecDeque<Option<String>> {
        match section {
            Section::Providers => &mut self.providers,
            Section::Notifiers => &mut self.notifiers,
        }
    }
}

/// The error an entry gives, in a decode without [`kinds`], when `kind` is not its first
/// key: the caller runs [`kinds`] and decodes again.
pub const NEED_KINDS: &str = "internal: entry kinds needed first";

/// What a decode knows of the entries' kinds.
enum State {
    /// Not inside [`with_kinds`]: `kind` must be an entry's first key.
    Outside,
    /// A decode without the first pass: an entry whose first key is not `kind` fails
    /// with [`NEED_KINDS`].
    FirstKeyOnly,
    /// A decode after the first pass.
    Known(Kinds),
}

thread_local! {
    static STATE: RefCell<State> = const { RefCell::new(State::Outside) };
}

/// Runs `f`, a decode, with the kinds of the first pass, or without (see [`NEED_KINDS`]).
pub fn with_kinds<R>(kinds: Option<Kinds>, f: impl FnOnce() -> R) -> R {
    let state = match kinds {
        Some(k) => State::Known(k),
        None => State::FirstKeyOnly,
    };
    STATE.with(|slot| *slot.borrow_mut() = state);
    let out = f();
    STATE.with(|slot| *slot.borrow_mut() = State::Outside);
    out
}

/// The next entry's kind from the first pass (`Some(None)`: none readable), or `None`
/// without a first pass; and whether a misplaced `kind` asks for one.
fn next_kind(section: Section) -> (Option<Option<String>>, bool) {
    STATE.with(|slot| match &mut *slot.borrow_mut() {
        State::Outside => (None, false),
        State::FirstKeyOnly => (None, true),
        State::Known(k) => (Some(k.of(section).pop_front().flatten()), false),
    })
}

/// The second pass for one entry.
pub fn deserialize<'de, T: Tagged, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    let (known, ask) = next_kind(T::SECTION);
    d.deserialize_map(EntryVisitor::<T> {
        kind: known.flatten(),
        ask_for_kinds: ask,
        tagged: std::marker::PhantomData,
    })
}

struct EntryVisitor<T> {
    kind: Option<String>,
    ask_for_kinds: bool,
    tagged: std::marker::PhantomData<T>,
}

impl<'de, T: Tagged> Visitor<'de> for EntryVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping with a `kind`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let kind = match self.kind {
            Some(kind) if T::KINDS.contains(&kind.as_str()) => kind,
            Some(_) => {
                // An unknown kind: read up to `kind` so that the error names its path.
                while let Some(key) = map.next_key::<String>()? {
                    if key == "kind" {
                        map.next_value_seed(KindSeed(T::KINDS))?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                return Err(de::Error::missing_field("kind"));
            }
            None => {
                // No kind from the first pass: `kind` is missing or not a string, or the
                // first pass has not run, or the entry is decoded on its own, where
                // `kind` must come first.
                let mut first = true;
                loop {
                    let key = map.next_key::<String>()?;
                    if first && self.ask_for_kinds && key.as_deref() != Some("kind") {
                        return Err(de::Error::custom(NEED_KINDS));
                    }
                    match key {
                        None => return Err(de::Error::missing_field("kind")),
                        Some(key) if key == "kind" => {
                            let kind = map.next_value_seed(KindSeed(T::KINDS))?;
                            if first {
                                break kind;
                            }
                            return Err(de::Error::custom("`kind` must be the first key"));
                        }
                        Some(_) => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    first = false;
                }
            }
        };
        T::decode(&kind, SkipKind(map))
    }
}

/// The value of `kind`, refused with the list of kinds when unknown.
struct KindSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let kind = String::deserialize(d)?;
        if !self.0.contains(&kind.as_str()) {
            return Err(de::Error::unknown_variant(&kind, self.0));
        }
        Ok(kind)
    }
}

/// The entry's keys without `kind`, which the kind's struct does not know. Keys go
/// through the caller's `MapAccess`, so the path tracker sees every key and value.
struct SkipKind<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipKind<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            match self.0.next_key_seed(KeySeed(&mut seed))? {
                None => return Ok(None),
                Some(Some(key)) => return Ok(Some(key)),
                Some(None) => {
                    self.0.next_value::<IgnoredAny>()?;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// A key: `None` for `kind`, else the wrapped seed's value (deserialized only then).
struct KeySeed<'a, K>(&'a mut Option<K>);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Option<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let key = String::deserialize(d)?;
        if key == "kind" {
            return Ok(None);
        }
        let seed = self
            .0
            .take()
            .ok_or_else(|| de::Error::custom("key read twice"))?;
        seed.deserialize(key.into_deserializer()).map(Some)
    }
}

/// The first pass: the `kind` of every entry of each section, in document order. It stops
/// (by returning an error on purpose) once both sections are read, so an inventory written
/// after them is not parsed twice. Any problem yields what was read so far: the second
/// pass reports errors with their path and line.
pub fn kinds(text: &str) -> Kinds {
    const STOP: &str = "sections read";

    struct Top<'a>(&'a mut Kinds);
    impl<'de> Visitor<'de> for Top<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = 0;
            while let Some(key) = map.next_key::<String>()? {
                let section = [Section::Providers, Section::Notifiers]
                    .into_iter()
                    .find(|s| s.key() == key);
                match section {
                    Some(section) => {
                        map.next_value_seed(Entries(self.0.of(section)))?;
                        seen += 1;
                        if seen == 2 {
                            return Err(de::Error::custom(STOP));
                        }
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Top<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    struct Entries<'a>(&'a mut VecDeque<Option<String>>);
    impl<'de> DeserializeSeed<'de> for Entries<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key::<IgnoredAny>()?.is_some() {
                let kind = map.next_value::<KindOf>()?;
                self.0.push_back(kind.0);
            }
            Ok(())
        }
    }

    /// An entry's `kind` when it is a mapping with a string `kind`; `None` otherwise.
    struct KindOf(Option<String>);
    impl<'de> Deserialize<'de> for KindOf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(KindVisitor)
        }
    }
    struct KindVisitor;
    impl<'de> Visitor<'de> for KindVisitor {
        type Value = KindOf;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("anything")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KindOf, A::Error> {
            let mut kind = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == "kind" && kind.is_none() {
                    kind = Some(map.next_value::<String>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(KindOf(kind))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<KindOf, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(KindOf(None))
        }
        fn visit_bool<E>(self, _: bool) -> Result<KindOf, E> {
            Ok(KindOf(None))
        }
        fn visit_i64<E>(self, _: i64) -> Result<KindOf, E> {
            Ok(KindOf(None))
        }
        fn visit_u64<E>(self, _: u64) -> Result<KindOf, E> {
            Ok(KindOf(None))
        }
        fn visit_f64<E>(self, _: f64) -> Result<KindOf, E> {
            Ok(KindOf(None))
        }
        fn visit_str<E>(self, _: &str) -> Result<KindOf, E> {
            Ok(KindOf(None))
        }
        fn visit_unit<E>(self) -> Result<KindOf, E> {
            Ok(KindOf(None))
        }
        fn visit_none<E>(self) -> Result<KindOf, E> {
            Ok(KindOf(None))
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<KindOf, D::Error> {
            KindOf::deserialize(d)
        }
    }

    let mut kinds = Kinds::default();
    let _ = serde_saphyr::with_deserializer_from_str_with_options(
        text,
        super::decode_options(),
        |de| DeserializeSeed::deserialize(Top(&mut kinds), de),
    );
    kinds
}
