//! A small ordered YAML value and a deterministic emitter, so that generated scenarios keep
//! fields in the order Kubernetes serialises them (`apiVersion`, `kind`, `metadata`, `spec`),
//! put short mappings on one line (`{from: x/a, to: x/b, port: 80, protocol: TCP, expect: deny}`)
//! and read like hand-written manifests.

use serde_json::Value;

/// Lines longer than this are written in block style.
const WIDTH: usize = 100;

/// A YAML value whose mappings keep their insertion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yaml {
    Str(String),
    Int(i64),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl From<&str> for Yaml {
    fn from(s: &str) -> Self {
        Yaml::Str(s.to_owned())
    }
}

impl From<String> for Yaml {
    fn from(s: String) -> Self {
        Yaml::Str(s)
    }
}

impl From<i64> for Yaml {
    fn from(n: i64) -> Self {
        Yaml::Int(n)
    }
}

impl From<u16> for Yaml {
    fn from(n: u16) -> Self {
        Yaml::Int(i64::from(n))
    }
}

impl<T: Into<Yaml>> From<Vec<T>> for Yaml {
    fn from(items: Vec<T>) -> Self {
        Yaml::Seq(items.into_iter().map(Into::into).collect())
    }
}

/// A mapping from `(key, value)` pairs, in order.
pub fn map<const N: usize>(pairs: [(&str, Yaml); N]) -> Yaml {
    Yaml::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A mapping of strings to strings (labels, matchLabels), in the given order.
pub fn string_map(pairs: &[(&str, &str)]) -> Yaml {
    Yaml::Map(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Yaml::from(*v)))
            .collect(),
    )
}

impl Yaml {
    /// The same value as JSON (for comparing with what a YAML parser reads back).
    pub fn to_json(&self) -> Value {
        match self {
            Yaml::Str(s) => Value::String(s.clone()),
            Yaml::Int(n) => Value::from(*n),
            Yaml::Seq(items) => Value::Array(items.iter().map(Yaml::to_json).collect()),
            Yaml::Map(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Appends `key: value` to this mapping (no-op on other values).
    pub fn push(&mut self, key: &str, value: impl Into<Yaml>) {
        if let Yaml::Map(pairs) = self {
            pairs.push((key.to_owned(), value.into()));
        }
    }

    /// The value in flow style, on one line.
    pub fn flow(&self) -> String {
        match self {
            Yaml::Str(s) => scalar(s),
            Yaml::Int(n) => n.to_string(),
            Yaml::Seq(items) => {
                let items: Vec<String> = items.iter().map(Yaml::flow).collect();
                format!("[{}]", items.join(", "))
            }
            Yaml::Map(pairs) => {
                let pairs: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}: {}", scalar(k), v.flow()))
                    .collect();
                format!("{{{}}}", pairs.join(", "))
            }
        }
    }

    fn is_collection(&self) -> bool {
        matches!(self, Yaml::Seq(_) | Yaml::Map(_))
    }

    fn is_empty_collection(&self) -> bool {
        match self {
            Yaml::Seq(items) => items.is_empty(),
            Yaml::Map(pairs) => pairs.is_empty(),
            _ => false,
        }
    }
}

/// A string as a YAML scalar: plain when that cannot be read as anything but this string,
/// else double-quoted (JSON escapes are valid YAML).
pub fn scalar(s: &str) -> String {
    let plain_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    if plain_chars && first_ok && !reserved {
        s.to_owned()
    } else {
        serde_json::Value::String(s.to_owned()).to_string()
    }
}

/// Writes `value` as the item of a block sequence whose `- ` starts at column `indent`.
pub fn emit_seq_item(out: &mut String, indent: usize, value: &Yaml) {
    let pad = " ".repeat(indent);
    let flow = value.flow();
    if !value.is_collection() || value.is_empty_collection() || indent + 2 + flow.len() <= WIDTH {
        out.push_str(&format!("{pad}- {flow}\n"));
        return;
    }
    match value {
        Yaml::Map(pairs) => {
            for (i, (key, v)) in pairs.iter().enumerate() {
                let lead = if i == 0 {
                    format!("{pad}- ")
                } else {
                    " ".repeat(indent + 2)
                };
                emit_entry(out, &lead, indent + 2, key, v);
            }
        }
        Yaml::Seq(items) => {
            out.push_str(&format!("{pad}-\n"));
            for item in items {
                emit_seq_item(out, indent + 2, item);
            }
        }
        _ => out.push_str(&format!("{pad}- {flow}\n")),
    }
}

/// Writes the entries of a mapping at column `indent`.
pub fn emit_map(out: &mut String, indent: usize, value: &Yaml) {
    if let Yaml::Map(pairs) = value {
        let pad = " ".repeat(indent);
        for (key, v) in pairs {
            emit_entry(out, &pad, indent, key, v);
        }
    }
}

/// Writes `key: value`, `lead` being what precedes the key on its line and `indent` the
/// column of the key.
fn emit_entry(out: &mut String, lead: &str, indent: usize, key: &str, value: &Yaml) {
    let key = scalar(key);
    let flow = value.flow();
    if !value.is_collection()
        || value.is_empty_collection()
        || indent + key.len() + 2 + flow.len() <= WIDTH
    {
        out.push_str(&format!("{lead}{key}: {flow}\n"));
        return;
    }
    out.push_str(&format!("{lead}{key}:\n"));
    match value {
        Yaml::Map(_) => emit_map(out, indent + 2, value),
        Yaml::Seq(items) => {
            for item in items {
                emit_seq_item(out, indent + 2, item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_quoted_only_when_needed() {
        assert_eq!(scalar("x/a"), "x/a");
        assert_eq!(
            scalar("kubernetes.io/metadata.name"),
            "kubernetes.io/metadata.name"
        );
        assert_eq!(scalar("/agnhost"), "/agnhost");
        assert_eq!(scalar("80"), "\"80\"");
        assert_eq!(scalar("10.42.1.10/32"), "\"10.42.1.10/32\"");
        assert_eq!(scalar("--tcp"), "\"--tcp\"");
        assert_eq!(scalar("no"), "\"no\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar(""), "\"\"");
    }

    #[test]
    fn emitted_yaml_reads_back_as_the_same_value() -> anyhow::Result<()> {
        let long: Vec<Yaml> = (0..30).map(|i| Yaml::from(format!("item-{i}"))).collect();
        let value = map([
            ("apiVersion", "v1".into()),
            ("empty", Yaml::Seq(Vec::new())),
            ("emptyMap", Yaml::Map(Vec::new())),
            ("short", map([("a", 1i64.into()), ("b", "80".into())])),
            ("long", Yaml::Seq(long.clone())),
            (
                "nested",
                Yaml::Seq(vec![map([
                    ("name", "n".into()),
                    ("items", Yaml::Seq(long)),
                ])]),
            ),
        ]);
        let mut out = String::new();
        emit_map(&mut out, 0, &value);
        let back: Value = serde_yaml::from_str(&out)?;
        assert_eq!(back, value.to_json(), "{out}");
        assert!(out.contains("short: {a: 1, b: \"80\"}\n"), "{out}");
        Ok(())
    }
}
