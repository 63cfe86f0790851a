//! The expressions of a declared machine: guards (`event.verdict == 'APPROVED' and state.amount
//! > 0`) and field mappings (`event.amount`, `derive('refund')`, `lookup(event.sku).available`,
//! `sum(l in event.items, l.unit_price * l.quantity)`).
//!
//! Grammar, loosest first: `or`, `and`, `not`, one comparison (`== != < <= > >=`), `+ -`, `*`,
//! then a literal (`'text'`, a number, `true`, `false`, `null`), a parenthesised expression, a
//! path (`event.a.b`, `state.a`, a bound name `l.sku`, `key`, `event_id`, `now`, `def.name`,
//! `param.name`, `param.table[expr]`) or a call: `derive('tag' [, base])`, `concat(a, ...)`,
//! `lookup(expr).field`, `if(c, a, b)`, `coalesce(a, ...)`, `percent(amount, p)`, `len(x)`,
//! `matches(text, 'regex')`, and over a list `any|all(x in list, cond)`,
//! `sum|count|first|join|group(x in list [where cond], ...)`.

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
    /// An element of a list, bound by `x in list`.
    Var(String),
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

/// Exact arithmetic on integers and decimal amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
}

/// A function of its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `if(condition, then, else)`.
    If,
    /// The first argument that is not null.
    Coalesce,
    /// `percent(amount, p)`: p% of an amount, rounded half away from zero to the cent.
    Percent,
    /// The length of a text, or the number of elements of a list.
    Len,
}

/// What a list form computes over the elements (those passing `where`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Whether the condition holds for one element.
    Any,
    /// Whether it holds for every element.
    All,
    /// The sum of the body over the elements.
    Sum,
    /// How many elements there are.
    Count,
    /// The body of the first element (null if none).
    First,
    /// The distinct texts of the body, sorted, joined with a separator.
    Join,
    /// The elements grouped by a key: a list of `{key, sum}` records, one per distinct key
    /// (sorted), `sum` the sum of the body over the group's elements.
    Group,
}

impl Fold {
    fn name(self) -> &'static str {
        match self {
            Fold::Any => "any",
            Fold::All => "all",
            Fold::Sum => "sum",
            Fold::Count => "count",
            Fold::First => "first",
            Fold::Join => "join",
            Fold::Group => "group",
        }
    }
}

/// A regular expression of `matches(text, 'pattern')`, compared by its text.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A list form: `fold(var in list [where filter] [, key] [, body] [, 'separator'])`.
#[derive(Debug, Clone, PartialEq)]
pub struct Each {
    pub fold: Fold,
    pub var: String,
    pub list: Expr,
    pub filter: Option<Expr>,
    /// The condition of `any`/`all`, the value of `sum`/`first`/`join`; none for `count`.
    pub body: Option<Expr>,
    /// `group`'s key.
    pub key: Option<Expr>,
    /// `join`'s separator.
    pub separator: String,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(serde_json::Value),
    /// A field of the event, the state, a lookup value or a bound element (an empty path is the
    /// whole value).
    Path(Root, Vec<String>),
    /// The state's key.
    Key,
    /// The applied event's id.
    EventId,
    /// The event's time (epoch milliseconds): the record's, or the clock's for a timer.
    Now,
    /// A value of the processor's `params.values`.
    Param(String),
    /// An entry of a table of the processor's `params.values` (null when it has none).
    ParamEntry(String, Box<Expr>),
    /// A definition of the machine's `[define]`, as written.
    Def(String),
    /// A definition with its expression, as the checker expands `def.<name>`.
    Defined(String, Box<Expr>),
    /// An id derived from a base (the event id, unless given) and a tag: the same inputs always
    /// derive the same id.
    Derive(String, Option<Box<Expr>>),
    Concat(Vec<Expr>),
    Call(Func, Vec<Expr>),
    Matches(Box<Expr>, Pattern),
    Arith(Box<Expr>, Arith, Box<Expr>),
    /// `fold(var in list [where filter] [, body] [, 'separator'])`.
    Each(Box<Each>),
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

    /// Every `param.<name>` of the expression, and whether it is read as a table.
    pub fn params_read(&self) -> Vec<(&str, bool)> {
        let mut out = Vec::new();
        self.walk(&mut |e| match e {
            Expr::Param(name) => out.push((name.as_str(), false)),
            Expr::ParamEntry(name, _) => out.push((name.as_str(), true)),
            _ => {}
        });
        out
    }

    /// Every expression directly inside this one.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Path(Root::Lookup(key), _) => vec![key],
            Expr::ParamEntry(_, key) => vec![key],
            Expr::Derive(_, base) => base.iter().map(|b| &**b).collect(),
            Expr::Concat(parts) | Expr::Call(_, parts) => parts.iter().collect(),
            Expr::Matches(a, _) | Expr::Not(a) | Expr::Defined(_, a) => vec![a],
            Expr::Arith(a, _, b) | Expr::Compare(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) => vec![a, b],
            Expr::Each(each) => [Some(&each.list), each.filter.as_ref(), each.key.as_ref(), each.body.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        for child in self.children() {
            child.walk(f);
        }
    }

    /// The expression with every node `f` replaces replaced (bottom-up: `f` sees rebuilt children).
    pub fn rewrite<E>(self, f: &mut impl FnMut(Expr) -> Result<Expr, E>) -> Result<Expr, E> {
        let mut go = |e: Expr| e.rewrite(f);
        let mut boxed = |e: Box<Expr>| go(*e).map(Box::new);
        let rebuilt = match self {
            Expr::Path(Root::Lookup(key), path) => Expr::Path(Root::Lookup(boxed(key)?), path),
            Expr::ParamEntry(name, key) => Expr::ParamEntry(name, boxed(key)?),
            Expr::Derive(tag, Some(base)) => Expr::Derive(tag, Some(boxed(base)?)),
            Expr::Concat(parts) => Expr::Concat(parts.into_iter().map(|p| p.rewrite(f)).collect::<Result<_, _>>()?),
            Expr::Call(func, args) => {
                Expr::Call(func, args.into_iter().map(|p| p.rewrite(f)).collect::<Result<_, _>>()?)
            }
            Expr::Matches(a, pattern) => Expr::Matches(boxed(a)?, pattern),
            Expr::Defined(name, a) => Expr::Defined(name, boxed(a)?),
            Expr::Not(a) => Expr::Not(boxed(a)?),
            Expr::Arith(a, op, b) => Expr::Arith(boxed(a)?, op, boxed(b)?),
            Expr::Compare(a, op, b) => Expr::Compare(boxed(a)?, op, boxed(b)?),
            Expr::And(a, b) => Expr::And(boxed(a)?, boxed(b)?),
            Expr::Or(a, b) => Expr::Or(boxed(a)?, boxed(b)?),
            Expr::Each(each) => {
                let Each { fold, var, list, filter, key, body, separator } = *each;
                Expr::Each(Box::new(Each {
                    fold,
                    var,
                    list: list.rewrite(f)?,
                    filter: filter.map(|e| e.rewrite(f)).transpose()?,
                    key: key.map(|e| e.rewrite(f)).transpose()?,
                    body: body.map(|e| e.rewrite(f)).transpose()?,
                    separator,
                }))
            }
            other => other,
        };
        f(rebuilt)
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
    Arith(Arith),
    Dot,
    Comma,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

impl Token {
    /// Whether a value ends with this token (so a `-` after it subtracts).
    fn ends_value(&self) -> bool {
        matches!(self, Token::Ident(_) | Token::Text(_) | Token::Number(_) | Token::Close | Token::CloseBracket)
    }
}

fn tokens(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out: Vec<(usize, Token)> = Vec::new();
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
            b'[' => Token::OpenBracket,
            b']' => Token::CloseBracket,
            b'+' => Token::Arith(Arith::Add),
            b'*' => Token::Arith(Arith::Mul),
            b'-' if out.last().is_some_and(|(_, t)| t.ends_value()) => Token::Arith(Arith::Sub),
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

/// Names a bound element cannot take.
const RESERVED: [&str; 9] = ["event", "state", "key", "event_id", "now", "param", "def", "true", "false"];

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    /// The names bound by the enclosing list forms.
    bound: Vec<String>,
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

    fn accept(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), ParseError> {
        if self.accept(token) {
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
        let left = self.sum()?;
        if let Some(Token::Op(op)) = self.peek().cloned() {
            self.at += 1;
            return Ok(Expr::Compare(Box::new(left), op, Box::new(self.sum()?)));
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.product()?;
        while let Some(Token::Arith(op @ (Arith::Add | Arith::Sub))) = self.peek().cloned() {
            self.at += 1;
            left = Expr::Arith(Box::new(left), op, Box::new(self.product()?));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.primary()?;
        while self.accept(&Token::Arith(Arith::Mul)) {
            left = Expr::Arith(Box::new(left), Arith::Mul, Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn fields(&mut self) -> Result<Vec<String>, ParseError> {
        let mut path = Vec::new();
        while self.accept(&Token::Dot) {
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

    fn quoted(&mut self) -> Result<String, ParseError> {
        let Some(Token::Text(text)) = self.peek().cloned() else { return self.fail("expected a quoted text") };
        self.at += 1;
        Ok(text)
    }

    /// `(a, b, ...)`.
    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect(&Token::Open, "'('")?;
        let mut args = vec![self.or()?];
        while self.accept(&Token::Comma) {
            args.push(self.or()?);
        }
        self.expect(&Token::Close, "')'")?;
        Ok(args)
    }

    /// One name after `word.`, as `param.name`.
    fn single_name(&mut self, word: &str) -> Result<String, ParseError> {
        match self.fields()?.as_slice() {
            [name] => Ok(name.clone()),
            _ => self.fail(format!("expected one name after {word}., as {word}.name")),
        }
    }

    /// `fold(x in list [where cond], ...)`, after the fold's name.
    fn each(&mut self, fold: Fold) -> Result<Expr, ParseError> {
        self.expect(&Token::Open, "'('")?;
        let Some(Token::Ident(var)) = self.peek().cloned() else {
            return self.fail(format!("expected a name, as {}(x in event.items, ...)", fold.name()));
        };
        if RESERVED.contains(&var.as_str()) {
            return self.fail(format!("{var:?} is reserved: bind another name"));
        }
        self.at += 1;
        if !self.keyword("in") {
            return self.fail(format!("expected 'in', as {}({var} in event.items, ...)", fold.name()));
        }
        let list = self.or()?;
        self.bound.push(var.clone());
        let parsed = self.each_rest(fold);
        self.bound.pop();
        let (filter, key, body, separator) = parsed?;
        Ok(Expr::Each(Box::new(Each { fold, var, list, filter, key, body, separator })))
    }

    #[allow(clippy::type_complexity)]
    fn each_rest(&mut self, fold: Fold) -> Result<(Option<Expr>, Option<Expr>, Option<Expr>, String), ParseError> {
        let filter = if self.keyword("where") { Some(self.or()?) } else { None };
        let key = if fold == Fold::Group {
            self.expect(&Token::Comma, "',' and the key to group by")?;
            Some(self.or()?)
        } else {
            None
        };
        let body = if fold == Fold::Count {
            None
        } else {
            self.expect(&Token::Comma, &format!("',' and what {} computes", fold.name()))?;
            Some(self.or()?)
        };
        let separator = if fold == Fold::Join {
            self.expect(&Token::Comma, "',' and the separator")?;
            self.quoted()?
        } else {
            String::new()
        };
        self.expect(&Token::Close, "')'")?;
        Ok((filter, key, body, separator))
    }

    fn call(&mut self, func: Func, arity: std::ops::RangeInclusive<usize>, name: &str) -> Result<Expr, ParseError> {
        let at = self.offset();
        let args = self.arguments()?;
        if !arity.contains(&args.len()) {
            let want = if arity.start() == arity.end() {
                arity.start().to_string()
            } else if *arity.end() == usize::MAX {
                format!("at least {}", arity.start())
            } else {
                format!("{} to {}", arity.start(), arity.end())
            };
            return Err(ParseError { at, reason: format!("{name} takes {want} arguments, not {}", args.len()) });
        }
        Ok(Expr::Call(func, args))
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
            Token::Ident(word) if self.bound.contains(&word) => Ok(Expr::Path(Root::Var(word), self.fields()?)),
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
                "derive" => {
                    self.expect(&Token::Open, "'('")?;
                    let tag = self.quoted()?;
                    let base = if self.accept(&Token::Comma) { Some(Box::new(self.or()?)) } else { None };
                    self.expect(&Token::Close, "')'")?;
                    Ok(Expr::Derive(tag, base))
                }
                "param" => {
                    let name = self.single_name("param")?;
                    if self.accept(&Token::OpenBracket) {
                        let key = self.or()?;
                        self.expect(&Token::CloseBracket, "']'")?;
                        return Ok(Expr::ParamEntry(name, Box::new(key)));
                    }
                    Ok(Expr::Param(name))
                }
                "def" => Ok(Expr::Def(self.single_name("def")?)),
                "lookup" => {
                    self.expect(&Token::Open, "'('")?;
                    let key = self.or()?;
                    self.expect(&Token::Close, "')'")?;
                    Ok(Expr::Path(Root::Lookup(Box::new(key)), self.fields()?))
                }
                "concat" => Ok(Expr::Concat(self.arguments()?)),
                "if" => self.call(Func::If, 3..=3, "if"),
                "coalesce" => self.call(Func::Coalesce, 1..=usize::MAX, "coalesce"),
                "percent" => self.call(Func::Percent, 2..=2, "percent"),
                "len" => self.call(Func::Len, 1..=1, "len"),
                "matches" => {
                    self.expect(&Token::Open, "'('")?;
                    let text = self.or()?;
                    self.expect(&Token::Comma, "',' and a quoted regular expression")?;
                    let at = self.offset();
                    let pattern = self.quoted()?;
                    let pattern = regex::Regex::new(&pattern)
                        .map_err(|e| ParseError { at, reason: format!("not a regular expression: {e}") })?;
                    self.expect(&Token::Close, "')'")?;
                    Ok(Expr::Matches(Box::new(text), Pattern(pattern)))
                }
                "any" => self.each(Fold::Any),
                "all" => self.each(Fold::All),
                "sum" => self.each(Fold::Sum),
                "count" => self.each(Fold::Count),
                "first" => self.each(Fold::First),
                "join" => self.each(Fold::Join),
                "group" => self.each(Fold::Group),
                other => {
                    self.at -= 1;
                    self.fail(format!(
                        "unknown name {other:?} (event.…, state.…, lookup(…), param.…, def.…, key, event_id, now, \
                         derive, concat, if, coalesce, percent, len, matches, any, all, sum, count, first, join, group)"
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
    let mut parser = Parser { tokens: tokens(text)?, at: 0, end: text.len(), bound: Vec::new() };
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
        assert_eq!(parse("derive('refund')"), Ok(Expr::Derive("refund".into(), None)));
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
    fn arithmetic_binds_tighter_than_comparisons_and_minus_is_a_sign_only_first() {
        let n = |v: i64| Box::new(Expr::Literal(v.into()));
        let e = parse("1 + 2 * 3 - -4 > 0").expect("parses");
        let sum = Expr::Arith(
            Box::new(Expr::Arith(n(1), Arith::Add, Box::new(Expr::Arith(n(2), Arith::Mul, n(3))))),
            Arith::Sub,
            n(-4),
        );
        assert_eq!(e, Expr::Compare(Box::new(sum), Op::Gt, n(0)));
        assert_eq!(parse("key-1"), Ok(Expr::Arith(Box::new(Expr::Key), Arith::Sub, n(1))));
    }

    #[test]
    fn list_forms_bind_a_name_inside_them_only() {
        let e = parse("sum(l in event.items where l.sku != 'X', l.quantity)").expect("parses");
        let Expr::Each(each) = e else { panic!("a list form") };
        assert_eq!((each.fold, each.var.as_str()), (Fold::Sum, "l"));
        assert_eq!(each.body, Some(Expr::Path(Root::Var("l".into()), vec!["quantity".into()])));
        assert!(each.filter.is_some());
        let join = parse("join(l in state.items, l.sku, ', ')").expect("parses");
        assert!(matches!(join, Expr::Each(e) if e.fold == Fold::Join && e.separator == ", "));
        assert!(parse("count(l in state.items)").is_ok());
        let group = parse("group(l in state.items, l.sku, l.quantity)").expect("parses");
        assert!(matches!(group, Expr::Each(e) if e.fold == Fold::Group && e.key.is_some() && e.body.is_some()));
        assert!(parse("any(l in state.items, l.q > 0) and l.q > 0")
            .expect_err("l is unbound")
            .reason
            .contains("\"l\""));
        assert!(parse("any(event in state.items, true)").expect_err("reserved").reason.contains("reserved"));
        assert!(parse("join(l in state.items, l.sku)").expect_err("no separator").reason.contains("separator"));
        assert!(parse("if(a, b)").is_err() && parse("if(true, 1)").expect_err("arity").reason.contains("takes 3"));
    }

    #[test]
    fn params_tables_definitions_and_patterns() {
        assert_eq!(
            parse("param.erp[event.partner]"),
            Ok(Expr::ParamEntry("erp".into(), Box::new(path(Root::Event, &["partner"]))))
        );
        assert_eq!(parse("def.total"), Ok(Expr::Def("total".into())));
        assert_eq!(
            parse("derive('cancel', event.command_id)"),
            Ok(Expr::Derive("cancel".into(), Some(Box::new(path(Root::Event, &["command_id"])))))
        );
        assert!(parse("matches(event.currency, '^[A-Z]{3}$')").is_ok());
        assert!(parse("matches(event.currency, '[')").expect_err("bad").reason.contains("regular expression"));
        let e = parse("param.a[param.b] == param.c").expect("parses");
        assert_eq!(e.params_read(), vec![("a", true), ("b", false), ("c", false)]);
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
