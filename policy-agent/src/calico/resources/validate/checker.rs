//! The error collector every resource's check writes to, and the one check every selector
//! field shares: it parses, and `global()` appears only where Calico allows it.

use crate::calico::{resources::FieldError, selector::Selector};

/// Collects the errors of one resource.
#[derive(Default)]
pub(super) struct Checker {
    pub(super) errors: Vec<FieldError>,
}

/// Where `global()` may appear in a selector field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum GlobalUse {
    /// Everywhere but a rule's `namespaceSelector`.
    Forbidden,
    /// A rule's `namespaceSelector`: `global()` on its own only.
    Alone,
}

impl Checker {
    pub(super) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
            position: None,
        });
    }

    pub(super) fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }

    /// A selector field; None when omitted or empty (Go's zero value, which Calico treats as
    /// absent), or when it does not parse (then the error is recorded).
    pub(super) fn selector(
        &mut self,
        field: &str,
        text: Option<&str>,
        global: GlobalUse,
    ) -> Option<Selector> {
        let text = text.filter(|t| !t.is_empty())?;
        let selector = match Selector::parse(text) {
            Ok(selector) => selector,
            Err(e) => {
                self.errors.push(FieldError {
                    field: field.to_owned(),
                    message: e.to_string(),
                    position: Some(e.position),
                });
                return None;
            }
        };
        if uses_global(&selector) {
            match global {
                GlobalUse::Forbidden => self.error(
                    field,
                    "global() can only be used in a rule's namespaceSelector",
                ),
                GlobalUse::Alone if selector != Selector::Global => {
                    self.error(field, "global() cannot be combined with other selectors")
                }
                GlobalUse::Alone => {}
            }
        }
        Some(selector)
    }
}

fn uses_global(selector: &Selector) -> bool {
    match selector {
        Selector::Global => true,
        Selector::Not(inner) => uses_global(inner),
        Selector::And(operands) | Selector::Or(operands) => operands.iter().any(uses_global),
        _ => false,
    }
}
