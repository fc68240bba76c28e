//! A small XML reader for the AWS Query protocol's answers (STS and IAM): elements, their
//! text and children, nothing else. Pure and bounded.
//!
//! It refuses what those answers never hold and what would make a reader unsafe: a DOCTYPE
//! (so no entity is ever defined, let alone expanded), entities other than the five
//! predefined ones and character references, nesting deeper than [`MAX_DEPTH`], more than
//! [`MAX_ELEMENTS`] elements, text that is not UTF-8. Namespace prefixes are dropped from
//! names (`<ns:Code>` is `Code`); attributes are read past and not kept.

/// Deeper than any AWS answer (five levels) by a wide margin.
pub const MAX_DEPTH: usize = 32;

/// Elements in one document: a `ListAccessKeys` page of 100 keys has under 700.
pub const MAX_ELEMENTS: usize = 20_000;

/// One element: its local name, its own text (the text directly inside it, joined) and its
/// child elements in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at a path of child names below this one.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    /// The trimmed text of the element at `path`, when there is one and it is not empty.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path)
            .map(|e| e.text.trim())
            .filter(|t| !t.is_empty())
    }
}

/// Reads a document into its root element; the error says what was wrong, never quoting
/// the body.
pub fn parse(body: &[u8]) -> Result<Element, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8 text")?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader {
        rest: text,
        stack: Vec::new(),
        root: None,
        elements: 0,
    };
    reader.run()?;
    reader.root.ok_or("the answer holds no XML element")
}

struct Reader<'a> {
    rest: &'a str,
    /// Open elements, each with its full (prefixed) name for the end-tag check.
    stack: Vec<(String, Element)>,
    root: Option<Element>,
    elements: usize,
}

impl<'a> Reader<'a> {
    fn run(&mut self) -> Result<(), &'static str> {
        while !self.rest.is_empty() {
            if let Some(after) = self.rest.strip_prefix("<?") {
                let end = after
                    .find("?>")
                    .ok_or("an unterminated processing instruction")?;
                self.rest = &after[end + 2..];
            } else if let Some(after) = self.rest.strip_prefix("<!--") {
                let end = after.find("-->").ok_or("an unterminated comment")?;
                self.rest = &after[end + 3..];
            } else if let Some(after) = self.rest.strip_prefix("<![CDATA[") {
                let end = after.find("]]>").ok_or("an unterminated CDATA section")?;
                self.text(&after[..end], false)?;
                self.rest = &after[end + 3..];
            } else if self.rest.starts_with("<!") {
                return Err("a DOCTYPE or declaration, which AWS answers never hold");
            } else if let Some(after) = self.rest.strip_prefix("</") {
                let end = after.find('>').ok_or("an unterminated end tag")?;
                let name = after[..end].trim_end();
                self.rest = &after[end + 1..];
                self.close(name)?;
            } else if let Some(after) = self.rest.strip_prefix('<') {
                self.rest = after;
                self.open()?;
            } else {
                let end = self.rest.find('<').unwrap_or(self.rest.len());
                let chunk = &self.rest[..end];
                self.rest = &self.rest[end..];
                self.text(chunk, true)?;
            }
        }
        if !self.stack.is_empty() {
            return Err("the answer ends inside an element");
        }
        Ok(())
    }

    /// A start tag, `<` already read: name, attributes (read past), `>` or `/>`.
    fn open(&mut self) -> Result<(), &'static str> {
        let name_end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .ok_or("an unterminated start tag")?;
        let name = &self.rest[..name_end];
        if !is_name(name) {
            return Err("a start tag without a valid name");
        }
        let mut rest = &self.rest[name_end..];
        // Attributes: name="value" or name='value'; a quoted value may hold `>`.
        let self_closing = loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix("/>") {
                rest = r;
                break true;
            }
            if let Some(r) = rest.strip_prefix('>') {
                rest = r;
                break false;
            }
            let eq = rest.find('=').ok_or("an attribute without a value")?;
            if !is_name(rest[..eq].trim_end()) {
                return Err("an attribute without a valid name");
            }
            let value = rest[eq + 1..].trim_start();
            let quote = value.chars().next().ok_or("an unterminated start tag")?;
            if quote != '"' && quote != '\'' {
                return Err("an attribute value without quotes");
            }
            let close = value[1..]
                .find(quote)
                .ok_or("an unterminated attribute value")?;
            rest = &value[1 + close + 1..];
        };
        self.rest = rest;
        if self.root.is_some() {
            return Err("content after the root element");
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err("elements nested deeper than an AWS answer ever is");
        }
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err("more elements than an AWS answer ever holds");
        }
        let element = Element {
            name: local(name).to_string(),
            ..Element::default()
        };
        if self_closing {
            self.finish(element);
        } else {
            self.stack.push((name.to_string(), element));
        }
        Ok(())
    }

    fn close(&mut self, name: &str) -> Result<(), &'static str> {
        let (open, element) = self.stack.pop().ok_or("an end tag without a start tag")?;
        if open != name {
            return Err("an end tag that does not match its start tag");
        }
        self.finish(element);
        Ok(())
    }

    fn finish(&mut self, element: Element) {
        match self.stack.last_mut() {
            Some((_, parent)) => parent.children.push(element),
            None => self.root = Some(element),
        }
    }

    /// Text between tags (`escaped`: references to decode) or of a CDATA section.
    fn text(&mut self, chunk: &str, escaped: bool) -> Result<(), &'static str> {
        let Some((_, element)) = self.stack.last_mut() else {
            return if chunk.trim().is_empty() {
                Ok(())
            } else {
                Err("text outside the root element")
            };
        };
        if escaped {
            unescape(chunk, &mut element.text)
        } else {
            element.text.push_str(chunk);
            Ok(())
        }
    }
}

/// A tag or attribute name: no empty name, no character XML names cannot hold.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// A name without its namespace prefix.
fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

/// Appends `text` with the five predefined entities and character references decoded.
fn unescape(text: &str, out: &mut String) -> Result<(), &'static str> {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .filter(|&i| i <= 10)
            .ok_or("an unterminated entity reference")?;
        let entity = &after[..semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    return Err("an entity XML does not predefine");
                };
                code.and_then(char::from_u32)
                    .filter(|&c| c != '\0')
                    .ok_or("a character reference to no character")?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests;
