//! A recursive-descent parser for selector expressions.
//!
//! Hand-written rather than built on a combinator crate: the grammar is a dozen productions,
//! and writing it out keeps every error message ("expected a quoted string after '=='") and its
//! byte position under our control.
//!
//! ```text
//! selector := or | (blank)
//! or       := and ('||' and)*
//! and      := unary ('&&' unary)*
//! unary    := '!' unary | primary
//! primary  := '(' or ')' | 'all' '(' ')' | 'global' '(' ')' | 'has' '(' key ')'
//!           | key ('==' | '!=' | 'contains' | 'starts' 'with' | 'ends' 'with') string
//!           | key ('in' | 'not' 'in') '{' (string (',' string)*)? '}'
//! string   := '"' [^"]* '"' | "'" [^']* "'"
//! ```
//!
//! Keys are Kubernetes label keys (`name` or `dns.prefix/name`).

use std::collections::BTreeSet;

use thiserror::Error;

use super::Selector;

/// A selector that does not parse: the byte offset in the input and what went wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at {position}: {message}")]
pub struct ParseError {
    /// Byte offset into the selector string, from 0.
    pub position: usize,
    pub message: String,
}

/// How deeply `!` and `(` may nest. Each level is a few stack frames of this recursive-descent
/// parser (and of evaluating, printing and dropping the tree), so without a bound a selector of
/// a hundred thousand `!` or `(` — a 100 KB string in a manifest — overflows the stack and
/// aborts the agent. Real selectors nest a handful of levels.
pub const MAX_NESTING: usize = 64;

pub(super) fn parse(input: &str) -> Result<Selector, ParseError> {
    let mut parser = Parser {
        input,
        pos: 0,
        depth: 0,
    };
    parser.skip_ws();
    if parser.at_end() {
        return Ok(Selector::All);
    }
    let selector = parser.or()?;
    parser.skip_ws();
    if !parser.at_end() {
        return Err(parser.error("expected '&&', '||' or the end of the selector"));
    }
    Ok(selector)
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    /// `!` and `(` open around the current position (see [`MAX_NESTING`]).
    depth: usize,
}

/// Characters Calico's tokenizer accepts in a label key; the key is then checked against
/// Kubernetes' rules, so that the error can say what is wrong with it.
fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-')
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or_default()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// What is at the current position, for error messages.
    fn found(&self) -> String {
        match self.rest().chars().next() {
            None => "the end of the selector".to_owned(),
            Some(c) => format!("'{c}'"),
        }
    }

    fn error(&self, expected: &str) -> ParseError {
        self.error_at(self.pos, expected)
    }

    fn error_at(&self, position: usize, expected: &str) -> ParseError {
        let saved = Parser {
            input: self.input,
            pos: position,
            depth: self.depth,
        };
        ParseError {
            position,
            message: format!("{expected}, found {}", saved.found()),
        }
    }

    /// Consumes `token` (after whitespace) if it is next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str, expected: &str) -> Result<(), ParseError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    /// A run of key characters (possibly empty) at the current position, not consumed.
    fn peek_word(&self) -> &'a str {
        let rest = self.rest();
        let len = rest.bytes().take_while(|&c| is_key_char(c)).count();
        rest.get(..len).unwrap_or_default()
    }

    /// Consumes the keyword `word` if it is the next whole word.
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_ws();
        if self.peek_word() == word {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Selector, ParseError> {
        let mut operands = vec![self.and()?];
        while self.eat("||") {
            operands.push(self.and()?);
        }
        Ok(if operands.len() == 1 {
            operands.swap_remove(0)
        } else {
            Selector::Or(operands)
        })
    }

    fn and(&mut self) -> Result<Selector, ParseError> {
        let mut operands = vec![self.unary()?];
        while self.eat("&&") {
            operands.push(self.unary()?);
        }
        Ok(if operands.len() == 1 {
            operands.swap_remove(0)
        } else {
            Selector::And(operands)
        })
    }

    fn unary(&mut self) -> Result<Selector, ParseError> {
        self.skip_ws();
        // `!=` cannot start an operand, so a `!` here is always negation.
        let start = self.pos;
        if self.eat("!") {
            self.enter(start)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Selector::Not(Box::new(inner)));
        }
        self.primary()
    }

    /// One more level of `!` or `(`, opened at `position`; refused past [`MAX_NESTING`].
    fn enter(&mut self, position: usize) -> Result<(), ParseError> {
        if self.depth >= MAX_NESTING {
            return Err(ParseError {
                position,
                message: format!("'!' and '(' nested more than {MAX_NESTING} deep"),
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn primary(&mut self) -> Result<Selector, ParseError> {
        self.skip_ws();
        let open = self.pos;
        if self.eat("(") {
            self.enter(open)?;
            let inner = self.or()?;
            self.expect(")", "expected ')' to close the '('")?;
            self.depth -= 1;
            return Ok(inner);
        }
        let start = self.pos;
        let word = self.peek_word();
        if word.is_empty() {
            return Err(self.error("expected a label key, has(), all(), global(), '!' or '('"));
        }
        self.pos += word.len();
        // A function name only when a '(' follows; otherwise it is a label key named so.
        if matches!(word, "all" | "global" | "has") && self.eat("(") {
            return match word {
                "all" => self.close_call("all", Selector::All),
                "global" => self.close_call("global", Selector::Global),
                _ => {
                    let key = self.key()?;
                    self.close_call("has", Selector::Has { key })
                }
            };
        }
        self.pos = start;
        let key = self.key()?;
        self.comparison(key)
    }

    fn close_call(&mut self, name: &str, selector: Selector) -> Result<Selector, ParseError> {
        self.expect(")", &format!("expected ')' to close {name}("))?;
        Ok(selector)
    }

    fn key(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let word = self.peek_word();
        if word.is_empty() {
            return Err(self.error("expected a label key"));
        }
        if let Err(why) = check_label_key(word) {
            return Err(ParseError {
                position: start,
                message: format!("invalid label key '{word}': {why}"),
            });
        }
        self.pos += word.len();
        Ok(word.to_owned())
    }

    fn comparison(&mut self, key: String) -> Result<Selector, ParseError> {
        self.skip_ws();
        if self.eat("==") {
            let value = self.string("==")?;
            return Ok(Selector::Equal { key, value });
        }
        if self.eat("!=") {
            let value = self.string("!=")?;
            return Ok(Selector::NotEqual { key, value });
        }
        let op_start = self.pos;
        if self.eat_word("in") {
            let values = self.set("in")?;
            return Ok(Selector::In { key, values });
        }
        if self.eat_word("not") {
            if !self.eat_word("in") {
                return Err(self.error("expected 'in' after 'not'"));
            }
            let values = self.set("not in")?;
            return Ok(Selector::NotIn { key, values });
        }
        if self.eat_word("contains") {
            let value = self.string("contains")?;
            return Ok(Selector::Contains { key, value });
        }
        if self.eat_word("starts") {
            if !self.eat_word("with") {
                return Err(self.error("expected 'with' after 'starts'"));
            }
            let value = self.string("starts with")?;
            return Ok(Selector::StartsWith { key, value });
        }
        if self.eat_word("ends") {
            if !self.eat_word("with") {
                return Err(self.error("expected 'with' after 'ends'"));
            }
            let value = self.string("ends with")?;
            return Ok(Selector::EndsWith { key, value });
        }
        Err(self.error_at(
            op_start,
            &format!(
                "expected an operator after '{key}' ('==', '!=', 'in', 'not in', 'contains', \
                 'starts with' or 'ends with')"
            ),
        ))
    }

    /// A quoted string; `after` names the operator for the error message.
    fn string(&mut self, after: &str) -> Result<String, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let rest = self.rest();
        let Some(quote) = rest.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
            return Err(self.error(&format!("expected a quoted string after '{after}'")));
        };
        let body = rest.get(1..).unwrap_or_default();
        let Some(len) = body.find(quote) else {
            return Err(ParseError {
                position: start,
                message: format!("unterminated string: no closing {quote}"),
            });
        };
        self.pos += len + 2;
        Ok(body.get(..len).unwrap_or_default().to_owned())
    }

    fn set(&mut self, after: &str) -> Result<BTreeSet<String>, ParseError> {
        self.expect("{", &format!("expected '{{' after '{after}'"))?;
        let mut values = BTreeSet::new();
        if self.eat("}") {
            return Ok(values);
        }
        loop {
            values.insert(self.string(if values.is_empty() { "{" } else { "," })?);
            if self.eat("}") {
                return Ok(values);
            }
            self.expect(",", "expected ',' or '}' in the set")?;
        }
    }
}

/// Kubernetes' rules for a label key: an optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 characters, alphanumeric at both ends with `-`, `_` and `.` inside.
pub(crate) fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > 253 {
            return Err("the prefix must be a DNS subdomain of 1 to 253 characters".to_owned());
        }
        for label in prefix.split('.') {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "the prefix '{prefix}' is not a DNS subdomain (lower-case alphanumeric \
                     labels, '-' inside, separated by '.')"
                ));
            }
        }
    }
    let bytes = name.as_bytes();
    let ends_ok = |c: Option<&u8>| c.is_some_and(u8::is_ascii_alphanumeric);
    if name.is_empty() || name.len() > 63 {
        return Err("the name must have 1 to 63 characters".to_owned());
    }
    if !ends_ok(bytes.first())
        || !ends_ok(bytes.last())
        || !bytes
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(
            "the name must be alphanumeric at both ends, with only '-', '_' and '.' inside"
                .to_owned(),
        );
    }
    Ok(())
}
