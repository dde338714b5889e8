//! SQL92 property filters (Java's `filter` module: the `SelectorParser`
//! grammar and the expression classes), used when the broker runs with
//! property filtering on.
//!
//! Property values are strings; a comparison with a number converts the
//! string to that number's type, as Java does with `CONVERT_STRING_EXPRESSIONS`.
//! Integer literals are Java `Integer`s when they fit 32 bits (so `a > 5`
//! with `a = '3000000000'` is a conversion error, as in Java), `Long`s
//! otherwise. Missing properties make a comparison unknown (null), which
//! never matches; an evaluation error (e.g. `a > 5` with `a = 'x'`) fails
//! the whole expression, as the exception does in Java's broker.
//!
//! What Java refuses to compile is refused here too: a string, boolean or
//! NULL literal, or a boolean expression, next to `<`, `>`, `<=`, `>=` or
//! BETWEEN; NULL next to `=` or `<>`; a float literal of zero or out of
//! range. And what Java ignores is ignored: tokens after the first complete
//! expression (its grammar has no end-of-input rule), unless the token right
//! after it is not one.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use rocketmq_model::Properties;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sql92(Expr);

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Constant(Value),
    Property(String),
    /// Java's `createNegate`: a number negated when evaluated; anything
    /// else (a property's text among them) is null.
    Negate(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Equal(Box<Expr>, Box<Expr>),
    Compare(Order, Box<Expr>, Box<Expr>),
    In {
        property: String,
        list: BTreeSet<String>,
        negated: bool,
    },
    Text {
        op: TextOp,
        value: Box<Expr>,
        search: String,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    /// A Java `Integer`: integer literals that fit 32 bits.
    Int(i32),
    Long(i64),
    Double(f64),
    Text(String),
}

/// Why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub(crate) String);

impl Sql92 {
    /// Parses an expression; its top level must be boolean.
    pub(crate) fn parse(text: &str) -> Result<Self, ParseError> {
        let tokens = tokenize(text);
        let mut parser = Parser { tokens, at: 0 };
        let expr = parser.or()?;
        // Java's grammar stops after one expression and reads only the
        // token after it: what follows is ignored, unless that token is
        // not one.
        if let Some(Token::Unreadable(error)) = parser.peek() {
            return Err(ParseError(error.clone()));
        }
        if !is_boolean(&expr) {
            return Err(ParseError("the expression is not boolean".into()));
        }
        Ok(Sql92(expr))
    }

    /// Whether a message with these properties matches.
    pub(crate) fn matches(&self, properties: &Properties) -> bool {
        matches!(eval(&self.0, properties), Ok(Value::Bool(true)))
    }
}

fn is_boolean(expr: &Expr) -> bool {
    !matches!(
        expr,
        Expr::Constant(
            Value::Int(_) | Value::Long(_) | Value::Double(_) | Value::Text(_) | Value::Null
        ) | Expr::Negate(_)
    )
}

/// Java's `BooleanExpression`: what a comparison with `<`, `>` may not take.
fn is_boolean_expression(expr: &Expr) -> bool {
    !matches!(
        expr,
        Expr::Constant(Value::Int(_) | Value::Long(_) | Value::Double(_) | Value::Text(_))
            | Expr::Property(_)
            | Expr::Negate(_)
    )
}

/// Java's `checkLessThanOperand`: only numbers and non-boolean expressions
/// are ordered.
fn check_ordered_operand(expr: &Expr) -> Result<(), ParseError> {
    let number = matches!(
        expr,
        Expr::Constant(Value::Int(_) | Value::Long(_) | Value::Double(_))
    );
    if number || !(matches!(expr, Expr::Constant(_)) || is_boolean_expression(expr)) {
        Ok(())
    } else {
        Err(ParseError(format!("Value '{expr:?}' cannot be compared.")))
    }
}

/// Java's `checkEqualOperand` and `checkEqualOperandCompatability`: no NULL
/// literal next to `=` or `<>`, and no boolean literal against another
/// kind of literal.
fn check_equal_operands(left: &Expr, right: &Expr) -> Result<(), ParseError> {
    for operand in [left, right] {
        if matches!(operand, Expr::Constant(Value::Null)) {
            return Err(ParseError("'NULL' cannot be compared.".into()));
        }
    }
    if let (Expr::Constant(Value::Bool(_)), Expr::Constant(other)) = (left, right) {
        if !matches!(other, Value::Bool(_)) {
            return Err(ParseError(format!(
                "'{left:?}' cannot be compared with '{right:?}'"
            )));
        }
    }
    Ok(())
}

// --- tokens ---

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Long(i64),
    Double(f64),
    Symbol(&'static str),
    /// Text the lexer could not read; everything after it is unread.
    Unreadable(String),
}

impl Token {
    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

const SYMBOLS: [&str; 9] = ["<>", ">=", "<=", "=", ">", "<", "(", ")", ","];

/// The tokens of `text`, up to the first it cannot read, which becomes an
/// [`Token::Unreadable`] (Java's lexer reads lazily, so an error further on
/// matters only if the parser gets there).
fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    if let Err(ParseError(error)) = tokenize_into(text, &mut tokens) {
        tokens.push(Token::Unreadable(error));
    }
    tokens
}

fn tokenize_into(text: &str, tokens: &mut Vec<Token>) -> Result<(), ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let rest: String = chars[i..].iter().take(2).collect();
        if c.is_whitespace() {
            i += 1;
        } else if rest == "--" {
            while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                i += 1;
            }
        } else if rest == "/*" {
            let end = text_from(&chars, i + 2)
                .find("*/")
                .ok_or_else(|| ParseError("unclosed comment".into()))?;
            i += 2 + text_from(&chars, i + 2)[..end].chars().count() + 2;
        } else if c == '\'' {
            let (literal, next) = string_literal(&chars, i)?;
            tokens.push(Token::Text(literal));
            i = next;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let (number, next) = number(&chars, i)?;
            tokens.push(number);
            i = next;
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if let Some(symbol) = SYMBOLS
            .iter()
            .find(|s| text_from(&chars, i).starts_with(**s))
        {
            tokens.push(Token::Symbol(symbol));
            i += symbol.len();
        } else if c == '+' || c == '-' {
            tokens.push(Token::Symbol(if c == '+' { "+" } else { "-" }));
            i += 1;
        } else {
            return Err(ParseError(format!("unexpected character {c:?}")));
        }
    }
    Ok(())
}

fn text_from(chars: &[char], from: usize) -> String {
    chars[from.min(chars.len())..].iter().collect()
}

/// A quoted literal, `''` standing for one quote.
fn string_literal(chars: &[char], start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(ParseError("unclosed string literal".into())),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                out.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((out, i + 1)),
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

fn number(chars: &[char], start: usize) -> Result<(Token, usize), ParseError> {
    let mut i = start;
    let mut floating = false;
    while i < chars.len() {
        let c = chars[i];
        let exponent_sign = (c == '+' || c == '-') && matches!(chars.get(i - 1), Some('e' | 'E'));
        if c.is_ascii_digit() || exponent_sign {
            i += 1;
        } else if c == '.' || c == 'e' || c == 'E' {
            floating = true;
            i += 1;
        } else {
            break;
        }
    }
    let text: String = chars[start..i].iter().collect();
    if !floating && matches!(chars.get(i), Some('l' | 'L')) {
        i += 1;
    }
    let bad = || ParseError(format!("bad number {text:?}"));
    let token = if floating {
        Token::Double(text.parse().map_err(|_| bad())?)
    } else {
        Token::Long(text.parse().map_err(|_| bad())?)
    };
    Ok((token, i))
}

// --- grammar (Java's SelectorParser.jj) ---

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_keyword(&self, offset: usize, keyword: &str) -> bool {
        self.tokens
            .get(self.at + offset)
            .is_some_and(|t| t.is_keyword(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek_keyword(0, keyword);
        self.at += usize::from(found);
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol);
        self.at += usize::from(found);
        found
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), ParseError> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(ParseError(format!("expected {symbol:?}")))
        }
    }

    fn boolean(expr: Expr) -> Result<Box<Expr>, ParseError> {
        if is_boolean(&expr) {
            Ok(Box::new(expr))
        } else {
            Err(ParseError(format!("{expr:?} is not a boolean expression")))
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            let right = self.and()?;
            left = Expr::Or(Self::boolean(left)?, Self::boolean(right)?);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.equality()?;
        while self.eat_keyword("AND") {
            let right = self.equality()?;
            left = Expr::And(Self::boolean(left)?, Self::boolean(right)?);
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.comparison()?;
        loop {
            if self.eat_symbol("=") {
                let right = self.comparison()?;
                check_equal_operands(&left, &right)?;
                left = Expr::Equal(Box::new(left), Box::new(right));
            } else if self.eat_symbol("<>") {
                let right = self.comparison()?;
                check_equal_operands(&left, &right)?;
                let equal = Expr::Equal(Box::new(left), Box::new(right));
                left = Expr::Not(Box::new(equal));
            } else if self.peek_keyword(0, "IS") {
                self.at += 1;
                let negated = self.eat_keyword("NOT");
                if !self.eat_keyword("NULL") {
                    return Err(ParseError("expected NULL after IS".into()));
                }
                let is_null = Expr::Equal(Box::new(left), Box::new(Expr::Constant(Value::Null)));
                left = if negated {
                    Expr::Not(Box::new(is_null))
                } else {
                    is_null
                };
            } else {
                return Ok(left);
            }
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let order = [
                (">=", Order::GreaterOrEqual),
                ("<=", Order::LessOrEqual),
                (">", Order::Greater),
                ("<", Order::Less),
            ]
            .into_iter()
            .find(|(symbol, _)| self.eat_symbol(symbol));
            if let Some((_, order)) = order {
                let right = self.unary()?;
                check_ordered_operand(&left)?;
                check_ordered_operand(&right)?;
                left = Expr::Compare(order, Box::new(left), Box::new(right));
                continue;
            }
            let negated = self.peek_keyword(0, "NOT")
                && ["CONTAINS", "STARTSWITH", "ENDSWITH", "IN", "BETWEEN"]
                    .iter()
                    .any(|k| self.peek_keyword(1, k));
            self.at += usize::from(negated);
            left = if let Some(op) = self.text_op() {
                let search = self.string()?;
                Expr::Text {
                    op,
                    value: Box::new(left),
                    search,
                    negated,
                }
            } else if self.eat_keyword("IN") {
                self.in_list(left, negated)?
            } else if self.eat_keyword("BETWEEN") {
                self.between(left, negated)?
            } else {
                return Ok(left);
            };
        }
    }

    fn text_op(&mut self) -> Option<TextOp> {
        let op = [
            ("CONTAINS", TextOp::Contains),
            ("STARTSWITH", TextOp::StartsWith),
            ("ENDSWITH", TextOp::EndsWith),
        ]
        .into_iter()
        .find(|(keyword, _)| self.peek_keyword(0, keyword))?;
        self.at += 1;
        Some(op.1)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        match self.peek().cloned() {
            Some(Token::Text(text)) => {
                self.at += 1;
                Ok(text)
            }
            other => Err(ParseError(format!(
                "expected a string literal, found {other:?}"
            ))),
        }
    }

    fn in_list(&mut self, left: Expr, negated: bool) -> Result<Expr, ParseError> {
        let Expr::Property(property) = left else {
            return Err(ParseError("IN needs a property on its left".into()));
        };
        self.expect_symbol("(")?;
        let mut list = BTreeSet::from([self.string()?]);
        while self.eat_symbol(",") {
            list.insert(self.string()?);
        }
        self.expect_symbol(")")?;
        Ok(Expr::In {
            property,
            list,
            negated,
        })
    }

    /// `BETWEEN low AND high` is `>= low AND <= high`; NOT BETWEEN is
    /// `< low OR > high`. Constant bounds must be ordered.
    fn between(&mut self, value: Expr, negated: bool) -> Result<Expr, ParseError> {
        let low = self.unary()?;
        if !self.eat_keyword("AND") {
            return Err(ParseError("expected AND in BETWEEN".into()));
        }
        let high = self.unary()?;
        for operand in [&value, &low, &high] {
            check_ordered_operand(operand)?;
        }
        // Java checks the bounds of BETWEEN only, and only literal ones
        // (a negative bound is a negation, not a literal).
        if let (false, Expr::Constant(l), Expr::Constant(h)) = (negated, &low, &high) {
            if compare(h, l).is_ok_and(|o| o == Ordering::Less) {
                return Err(ParseError(format!(
                    "Illegal values of between, left value({l:?}) must less than or equal to right value({h:?})"
                )));
            }
        }
        let (value, low, high) = (Box::new(value.clone()), Box::new(low), Box::new(high));
        Ok(if negated {
            Expr::Or(
                Box::new(Expr::Compare(Order::Less, value.clone(), low)),
                Box::new(Expr::Compare(Order::Greater, value, high)),
            )
        } else {
            Expr::And(
                Box::new(Expr::Compare(Order::GreaterOrEqual, value.clone(), low)),
                Box::new(Expr::Compare(Order::LessOrEqual, value, high)),
            )
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_symbol("+") {
            return self.unary();
        }
        if self.eat_symbol("-") {
            return Ok(Expr::Negate(Box::new(self.unary()?)));
        }
        if self.eat_keyword("NOT") {
            let operand = self.unary()?;
            return Ok(Expr::Not(Self::boolean(operand)?));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(token) = self.peek().cloned() else {
            return Err(ParseError("unexpected end of expression".into()));
        };
        self.at += 1;
        Ok(match token {
            Token::Symbol("(") => {
                let inner = self.or()?;
                self.expect_symbol(")")?;
                inner
            }
            Token::Text(text) => Expr::Constant(Value::Text(text)),
            Token::Long(n) => Expr::Constant(int_or_long(n)),
            // Java's createFloat: zero and what overflows do not compile.
            Token::Double(n) if n.is_finite() && n > 0.0 => Expr::Constant(Value::Double(n)),
            Token::Double(n) => return Err(ParseError(format!("the float {n} is out of range"))),
            Token::Word(w) if w.eq_ignore_ascii_case("TRUE") => Expr::Constant(Value::Bool(true)),
            Token::Word(w) if w.eq_ignore_ascii_case("FALSE") => Expr::Constant(Value::Bool(false)),
            Token::Word(w) if w.eq_ignore_ascii_case("NULL") => Expr::Constant(Value::Null),
            Token::Word(w) if !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)) => {
                Expr::Property(w)
            }
            other => return Err(ParseError(format!("unexpected {other:?}"))),
        })
    }
}

/// Java's `createFromDecimal`: an `Integer` when it fits, else a `Long`.
fn int_or_long(n: i64) -> Value {
    i32::try_from(n).map_or(Value::Long(n), Value::Int)
}

const RESERVED: [&str; 9] = [
    "NOT",
    "AND",
    "OR",
    "BETWEEN",
    "IN",
    "IS",
    "CONTAINS",
    "STARTSWITH",
    "ENDSWITH",
];

// --- evaluation (Java's expression classes) ---

/// An evaluation error: the message does not match.
struct EvalError;

fn eval(expr: &Expr, properties: &Properties) -> Result<Value, EvalError> {
    Ok(match expr {
        Expr::Constant(value) => value.clone(),
        Expr::Property(name) => properties
            .get(name)
            .map_or(Value::Null, |v| Value::Text(v.to_owned())),
        Expr::Negate(inner) => match eval(inner, properties)? {
            Value::Int(n) => Value::Int(n.wrapping_neg()),
            Value::Long(n) => Value::Long(n.wrapping_neg()),
            Value::Double(n) => Value::Double(-n),
            _ => Value::Null,
        },
        Expr::Not(inner) => match truth(eval(inner, properties)?)? {
            None => Value::Null,
            Some(b) => Value::Bool(!b),
        },
        Expr::And(l, r) => and(truth(eval(l, properties)?)?, || truth(eval(r, properties)?))?,
        Expr::Or(l, r) => or(truth(eval(l, properties)?)?, || truth(eval(r, properties)?))?,
        Expr::Equal(l, r) => equal(eval(l, properties)?, eval(r, properties)?)?,
        Expr::Compare(order, l, r) => ordered(*order, eval(l, properties)?, eval(r, properties)?)?,
        Expr::In {
            property,
            list,
            negated,
        } => match properties.get(property) {
            None => Value::Null,
            Some(value) => Value::Bool(list.contains(value) != *negated),
        },
        Expr::Text {
            op,
            value,
            search,
            negated,
        } => text(*op, eval(value, properties)?, search, *negated),
    })
}

/// A value in a boolean position: a boolean, or unknown.
fn truth(value: Value) -> Result<Option<bool>, EvalError> {
    match value {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        // Java's BooleanCastExpression: anything else is false.
        _ => Ok(Some(false)),
    }
}

/// Java's `LogicExpression` AND: an error on the right fails the whole
/// expression, as the exception does.
fn and(
    left: Option<bool>,
    right: impl FnOnce() -> Result<Option<bool>, EvalError>,
) -> Result<Value, EvalError> {
    if left == Some(false) {
        return Ok(Value::Bool(false));
    }
    Ok(match right()? {
        Some(false) => Value::Bool(false),
        Some(true) if left.is_some() => Value::Bool(true),
        _ => Value::Null,
    })
}

fn or(
    left: Option<bool>,
    right: impl FnOnce() -> Result<Option<bool>, EvalError>,
) -> Result<Value, EvalError> {
    if left == Some(true) {
        return Ok(Value::Bool(true));
    }
    Ok(match right()? {
        Some(true) => Value::Bool(true),
        Some(false) if left.is_some() => Value::Bool(false),
        _ => Value::Null,
    })
}

fn equal(left: Value, right: Value) -> Result<Value, EvalError> {
    Ok(match (&left, &right) {
        (Value::Null, Value::Null) => Value::Bool(true),
        (Value::Null, _) => Value::Null,
        (_, Value::Null) => Value::Bool(false),
        _ if left == right => Value::Bool(true),
        _ => Value::Bool(compare(&left, &right)? == Ordering::Equal),
    })
}

fn ordered(order: Order, left: Value, right: Value) -> Result<Value, EvalError> {
    if matches!(left, Value::Null) || matches!(right, Value::Null) {
        return Ok(Value::Null);
    }
    let ordering = match (&left, &right) {
        // Strings compared by order must both be numbers.
        (Value::Text(l), Value::Text(r)) => java_double(l)?.total_cmp(&java_double(r)?),
        _ => compare(&left, &right)?,
    };
    Ok(Value::Bool(match order {
        Order::Greater => ordering == Ordering::Greater,
        Order::GreaterOrEqual => ordering != Ordering::Less,
        Order::Less => ordering == Ordering::Less,
        Order::LessOrEqual => ordering != Ordering::Greater,
    }))
}

/// Java's `Double.valueOf`: surrounding blanks trimmed, an optional sign,
/// `NaN`, `Infinity`, decimal digits with a fraction and exponent, and an
/// optional `d`/`f` suffix.
fn java_double(text: &str) -> Result<f64, EvalError> {
    let trimmed = text.trim_matches(|c: char| c <= ' ');
    let unsigned = trimmed.trim_start_matches(['+', '-']);
    if trimmed.len() - unsigned.len() > 1 {
        return Err(EvalError);
    }
    let negative = trimmed.starts_with('-');
    let value = match unsigned {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let digits = unsigned
                .strip_suffix(['d', 'D', 'f', 'F'])
                .unwrap_or(unsigned);
            let numeric = !digits.is_empty()
                && digits
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            if !numeric {
                return Err(EvalError);
            }
            digits.parse::<f64>().map_err(|_| EvalError)?
        }
    };
    Ok(if negative { -value } else { value })
}

/// Java's `Integer.valueOf` / `Long.valueOf`: an optional sign and digits,
/// nothing else.
fn java_int<T: std::str::FromStr>(text: &str) -> Result<T, EvalError> {
    text.parse().map_err(|_| EvalError)
}

/// Java's `ComparisonExpression.__compare` with string conversion on:
/// numbers widen (Integer to Long to Double), a string next to a number or
/// boolean is converted to it, and anything else incomparable counts as
/// "less". A boolean on the left of a string is an error (Java casts the
/// boolean to a string and throws).
fn compare(left: &Value, right: &Value) -> Result<Ordering, EvalError> {
    use Value::{Bool, Double, Int, Long, Text};
    let doubles = |l: f64, r: f64| Ok(l.total_cmp(&r));
    match (left, right) {
        (Int(l), Int(r)) => Ok(l.cmp(r)),
        (Long(l), Long(r)) => Ok(l.cmp(r)),
        (Double(l), Double(r)) => doubles(*l, *r),
        (Text(l), Text(r)) => Ok(l.cmp(r)),
        (Bool(l), Bool(r)) => Ok(l.cmp(r)),
        (Int(l), Long(r)) => Ok(i64::from(*l).cmp(r)),
        (Long(l), Int(r)) => Ok(l.cmp(&i64::from(*r))),
        (Int(l), Double(r)) => doubles(f64::from(*l), *r),
        (Double(l), Int(r)) => doubles(*l, f64::from(*r)),
        (Long(l), Double(r)) => doubles(*l as f64, *r),
        (Double(l), Long(r)) => doubles(*l, *r as f64),
        (Int(l), Text(r)) => Ok(l.cmp(&java_int::<i32>(r)?)),
        (Text(l), Int(r)) => Ok(java_int::<i32>(l)?.cmp(r)),
        (Long(l), Text(r)) => Ok(l.cmp(&java_int::<i64>(r)?)),
        (Text(l), Long(r)) => Ok(java_int::<i64>(l)?.cmp(r)),
        (Double(l), Text(r)) => doubles(*l, java_double(r)?),
        (Text(l), Double(r)) => doubles(java_double(l)?, *r),
        (Text(l), Bool(r)) => Ok(l.eq_ignore_ascii_case("true").cmp(r)),
        (Bool(_), Text(_)) => Err(EvalError),
        _ => Ok(Ordering::Less),
    }
}

fn text(op: TextOp, value: Value, search: &str, negated: bool) -> Value {
    let Value::Text(value) = value else {
        return Value::Bool(false);
    };
    if search.is_empty() {
        return Value::Bool(false);
    }
    let found = match op {
        TextOp::Contains => value.contains(search),
        TextOp::StartsWith => value.starts_with(search),
        TextOp::EndsWith => value.ends_with(search),
    };
    Value::Bool(found != negated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        let mut properties = Properties::new();
        for (k, v) in pairs {
            properties.insert(*k, *v).unwrap();
        }
        properties
    }

    fn check(expression: &str, pairs: &[(&str, &str)]) -> bool {
        Sql92::parse(expression).unwrap().matches(&props(pairs))
    }

    #[test]
    fn comparisons_convert_strings_to_numbers() {
        assert!(check("a > 5", &[("a", "10")]));
        assert!(!check("a > 5", &[("a", "3")]));
        assert!(check("a = 5", &[("a", "5")]));
        assert!(check("a >= 1.5", &[("a", "2")]));
        assert!(check("a BETWEEN 1 AND 3", &[("a", "2")]));
        assert!(!check("a NOT BETWEEN 1 AND 3", &[("a", "2")]));
        assert!(
            !check("a > 5", &[("a", "x")]),
            "a conversion error never matches"
        );
        // Two properties are ordered as numbers (Double.valueOf), the
        // blanks around them trimmed.
        assert!(check("a > b", &[("a", " 6 "), ("b", "5")]));
    }

    #[test]
    fn integer_literals_are_javas_integers_when_they_fit() {
        // Integer.valueOf cannot read the property: an error, no match.
        assert!(!check("a > 5", &[("a", "3000000000")]));
        assert!(!check("a <> 0", &[("a", "5000000000")]));
        assert!(check("a > 5", &[("a", "2147483647")]));
        // A literal past 32 bits is a Long, and reads it.
        assert!(check("a > 2147483648", &[("a", "3000000000")]));
        assert!(check("a = -5", &[("a", "-5")]));
    }

    #[test]
    fn doubles_are_read_as_java_reads_them() {
        for (value, matches) in [
            ("NaN", true),
            ("Infinity", true),
            ("inf", false),
            ("2f", true),
            ("2d", true),
            ("0.5", false),
        ] {
            assert_eq!(check("a > 1.0", &[("a", value)]), matches, "{value}");
        }
    }

    #[test]
    fn an_error_anywhere_fails_the_whole_expression() {
        let p = [("x", "1"), ("a", "abc"), ("y", "2")];
        assert!(!check("x = '1' AND a > 5 OR y = '2'", &p));
        assert!(!check("a = 'y' OR a > 5 OR a = 'x'", &[("a", "x")]));
        // A boolean on the left of a string throws in Java.
        assert!(!check("NOT a = 'x' OR b = 'y'", &[("a", "v"), ("b", "y")]));
        assert!(!check("TRUE = a", &[("a", "true")]));
        assert!(check("a = TRUE", &[("a", "TRUE")]));
    }

    #[test]
    fn negation_is_evaluated_as_java_does() {
        assert!(check("a = -5", &[("a", "-5")]));
        assert!(check("a > -5.5", &[("a", "-5")]));
        // A property's text is no number: negated, it is null.
        assert!(check("-a IS NULL", &[("a", "5")]));
        assert!(check("a NOT BETWEEN 5 AND 1", &[("a", "7")]));
        assert!(!check("a BETWEEN -1 AND -5", &[("a", "-3")]));
        assert!(Sql92::parse("-a").is_err(), "not boolean");
    }

    #[test]
    fn what_follows_the_expression_is_ignored_as_java_does() {
        assert!(check("a = 'x' or b LIKE 'y%'", &[("a", "x")]));
        assert!(!check("name LIKE 'abc%'", &[("name", "abcd")]));
        assert!(check("a = 'x' b = 'y'", &[("a", "x")]));
        // ... unless the next token cannot be read.
        assert!(Sql92::parse("a = 1 @").is_err());
        assert!(Sql92::parse("a = 1 b @").is_ok());
    }

    #[test]
    fn nulls_are_unknown() {
        assert!(!check("a > 5", &[]));
        assert!(!check("NOT (a > 5)", &[]));
        assert!(check("a IS NULL", &[]));
        assert!(check("a IS NOT NULL", &[("a", "1")]));
        assert!(!check("a = 'x'", &[]));
        assert!(check("a = 'x' OR TRUE", &[]));
        assert!(!check("a = 'x' AND TRUE", &[]));
        assert!(!check("a <> 'x'", &[]));
    }

    #[test]
    fn strings_sets_and_text_operators() {
        let p = [("TAGS", "TagA"), ("region", "eu-west")];
        assert!(check("TAGS = 'TagA' AND region IN ('eu-west', 'us')", &p));
        assert!(check("region NOT IN ('us')", &p));
        assert!(check(
            "region STARTSWITH 'eu' AND region ENDSWITH 'west'",
            &p
        ));
        assert!(check("region CONTAINS '-' AND region NOT CONTAINS 'x'", &p));
        assert!(check("name = 'it''s'", &[("name", "it's")]));
        assert!(check(
            "(a = 1 OR b = 2) -- comment\n AND c IS NULL",
            &[("b", "2")]
        ));
    }

    #[test]
    fn bad_expressions_are_parse_errors() {
        for bad in [
            "",
            "5",
            "a >",
            "a IN (1)",
            "(a = 1",
            "a = 'x",
            "5 BETWEEN 3 AND 1",
            "a @ 1",
            // Java's checkLessThanOperand: only numbers and properties.
            "a > '5'",
            "a BETWEEN '1' AND '5'",
            "NOT a > 5",
            "a > NULL",
            "a > TRUE",
            "(a > 1) > 0",
            // checkEqualOperand: no NULL next to = or <>.
            "a = NULL",
            "a <> NULL",
            "NULL = a",
            "TRUE = 'x'",
            // createFloat: zero and overflow.
            "a > 0.0",
            "a BETWEEN 0.0 AND 10.5",
            "a > 1e309",
        ] {
            assert!(Sql92::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "a > b",
            "a > 0.5",
            "a IS NULL",
            "a = TRUE",
            "a > -5",
            "a BETWEEN -1 AND -5",
            "a NOT BETWEEN 5 AND 1",
            "-a IS NULL",
        ] {
            assert!(Sql92::parse(good).is_ok(), "{good}");
        }
    }
}
