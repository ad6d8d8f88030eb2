//! JSON <-> Fidius wire bytes, directed by interface types: a JSON call is a
//! wire call with a conversion on each side, for every runtime.
//!
//! The rules (also in the header docs of `FIDIUS_FORMAT_JSON` and the README):
//! - integers must be whole and in range for their width (no wrapping);
//!   64-bit integers also accept a decimal string, and are written as a
//!   string when beyond ±2^53 so no JSON reader loses precision;
//! - floats are numbers, or the strings "NaN", "Infinity", "-Infinity";
//! - `char` is a one-character string;
//! - `list<T>` is an array (`list<u8>` too); `tuple<...>` an array of exactly its length;
//!   a map (`list<tuple<K, V>>` from a Rust map) is an array of `[key, value]` pairs;
//! - records are objects keyed by field name, snake_case (kebab-case accepted on input);
//!   a missing `option` field is `none`; unknown keys are errors;
//! - variants are `{"Case": payload}`, or `"Case"` without payload; enums are `"Case"`.
//!   Output uses PascalCase (as serde writes Rust enums); input accepts
//!   PascalCase, snake_case or kebab-case;
//! - `option<T>`: `null` is none, anything else is some;
//! - `result<T, E>` (other than a method's `result<T, plugin-error>`, which
//!   becomes the call's outcome): `{"ok": v}` or `{"err": e}`.
//!
//! The wire side is what the matching Rust type's bincode is: `string`,
//! `list<T>` and maps a u64 length then the items; `option` a 1-byte tag;
//! `tuple` and `record` their members in order; `variant` and `enum` a u32
//! case index then the payload; `result` a u32 (0 ok, 1 err); `char` its
//! UTF-8 bytes.


use super::names::snake;
use super::ty::{NamedKind, Ty};
use super::wire::{err as wire_err, Reader, MAX_DEPTH};
use crate::error::{fail, Error, Result, Status};

/// The most zero-sized items (`tuple<>`) a list may claim.
const MAX_EMPTY_ITEMS: usize = 1 << 20;

/// Beyond this magnitude a JSON number is not exact in a double.
const EXACT_IN_DOUBLE: u64 = 1 << 53;

fn err<T>(path: &str, message: impl std::fmt::Display) -> Result<T> {
    fail(Status::Serialization, format!("{path}: {message}"))
}

/// Where in the input a value is, for messages; built into text only when
/// an error needs it.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'a str),
    /// A record field or named argument (a kebab-case WIT name, shown snake_case).
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
    /// A variant case or result side, shown as written.
    Case(&'a Path<'a>, &'a str),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(r) => f.write_str(r),
            Path::Field(p, name) => write!(f, "{p}.{}", snake(name)),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
            Path::Case(p, name) => write!(f, "{p}.{name}"),
        }
    }
}


/// The same name, whatever the spelling: `shape-rect`, `shape_rect`, `ShapeRect`.
fn same_name(given: &str, kebab_name: &str) -> bool {
    same_name_bytes(given.as_bytes(), kebab_name)
}

/// [`same_name`] of a name given as bytes (not necessarily UTF-8).
pub(super) fn same_name_bytes(given: &[u8], kebab_name: &str) -> bool {
    // The usual spelling first: snake_case (or kebab-case) of the same length.
    if given.len() == kebab_name.len()
        && given.iter().zip(kebab_name.bytes()).all(|(&a, b)| a == b || (a == b'_' && b == b'-'))
    {
        return true;
    }
    let mut a = given.iter().copied().filter(|b| *b != b'_' && *b != b'-').map(|b| b.to_ascii_lowercase());
    let mut b = kebab_name.bytes().filter(|b| *b != b'-');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

/// A call's JSON input (an array of positional arguments, or an object keyed
/// by parameter name; empty input is no arguments) as the wire bytes of the
/// argument tuple. The JSON is read once, straight into wire bytes.
pub fn args_to_wire(params: &[(String, Ty)], input: &[u8]) -> Result<Vec<u8>> {
    if input.iter().all(u8::is_ascii_whitespace) {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        return err("args", format!("expected {} arguments, got none", params.len()));
    }
    match super::fast::args_to_wire(params, input) {
        Some(out) => Ok(out),
        None => args_to_wire_full(params, input),
    }
}

/// The fast path of [`args_to_wire`] alone (`None`: it gave up), for the
/// fuzz target that checks it against the full reader.
#[doc(hidden)]
pub fn args_to_wire_fast(params: &[(String, Ty)], input: &[u8]) -> Option<Vec<u8>> {
    super::fast::args_to_wire(params, input)
}

/// [`args_to_wire`] by the full reader alone (serde_json, every rule and
/// message), for input that is not all whitespace.
#[doc(hidden)]
pub fn args_to_wire_full(params: &[(String, Ty)], input: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut de = serde_json::Deserializer::from_slice(input);
    let mut failure = None;
    let seed = ArgsSeed { params, out: &mut out, failure: &mut failure };
    let parsed = serde::de::DeserializeSeed::deserialize(seed, &mut de).and_then(|()| de.end());
    match (failure, parsed) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(Error::new(Status::Serialization, format!("input is not valid JSON: {e}"))),
        (None, Ok(())) => Ok(out),
    }
}

/// A raw method's JSON input (one argument, an array of bytes) as its bytes.
pub fn raw_arg(input: &[u8]) -> Result<Vec<u8>> {
    let mut wire = args_to_wire(&[("data".to_string(), Ty::List(Box::new(Ty::U8)))], input)?;
    Ok(wire.split_off(8))
}

/// A result's wire bytes as JSON text (`null` for a method without a result).
pub fn output_to_json(ty: Option<&Ty>, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 2 + 4);
    match ty {
        None => out.extend_from_slice(b"null"),
        Some(ty) => {
            let mut r = Reader::new(bytes);
            write_json(ty, &mut r, &mut out, 0).map_err(|e| e.context("the plugin's output"))?;
            r.finish("the plugin's output")?;
        }
    }
    Ok(out)
}

/// As [`output_to_json`], but 64-bit integers are always JSON numbers, for
/// a reader that keeps them exact (a Python plugin's arguments) rather than
/// one that may read them as doubles.
pub fn output_to_exact_json(ty: Option<&Ty>, bytes: &[u8]) -> Result<Vec<u8>> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            EXACT_WIDE.with(|e| e.set(false));
        }
    }
    EXACT_WIDE.with(|e| e.set(true));
    let _reset = Reset;
    output_to_json(ty, bytes)
}

// ---- JSON text -> wire bytes, streamed ----------------------------------------

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Where a failure with a precise message is kept while serde unwinds
/// (serde's own errors carry only text).
type Failure<'a> = &'a mut Option<Error>;

fn stop<E: de::Error>(failure: Failure<'_>, e: Error) -> E {
    let text = e.message.clone();
    *failure = Some(e);
    E::custom(text)
}

struct ArgsSeed<'a> {
    params: &'a [(String, Ty)],
    out: &'a mut Vec<u8>,
    failure: Failure<'a>,
}

impl<'de> DeserializeSeed<'de> for ArgsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArgsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of arguments or an object keyed by name")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let root = Path::Root("args");
        let (params, out, failure) = (self.params, &mut *self.out, &mut *self.failure);
        let got = read_exactly(&mut seq, params.len(), |seq, i| {
            let path = Path::Field(&root, &params[i].0);
            seq.next_element_seed(Seed { ty: &params[i].1, path: &path, out: &mut *out, failure: &mut *failure, depth: 0 })
        })?;
        if got != self.params.len() {
            let e = Error::new(Status::Serialization, format!("args: expected {} arguments, got {got}", self.params.len()));
            return Err(stop(self.failure, e));
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let root = Path::Root("args");
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; self.params.len()];
        // A missing argument is reported before an unknown one.
        let mut unknown = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Some(i) = self.params.iter().position(|(n, _)| same_name(&key, n)) else {
                map.next_value::<de::IgnoredAny>()?;
                unknown.get_or_insert_with(|| key.into_owned());
                continue;
            };
            let mut buf = Vec::new();
            let path = Path::Field(&root, &self.params[i].0);
            map.next_value_seed(Seed { ty: &self.params[i].1, path: &path, out: &mut buf, failure: &mut *self.failure, depth: 0 })?;
            slots[i] = Some(buf);
        }
        for ((name, ty), slot) in self.params.iter().zip(slots) {
            match slot {
                Some(bytes) => self.out.extend_from_slice(&bytes),
                None if matches!(ty, Ty::Option(_)) => self.out.push(0),
                None => {
                    let e = Error::new(Status::Serialization, format!("{}: missing argument", Path::Field(&root, name)));
                    return Err(stop(self.failure, e));
                }
            }
        }
        if let Some(key) = unknown {
            return Err(stop(self.failure, Error::new(Status::Serialization, format!("args: unknown argument \"{key}\""))));
        }
        Ok(())
    }
}

/// An object key, borrowed from the input where it has no escapes (serde's
/// own `Cow<str>` always allocates).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(s))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(s.to_owned()))
    }
}

/// Read up to `count` items of an array with `next` (which reads item `i`
/// and says whether there was one), then skip the rest: how many it held.
fn read_exactly<'de, A: SeqAccess<'de>>(
    seq: &mut A,
    count: usize,
    mut next: impl FnMut(&mut A, usize) -> std::result::Result<Option<()>, A::Error>,
) -> std::result::Result<usize, A::Error> {
    let mut n = 0;
    while n < count && next(seq, n)?.is_some() {
        n += 1;
    }
    while seq.next_element::<de::IgnoredAny>()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// One value of type `ty` from JSON, written as wire bytes.
struct Seed<'p, 'o> {
    ty: &'p Ty,
    path: &'p Path<'p>,
    out: &'o mut Vec<u8>,
    failure: Failure<'o>,
    depth: usize,
}

impl<'p, 'o> Seed<'p, 'o> {
    fn fail<E: de::Error>(self, message: impl std::fmt::Display) -> E {
        let e = Error::new(Status::Serialization, format!("{}: {message}", self.path));
        stop(self.failure, e)
    }

    fn expected<E: de::Error>(self, got: &str) -> E {
        let what = expectation(self.ty);
        self.fail(format!("expected {what}, got {got}"))
    }

    fn integer<E: de::Error>(self, i: i128) -> std::result::Result<(), E> {
        macro_rules! put {
            ($t:ty, $name:literal) => {
                match <$t>::try_from(i) {
                    Ok(v) => self.out.extend_from_slice(&v.to_le_bytes()),
                    Err(_) => return Err(self.fail(format!("{i} is out of range for {}", $name))),
                }
            };
        }
        match self.ty {
            Ty::S8 => put!(i8, "s8"),
            Ty::U8 => put!(u8, "u8"),
            Ty::S16 => put!(i16, "s16"),
            Ty::U16 => put!(u16, "u16"),
            Ty::S32 => put!(i32, "s32"),
            Ty::U32 => put!(u32, "u32"),
            Ty::S64 => put!(i64, "s64"),
            Ty::U64 => put!(u64, "u64"),
            Ty::F32 => self.out.extend_from_slice(&(i as f32).to_le_bytes()),
            Ty::F64 => self.out.extend_from_slice(&(i as f64).to_le_bytes()),
            Ty::Option(inner) => {
                self.out.push(1);
                let ty: &Ty = inner;
                return Seed { ty, ..self }.integer(i);
            }
            _ => return Err(self.expected("a number")),
        }
        Ok(())
    }

    fn text<E: de::Error>(self, s: &str) -> std::result::Result<(), E> {
        match self.ty {
            Ty::String => {
                self.out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                self.out.extend_from_slice(s.as_bytes());
                Ok(())
            }
            Ty::Char => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => {
                        self.out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        Ok(())
                    }
                    _ => Err(self.expected("a string")),
                }
            }
            Ty::S64 | Ty::U64 => match s.trim().parse::<i128>() {
                Ok(i) => self.integer(i),
                Err(_) => Err(self.fail(format!("\"{s}\" is not a decimal integer"))),
            },
            Ty::F32 | Ty::F64 => {
                let f = match s {
                    "NaN" => f64::NAN,
                    "Infinity" | "inf" => f64::INFINITY,
                    "-Infinity" | "-inf" => f64::NEG_INFINITY,
                    _ => return Err(self.fail(format!("\"{s}\" is not a number"))),
                };
                self.float(f)
            }
            Ty::Option(inner) => {
                self.out.push(1);
                let ty: &Ty = inner;
                Seed { ty, ..self }.text(s)
            }
            Ty::Named(named) => match &named.kind {
                NamedKind::Enum(cases) => match cases.iter().position(|c| same_name(s, c)) {
                    Some(tag) => {
                        self.out.extend_from_slice(&(tag as u32).to_le_bytes());
                        Ok(())
                    }
                    None => Err(self.fail(format!("unknown enum case \"{s}\""))),
                },
                NamedKind::Variant(cases) => match cases.iter().position(|c| same_name(s, &c.name)) {
                    Some(tag) if cases[tag].ty.is_none() => {
                        self.out.extend_from_slice(&(tag as u32).to_le_bytes());
                        Ok(())
                    }
                    Some(_) => Err(self.fail(format!("case \"{s}\" needs a payload: {{\"{s}\": ...}}"))),
                    None => Err(self.fail(format!("unknown case \"{s}\""))),
                },
                _ => Err(self.expected("a string")),
            },
            _ => Err(self.expected("a string")),
        }
    }

    fn float<E: de::Error>(self, f: f64) -> std::result::Result<(), E> {
        match self.ty {
            Ty::F32 => self.out.extend_from_slice(&(f as f32).to_le_bytes()),
            Ty::F64 => self.out.extend_from_slice(&f.to_le_bytes()),
            Ty::Option(inner) => {
                self.out.push(1);
                let ty: &Ty = inner;
                return Seed { ty, ..self }.float(f);
            }
            Ty::S8 | Ty::U8 | Ty::S16 | Ty::U16 | Ty::S32 | Ty::U32 | Ty::S64 | Ty::U64 => {
                if f.fract() == 0.0 && f.abs() < 2f64.powi(64) {
                    return self.integer(f as i128);
                }
                return Err(self.fail(format!("{f} is not a whole number")));
            }
            _ => return Err(self.expected("a number")),
        }
        Ok(())
    }
}

/// What a JSON value of this type looks like, for messages.
fn expectation(ty: &Ty) -> &'static str {
    match ty {
        Ty::Bool => "a boolean",
        Ty::S64 | Ty::U64 => "an integer (or a decimal string)",
        Ty::S8 | Ty::U8 | Ty::S16 | Ty::U16 | Ty::S32 | Ty::U32 => "an integer",
        Ty::F32 | Ty::F64 => "a number",
        Ty::Char => "a one-character string",
        Ty::String => "a string",
        Ty::List(_) => "an array",
        Ty::Tuple(_) => "an array (tuple)",
        Ty::Option(inner) => expectation(inner),
        Ty::Result { .. } => "{\"ok\": ...} or {\"err\": ...}",
        Ty::Named(n) => match n.kind {
            NamedKind::Record(_) => "an object (record)",
            NamedKind::Variant(_) => "\"Case\" or {\"Case\": payload}",
            NamedKind::Enum(_) => "a string (enum case)",
            NamedKind::Flags(_) => "flags (which have no wire form)",
        },
        Ty::Opaque(_) => "a value with a wire form",
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(self.fail("value nested too deeply"));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(expectation(self.ty))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<(), E> {
        match self.ty {
            Ty::Bool => {
                self.out.push(b as u8);
                Ok(())
            }
            Ty::Option(inner) => {
                self.out.push(1);
                let ty: &Ty = inner;
                Seed { ty, ..self }.visit_bool(b)
            }
            _ => Err(self.expected("a boolean")),
        }
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> std::result::Result<(), E> {
        self.integer(i as i128)
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> std::result::Result<(), E> {
        self.integer(u as i128)
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> std::result::Result<(), E> {
        self.float(f)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<(), E> {
        self.text(s)
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        match self.ty {
            Ty::Option(_) => {
                self.out.push(0);
                Ok(())
            }
            _ => Err(self.expected("null")),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let Seed { ty, path, out, failure, depth } = self;
        match ty {
            Ty::List(elem) => {
                let at = out.len();
                out.extend_from_slice(&0u64.to_le_bytes());
                let mut n = 0usize;
                loop {
                    let p = Path::Index(path, n);
                    let seed = Seed { ty: elem, path: &p, out: &mut *out, failure: &mut *failure, depth: depth + 1 };
                    if seq.next_element_seed(seed)?.is_none() {
                        break;
                    }
                    n += 1;
                }
                out[at..at + 8].copy_from_slice(&(n as u64).to_le_bytes());
                Ok(())
            }
            Ty::Tuple(types) => {
                let got = read_exactly(&mut seq, types.len(), |seq, i| {
                    let p = Path::Index(path, i);
                    seq.next_element_seed(Seed { ty: &types[i], path: &p, out: &mut *out, failure: &mut *failure, depth: depth + 1 })
                })?;
                if got != types.len() {
                    let e = Error::new(Status::Serialization, format!("{path}: expected a tuple of {}, got {got} items", types.len()));
                    return Err(stop(failure, e));
                }
                Ok(())
            }
            Ty::Option(inner) => {
                out.push(1);
                Seed { ty: inner, path, out, failure, depth }.visit_seq(seq)
            }
            _ => Err(Seed { ty, path, out, failure, depth }.expected("an array")),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let Seed { ty, path, out, failure, depth } = self;
        let named = match ty {
            Ty::Option(inner) => {
                out.push(1);
                return Seed { ty: inner, path, out, failure, depth }.visit_map(map);
            }
            Ty::Result { ok, err: error } => {
                let Some(key) = map.next_key_seed(KeySeed)? else {
                    return Err(Seed { ty, path, out, failure, depth }.expected("an empty object"));
                };
                let (tag, side, label) = match &*key {
                    "ok" | "Ok" => (0u32, ok, "ok"),
                    "err" | "Err" => (1u32, error, "err"),
                    other => {
                        let m = format!("expected {{\"ok\": ...}} or {{\"err\": ...}}, got \"{other}\"");
                        return Err(Seed { ty, path, out, failure, depth }.fail(m));
                    }
                };
                out.extend_from_slice(&tag.to_le_bytes());
                let p = Path::Case(path, label);
                match side {
                    Some(t) => map.next_value_seed(Seed { ty: t, path: &p, out: &mut *out, failure: &mut *failure, depth: depth + 1 })?,
                    None => {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(Seed { ty, path, out, failure, depth }.fail("a result is one of {\"ok\": ...} or {\"err\": ...}"));
                }
                return Ok(());
            }
            Ty::Named(named) => named,
            _ => return Err(Seed { ty, path, out, failure, depth }.expected("an object")),
        };
        match &named.kind {
            NamedKind::Record(fields) => {
                // Fields in declaration order (the usual case) go straight to
                // the output; from the first one out of order on, each goes
                // into its slot, and the slots are written in order at the end.
                let mut next = 0;
                let mut slots: Vec<Option<Vec<u8>>> = Vec::new();
                // A missing field is reported before an unknown one.
                let mut unknown = None;
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    if slots.is_empty() && next < fields.len() && same_name(&key, &fields[next].name) {
                        let p = Path::Field(path, &fields[next].name);
                        map.next_value_seed(Seed { ty: &fields[next].ty, path: &p, out: &mut *out, failure: &mut *failure, depth: depth + 1 })?;
                        next += 1;
                        continue;
                    }
                    let found = fields.iter().enumerate().skip(next).find(|(_, f)| same_name(&key, &f.name)).map(|(i, _)| i);
                    let Some(i) = found else {
                        if fields[..next].iter().any(|f| same_name(&key, &f.name)) {
                            let m = format!("field \"{key}\" given twice");
                            return Err(Seed { ty, path, out, failure, depth }.fail(m));
                        }
                        map.next_value::<de::IgnoredAny>()?;
                        unknown.get_or_insert_with(|| key.into_owned());
                        continue;
                    };
                    if slots.is_empty() {
                        slots = vec![None; fields.len() - next];
                    }
                    let mut buf = Vec::new();
                    let p = Path::Field(path, &fields[i].name);
                    map.next_value_seed(Seed { ty: &fields[i].ty, path: &p, out: &mut buf, failure: &mut *failure, depth: depth + 1 })?;
                    slots[i - next] = Some(buf);
                }
                let mut slots = slots.into_iter();
                for f in &fields[next..] {
                    match slots.next().flatten() {
                        Some(bytes) => out.extend_from_slice(&bytes),
                        None if matches!(f.ty, Ty::Option(_)) => out.push(0),
                        None => {
                            let e = Error::new(Status::Serialization, format!("{}: missing field", Path::Field(path, &f.name)));
                            return Err(stop(failure, e));
                        }
                    }
                }
                if let Some(key) = unknown {
                    return Err(stop(failure, Error::new(Status::Serialization, format!("{path}: unknown field \"{key}\""))));
                }
                Ok(())
            }
            NamedKind::Variant(cases) => {
                let Some(key) = map.next_key_seed(KeySeed)? else {
                    return Err(Seed { ty, path, out, failure, depth }.expected("an empty object"));
                };
                let Some(tag) = cases.iter().position(|c| same_name(&key, &c.name)) else {
                    let m = format!("unknown case \"{key}\"");
                    return Err(Seed { ty, path, out, failure, depth }.fail(m));
                };
                out.extend_from_slice(&(tag as u32).to_le_bytes());
                let p = Path::Case(path, &key);
                match &cases[tag].ty {
                    Some(t) => map.next_value_seed(Seed { ty: t, path: &p, out: &mut *out, failure: &mut *failure, depth: depth + 1 })?,
                    None => {
                        if !matches!(map.next_value::<serde_json::Value>()?, serde_json::Value::Null) {
                            let m = format!("case \"{key}\" has no payload");
                            return Err(Seed { ty, path, out, failure, depth }.fail(m));
                        }
                    }
                }
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(Seed { ty, path, out, failure, depth }.fail("a variant is one {\"Case\": payload}"));
                }
                Ok(())
            }
            _ => Err(Seed { ty, path, out, failure, depth }.expected("an object")),
        }
    }
}

// ---- wire bytes -> JSON text ---------------------------------------------------

fn number(out: &mut Vec<u8>, v: impl serde::Serialize) {
    serde_json::to_writer(&mut *out, &v).expect("numbers serialize");
}

thread_local! {
    /// Set by [`output_to_exact_json`]: 64-bit integers stay numbers.
    static EXACT_WIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn wide(out: &mut Vec<u8>, i: i128) {
    if i.unsigned_abs() > EXACT_IN_DOUBLE as u128 && !EXACT_WIDE.with(std::cell::Cell::get) {
        out.push(b'"');
        number(out, i);
        out.push(b'"');
    } else {
        number(out, i as i64);
    }
}

fn float(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        number(out, f);
    } else {
        out.extend_from_slice(if f.is_nan() { b"\"NaN\"" } else if f > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("strings serialize");
}

/// `shape-rect` written as `"ShapeRect"` (as serde writes Rust enum cases).
fn pascal_string(out: &mut Vec<u8>, kebab_name: &str) {
    out.push(b'"');
    for word in kebab_name.split('-') {
        let mut chars = word.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase().to_string().as_bytes());
            out.extend_from_slice(chars.as_str().as_bytes());
        }
    }
    out.push(b'"');
}

/// `unit-cents` written as the key `"unit_cents"`.
fn snake_key(out: &mut Vec<u8>, kebab_name: &str) {
    out.push(b'"');
    out.extend(kebab_name.bytes().map(|b| if b == b'-' { b'_' } else { b }));
    out.extend_from_slice(b"\":");
}

/// Wire bytes of type `ty` read from `r`, written as JSON text.
fn write_json(ty: &Ty, r: &mut Reader<'_>, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return wire_err("value nested too deeply");
    }
    let d = depth + 1;
    match ty {
        Ty::Bool => match r.array::<1>("bool")?[0] {
            0 => out.extend_from_slice(b"false"),
            1 => out.extend_from_slice(b"true"),
            b => return wire_err(format!("{b} is not a bool (0 or 1)")),
        },
        Ty::S8 => number(out, i8::from_le_bytes(r.array("s8")?)),
        Ty::U8 => number(out, r.array::<1>("u8")?[0]),
        Ty::S16 => number(out, i16::from_le_bytes(r.array("s16")?)),
        Ty::U16 => number(out, u16::from_le_bytes(r.array("u16")?)),
        Ty::S32 => number(out, i32::from_le_bytes(r.array("s32")?)),
        Ty::U32 => number(out, u32::from_le_bytes(r.array("u32")?)),
        Ty::S64 => wide(out, i64::from_le_bytes(r.array("s64")?) as i128),
        Ty::U64 => wide(out, u64::from_le_bytes(r.array("u64")?) as i128),
        Ty::F32 => float(out, f32::from_le_bytes(r.array("f32")?) as f64),
        Ty::F64 => float(out, f64::from_le_bytes(r.array("f64")?)),
        Ty::Char => string(out, r.char()?.encode_utf8(&mut [0; 4])),
        Ty::String => string(out, r.string()?),
        Ty::List(elem) => {
            let n = r.len("list")?;
            // A count the input cannot hold is refused before anything is
            // made of it (zero-sized items, e.g. `tuple<>`, are capped).
            let each = elem.min_wire_size();
            if (each > 0 && n > r.remaining() / each) || (each == 0 && n > MAX_EMPTY_ITEMS) {
                return wire_err(format!("a list of {n} items does not fit in the {} bytes left", r.remaining()));
            }
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                write_json(elem, r, out, d)?;
            }
            out.push(b']');
        }
        Ty::Tuple(types) => {
            out.push(b'[');
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(t, r, out, d)?;
            }
            out.push(b']');
        }
        Ty::Option(inner) => match r.array::<1>("option tag")?[0] {
            0 => out.extend_from_slice(b"null"),
            1 => write_json(inner, r, out, d)?,
            t => return wire_err(format!("{t} is not an option tag (0 or 1)")),
        },
        Ty::Result { ok, err: error } => {
            let (key, side): (&[u8], _) = match u32::from_le_bytes(r.array("result tag")?) {
                0 => (b"{\"ok\":", ok),
                1 => (b"{\"err\":", error),
                t => return wire_err(format!("{t} is not a result tag (0 or 1)")),
            };
            out.extend_from_slice(key);
            match side {
                Some(t) => write_json(t, r, out, d)?,
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        }
        Ty::Named(named) => match &named.kind {
            NamedKind::Record(fields) => {
                out.push(b'{');
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    snake_key(out, &f.name);
                    write_json(&f.ty, r, out, d)?;
                }
                out.push(b'}');
            }
            NamedKind::Variant(cases) => {
                let tag = u32::from_le_bytes(r.array("variant tag")?) as usize;
                let Some(case) = cases.get(tag) else { return wire_err(format!("variant case {tag} does not exist")) };
                match &case.ty {
                    None => pascal_string(out, &case.name),
                    Some(t) => {
                        out.push(b'{');
                        pascal_string(out, &case.name);
                        out.push(b':');
                        write_json(t, r, out, d)?;
                        out.push(b'}');
                    }
                }
            }
            NamedKind::Enum(cases) => {
                let tag = u32::from_le_bytes(r.array("enum tag")?) as usize;
                let Some(case) = cases.get(tag) else { return wire_err(format!("enum case {tag} does not exist")) };
                pascal_string(out, case);
            }
            NamedKind::Flags(_) => return fail(Status::Unsupported, "flags have no Fidius wire form"),
        },
        Ty::Opaque(what) => return fail(Status::Unsupported, format!("values of type {what} have no JSON form")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Field, Named};

    fn wire1(ty: &Ty, v: &str) -> Result<Vec<u8>> {
        args_to_wire(&[("x".into(), ty.clone())], format!("[{v}]").as_bytes())
    }

    fn back(ty: &Ty, bytes: &[u8]) -> String {
        String::from_utf8(output_to_json(Some(ty), bytes).unwrap()).unwrap()
    }

    #[test]
    fn integers_are_checked_not_wrapped() {
        assert_eq!(wire1(&Ty::U8, "255").unwrap(), [255]);
        assert!(wire1(&Ty::U8, "256").unwrap_err().message.contains("args.x: 256 is out of range for u8"));
        assert!(wire1(&Ty::S8, "-129").is_err());
        assert!(wire1(&Ty::U32, "1.5").is_err());
        assert!(wire1(&Ty::U32, "\"5\"").is_err(), "strings only for 64-bit");
        assert_eq!(wire1(&Ty::U64, "\"18446744073709551615\"").unwrap(), u64::MAX.to_le_bytes());
        assert_eq!(wire1(&Ty::S64, "-9223372036854775808").unwrap(), i64::MIN.to_le_bytes());
        assert!(wire1(&Ty::U64, "-1").is_err());
        assert_eq!(back(&Ty::U64, &u64::MAX.to_le_bytes()), "\"18446744073709551615\"");
        assert_eq!(back(&Ty::U64, &(1u64 << 53).to_le_bytes()), "9007199254740992");
        assert_eq!(back(&Ty::F64, &f64::NAN.to_le_bytes()), "\"NaN\"");
    }

    /// Found by the wire_json fuzz target: serde_json's default float
    /// reader took this subnormal's shortest decimal back 1 ULP off.
    #[test]
    fn floats_round_trip_exactly() {
        for bits in [0x0008_002a_0000_0002u64, 1, 0x000f_ffff_ffff_ffff, 0x7fef_ffff_ffff_ffff, 0x3fb9_9999_9999_999a] {
            let wire = bits.to_le_bytes();
            let text = back(&Ty::F64, &wire);
            assert_eq!(wire1(&Ty::F64, &text).unwrap(), wire, "{text}");
        }
        for bits in [1u32, 0x007f_ffff, 0x3dcc_cccd] {
            let wire = bits.to_le_bytes();
            let text = back(&Ty::F32, &wire);
            assert_eq!(wire1(&Ty::F32, &text).unwrap(), wire, "{text}");
        }
    }

    #[test]
    fn records_in_any_order_and_paths_in_errors() {
        let point = Ty::Named(std::sync::Arc::new(Named {
            name: "point".into(),
            kind: NamedKind::Record(vec![
                Field { name: "x-pos".into(), ty: Ty::S32 },
                Field { name: "label".into(), ty: Ty::Option(Box::new(Ty::String)) },
            ]),
        }));
        let a = wire1(&point, r#"{"label": "p", "x_pos": 1}"#).unwrap();
        let b = wire1(&point, r#"{"x-pos": 1, "label": "p"}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(back(&point, &a), r#"{"x_pos":1,"label":"p"}"#);
        assert_eq!(wire1(&point, r#"{"x_pos": 1}"#).unwrap(), [1, 0, 0, 0, 0]);
        let list = Ty::List(Box::new(point.clone()));
        let e = wire1(&list, r#"[{"x_pos": 1}, {"x_pos": "2"}]"#).unwrap_err();
        assert_eq!(e.message, "args.x[1].x_pos: expected an integer, got a string");
        assert!(wire1(&point, r#"{"x_pos": 1, "y": 2}"#).unwrap_err().message.contains("unknown field \"y\""));
        assert!(wire1(&point, r#"{"label": "p"}"#).unwrap_err().message.contains("args.x.x_pos: missing field"));
        assert!(args_to_wire(&[("x".into(), Ty::U8)], b"[1, 2]").unwrap_err().message.contains("expected 1 arguments, got 2"));
        assert!(args_to_wire(&[("x".into(), Ty::U8)], b"[1").unwrap_err().message.contains("not valid JSON"));
    }

    #[test]
    fn hostile_lengths_are_refused_before_anything_is_made() {
        for ty in [Ty::List(Box::new(Ty::String)), Ty::List(Box::new(Ty::Tuple(vec![]))), Ty::List(Box::new(Ty::U8))] {
            let bytes = (1u64 << 60).to_le_bytes();
            let e = output_to_json(Some(&ty), &bytes).unwrap_err();
            assert_eq!(e.status, Status::Serialization, "{ty:?}");
        }
        let three_units = 3u64.to_le_bytes();
        assert_eq!(back(&Ty::List(Box::new(Ty::Tuple(vec![]))), &three_units), "[[],[],[]]");
        let deep = "[".repeat(200) + &"]".repeat(200);
        let mut ty = Ty::U8;
        for _ in 0..200 {
            ty = Ty::List(Box::new(ty));
        }
        assert!(wire1(&ty, &deep).is_err(), "nesting is capped");
    }
}
