//! Multi-document YAML files as calicoctl users keep them, one result per resource.
//!
//! The file is split at `---` lines before any YAML parsing, so that a document with broken
//! YAML costs only itself. A document may also be a `kind: List` (or `GlobalNetworkPolicyList`
//! and the like) whose `items` are resources; each item is its own result.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::serde_field;

use super::{
    API_VERSION, CalicoResource, FieldError, Kind, ResourceError, ResourceRef, raw, validate,
};

/// Reads every resource in `text`, in order. Empty documents are skipped.
pub fn parse_documents(text: &str) -> Vec<Result<CalicoResource, ResourceError>> {
    let mut results = Vec::new();
    let mut document = 0;
    for (line, body) in split_documents(text) {
        if body
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        document += 1;
        let at = Location {
            document,
            line,
            item: None,
        };
        let value = match serde_yaml::from_str::<Value>(body) {
            Ok(Value::Null) => continue,
            Ok(value) => value,
            Err(e) => {
                results.push(Err(at.error(
                    ResourceRef::default(),
                    FieldError {
                        field: String::new(),
                        message: format!("invalid YAML: {e}"),
                        position: None,
                    },
                )));
                continue;
            }
        };
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match value.get("items") {
            Some(Value::Sequence(items)) if kind.ends_with("List") => {
                for (i, item) in items.iter().enumerate() {
                    let at = Location {
                        item: Some(i),
                        ..at
                    };
                    results.push(resource(item.clone(), at));
                }
            }
            _ => results.push(resource(value, at)),
        }
    }
    results
}

/// Reads one resource from an already parsed YAML document (not a `List`) for Palisade's
/// datastores: validated as Calico does, then checked for what Palisade can enforce
/// ([`super::unsupported`]). Errors carry no document position.
#[expect(
    clippy::result_large_err,
    reason = "the caller reports the error at once; it is never propagated further"
)]
pub fn parse_value(value: Value) -> Result<CalicoResource, ResourceError> {
    let at = Location {
        document: 1,
        line: 1,
        item: None,
    };
    let checked = resource(value, at)?;
    let errors = super::unsupported(&checked);
    if errors.is_empty() {
        return Ok(checked);
    }
    let resource = ResourceRef {
        kind: Some(checked.kind().as_str().to_owned()),
        namespace: checked.namespace().map(str::to_owned),
        name: Some(checked.name().to_owned()),
    };
    Err(at.errors(resource, errors))
}

/// `(first line, text)` of each document; separator lines are `---` (with an optional comment
/// or tag after it) and the end marker `...`.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let separator =
            bare == "---" || bare == "..." || bare.starts_with("--- ") || bare.starts_with("---\t");
        if separator {
            documents.push((start_line, text.get(start..offset).unwrap_or_default()));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    documents.push((start_line, text.get(start..).unwrap_or_default()));
    documents
}

#[derive(Debug, Clone, Copy)]
struct Location {
    document: usize,
    line: usize,
    item: Option<usize>,
}

impl Location {
    fn error(self, resource: ResourceRef, error: FieldError) -> ResourceError {
        self.errors(resource, vec![error])
    }

    fn errors(self, resource: ResourceRef, errors: Vec<FieldError>) -> ResourceError {
        ResourceError {
            document: self.document,
            line: self.line,
            item: self.item,
            resource,
            errors,
        }
    }
}

fn field_error(field: &str, message: String) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message,
        position: None,
    }
}

#[expect(
    clippy::result_large_err,
    reason = "built once per resource and stored as is in the returned list, never propagated"
)]
fn resource(value: Value, at: Location) -> Result<CalicoResource, ResourceError> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let metadata = value.get("metadata");
    let resource = ResourceRef {
        kind: text(value.get("kind")),
        namespace: text(metadata.and_then(|m| m.get("namespace"))),
        name: text(metadata.and_then(|m| m.get("name"))),
    };
    let Some(kind_name) = resource.kind.clone() else {
        return Err(at.error(resource, field_error("kind", "required".to_owned())));
    };
    let Some(kind) = Kind::from_name(&kind_name) else {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(at.error(
            resource,
            field_error(
                "kind",
                format!(
                    "unsupported kind '{kind_name}' (expected one of {})",
                    known.join(", ")
                ),
            ),
        ));
    };
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    if api_version != Some(API_VERSION) {
        return Err(at.error(
            resource,
            field_error(
                "apiVersion",
                format!(
                    "{} (expected '{API_VERSION}')",
                    api_version.map_or("required".to_owned(), |v| format!("'{v}'"))
                ),
            ),
        ));
    }
    let checked = match kind {
        Kind::GlobalNetworkPolicy => typed(value)
            .and_then(validate::global_network_policy)
            .map(CalicoResource::GlobalNetworkPolicy),
        Kind::NetworkPolicy => typed(value)
            .and_then(validate::network_policy)
            .map(CalicoResource::NetworkPolicy),
        Kind::Tier => typed(value)
            .and_then(validate::tier)
            .map(CalicoResource::Tier),
        Kind::GlobalNetworkSet => typed(value)
            .and_then(|o| validate::network_set(o, kind))
            .map(CalicoResource::GlobalNetworkSet),
        Kind::NetworkSet => typed(value)
            .and_then(|o| validate::network_set(o, kind))
            .map(CalicoResource::NetworkSet),
        Kind::HostEndpoint => typed(value)
            .and_then(validate::host_endpoint)
            .map(CalicoResource::HostEndpoint),
    };
    checked.map_err(|errors| at.errors(resource, errors))
}

/// The raw object, or the field serde could not read.
fn typed<S: DeserializeOwned>(value: Value) -> Result<raw::Object<S>, Vec<FieldError>> {
    serde_field::deserialize(value).map_err(|e| vec![field_error(&e.field, e.message)])
}

#[cfg(test)]
mod tests {
    use super::split_documents;

    #[test]
    fn splits_at_separator_lines_only() {
        let text = "a: 1\n---\nb: '---'\n--- # second\nc: 3\n...\n";
        let docs = split_documents(text);
        assert_eq!(
            docs,
            vec![(1, "a: 1\n"), (3, "b: '---'\n"), (5, "c: 3\n"), (7, "")]
        );
    }
}
