//! Calico's selector language (`role == 'db' && !has(canary)`), parsed into an AST.
//!
//! Policies, rules and network sets use these expressions where Kubernetes uses
//! `matchLabels`/`matchExpressions`. The AST is public so that a compiler can translate it; it
//! is also evaluated directly here, which tests and `explain` can use as the reference meaning.
//!
//! Semantics follow Calico's reference ("Selectors" in the v3 resource docs):
//!
//! * `k != 'v'` and `k not in {...}` hold for labels without `k`; `==`, `in`, `contains`,
//!   `starts with` and `ends with` need `k` present.
//! * `!` binds tightest, then `&&`, then `||`; the empty selector is `all()`.
//! * `global()` holds only for things outside every namespace (global network sets, host
//!   endpoints). Labels alone cannot tell, so evaluation takes a [`Scope`]; a namespaced
//!   endpoint's namespace is evaluated with `Scope::NAMESPACED`, a global resource with
//!   `Scope::GLOBAL`.

mod parser;
#[cfg(test)]
mod tests;

use std::{collections::BTreeSet, fmt, str::FromStr};

pub(crate) use self::parser::check_label_key;
pub use self::parser::{MAX_NESTING, ParseError};
use crate::model::Labels;

/// A parsed selector expression.
///
/// Strings (`value`, `values`) never contain both `'` and `"`: Calico's string literals have no
/// escapes, so such a value cannot be written, and the parser never produces one. [`Display`]
/// relies on this to print a form that parses back to an equal value.
///
/// [`Display`]: fmt::Display
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `all()`, and the empty selector.
    #[default]
    All,
    /// `global()`: matches only non-namespaced things (see [`Scope`]).
    Global,
    /// `k == 'v'`
    Equal { key: String, value: String },
    /// `k != 'v'`: also holds when `k` is absent.
    NotEqual { key: String, value: String },
    /// `has(k)`; `!has(k)` is `Not(Has)`.
    Has { key: String },
    /// `k in {'a', 'b'}`; the set may be empty, then nothing matches.
    In {
        key: String,
        values: BTreeSet<String>,
    },
    /// `k not in {'a', 'b'}`: also holds when `k` is absent.
    NotIn {
        key: String,
        values: BTreeSet<String>,
    },
    /// `k contains 's'`
    Contains { key: String, value: String },
    /// `k starts with 's'`
    StartsWith { key: String, value: String },
    /// `k ends with 's'`
    EndsWith { key: String, value: String },
    /// `!e`
    Not(Box<Selector>),
    /// `a && b && ...`, two or more operands. A parenthesised `&&` operand stays nested, so
    /// that printing and parsing again gives the same tree.
    And(Vec<Selector>),
    /// `a || b || ...`, two or more operands, nested like [`Selector::And`].
    Or(Vec<Selector>),
}

/// Where the labelled thing lives, for `global()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope {
    /// True for pods, workload endpoints, namespaces and namespaced network sets; false for
    /// global network sets and host endpoints.
    pub namespaced: bool,
}

impl Scope {
    pub const NAMESPACED: Scope = Scope { namespaced: true };
    pub const GLOBAL: Scope = Scope { namespaced: false };
}

impl Selector {
    /// Parses a selector; the empty (or blank) string is `all()`.
    pub fn parse(input: &str) -> Result<Selector, ParseError> {
        parser::parse(input)
    }

    /// Whether `labels`, belonging to something in `scope`, satisfy the expression.
    pub fn evaluate(&self, labels: &Labels, scope: Scope) -> bool {
        let value = |key: &str| labels.get(key).map(String::as_str);
        match self {
            Selector::All => true,
            Selector::Global => !scope.namespaced,
            Selector::Equal { key, value: v } => value(key) == Some(v.as_str()),
            Selector::NotEqual { key, value: v } => value(key) != Some(v.as_str()),
            Selector::Has { key } => labels.contains_key(key),
            Selector::In { key, values } => value(key).is_some_and(|v| values.contains(v)),
            Selector::NotIn { key, values } => value(key).is_none_or(|v| !values.contains(v)),
            Selector::Contains { key, value: s } => {
                value(key).is_some_and(|v| v.contains(s.as_str()))
            }
            Selector::StartsWith { key, value: s } => {
                value(key).is_some_and(|v| v.starts_with(s.as_str()))
            }
            Selector::EndsWith { key, value: s } => {
                value(key).is_some_and(|v| v.ends_with(s.as_str()))
            }
            Selector::Not(inner) => !inner.evaluate(labels, scope),
            Selector::And(operands) => operands.iter().all(|s| s.evaluate(labels, scope)),
            Selector::Or(operands) => operands.iter().any(|s| s.evaluate(labels, scope)),
        }
    }

    /// Whether the expression is exactly `all()` (or was empty).
    pub fn is_all(&self) -> bool {
        matches!(self, Selector::All)
    }

    /// The label keys the expression reads, for indexing endpoints by the labels that matter.
    pub fn keys(&self) -> BTreeSet<&str> {
        let mut keys = BTreeSet::new();
        self.collect_keys(&mut keys);
        keys
    }

    fn collect_keys<'a>(&'a self, keys: &mut BTreeSet<&'a str>) {
        match self {
            Selector::All | Selector::Global => {}
            Selector::Equal { key, .. }
            | Selector::NotEqual { key, .. }
            | Selector::Has { key }
            | Selector::In { key, .. }
            | Selector::NotIn { key, .. }
            | Selector::Contains { key, .. }
            | Selector::StartsWith { key, .. }
            | Selector::EndsWith { key, .. } => {
                keys.insert(key);
            }
            Selector::Not(inner) => inner.collect_keys(keys),
            Selector::And(operands) | Selector::Or(operands) => {
                for operand in operands {
                    operand.collect_keys(keys);
                }
            }
        }
    }
}

impl FromStr for Selector {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// A string literal: double quotes unless the value holds one (see [`Selector`]).
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains('"') {
            write!(f, "'{}'", self.0)
        } else {
            write!(f, "\"{}\"", self.0)
        }
    }
}

struct Set<'a>(&'a BTreeSet<String>);

impl fmt::Display for Set<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, value) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Quoted(value))?;
        }
        f.write_str("}")
    }
}

/// The canonical form: double-quoted strings, sorted sets, parentheses only where the tree
/// needs them. It parses back to an equal [`Selector`].
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("all()"),
            Selector::Global => f.write_str("global()"),
            Selector::Equal { key, value } => write!(f, "{key} == {}", Quoted(value)),
            Selector::NotEqual { key, value } => write!(f, "{key} != {}", Quoted(value)),
            Selector::Has { key } => write!(f, "has({key})"),
            Selector::In { key, values } => write!(f, "{key} in {}", Set(values)),
            Selector::NotIn { key, values } => write!(f, "{key} not in {}", Set(values)),
            Selector::Contains { key, value } => write!(f, "{key} contains {}", Quoted(value)),
            Selector::StartsWith { key, value } => {
                write!(f, "{key} starts with {}", Quoted(value))
            }
            Selector::EndsWith { key, value } => write!(f, "{key} ends with {}", Quoted(value)),
            Selector::Not(inner) => match **inner {
                Selector::All | Selector::Global | Selector::Has { .. } | Selector::Not(_) => {
                    write!(f, "!{inner}")
                }
                _ => write!(f, "!({inner})"),
            },
            Selector::And(operands) => write_operands(f, operands, " && ", |s| {
                matches!(s, Selector::And(_) | Selector::Or(_))
            }),
            Selector::Or(operands) => {
                write_operands(f, operands, " || ", |s| matches!(s, Selector::Or(_)))
            }
        }
    }
}

fn write_operands(
    f: &mut fmt::Formatter<'_>,
    operands: &[Selector],
    separator: &str,
    needs_parens: impl Fn(&Selector) -> bool,
) -> fmt::Result {
    for (i, operand) in operands.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        if needs_parens(operand) {
            write!(f, "({operand})")?;
        } else {
            write!(f, "{operand}")?;
        }
    }
    Ok(())
}
