//! The OpenMetrics text writer: family headers, label escaping, numbers and timestamps
//! written the way prometheus-client writes them.

use crate::derive::view::UNKNOWN_STATE;
use crate::model::{Verdict, epoch_seconds};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// A family's type, as `# TYPE` names it.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// A sample's value, written as prometheus-client wrote each type.
#[derive(Clone, Copy)]
pub(super) enum Value {
    Int(i64),
    Count(u64),
    Float(f64),
    /// Unix seconds, a float (`epoch_seconds`).
    Time(Timestamp),
}

/// The value and the newline that ends a sample.
#[inline]
pub(super) fn push_value(out: &mut String, v: Value) {
    match v {
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(i)),
        Value::Count(n) => out.push_str(itoa::Buffer::new().format(n)),
        Value::Float(f) => return push_f64(out, f),
        Value::Time(t) => return push_timestamp(out, t),
    }
    out.push('\n');
}

/// A family of a few series: its header, then each `(labels, value)`; a counter's samples
/// are named `<name>_total`, and a series without labels has no braces.
pub(super) fn small_family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: Kind,
    samples: impl IntoIterator<Item = (String, Value)>,
) {
    header(out, name, help, kind);
    for (labels, value) in samples {
        out.push_str(name);
        if kind == Kind::Counter {
            out.push_str("_total");
        }
        if !labels.is_empty() {
            out.push('{');
            out.push_str(&labels);
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
    }
}

/// A family with a series per provider (or notifier) that has a value, labelled with its
/// name: `(label, items)` names the label and the map it comes from.
pub(super) fn keyed_family<T>(
    out: &mut String,
    name: &str,
    help: &str,
    kind: Kind,
    (label, items): (&str, &BTreeMap<String, T>),
    value: impl Fn(&T) -> Option<Value>,
) {
    let samples = items
        .iter()
        .filter_map(|(key, item)| Some((labels(&[(label, key)]), value(item)?)));
    small_family(out, name, help, kind, samples);
}

/// `# HELP` and `# TYPE` of a family.
pub(super) fn header(out: &mut String, name: &str, help: &str, kind: Kind) {
    for part in [
        "# HELP ",
        name,
        " ",
        help,
        "\n# TYPE ",
        name,
        " ",
        kind.as_str(),
        "\n",
    ] {
        out.push_str(part);
    }
}

/// `key="value"`, the value escaped as the text format requires (`\\`, `\"`, `\n`).
#[inline]
pub(super) fn label(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str("=\"");
    if value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
    } else {
        out.push_str(value);
    }
    out.push('"');
}

/// `,state="..."} ` for each state of `api_token_state`, in the order they are written.
pub(super) static STATE_CLOSES: std::sync::LazyLock<Vec<(&'static str, String)>> =
    std::sync::LazyLock::new(|| {
        let states = Verdict::ALL.iter().map(|v| v.as_str());
        states
            .chain([UNKNOWN_STATE])
            .map(|state| {
                let mut close = String::from(",");
                label(&mut close, "state", state);
                close.push_str("} ");
                (state, close)
            })
            .collect()
    });

/// The start of a per-token series up to its value's space: `open` is `name{`, `close`
/// whatever follows the token's labels (`} `, or `,` before another label).
#[inline]
pub(super) fn token_series(out: &mut String, open: &str, labels: &str, close: &str) {
    out.push_str(open);
    out.push_str(labels);
    out.push_str(close);
}

/// A float as `dtoa` writes it, followed by a newline. Whole numbers (timestamps, seconds)
/// take a shortcut through `itoa` that writes the same text, `1803154033.0`, in a fraction
/// of the time; `whole_floats_are_written_as_dtoa_writes_them` holds it to that.
#[inline]
pub(super) fn push_f64(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
        out.push_str(itoa::Buffer::new().format(v as i64));
        out.push_str(".0\n");
    } else {
        out.push_str(dtoa::Buffer::new().format(v));
        out.push('\n');
    }
}

/// A timestamp in Unix seconds, as `push_f64(epoch_seconds(t))` writes it, from the integer
/// milliseconds: the shortest decimal that reads back as `ms / 1000.0` is the milliseconds'
/// own decimal, so `1800000000.25` comes out without `dtoa`'s search
/// (`timestamps_are_written_as_dtoa_writes_them`).
#[inline]
pub(super) fn push_timestamp(out: &mut String, t: Timestamp) {
    let ms = t.as_millisecond();
    if !(0..100_000_000_000_000).contains(&ms) {
        return push_f64(out, epoch_seconds(t));
    }
    out.push_str(itoa::Buffer::new().format(ms / 1000));
    let frac = ms % 1000;
    if frac == 0 {
        out.push_str(".0\n");
        return;
    }
    let digits = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let mut len = 4;
    while digits[len - 1] == b'0' {
        len -= 1;
    }
    out.push_str(std::str::from_utf8(&digits[..len]).expect("ASCII digits"));
    out.push('\n');
}

/// `key="value",...`: the labels of a series, escaped.
pub(super) fn labels(pairs: &[(&str, &str)]) -> String {
    let mut l = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            l.push(',');
        }
        label(&mut l, k, v);
    }
    l
}

/// The value line of `api_token_state_code` for each index of [`STATE_CLOSES`]. The codes
/// are a contract the shipped rules compare against: the verdicts that say the token is
/// alive come first (0 to 2), then invalid (3), so "alive at some point in the last hour" is
/// `min_over_time(...) <= 2` and "a conclusive answer" is `<= 3`, without a subquery.
pub(super) const STATE_CODES: [&str; 8] = {
    // Indexed as STATE_CLOSES: Verdict::ALL (valid, invalid, forbidden, rate_limited,
    // unreachable, misconfigured, unverified), then unknown.
    ["0\n", "3\n", "2\n", "4\n", "5\n", "6\n", "1\n", "7\n"]
};
