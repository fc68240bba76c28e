//! [`Extra`]: a provider's facts worth showing, as a small sorted list with a map's methods.

use serde::Serialize;

/// Provider-specific facts (`renewable`, `ttl`, `declared`...), sorted by name. A list, not
/// a `BTreeMap`: a map allocates a node of eleven entries (over 500 bytes) for the usual one
/// or two, and the store keeps one per token. The methods are the map's that providers use,
/// and it serializes as the same JSON object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extra(Vec<(String, String)>);

impl Extra {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Sets `key`, returning the value it replaces.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// Gives back what the list grew by and does not use: it is kept with the token.
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl std::ops::Index<&str> for Extra {
    type Output = String;
    fn index(&self, key: &str) -> &String {
        self.get(key).expect("no such extra fact")
    }
}

impl Extend<(String, String)> for Extra {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, items: I) {
        for (k, v) in items {
            self.insert(k, v);
        }
    }
}

impl FromIterator<(String, String)> for Extra {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(items: I) -> Self {
        let mut e = Extra::default();
        e.extend(items);
        e
    }
}

impl<const N: usize> From<[(String, String); N]> for Extra {
    fn from(items: [(String, String); N]) -> Self {
        items.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Extra {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Extra {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests;
