//! The fast path of [`super::json::args_to_wire`]: a hand-written reader for
//! the JSON a typical call sends (an array of arguments; records with their
//! fields in declaration order; integers, strings without escapes, booleans,
//! nulls, lists, tuples, enums), written straight into wire bytes.
//!
//! It never decides anything on its own: on the first thing it does not
//! handle, or anything wrong, it gives up (`None`) and the full reader runs
//! from the start, so every rule and every error message stays in one place.
//! What it accepts it converts exactly as the full reader does; the fuzz
//! target `json_wire` checks that the two agree on every input.
//!
//! Why: serde's typed path costs more than a native call itself for a small
//! record (the issue's target is a JSON call within 3x of the wire call).

use super::json::same_name_bytes as same_name;
use super::ty::{NamedKind, Ty};

/// Deeper than this, the full reader takes over (it enforces the limits).
const MAX_FAST_DEPTH: usize = 32;

/// The wire bytes of `input` (a JSON array of arguments), or `None` to
/// leave it to the full reader.
pub(super) fn args_to_wire(params: &[(String, Ty)], input: &[u8]) -> Option<Vec<u8>> {
    let mut r = Fast { input, pos: 0, out: Vec::with_capacity(input.len()) };
    r.ws();
    r.eat(b'[')?;
    for (i, (_, ty)) in params.iter().enumerate() {
        if i > 0 {
            r.ws();
            r.eat(b',')?;
        }
        r.ws();
        r.value(ty, 0)?;
    }
    r.ws();
    r.eat(b']')?;
    r.ws();
    (r.pos == input.len()).then_some(r.out)
}

struct Fast<'a> {
    input: &'a [u8],
    pos: usize,
    out: Vec<u8>,
}

impl<'a> Fast<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// After an item: `,` (more follow: false) or `close` (true).
    #[inline(always)]
    fn closes(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let byte = self.peek()?;
        self.pos += 1;
        match byte {
            b',' => Some(false),
            b if b == close => Some(true),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.input.get(self.pos..)?.starts_with(word).then(|| self.pos += word.len())
    }

    /// A string with no escapes and no control characters, as its bytes,
    /// and whether they are all ASCII (so already valid UTF-8).
    #[inline(always)]
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let rest = &self.input[self.pos..];
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        // Eight bytes at a time: flag quotes, backslashes and control
        // characters. The lowest flagged byte is always a real one (the
        // bit trick can only misflag bytes above a real hit), so it ends
        // the string, or makes it one for the full reader.
        let mut len = 0;
        let mut high = 0;
        while let Some(word) = rest.get(len..len + 8) {
            let x = u64::from_le_bytes(word.try_into().ok()?);
            let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
            let hits = zero(x ^ (ONES * b'"' as u64)) | zero(x ^ (ONES * b'\\' as u64)) | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if hits == 0 {
                high |= x;
                len += 8;
                continue;
            }
            let at = hits.trailing_zeros() as usize / 8;
            if word[at] != b'"' {
                return None;
            }
            // Only the bytes before the quote count for ASCII.
            high |= x & ((1u64 << (at * 8)) - 1);
            self.pos += len + at + 1;
            return Some((&rest[..len + at], high & HIGH == 0));
        }
        // The last few bytes of the input, one by one.
        let mut ascii = high & HIGH == 0;
        loop {
            match *rest.get(len)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                b => ascii &= b < 0x80,
            }
            len += 1;
        }
        self.pos += len + 1;
        Some((&rest[..len], ascii))
    }

    /// A string that must be UTF-8 (a string value).
    #[inline(always)]
    fn text(&mut self) -> Option<&'a [u8]> {
        let (bytes, ascii) = self.string()?;
        (ascii || std::str::from_utf8(bytes).is_ok()).then_some(bytes)
    }

    /// A JSON integer (no fraction, no exponent) as sign and magnitude.
    #[inline(always)]
    fn integer(&mut self) -> Option<i128> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let mut magnitude: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            magnitude = magnitude.checked_mul(10)?.checked_add((d - b'0') as u64)?;
            self.pos += 1;
        }
        // No leading zeros (not JSON).
        let digits = self.pos - start;
        if digits == 0 || (digits > 1 && self.input[start] == b'0') {
            return None;
        }
        // A fraction or an exponent makes it a float: the full reader's.
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        // -0 is a float to serde_json; past i64::MIN it is too.
        match negative {
            true if magnitude == 0 || magnitude > 1 << 63 => None,
            true => Some(-(magnitude as i128)),
            false => Some(magnitude as i128),
        }
    }

    fn value(&mut self, ty: &Ty, depth: usize) -> Option<()> {
        if depth > MAX_FAST_DEPTH {
            return None;
        }
        let first = self.peek()?;
        if let Ty::Option(inner) = ty {
            if first == b'n' {
                self.literal(b"null")?;
                self.out.push(0);
            } else {
                self.out.push(1);
                self.value(inner, depth)?;
            }
            return Some(());
        }
        match (ty, first) {
            (Ty::Bool, b't') => {
                self.literal(b"true")?;
                self.out.push(1);
            }
            (Ty::Bool, b'f') => {
                self.literal(b"false")?;
                self.out.push(0);
            }
            (Ty::S8 | Ty::U8 | Ty::S16 | Ty::U16 | Ty::S32 | Ty::U32 | Ty::S64 | Ty::U64, b'-' | b'0'..=b'9') => {
                let i = self.integer()?;
                let out = &mut self.out;
                match ty {
                    Ty::S8 => out.extend_from_slice(&i8::try_from(i).ok()?.to_le_bytes()),
                    Ty::U8 => out.extend_from_slice(&u8::try_from(i).ok()?.to_le_bytes()),
                    Ty::S16 => out.extend_from_slice(&i16::try_from(i).ok()?.to_le_bytes()),
                    Ty::U16 => out.extend_from_slice(&u16::try_from(i).ok()?.to_le_bytes()),
                    Ty::S32 => out.extend_from_slice(&i32::try_from(i).ok()?.to_le_bytes()),
                    Ty::U32 => out.extend_from_slice(&u32::try_from(i).ok()?.to_le_bytes()),
                    Ty::S64 => out.extend_from_slice(&i64::try_from(i).ok()?.to_le_bytes()),
                    _ => out.extend_from_slice(&u64::try_from(i).ok()?.to_le_bytes()),
                }
            }
            (Ty::String, b'"') => {
                let s = self.text()?;
                self.out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                self.out.extend_from_slice(s);
            }
            (Ty::Named(named), b'"') => {
                // Names are ASCII: a name in other bytes matches no case.
                let (s, _) = self.string()?;
                let tag = match &named.kind {
                    NamedKind::Enum(cases) => cases.iter().position(|c| same_name(s, c))?,
                    NamedKind::Variant(cases) => cases.iter().position(|c| same_name(s, &c.name)).filter(|&t| cases[t].ty.is_none())?,
                    _ => return None,
                };
                self.out.extend_from_slice(&(tag as u32).to_le_bytes());
            }
            (Ty::List(elem), b'[') => {
                self.pos += 1;
                let at = self.out.len();
                self.out.extend_from_slice(&0u64.to_le_bytes());
                self.ws();
                let mut n = 0u64;
                if self.eat(b']').is_none() {
                    loop {
                        self.ws();
                        self.value(elem, depth + 1)?;
                        n += 1;
                        if self.closes(b']')? {
                            break;
                        }
                    }
                }
                self.out[at..at + 8].copy_from_slice(&n.to_le_bytes());
            }
            (Ty::Tuple(types), b'[') => {
                self.pos += 1;
                for (i, t) in types.iter().enumerate() {
                    self.ws();
                    if i > 0 {
                        self.eat(b',')?;
                        self.ws();
                    }
                    self.value(t, depth + 1)?;
                }
                self.ws();
                self.eat(b']')?;
            }
            (Ty::Named(named), b'{') => {
                let NamedKind::Record(fields) = &named.kind else { return None };
                self.pos += 1;
                self.ws();
                let mut next = 0;
                if self.eat(b'}').is_none() {
                    loop {
                        self.ws();
                        let (key, _) = self.string()?;
                        // In declaration order only; anything else is the full reader's.
                        let field = fields.get(next).filter(|f| same_name(key, &f.name))?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                        self.value(&field.ty, depth + 1)?;
                        next += 1;
                        if self.closes(b'}')? {
                            break;
                        }
                    }
                }
                // Missing trailing fields are none when they are options.
                for f in &fields[next..] {
                    if !matches!(f.ty, Ty::Option(_)) {
                        return None;
                    }
                    self.out.push(0);
                }
            }
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::value::json::args_to_wire_full;
    use crate::value::{Case, Field, Named};

    fn named(name: &str, kind: NamedKind) -> Ty {
        Ty::Named(Arc::new(Named { name: name.into(), kind }))
    }

    fn order() -> Ty {
        named(
            "order",
            NamedKind::Record(vec![
                Field { name: "id".into(), ty: Ty::U64 },
                Field { name: "sku".into(), ty: Ty::String },
                Field { name: "unit-cents".into(), ty: Ty::S64 },
                Field { name: "note".into(), ty: Ty::Option(Box::new(Ty::String)) },
            ]),
        )
    }

    /// `(type, JSON argument, whether the fast path answers)`: where it
    /// answers it must equal the full reader; where it gives up, the full
    /// reader's answer (value or error) is what the caller gets.
    #[test]
    fn the_fast_path_answers_as_the_full_reader_or_not_at_all() {
        let color = named("color", NamedKind::Enum(vec!["dark-red".into(), "blue".into()]));
        let shape = named(
            "shape",
            NamedKind::Variant(vec![Case { name: "none".into(), ty: None }, Case { name: "circle".into(), ty: Some(Ty::F64) }]),
        );
        let list = |t: Ty| Ty::List(Box::new(t));
        let opt = |t: Ty| Ty::Option(Box::new(t));
        let cases: Vec<(Ty, &str, bool)> = vec![
            (order(), r#"{"id": 7, "sku": "widget-42", "unit_cents": -1999, "note": "gift"}"#, true),
            (order(), r#"{"id":7,"sku":"w","unit-cents":1}"#, true),
            (order(), r#"{"sku": "w", "id": 7, "unit_cents": 1}"#, false),
            (order(), r#"{"id": 7, "sku": "w"}"#, false),
            (order(), r#"{"id": 7, "sku": "w\n", "unit_cents": 1}"#, false),
            (order(), r#"{"id": 7, "sku": "w", "unit_cents": 1, "extra": 0}"#, false),
            (order(), r#"{"id": 7, "id": 7, "sku": "w", "unit_cents": 1}"#, false),
            (order(), r#"{"id": "7", "sku": "w", "unit_cents": 1}"#, false),
            (Ty::U8, "255", true),
            (Ty::U8, "256", false),
            (Ty::S8, "-128", true),
            (Ty::S64, "-9223372036854775808", true),
            (Ty::S64, "-9223372036854775809", false),
            (Ty::U64, "18446744073709551615", true),
            (Ty::U64, "18446744073709551616", false),
            (Ty::U64, "184467440737095516150", false),
            (Ty::U32, "-0", false),
            (Ty::U32, "01", false),
            (Ty::U32, "1.0", false),
            (Ty::U32, "1e3", false),
            (Ty::U32, "-", false),
            (Ty::F64, "1", false),
            (Ty::Bool, "true", true),
            (Ty::Bool, "fals", false),
            (Ty::String, "\"caf\u{e9}\"", true),
            (Ty::Char, "\"c\"", false),
            (opt(opt(Ty::U8)), "null", true),
            (opt(Ty::U8), "3", true),
            (list(Ty::U8), "[]", true),
            (list(Ty::U8), "[ 1 , 2 ,3 ]", true),
            (list(Ty::U8), "[1,]", false),
            (list(Ty::U8), "[1 2]", false),
            (list(order()), r#"[{"id":1,"sku":"a","unit_cents":2},{"id":3,"sku":"b","unit_cents":4,"note":null}]"#, true),
            (Ty::Tuple(vec![Ty::U8, Ty::String]), r#"[1, "a"]"#, true),
            (Ty::Tuple(vec![Ty::U8, Ty::String]), r#"[1]"#, false),
            (Ty::Tuple(vec![Ty::U8]), r#"[1, 2]"#, false),
            (color.clone(), "\"dark_red\"", true),
            (color.clone(), "\"DarkRed\"", true),
            (color, "\"green\"", false),
            (shape.clone(), "\"None\"", true),
            (shape.clone(), "\"circle\"", false),
            (shape, r#"{"circle": 1.5}"#, false),
        ];
        for (ty, arg, answers) in cases {
            let params = [("x".to_string(), ty)];
            let input = format!("[{arg}]");
            let fast = args_to_wire(&params, input.as_bytes());
            assert_eq!(fast.is_some(), answers, "{arg}: fast path answered {fast:?}");
            if let Some(bytes) = fast {
                assert_eq!(bytes, args_to_wire_full(&params, input.as_bytes()).unwrap(), "{arg}");
            }
        }
        // Around the arguments: the array, whitespace, and nothing after it.
        let params = [("a".to_string(), Ty::U8), ("b".to_string(), Ty::U8)];
        assert_eq!(args_to_wire(&params, b" \n[1,\t2]\r\n"), Some(vec![1, 2]));
        for input in [&b"[1]"[..], b"[1,2,3]", b"[1,2] x", b"{\"a\":1,\"b\":2}", b"[1,2]\x0c"] {
            assert_eq!(args_to_wire(&params, input), None, "{}", String::from_utf8_lossy(input));
        }
        // Invalid UTF-8 in a string is the full reader's to refuse.
        assert_eq!(args_to_wire(&[("s".to_string(), Ty::String)], b"[\"\xff\"]"), None);
    }
}
