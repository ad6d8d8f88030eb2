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

use serde_json::{Map, Number, Value as Json};

use super::names::{kebab, pascal, snake};
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

/// A call's JSON input (an array of positional arguments, or an object keyed
/// by parameter name; empty input is no arguments) as the wire bytes of the
/// argument tuple.
pub fn args_to_wire(params: &[(String, Ty)], input: &[u8]) -> Result<Vec<u8>> {
    let json: Json = if input.iter().all(u8::is_ascii_whitespace) {
        Json::Array(Vec::new())
    } else {
        serde_json::from_slice(input).map_err(|e| Error::new(Status::Serialization, format!("input is not valid JSON: {e}")))?
    };
    let mut out = Vec::with_capacity(input.len());
    match json {
        Json::Array(args) => {
            if args.len() != params.len() {
                return err("args", format!("expected {} arguments, got {}", params.len(), args.len()));
            }
            for ((name, ty), v) in params.iter().zip(&args) {
                encode(ty, v, &format!("args.{}", snake(name)), &mut out, 0)?;
            }
        }
        Json::Object(mut args) => {
            for (name, ty) in params {
                let path = format!("args.{}", snake(name));
                match take_key(&mut args, name) {
                    Some(v) => encode(ty, &v, &path, &mut out, 0)?,
                    None if matches!(ty, Ty::Option(_)) => out.push(0),
                    None => return err(&path, "missing argument"),
                }
            }
            if let Some(extra) = args.keys().next() {
                return err("args", format!("unknown argument \"{extra}\""));
            }
        }
        other => return err("args", format!("expected an array of arguments or an object keyed by name, got {}", kind(&other))),
    }
    Ok(out)
}

/// A raw method's JSON input (one argument, an array of bytes) as its bytes.
pub fn raw_arg(input: &[u8]) -> Result<Vec<u8>> {
    let mut wire = args_to_wire(&[("data".to_string(), Ty::List(Box::new(Ty::U8)))], input)?;
    Ok(wire.split_off(8))
}

/// A result's wire bytes as JSON (`null` for a method without a result).
pub fn output_to_json(ty: Option<&Ty>, bytes: &[u8]) -> Result<Vec<u8>> {
    let json = match ty {
        None => Json::Null,
        Some(ty) => {
            let mut r = Reader::new(bytes);
            let json = decode(ty, &mut r, 0).map_err(|e| e.context("the plugin's output"))?;
            r.finish("the plugin's output")?;
            json
        }
    };
    Ok(serde_json::to_vec(&json).expect("JSON values serialize"))
}

/// Remove `kebab_name` from a JSON object, matching its snake_case form too.
fn take_key(obj: &mut Map<String, Json>, kebab_name: &str) -> Option<Json> {
    obj.remove(&snake(kebab_name)).or_else(|| obj.remove(kebab_name))
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn expected<T>(path: &str, what: &str, got: &Json) -> Result<T> {
    err(path, format!("expected {what}, got {}", kind(got)))
}

fn integer(v: &Json, path: &str, wide: bool) -> Result<i128> {
    match v {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i as i128)
            } else if let Some(u) = n.as_u64() {
                Ok(u as i128)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 2f64.powi(64) {
                    Ok(f as i128)
                } else {
                    err(path, format!("{n} is not a whole number"))
                }
            }
        }
        Json::String(s) if wide => s.trim().parse::<i128>().or_else(|_| err(path, format!("\"{s}\" is not a decimal integer"))),
        other => expected(path, if wide { "an integer (or a decimal string)" } else { "an integer" }, other),
    }
}

fn ranged<T: TryFrom<i128>>(v: &Json, path: &str, ty: &str, wide: bool) -> Result<T> {
    let i = integer(v, path, wide)?;
    T::try_from(i).or_else(|_| err(path, format!("{i} is out of range for {ty}")))
}

fn float(v: &Json, path: &str) -> Result<f64> {
    match v {
        Json::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            _ => err(path, format!("\"{s}\" is not a number")),
        },
        other => expected(path, "a number", other),
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend((n as u64).to_le_bytes());
}

/// `"Case"` or `{"Case": payload}`.
fn case_of<'a>(v: &'a Json, path: &str) -> Result<(&'a str, Option<&'a Json>)> {
    match v {
        Json::String(s) => Ok((s, None)),
        Json::Object(o) if o.len() == 1 => {
            let (k, x) = o.iter().next().unwrap();
            Ok((k, Some(x)))
        }
        other => expected(path, "\"Case\" or {\"Case\": payload}", other),
    }
}

/// JSON of type `ty` appended to `out` as wire bytes.
pub fn encode(ty: &Ty, v: &Json, path: &str, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return err(path, "value nested too deeply");
    }
    let d = depth + 1;
    match ty {
        Ty::Bool => out.push(v.as_bool().map_or_else(|| expected(path, "a boolean", v), Ok)? as u8),
        Ty::S8 => out.extend(ranged::<i8>(v, path, "s8", false)?.to_le_bytes()),
        Ty::U8 => out.push(ranged::<u8>(v, path, "u8", false)?),
        Ty::S16 => out.extend(ranged::<i16>(v, path, "s16", false)?.to_le_bytes()),
        Ty::U16 => out.extend(ranged::<u16>(v, path, "u16", false)?.to_le_bytes()),
        Ty::S32 => out.extend(ranged::<i32>(v, path, "s32", false)?.to_le_bytes()),
        Ty::U32 => out.extend(ranged::<u32>(v, path, "u32", false)?.to_le_bytes()),
        Ty::S64 => out.extend(ranged::<i64>(v, path, "s64", true)?.to_le_bytes()),
        Ty::U64 => out.extend(ranged::<u64>(v, path, "u64", true)?.to_le_bytes()),
        Ty::F32 => out.extend((float(v, path)? as f32).to_le_bytes()),
        Ty::F64 => out.extend(float(v, path)?.to_le_bytes()),
        Ty::Char => match v.as_str().map(|s| (s.chars().next(), s.chars().count())) {
            Some((Some(c), 1)) => out.extend(c.encode_utf8(&mut [0; 4]).as_bytes()),
            _ => return expected(path, "a one-character string", v),
        },
        Ty::String => {
            let s = v.as_str().map_or_else(|| expected(path, "a string", v), Ok)?;
            put_len(out, s.len());
            out.extend(s.as_bytes());
        }
        Ty::List(elem) => {
            let Json::Array(items) = v else { return expected(path, "an array", v) };
            put_len(out, items.len());
            if **elem == Ty::U8 {
                for (i, x) in items.iter().enumerate() {
                    out.push(ranged::<u8>(x, &format!("{path}[{i}]"), "u8", false)?);
                }
            } else {
                for (i, x) in items.iter().enumerate() {
                    encode(elem, x, &format!("{path}[{i}]"), out, d)?;
                }
            }
        }
        Ty::Tuple(types) => {
            let Json::Array(items) = v else { return expected(path, "an array (tuple)", v) };
            if items.len() != types.len() {
                return err(path, format!("expected a tuple of {}, got {} items", types.len(), items.len()));
            }
            for (i, (t, x)) in types.iter().zip(items).enumerate() {
                encode(t, x, &format!("{path}[{i}]"), out, d)?;
            }
        }
        Ty::Option(inner) => match v {
            Json::Null => out.push(0),
            x => {
                out.push(1);
                encode(inner, x, path, out, d)?;
            }
        },
        Ty::Result { ok, err: error } => {
            let (name, payload) = case_of(v, path)?;
            let (tag, side, label) = match name {
                "ok" | "Ok" => (0u32, ok, "ok"),
                "err" | "Err" => (1u32, error, "err"),
                other => return err(path, format!("expected {{\"ok\": ...}} or {{\"err\": ...}}, got \"{other}\"")),
            };
            out.extend(tag.to_le_bytes());
            match (side, payload) {
                (Some(t), Some(p)) => encode(t, p, &format!("{path}.{label}"), out, d)?,
                (Some(_), None) => return err(path, format!("\"{label}\" needs a value")),
                (None, _) => {}
            }
        }
        Ty::Named(named) => match &named.kind {
            NamedKind::Record(fields) => {
                let Json::Object(obj) = v else { return expected(path, "an object (record)", v) };
                let mut left: Vec<&String> = obj.keys().collect();
                for f in fields {
                    let p = format!("{path}.{}", snake(&f.name));
                    let snake_name = snake(&f.name);
                    let found = obj.get(&snake_name).or_else(|| obj.get(&f.name));
                    left.retain(|k| **k != snake_name && **k != f.name);
                    match found {
                        Some(x) => encode(&f.ty, x, &p, out, d)?,
                        None if matches!(f.ty, Ty::Option(_)) => out.push(0),
                        None => return err(&p, "missing field"),
                    }
                }
                if let Some(extra) = left.first() {
                    return err(path, format!("unknown field \"{extra}\""));
                }
            }
            NamedKind::Variant(cases) => {
                let (name, payload) = case_of(v, path)?;
                let wanted = kebab(name);
                let Some(tag) = cases.iter().position(|c| c.name == wanted) else {
                    return err(path, format!("unknown case \"{name}\""));
                };
                out.extend((tag as u32).to_le_bytes());
                match (&cases[tag].ty, payload) {
                    (Some(t), Some(p)) => encode(t, p, &format!("{path}.{name}"), out, d)?,
                    (Some(_), None) => return err(path, format!("case \"{name}\" needs a payload: {{\"{name}\": ...}}")),
                    (None, None | Some(Json::Null)) => {}
                    (None, Some(_)) => return err(path, format!("case \"{name}\" has no payload")),
                }
            }
            NamedKind::Enum(cases) => {
                let Json::String(name) = v else { return expected(path, "a string (enum case)", v) };
                let wanted = kebab(name);
                let Some(tag) = cases.iter().position(|c| *c == wanted) else {
                    return err(path, format!("unknown enum case \"{name}\""));
                };
                out.extend((tag as u32).to_le_bytes());
            }
            NamedKind::Flags(_) => return err(path, "flags have no Fidius wire form"),
        },
        Ty::Opaque(what) => return err(path, format!("values of type {what} cannot be passed as JSON")),
    }
    Ok(())
}

fn wide(i: i128) -> Json {
    if i.unsigned_abs() > EXACT_IN_DOUBLE as u128 {
        Json::String(i.to_string())
    } else {
        Json::Number(Number::from(i as i64))
    }
}

fn float_json(f: f64) -> Json {
    Number::from_f64(f).map(Json::Number).unwrap_or_else(|| {
        Json::String(if f.is_nan() { "NaN" } else if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
    })
}

/// Wire bytes of type `ty` read from `r`, as JSON.
pub fn decode(ty: &Ty, r: &mut Reader<'_>, depth: usize) -> Result<Json> {
    if depth > MAX_DEPTH {
        return wire_err("value nested too deeply");
    }
    let d = depth + 1;
    Ok(match ty {
        Ty::Bool => match r.array::<1>("bool")?[0] {
            0 => Json::Bool(false),
            1 => Json::Bool(true),
            b => return wire_err(format!("{b} is not a bool (0 or 1)")),
        },
        Ty::S8 => Json::from(i8::from_le_bytes(r.array("s8")?)),
        Ty::U8 => Json::from(r.array::<1>("u8")?[0]),
        Ty::S16 => Json::from(i16::from_le_bytes(r.array("s16")?)),
        Ty::U16 => Json::from(u16::from_le_bytes(r.array("u16")?)),
        Ty::S32 => Json::from(i32::from_le_bytes(r.array("s32")?)),
        Ty::U32 => Json::from(u32::from_le_bytes(r.array("u32")?)),
        Ty::S64 => wide(i64::from_le_bytes(r.array("s64")?) as i128),
        Ty::U64 => wide(u64::from_le_bytes(r.array("u64")?) as i128),
        Ty::F32 => float_json(f32::from_le_bytes(r.array("f32")?) as f64),
        Ty::F64 => float_json(f64::from_le_bytes(r.array("f64")?)),
        Ty::Char => Json::String(r.char()?.to_string()),
        Ty::String => Json::String(r.string()?.to_owned()),
        Ty::List(elem) => {
            let n = r.len("list")?;
            if **elem == Ty::U8 {
                Json::Array(r.take(n, "list<u8>")?.iter().map(|b| Json::from(*b)).collect())
            } else {
                // A count the input cannot hold is refused before anything
                // is made of it (zero-sized items, e.g. `tuple<>`, are capped).
                let each = elem.min_wire_size();
                if (each > 0 && n > r.remaining() / each) || (each == 0 && n > MAX_EMPTY_ITEMS) {
                    return wire_err(format!("a list of {n} items does not fit in the {} bytes left", r.remaining()));
                }
                let mut items = Vec::with_capacity(n.min(r.remaining().max(1)));
                for _ in 0..n {
                    items.push(decode(elem, r, d)?);
                }
                Json::Array(items)
            }
        }
        Ty::Tuple(types) => Json::Array(types.iter().map(|t| decode(t, r, d)).collect::<Result<_>>()?),
        Ty::Option(inner) => match r.array::<1>("option tag")?[0] {
            0 => Json::Null,
            1 => decode(inner, r, d)?,
            t => return wire_err(format!("{t} is not an option tag (0 or 1)")),
        },
        Ty::Result { ok, err: error } => {
            let (key, side) = match u32::from_le_bytes(r.array("result tag")?) {
                0 => ("ok", ok),
                1 => ("err", error),
                t => return wire_err(format!("{t} is not a result tag (0 or 1)")),
            };
            let x = side.as_ref().map(|t| decode(t, r, d)).transpose()?.unwrap_or(Json::Null);
            Json::Object(Map::from_iter([(key.to_string(), x)]))
        }
        Ty::Named(named) => match &named.kind {
            NamedKind::Record(fields) => {
                let mut obj = Map::new();
                for f in fields {
                    obj.insert(snake(&f.name), decode(&f.ty, r, d)?);
                }
                Json::Object(obj)
            }
            NamedKind::Variant(cases) => {
                let tag = u32::from_le_bytes(r.array("variant tag")?) as usize;
                let Some(case) = cases.get(tag) else { return wire_err(format!("variant case {tag} does not exist")) };
                match &case.ty {
                    None => Json::String(pascal(&case.name)),
                    Some(t) => Json::Object(Map::from_iter([(pascal(&case.name), decode(t, r, d)?)])),
                }
            }
            NamedKind::Enum(cases) => {
                let tag = u32::from_le_bytes(r.array("enum tag")?) as usize;
                Json::String(pascal(cases.get(tag).map_or_else(|| wire_err(format!("enum case {tag} does not exist")), Ok)?))
            }
            NamedKind::Flags(_) => return fail(Status::Unsupported, "flags have no Fidius wire form"),
        },
        Ty::Opaque(what) => return fail(Status::Unsupported, format!("values of type {what} have no JSON form")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Json {
        serde_json::from_str(s).unwrap()
    }

    fn wire(ty: &Ty, v: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        encode(ty, &j(v), "x", &mut out, 0).map(|()| out)
    }

    #[test]
    fn integers_are_checked_not_wrapped() {
        assert_eq!(wire(&Ty::U8, "255").unwrap(), [255]);
        assert!(wire(&Ty::U8, "256").unwrap_err().message.contains("out of range for u8"));
        assert!(wire(&Ty::S8, "-129").is_err());
        assert!(wire(&Ty::U32, "1.5").is_err());
        assert!(wire(&Ty::U32, "\"5\"").is_err(), "strings only for 64-bit");
        assert_eq!(wire(&Ty::U64, "\"18446744073709551615\"").unwrap(), u64::MAX.to_le_bytes());
        assert_eq!(wire(&Ty::S64, "-9223372036854775808").unwrap(), i64::MIN.to_le_bytes());
        assert!(wire(&Ty::U64, "-1").is_err());
        let back = |ty: &Ty, bytes: &[u8]| decode(ty, &mut Reader::new(bytes), 0).unwrap();
        assert_eq!(back(&Ty::U64, &u64::MAX.to_le_bytes()), Json::String("18446744073709551615".into()));
        assert_eq!(back(&Ty::U64, &(1u64 << 53).to_le_bytes()), j("9007199254740992"));
        assert_eq!(back(&Ty::F64, &f64::NAN.to_le_bytes()), Json::String("NaN".into()));
    }

    #[test]
    fn hostile_lengths_are_refused_before_anything_is_made() {
        for ty in [Ty::List(Box::new(Ty::String)), Ty::List(Box::new(Ty::Tuple(vec![]))), Ty::List(Box::new(Ty::U8))] {
            let bytes = (1u64 << 60).to_le_bytes();
            let e = decode(&ty, &mut Reader::new(&bytes), 0).unwrap_err();
            assert_eq!(e.status, Status::Serialization, "{ty:?}");
        }
        let three_units = [3u64.to_le_bytes().as_slice()].concat();
        assert_eq!(decode(&Ty::List(Box::new(Ty::Tuple(vec![]))), &mut Reader::new(&three_units), 0).unwrap(), j("[[],[],[]]"));
    }
}
