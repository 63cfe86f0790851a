//! The expressions of a declared machine: guards (`event.verdict == 'APPROVED' and state.amount
//! > 0`) and field mappings (`event.amount`, `derive('refund')`, `lookup(event.sku).available`).
//!
//! Grammar, loosest first: `or`, `and`, `not`, one comparison (`== != < <= > >=`), then a
//! literal (`'text'`, a number, `true`, `false`, `null`), a parenthesised expression, a path
//! (`event.a.b`, `state.a`, `key`, `event_id`, `now`) or a call (`derive('tag')`,
//! `concat(a, b, ...)`, `lookup(expr).field`).

use std::fmt;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// The event applied (absent for a timer).
    Event,
    /// The state: the current one in a guard, the new one in mappings.
    State,
    /// The lookup table's value for the key the expression gives.
    Lookup(Box<Expr>),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(serde_json::Value),
    /// A field of the event, the state or a lookup value (an empty path is the whole value).
    Path(Root, Vec<String>),
    /// The state's key.
    Key,
    /// The applied event's id.
    EventId,
    /// The event's time (epoch milliseconds): the record's, or the clock's for a timer.
    Now,
    /// A value of the processor's `params.values`.
    Param(String),
    /// An id derived from the event id and a tag: the same event always derives the same id.
    Derive(String),
    Concat(Vec<Expr>),
    Compare(Box<Expr>, Op, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    /// Every path of the expression, with its root, for checking against the contracts.
    pub fn paths(&self) -> Vec<(&Root, &[String])> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Path(root, path) = e {
                out.push((root, path.as_slice()));
            }
        });
        out
    }

    /// Every `param.<name>` of the expression.
    pub fn params(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Param(name) = e {
                out.push(name.as_str());
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Path(Root::Lookup(key), _) => key.walk(f),
            Expr::Concat(parts) => parts.iter().for_each(|p| p.walk(f)),
            Expr::Compare(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Not(a) => a.walk(f),
            _ => {}
        }
    }
}

/// Why an expression does not parse, with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.at, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Text(String),
    Number(serde_json::Number),
    Op(Op),
    Dot,
    Comma,
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, reason: String| ParseError { at, reason };
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let token = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'.' => Token::Dot,
            b',' => Token::Comma,
            b'(' => Token::Open,
            b')' => Token::Close,
            b'\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match text[i..].chars().next() {
                        None => return Err(err(start, "unterminated string".to_owned())),
                        Some('\'') if text[i + 1..].starts_with('\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some('\'') => break,
                        Some(ch) => {
                            value.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                Token::Text(value)
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = text.get(i..i + 2).unwrap_or("");
                let (op, len) = match (c, two) {
                    (_, "==") => (Op::Eq, 2),
                    (_, "!=") => (Op::Ne, 2),
                    (_, "<=") => (Op::Le, 2),
                    (_, ">=") => (Op::Ge, 2),
                    (b'<', _) => (Op::Lt, 1),
                    (b'>', _) => (Op::Gt, 1),
                    _ => return Err(err(start, format!("unknown operator {:?}", &text[i..=i]))),
                };
                i += len;
                out.push((start, Token::Op(op)));
                continue;
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                let literal = &text[start..i];
                let number: serde_json::Number =
                    literal.parse().map_err(|_| err(start, format!("not a number: {literal:?}")))?;
                out.push((start, Token::Number(number)));
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push((start, Token::Ident(text[start..i].to_owned())));
                continue;
            }
            _ => return Err(err(start, format!("unexpected {:?}", text[i..].chars().next().unwrap_or(' ')))),
        };
        i += 1;
        out.push((start, token));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(o, _)| *o)
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { at: self.offset(), reason: reason.into() })
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(token) {
            self.at += 1;
            Ok(())
        } else {
            self.fail(format!("expected {what}"))
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        let left = self.primary()?;
        if let Some(Token::Op(op)) = self.peek().cloned() {
            self.at += 1;
            return Ok(Expr::Compare(Box::new(left), op, Box::new(self.primary()?)));
        }
        Ok(left)
    }

    fn fields(&mut self) -> Result<Vec<String>, ParseError> {
        let mut path = Vec::new();
        while self.peek() == Some(&Token::Dot) {
            self.at += 1;
            match self.peek().cloned() {
                Some(Token::Ident(name)) => {
                    self.at += 1;
                    path.push(name);
                }
                _ => return self.fail("expected a field name after '.'"),
            }
        }
        Ok(path)
    }

    fn text_argument(&mut self) -> Result<String, ParseError> {
        self.expect(&Token::Open, "'('")?;
        let Some(Token::Text(tag)) = self.peek().cloned() else { return self.fail("expected a quoted text") };
        self.at += 1;
        self.expect(&Token::Close, "')'")?;
        Ok(tag)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(token) = self.peek().cloned() else { return self.fail("expected a value") };
        self.at += 1;
        match token {
            Token::Text(text) => Ok(Expr::Literal(serde_json::Value::String(text))),
            Token::Number(n) => Ok(Expr::Literal(serde_json::Value::Number(n))),
            Token::Open => {
                let inner = self.or()?;
                self.expect(&Token::Close, "')'")?;
                Ok(inner)
            }
            Token::Ident(word) => match word.as_str() {
                "true" => Ok(Expr::Literal(true.into())),
                "false" => Ok(Expr::Literal(false.into())),
                "null" => Ok(Expr::Literal(serde_json::Value::Null)),
                "key" => Ok(Expr::Key),
                "event_id" => Ok(Expr::EventId),
                "now" => Ok(Expr::Now),
                "event" | "state" => {
                    let root = if word == "event" { Root::Event } else { Root::State };
                    let path = self.fields()?;
                    if path.is_empty() {
                        return self.fail(format!("expected a field of {word}, as {word}.name"));
                    }
                    Ok(Expr::Path(root, path))
                }
                "derive" => Ok(Expr::Derive(self.text_argument()?)),
                "param" => match self.fields()?.as_slice() {
                    [name] => Ok(Expr::Param(name.clone())),
                    _ => self.fail("expected one name after param., as param.payment_partner"),
                },
                "lookup" => {
                    self.expect(&Token::Open, "'('")?;
                    let key = self.or()?;
                    self.expect(&Token::Close, "')'")?;
                    Ok(Expr::Path(Root::Lookup(Box::new(key)), self.fields()?))
                }
                "concat" => {
                    self.expect(&Token::Open, "'('")?;
                    let mut parts = vec![self.or()?];
                    while self.peek() == Some(&Token::Comma) {
                        self.at += 1;
                        parts.push(self.or()?);
                    }
                    self.expect(&Token::Close, "')'")?;
                    Ok(Expr::Concat(parts))
                }
                other => {
                    self.at -= 1;
                    self.fail(format!(
                        "unknown name {other:?} (event.…, state.…, lookup(…), param.…, key, event_id, now, derive, concat)"
                    ))
                }
            },
            other => {
                self.at -= 1;
                self.fail(format!("unexpected {other:?}"))
            }
        }
    }
}

/// Parses `text` whole.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser { tokens: tokens(text)?, at: 0, end: text.len() };
    let expr = parser.or()?;
    if parser.at < parser.tokens.len() {
        return parser.fail("unexpected text after the expression");
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(root: Root, fields: &[&str]) -> Expr {
        Expr::Path(root, fields.iter().map(|f| (*f).to_owned()).collect())
    }

    #[test]
    fn guards_parse_with_precedence() {
        let e = parse("event.verdict == 'APPROVED' and not state.amount <= 0 or key != 'x'").expect("parses");
        let approved = Expr::Compare(
            Box::new(path(Root::Event, &["verdict"])),
            Op::Eq,
            Box::new(Expr::Literal("APPROVED".into())),
        );
        let small = Expr::Compare(Box::new(path(Root::State, &["amount"])), Op::Le, Box::new(Expr::Literal(0.into())));
        let other = Expr::Compare(Box::new(Expr::Key), Op::Ne, Box::new(Expr::Literal("x".into())));
        let expected =
            Expr::Or(Box::new(Expr::And(Box::new(approved), Box::new(Expr::Not(Box::new(small))))), Box::new(other));
        assert_eq!(e, expected);
    }

    #[test]
    fn calls_lookups_and_quotes() {
        assert_eq!(parse("derive('refund')"), Ok(Expr::Derive("refund".into())));
        assert_eq!(parse("param.payer"), Ok(Expr::Param("payer".into())));
        assert!(parse("param.a.b").is_err() && parse("param").is_err());
        assert_eq!(
            parse("lookup(event.sku).available"),
            Ok(Expr::Path(Root::Lookup(Box::new(path(Root::Event, &["sku"]))), vec!["available".into()]))
        );
        assert_eq!(parse("'it''s'"), Ok(Expr::Literal("it's".into())));
        assert_eq!(parse("concat('a', key)"), Ok(Expr::Concat(vec![Expr::Literal("a".into()), Expr::Key])));
        assert_eq!(parse("-1.5"), Ok(Expr::Literal(serde_json::json!(-1.5))));
        let e = parse("lookup(key).a.b == concat(event.x, now)").expect("parses");
        let roots: Vec<_> = e.paths().into_iter().map(|(r, p)| (matches!(r, Root::Lookup(_)), p.len())).collect();
        assert_eq!(roots, vec![(true, 2), (false, 1)]);
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(parse("event.").map_err(|e| e.at), Err(6));
        assert!(parse("event").expect_err("refused").reason.contains("field of event"));
        assert!(parse("evnt.x").expect_err("refused").reason.contains("unknown name \"evnt\""));
        assert!(parse("'open").expect_err("refused").reason.contains("unterminated"));
        assert!(parse("a = b").is_err());
        assert_eq!(parse("key key").map_err(|e| e.at), Err(4));
        assert!(parse("").is_err());
    }
}
