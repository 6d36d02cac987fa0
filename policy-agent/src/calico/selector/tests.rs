//! Unit tests for each operator and error, and property tests: printing round-trips, the
//! evaluator agrees with a direct reading of the expression, and no input makes the parser
//! panic.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::{Scope, Selector};
use crate::model::Labels;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(s: &str) -> Selector {
    match Selector::parse(s) {
        Ok(selector) => selector,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn eval(s: &str, pairs: &[(&str, &str)]) -> bool {
    parse(s).evaluate(&labels(pairs), Scope::NAMESPACED)
}

fn error(s: &str) -> String {
    match Selector::parse(s) {
        Ok(selector) => panic!("{s:?} should not parse, got {selector:?}"),
        Err(e) => e.to_string(),
    }
}

fn eq(key: &str, value: &str) -> Selector {
    Selector::Equal {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[test]
fn equality_needs_the_key() {
    assert!(eval("role == 'db'", &[("role", "db")]));
    assert!(!eval("role == 'db'", &[("role", "web")]));
    assert!(!eval("role == 'db'", &[]));
    assert!(eval("role == \"\"", &[("role", "")]));
    assert!(!eval("role == \"\"", &[]));
}

#[test]
fn inequality_holds_without_the_key() {
    assert!(!eval("role != 'db'", &[("role", "db")]));
    assert!(eval("role != 'db'", &[("role", "web")]));
    assert!(eval("role != 'db'", &[]));
}

#[test]
fn has_and_not_has() {
    assert!(eval("has(role)", &[("role", "")]));
    assert!(!eval("has(role)", &[("other", "x")]));
    assert!(eval("!has(role)", &[]));
    assert!(!eval("!has( role )", &[("role", "x")]));
    assert_eq!(
        parse("!has(role)"),
        Selector::Not(Box::new(Selector::Has {
            key: "role".to_owned()
        }))
    );
}

#[test]
fn set_membership() {
    assert!(eval("env in {'prod', \"dev\"}", &[("env", "dev")]));
    assert!(!eval("env in {'prod','dev'}", &[("env", "test")]));
    assert!(!eval("env in {'prod','dev'}", &[]));
    assert!(!eval("env in {}", &[("env", "")]));
    assert!(eval("env not in {'prod','dev'}", &[("env", "test")]));
    assert!(!eval("env not in {'prod','dev'}", &[("env", "prod")]));
    assert!(eval("env not in {'prod','dev'}", &[]));
    assert!(eval("env   not   in{}", &[("env", "x")]));
    assert_eq!(
        parse("env in {'b', 'a', 'b'}"),
        Selector::In {
            key: "env".to_owned(),
            values: set(&["a", "b"])
        }
    );
}

#[test]
fn string_operators_need_the_key() {
    assert!(eval("image contains 'nginx'", &[("image", "my-nginx-1")]));
    assert!(!eval("image contains 'nginx'", &[("image", "apache")]));
    assert!(!eval("image contains ''", &[]));
    assert!(eval("image contains ''", &[("image", "")]));
    assert!(eval("zone starts with 'eu-'", &[("zone", "eu-west")]));
    assert!(!eval("zone starts with 'eu-'", &[("zone", "us-east")]));
    assert!(!eval("zone starts with 'eu-'", &[]));
    assert!(eval(
        "host ends with '.internal'",
        &[("host", "a.internal")]
    ));
    assert!(!eval(
        "host ends with '.internal'",
        &[("host", "a.example")]
    ));
    assert!(!eval("host ends   with '.internal'", &[]));
}

#[test]
fn all_empty_and_global() {
    assert_eq!(parse(""), Selector::All);
    assert_eq!(parse("  \t "), Selector::All);
    assert_eq!(parse("all()"), Selector::All);
    assert_eq!(parse("all ( )"), Selector::All);
    assert!(eval("all()", &[]));
    let global = parse("global()");
    assert!(global.evaluate(&Labels::new(), Scope::GLOBAL));
    assert!(!global.evaluate(&Labels::new(), Scope::NAMESPACED));
    let not_global = parse("!global()");
    assert!(not_global.evaluate(&Labels::new(), Scope::NAMESPACED));
}

#[test]
fn keys_with_prefixes_and_keyword_names() {
    assert!(eval(
        "projectcalico.org/namespace == 'prod'",
        &[("projectcalico.org/namespace", "prod")]
    ));
    // Function and operator names are label keys where a key is expected.
    assert!(eval(
        "has == 'x' && in == 'y' && all != 'z'",
        &[("has", "x"), ("in", "y")]
    ));
    assert!(eval("has(has)", &[("has", "")]));
}

#[test]
fn precedence_not_and_or() {
    let expected = Selector::Or(vec![
        eq("a", "x"),
        Selector::And(vec![eq("b", "y"), eq("c", "z")]),
    ]);
    assert_eq!(parse("a == 'x' || b == 'y' && c == 'z'"), expected);
    assert_eq!(parse("a == 'x' || (b == 'y' && c == 'z')"), expected);
    assert_eq!(
        parse("(a == 'x' || b == 'y') && c == 'z'"),
        Selector::And(vec![
            Selector::Or(vec![eq("a", "x"), eq("b", "y")]),
            eq("c", "z"),
        ])
    );
    // `!` binds to the comparison, not to the whole conjunction.
    assert_eq!(
        parse("!a == 'x' && b == 'y'"),
        Selector::And(vec![Selector::Not(Box::new(eq("a", "x"))), eq("b", "y")])
    );
    assert!(eval("a == 'x' || b == 'y' && c == 'z'", &[("a", "x")]));
    assert!(!eval("(a == 'x' || b == 'y') && c == 'z'", &[("a", "x")]));
    assert_eq!(
        parse("a == '1' && b == '2' && c == '3'"),
        Selector::And(vec![eq("a", "1"), eq("b", "2"), eq("c", "3")])
    );
}

#[test]
fn display_is_canonical() {
    let s = parse("a=='x'||!(b=='y'&&c in{'q','p'})&&!has(d)||(e!=\"f\"||global())");
    assert_eq!(
        s.to_string(),
        "a == \"x\" || !(b == \"y\" && c in {\"p\", \"q\"}) && !has(d) || (e != \"f\" || global())"
    );
    assert_eq!(parse(&s.to_string()), s);
    assert_eq!(parse("a == 'say \"hi\"'").to_string(), "a == 'say \"hi\"'");
    assert_eq!(parse("").to_string(), "all()");
}

#[test]
fn keys_lists_every_label_read() {
    let s = parse("a == 'x' || !has(b) && c in {} || global()");
    assert_eq!(s.keys(), BTreeSet::from(["a", "b", "c"]));
}

#[test]
fn errors_name_position_and_expectation() {
    assert_eq!(
        error("role == db"),
        "at 8: expected a quoted string after '==', found 'd'"
    );
    assert_eq!(
        error("role == 'db"),
        "at 8: unterminated string: no closing '"
    );
    assert_eq!(
        error("role = 'db'"),
        "at 5: expected an operator after 'role' ('==', '!=', 'in', 'not in', 'contains', \
         'starts with' or 'ends with'), found '='"
    );
    assert_eq!(
        error("a == 'x' &&"),
        "at 11: expected a label key, has(), all(), global(), '!' or '(', found the end of the \
         selector"
    );
    assert_eq!(
        error("(a == 'x'"),
        "at 9: expected ')' to close the '(', found the end of the selector"
    );
    assert_eq!(
        error("a == 'x' b == 'y'"),
        "at 9: expected '&&', '||' or the end of the selector, found 'b'"
    );
    assert_eq!(
        error("a in {'x' 'y'}"),
        "at 10: expected ',' or '}' in the set, found '''"
    );
    assert_eq!(
        error("a in 'x'"),
        "at 5: expected '{' after 'in', found '''"
    );
    assert_eq!(
        error("a not 'x'"),
        "at 6: expected 'in' after 'not', found '''"
    );
    assert_eq!(
        error("a starts 'x'"),
        "at 9: expected 'with' after 'starts', found '''"
    );
    assert_eq!(
        error("has(a"),
        "at 5: expected ')' to close has(, found the end of the selector"
    );
    assert_eq!(error("has()"), "at 4: expected a label key, found ')'");
    assert_eq!(
        error("a == 'x' && -bad == 'y'"),
        "at 12: invalid label key '-bad': the name must be alphanumeric at both ends, with only \
         '-', '_' and '.' inside"
    );
    assert_eq!(
        error("Example.com/a == 'y'"),
        "at 0: invalid label key 'Example.com/a': the prefix 'Example.com' is not a DNS \
         subdomain (lower-case alphanumeric labels, '-' inside, separated by '.')"
    );
    assert_eq!(
        error("a == 'x' | b == 'y'"),
        "at 9: expected '&&', '||' or the end of the selector, found '|'"
    );
    let e = Selector::parse("a == 'é' && ?").err();
    assert_eq!(e.map(|e| e.position), Some(13));
}

// ---- property tests ----

fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("in".to_owned()),
        Just("has".to_owned()),
        "[a-z0-9]([a-z0-9.-]{0,6}[a-z0-9])?/[A-Za-z0-9]([A-Za-z0-9._-]{0,6}[A-Za-z0-9])?",
        "[A-Za-z0-9]([A-Za-z0-9._-]{0,8}[A-Za-z0-9])?",
    ]
    .prop_filter(
        "DNS labels must not start or end with '-' or be empty",
        |k| super::parser::check_label_key(k).is_ok(),
    )
}

fn value_strategy() -> impl Strategy<Value = String> {
    "[a-zé'\" {}()|&!=,]{0,5}".prop_filter("a literal cannot hold both quotes", |v| {
        !(v.contains('\'') && v.contains('"'))
    })
}

fn selector_strategy() -> impl Strategy<Value = Selector> {
    let leaf = prop_oneof![
        Just(Selector::All),
        Just(Selector::Global),
        (key_strategy(), value_strategy()).prop_map(|(key, value)| Selector::Equal { key, value }),
        (key_strategy(), value_strategy())
            .prop_map(|(key, value)| Selector::NotEqual { key, value }),
        key_strategy().prop_map(|key| Selector::Has { key }),
        (
            key_strategy(),
            prop::collection::btree_set(value_strategy(), 0..4)
        )
            .prop_map(|(key, values)| Selector::In { key, values }),
        (
            key_strategy(),
            prop::collection::btree_set(value_strategy(), 0..4)
        )
            .prop_map(|(key, values)| Selector::NotIn { key, values }),
        (key_strategy(), value_strategy())
            .prop_map(|(key, value)| Selector::Contains { key, value }),
        (key_strategy(), value_strategy())
            .prop_map(|(key, value)| Selector::StartsWith { key, value }),
        (key_strategy(), value_strategy())
            .prop_map(|(key, value)| Selector::EndsWith { key, value }),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| Selector::Not(Box::new(s))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Selector::And),
            prop::collection::vec(inner, 2..4).prop_map(Selector::Or),
        ]
    })
}

/// An expression kept apart from [`Selector`], with its own meaning and its own printer, to
/// check the parser and evaluator against.
#[derive(Debug, Clone)]
enum Expr {
    All,
    Global,
    Eq(&'static str, &'static str),
    Ne(&'static str, &'static str),
    Has(&'static str),
    In(&'static str, Vec<&'static str>),
    NotIn(&'static str, Vec<&'static str>),
    Contains(&'static str, &'static str),
    Starts(&'static str, &'static str),
    Ends(&'static str, &'static str),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

const KEYS: [&str; 3] = ["a", "b", "example.com/c"];
const VALUES: [&str; 5] = ["", "x", "y", "xy", "yx"];

fn direct(expr: &Expr, labels: &BTreeMap<&str, &str>, namespaced: bool) -> bool {
    let get = |k: &str| labels.get(k).copied();
    match expr {
        Expr::All => true,
        Expr::Global => !namespaced,
        Expr::Eq(k, v) => get(k) == Some(*v),
        Expr::Ne(k, v) => get(k) != Some(*v),
        Expr::Has(k) => get(k).is_some(),
        Expr::In(k, vs) => match get(k) {
            Some(v) => vs.contains(&v),
            None => false,
        },
        Expr::NotIn(k, vs) => match get(k) {
            Some(v) => !vs.contains(&v),
            None => true,
        },
        Expr::Contains(k, s) => get(k).is_some_and(|v| v.contains(s)),
        Expr::Starts(k, s) => get(k).is_some_and(|v| v.starts_with(s)),
        Expr::Ends(k, s) => get(k).is_some_and(|v| v.ends_with(s)),
        Expr::Not(e) => !direct(e, labels, namespaced),
        Expr::And(a, b) => direct(a, labels, namespaced) && direct(b, labels, namespaced),
        Expr::Or(a, b) => direct(a, labels, namespaced) || direct(b, labels, namespaced),
    }
}

/// Prints with a mix of quote styles and spacing, and parenthesises only where precedence
/// demands, so that the parser's precedence is exercised too.
fn render(expr: &Expr, single: bool) -> String {
    let q = |v: &str| {
        if single {
            format!("'{v}'")
        } else {
            format!("\"{v}\"")
        }
    };
    let list = |vs: &[&str]| vs.iter().map(|v| q(v)).collect::<Vec<_>>().join(" ,");
    let atom = |e: &Expr| match e {
        Expr::And(..) | Expr::Or(..) => format!("( {} )", render(e, !single)),
        _ => render(e, !single),
    };
    match expr {
        Expr::All => "all()".to_owned(),
        Expr::Global => "global( )".to_owned(),
        Expr::Eq(k, v) => format!("{k}=={}", q(v)),
        Expr::Ne(k, v) => format!("{k} != {}", q(v)),
        Expr::Has(k) => format!("has({k})"),
        Expr::In(k, vs) => format!("{k} in {{{}}}", list(vs)),
        Expr::NotIn(k, vs) => format!("{k} not  in{{{}}}", list(vs)),
        Expr::Contains(k, s) => format!("{k} contains {}", q(s)),
        Expr::Starts(k, s) => format!("{k} starts with{}", q(s)),
        Expr::Ends(k, s) => format!("{k} ends with {}", q(s)),
        Expr::Not(e) => format!("!{}", atom(e)),
        // `&&` binds tighter than `||`: an `&&` operand needs parentheses only around `||`.
        Expr::And(a, b) => {
            let side = |e: &Expr| match e {
                Expr::Or(..) => format!("({})", render(e, !single)),
                _ => render(e, !single),
            };
            format!("{} && {}", side(a), side(b))
        }
        Expr::Or(a, b) => format!("{}||{}", render(a, !single), render(b, !single)),
    }
}

fn expr_strategy() -> impl Strategy<Value = Expr> {
    let key = prop::sample::select(KEYS.to_vec());
    let value = prop::sample::select(VALUES.to_vec());
    let values = prop::collection::vec(prop::sample::select(VALUES.to_vec()), 0..3);
    let leaf = prop_oneof![
        Just(Expr::All),
        Just(Expr::Global),
        (key.clone(), value.clone()).prop_map(|(k, v)| Expr::Eq(k, v)),
        (key.clone(), value.clone()).prop_map(|(k, v)| Expr::Ne(k, v)),
        key.clone().prop_map(Expr::Has),
        (key.clone(), values.clone()).prop_map(|(k, vs)| Expr::In(k, vs)),
        (key.clone(), values).prop_map(|(k, vs)| Expr::NotIn(k, vs)),
        (key.clone(), value.clone()).prop_map(|(k, v)| Expr::Contains(k, v)),
        (key.clone(), value.clone()).prop_map(|(k, v)| Expr::Starts(k, v)),
        (key, value).prop_map(|(k, v)| Expr::Ends(k, v)),
    ];
    leaf.prop_recursive(5, 40, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn labels_strategy() -> impl Strategy<Value = BTreeMap<&'static str, &'static str>> {
    prop::collection::btree_map(
        prop::sample::select(KEYS.to_vec()),
        prop::sample::select(VALUES.to_vec()),
        0..=KEYS.len(),
    )
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_selector(selector in selector_strategy()) {
        let printed = selector.to_string();
        let parsed = Selector::parse(&printed);
        prop_assert_eq!(parsed.as_ref(), Ok(&selector), "printed as {}", printed);
    }

    #[test]
    fn evaluation_agrees_with_a_direct_reading(
        expr in expr_strategy(),
        maps in prop::collection::vec(labels_strategy(), 1..6),
        single in any::<bool>(),
    ) {
        let text = render(&expr, single);
        let selector = match Selector::parse(&text) {
            Ok(selector) => selector,
            Err(e) => return Err(TestCaseError::fail(format!("{text:?}: {e}"))),
        };
        for map in &maps {
            let owned: Labels =
                map.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            for namespaced in [true, false] {
                prop_assert_eq!(
                    selector.evaluate(&owned, Scope { namespaced }),
                    direct(&expr, map, namespaced),
                    "{} on {:?}, namespaced {}", text, map, namespaced
                );
            }
        }
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = Selector::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_selector_like_text(
        text in "[a-z/.()!&|=' \"{},é-]{0,40}|(has|all|global|in|not|starts|ends|with| |\\(|\\)|'|\"|!|&&|\\|\\||==|!=|\\{|\\}|,|a|é)*"
    ) {
        if let Err(e) = Selector::parse(&text) {
            // Positions are byte offsets inside the input (or its end).
            prop_assert!(e.position <= text.len());
        }
    }
}
