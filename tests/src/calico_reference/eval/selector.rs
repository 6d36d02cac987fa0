//! Calico's selector meaning, written here rather than taken from the agent: a small recursive
//! evaluator over the agent's selector AST (never `Selector::evaluate`), so that a bug in
//! either shows up as a disagreement. Separate because it is the one part of the evaluation
//! that is also called on its own (it is re-exported from the model).

use policy_agent::calico::selector::Selector;

use super::Labels;

/// Calico's selector meaning, written independently of `Selector::evaluate`: `labels` belong
/// to something namespaced (`namespaced`) or not (for `global()`).
pub fn selector_matches(selector: &Selector, labels: &Labels, namespaced: bool) -> bool {
    let get = |key: &String| labels.get(key);
    match selector {
        Selector::All => true,
        Selector::Global => !namespaced,
        Selector::Equal { key, value } => get(key) == Some(value),
        Selector::NotEqual { key, value } => get(key) != Some(value),
        Selector::Has { key } => get(key).is_some(),
        Selector::In { key, values } => match get(key) {
            Some(v) => values.contains(v),
            None => false,
        },
        Selector::NotIn { key, values } => match get(key) {
            Some(v) => !values.contains(v),
            None => true,
        },
        Selector::Contains { key, value } => get(key).is_some_and(|v| v.contains(value.as_str())),
        Selector::StartsWith { key, value } => {
            get(key).is_some_and(|v| v.starts_with(value.as_str()))
        }
        Selector::EndsWith { key, value } => get(key).is_some_and(|v| v.ends_with(value.as_str())),
        Selector::Not(inner) => !selector_matches(inner, labels, namespaced),
        Selector::And(operands) => operands
            .iter()
            .all(|operand| selector_matches(operand, labels, namespaced)),
        Selector::Or(operands) => operands
            .iter()
            .any(|operand| selector_matches(operand, labels, namespaced)),
    }
}
