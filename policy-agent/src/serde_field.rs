//! Which field of a document a serde error is about.
//!
//! Every reader of user objects (Calico resources, network-policy-api policies, Kubernetes
//! objects from manifest files) goes through [`deserialize`], so that a refusal names the same
//! field however the object arrived.

use serde::{Deserializer, de::DeserializeOwned};

/// A serde refusal: the field it is about (empty: the document as a whole) and serde's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerdeError {
    pub field: String,
    pub message: String,
}

/// Deserializes `document`, naming the field of the first error.
pub fn deserialize<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    document: D,
) -> Result<T, SerdeError> {
    serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        SerdeError {
            field: error_field(&path, &message),
            message,
        }
    })
}

/// The field a serde error is about: its path, or, for an unknown or missing field, the field
/// the message names (serde_path_to_error's path stops at the object holding it; for an
/// unknown key `""` it is no path at all, which would read as "the whole document"). Empty for
/// the document as a whole.
pub fn error_field(path: &str, message: &str) -> String {
    let root = path.is_empty() || path == ".";
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name)
    };
    if let Some(name) = named("missing field `") {
        return if root {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
    }
    match named("unknown field `") {
        // The empty key, quoted so that the field is not mistaken for the document.
        Some("") if root => "\"\"".to_owned(),
        Some("") if path.ends_with('.') => format!("{path}\"\""),
        Some(name) if root => name.to_owned(),
        _ if root => String::new(),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::error_field;

    #[test]
    fn serde_errors_name_the_field() {
        assert_eq!(
            error_field("", "unknown field ``, expected one of `spec`"),
            "\"\""
        );
        assert_eq!(
            error_field(".", "unknown field `foo`, expected `spec`"),
            "foo"
        );
        assert_eq!(error_field("foo", "unknown field `foo`"), "foo");
        assert_eq!(error_field("spec.", "unknown field ``"), "spec.\"\"");
        assert_eq!(error_field(".", "missing field `spec`"), "spec");
        assert_eq!(error_field("spec", "missing field `x`"), "spec.x");
        assert_eq!(error_field(".", "invalid type: sequence"), "");
        assert_eq!(
            error_field("spec.order", "invalid type: string"),
            "spec.order"
        );
    }
}
