//! JSON <-> component values, directed by the function's own WIT types.
//!
//! The rules (also in the header docs and README):
//! - integers must be whole and in range for their width (no wrapping);
//!   64-bit integers also accept a decimal string, and are written as a
//!   string when beyond ±2^53 so no JSON reader loses precision;
//! - floats are numbers, or the strings "NaN", "Infinity", "-Infinity";
//! - `char` is a one-character string;
//! - `list<T>` is an array (`list<u8>` too); `tuple<...>` an array of exactly its length;
//! - a map (`list<tuple<string, V>>` from a Rust map) is an array of `[key, value]` pairs;
//! - records are objects keyed by field name, snake_case (kebab-case accepted on input);
//!   a missing `option` field is `none`; unknown keys are errors;
//! - variants are `{"Case": payload}`, or `"Case"` without payload; enums are `"Case"`.
//!   Output uses PascalCase (as serde writes Rust enums); input accepts
//!   PascalCase, snake_case or kebab-case;
//! - `option<T>`: `null` is none, anything else is some;
//! - `result<T, E>` (other than a method's `result<T, plugin-error>`, which
//!   becomes the call's outcome): `{"ok": v}` or `{"err": e}`;
//! - `flags` are an array of flag names.

use serde_json::{Map, Number, Value as Json};
use wasmtime::component::{Type, Val};

use crate::error::{fail, Error, Result, Status};

/// Beyond this magnitude a JSON number is not exact in a double.
const EXACT_IN_DOUBLE: u64 = 1 << 53;

fn err<T>(path: &str, message: impl std::fmt::Display) -> Result<T> {
    fail(Status::Serialization, format!("{path}: {message}"))
}

/// Parse the call input: an array of positional arguments, or an object keyed by parameter name.
pub fn params(params: &[(String, Type)], input: &[u8]) -> Result<Vec<Val>> {
    let json: Json = if input.iter().all(u8::is_ascii_whitespace) {
        Json::Array(Vec::new())
    } else {
        serde_json::from_slice(input)
            .map_err(|e| Error::new(Status::Serialization, format!("input is not valid JSON: {e}")))?
    };
    match json {
        Json::Array(args) => {
            if args.len() != params.len() {
                return err("args", format!("expected {} arguments, got {}", params.len(), args.len()));
            }
            params.iter().zip(&args).map(|((name, ty), v)| to_val(ty, v, &format!("args.{}", snake(name)))).collect()
        }
        Json::Object(mut args) => {
            let vals = params
                .iter()
                .map(|(name, ty)| {
                    let path = format!("args.{}", snake(name));
                    match take_key(&mut args, name) {
                        Some(v) => to_val(ty, &v, &path),
                        None if matches!(ty, Type::Option(_)) => Ok(Val::Option(None)),
                        None => err(&path, "missing argument"),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(extra) = args.keys().next() {
                return err("args", format!("unknown argument \"{extra}\""));
            }
            Ok(vals)
        }
        other => err("args", format!("expected an array of arguments or an object keyed by name, got {}", kind(&other))),
    }
}

/// Remove `kebab_name` from a JSON object, matching its snake_case form too.
fn take_key(obj: &mut Map<String, Json>, kebab_name: &str) -> Option<Json> {
    obj.remove(&snake(kebab_name)).or_else(|| obj.remove(kebab_name))
}

pub fn snake(kebab: &str) -> String {
    kebab.replace('-', "_")
}

pub fn pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// Normalize PascalCase / snake_case / kebab-case to kebab-case.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 && !out.ends_with('-') {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
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
        Json::String(s) if wide => {
            s.trim().parse::<i128>().or_else(|_| err(path, format!("\"{s}\" is not a decimal integer")))
        }
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

/// JSON to a value of type `ty`.
pub fn to_val(ty: &Type, v: &Json, path: &str) -> Result<Val> {
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().map_or_else(|| expected(path, "a boolean", v), Ok)?),
        Type::S8 => Val::S8(ranged(v, path, "s8", false)?),
        Type::U8 => Val::U8(ranged(v, path, "u8", false)?),
        Type::S16 => Val::S16(ranged(v, path, "s16", false)?),
        Type::U16 => Val::U16(ranged(v, path, "u16", false)?),
        Type::S32 => Val::S32(ranged(v, path, "s32", false)?),
        Type::U32 => Val::U32(ranged(v, path, "u32", false)?),
        Type::S64 => Val::S64(ranged(v, path, "s64", true)?),
        Type::U64 => Val::U64(ranged(v, path, "u64", true)?),
        Type::Float32 => Val::Float32(float(v, path)? as f32),
        Type::Float64 => Val::Float64(float(v, path)?),
        Type::Char => match v.as_str().map(|s| (s.chars().next(), s.chars().count())) {
            Some((Some(c), 1)) => Val::Char(c),
            _ => return expected(path, "a one-character string", v),
        },
        Type::String => Val::String(v.as_str().map_or_else(|| expected(path, "a string", v), Ok)?.to_owned()),
        Type::List(list) => {
            let Json::Array(items) = v else { return expected(path, "an array", v) };
            let elem = list.ty();
            Val::List(items.iter().enumerate().map(|(i, x)| to_val(&elem, x, &format!("{path}[{i}]"))).collect::<Result<_>>()?)
        }
        Type::Map(map) => {
            let pairs = map_pairs(v, path)?;
            let (kt, vt) = (map.key(), map.value());
            Val::Map(
                pairs
                    .iter()
                    .enumerate()
                    .map(|(i, (k, x))| {
                        Ok((to_val(&kt, k, &format!("{path}[{i}].key"))?, to_val(&vt, x, &format!("{path}[{i}].value"))?))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        Type::Tuple(tuple) => {
            let Json::Array(items) = v else { return expected(path, "an array (tuple)", v) };
            if items.len() != tuple.types().len() {
                return err(path, format!("expected a tuple of {}, got {} items", tuple.types().len(), items.len()));
            }
            Val::Tuple(
                tuple.types().zip(items).enumerate().map(|(i, (t, x))| to_val(&t, x, &format!("{path}[{i}]"))).collect::<Result<_>>()?,
            )
        }
        Type::Record(record) => {
            let Json::Object(obj) = v else { return expected(path, "an object (record)", v) };
            let mut obj = obj.clone();
            let fields = record
                .fields()
                .map(|f| {
                    let p = format!("{path}.{}", snake(f.name));
                    let val = match take_key(&mut obj, f.name) {
                        Some(x) => to_val(&f.ty, &x, &p)?,
                        None if matches!(f.ty, Type::Option(_)) => Val::Option(None),
                        None => return err(&p, "missing field"),
                    };
                    Ok((f.name.to_string(), val))
                })
                .collect::<Result<_>>()?;
            if let Some(extra) = obj.keys().next() {
                return err(path, format!("unknown field \"{extra}\""));
            }
            Val::Record(fields)
        }
        Type::Variant(variant) => {
            let (name, payload) = case_of(v, path)?;
            let case = variant
                .cases()
                .find(|c| c.name == kebab(&name))
                .map_or_else(|| err(path, format!("unknown case \"{name}\"")), Ok)?;
            let payload = match (case.ty, payload) {
                (Some(t), Some(p)) => Some(Box::new(to_val(&t, p, &format!("{path}.{name}"))?)),
                (Some(_), None) => return err(path, format!("case \"{name}\" needs a payload: {{\"{name}\": ...}}")),
                (None, None | Some(Json::Null)) => None,
                (None, Some(_)) => return err(path, format!("case \"{name}\" has no payload")),
            };
            Val::Variant(case.name.to_string(), payload)
        }
        Type::Enum(en) => {
            let Json::String(name) = v else { return expected(path, "a string (enum case)", v) };
            let found = en.names().find(|n| *n == kebab(name));
            Val::Enum(found.map_or_else(|| err(path, format!("unknown enum case \"{name}\"")), Ok)?.to_string())
        }
        Type::Option(opt) => match v {
            Json::Null => Val::Option(None),
            x => Val::Option(Some(Box::new(to_val(&opt.ty(), x, path)?))),
        },
        Type::Result(res) => {
            let (name, payload) = case_of(v, path)?;
            let side = |t: Option<Type>, p: Option<&Json>, label: &str| -> Result<Option<Box<Val>>> {
                match (t, p) {
                    (Some(t), Some(p)) => Ok(Some(Box::new(to_val(&t, p, &format!("{path}.{label}"))?))),
                    (Some(_), None) => err(path, format!("\"{label}\" needs a value")),
                    (None, _) => Ok(None),
                }
            };
            match name.as_str() {
                "ok" | "Ok" => Val::Result(Ok(side(res.ok(), payload, "ok")?)),
                "err" | "Err" => Val::Result(Err(side(res.err(), payload, "err")?)),
                other => return err(path, format!("expected {{\"ok\": ...}} or {{\"err\": ...}}, got \"{other}\"")),
            }
        }
        Type::Flags(flags) => {
            let Json::Array(items) = v else { return expected(path, "an array of flag names", v) };
            let names: Vec<&str> = flags.names().collect();
            Val::Flags(
                items
                    .iter()
                    .map(|x| match x.as_str().map(kebab) {
                        Some(n) if names.contains(&n.as_str()) => Ok(n),
                        _ => err(path, format!("unknown flag {x}")),
                    })
                    .collect::<Result<_>>()?,
            )
        }
        other => return err(path, format!("values of type {other:?} cannot be passed as JSON")),
    })
}

fn map_pairs<'a>(v: &'a Json, path: &str) -> Result<Vec<(&'a Json, &'a Json)>> {
    let Json::Array(items) = v else { return expected(path, "an array of [key, value] pairs", v) };
    items
        .iter()
        .map(|p| match p {
            Json::Array(kv) if kv.len() == 2 => Ok((&kv[0], &kv[1])),
            _ => expected(path, "[key, value] pairs", p),
        })
        .collect()
}

/// `"Case"` or `{"Case": payload}`.
fn case_of<'a>(v: &'a Json, path: &str) -> Result<(String, Option<&'a Json>)> {
    match v {
        Json::String(s) => Ok((s.clone(), None)),
        Json::Object(o) if o.len() == 1 => {
            let (k, x) = o.iter().next().unwrap();
            Ok((k.clone(), Some(x)))
        }
        other => expected(path, "\"Case\" or {\"Case\": payload}", other),
    }
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

/// A value to JSON.
pub fn from_val(v: &Val) -> Result<Json> {
    Ok(match v {
        Val::Bool(b) => Json::Bool(*b),
        Val::S8(i) => Json::from(*i),
        Val::U8(i) => Json::from(*i),
        Val::S16(i) => Json::from(*i),
        Val::U16(i) => Json::from(*i),
        Val::S32(i) => Json::from(*i),
        Val::U32(i) => Json::from(*i),
        Val::S64(i) => wide(*i as i128),
        Val::U64(i) => wide(*i as i128),
        Val::Float32(f) => float_json(*f as f64),
        Val::Float64(f) => float_json(*f),
        Val::Char(c) => Json::String(c.to_string()),
        Val::String(s) => Json::String(s.clone()),
        Val::List(items) | Val::Tuple(items) => Json::Array(items.iter().map(from_val).collect::<Result<_>>()?),
        Val::Map(pairs) => Json::Array(
            pairs.iter().map(|(k, x)| Ok(Json::Array(vec![from_val(k)?, from_val(x)?]))).collect::<Result<_>>()?,
        ),
        Val::Record(fields) => {
            Json::Object(fields.iter().map(|(k, x)| Ok((snake(k), from_val(x)?))).collect::<Result<_>>()?)
        }
        Val::Variant(name, None) | Val::Enum(name) => Json::String(pascal(name)),
        Val::Variant(name, Some(payload)) => {
            Json::Object(Map::from_iter([(pascal(name), from_val(payload)?)]))
        }
        Val::Option(None) => Json::Null,
        Val::Option(Some(x)) => from_val(x)?,
        Val::Result(r) => {
            let (key, x) = match r {
                Ok(x) => ("ok", x),
                Err(x) => ("err", x),
            };
            let x = x.as_deref().map(from_val).transpose()?.unwrap_or(Json::Null);
            Json::Object(Map::from_iter([(key.to_string(), x)]))
        }
        Val::Flags(names) => Json::Array(names.iter().map(|n| Json::String(n.clone())).collect()),
        other => return fail(Status::Unsupported, format!("a {other:?} result has no JSON form")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names() {
        assert_eq!(kebab("ShapeRect"), "shape-rect");
        assert_eq!(kebab("shape_rect"), "shape-rect");
        assert_eq!(kebab("shape-rect"), "shape-rect");
        assert_eq!(pascal("shape-rect"), "ShapeRect");
    }

    #[test]
    fn integers_are_checked_not_wrapped() {
        let j = |s: &str| serde_json::from_str::<Json>(s).unwrap();
        assert!(matches!(to_val(&Type::U8, &j("255"), "x"), Ok(Val::U8(255))));
        assert!(to_val(&Type::U8, &j("256"), "x").unwrap_err().message.contains("out of range for u8"));
        assert!(to_val(&Type::S8, &j("-129"), "x").is_err());
        assert!(to_val(&Type::U32, &j("1.5"), "x").is_err());
        assert!(to_val(&Type::U32, &j("\"5\""), "x").is_err(), "strings only for 64-bit");
        assert!(matches!(to_val(&Type::U64, &j("\"18446744073709551615\""), "x"), Ok(Val::U64(u64::MAX))));
        assert!(matches!(to_val(&Type::S64, &j("-9223372036854775808"), "x"), Ok(Val::S64(i64::MIN))));
        assert!(to_val(&Type::U64, &j("-1"), "x").is_err());
        assert_eq!(from_val(&Val::U64(u64::MAX)).unwrap(), Json::String("18446744073709551615".into()));
        assert_eq!(from_val(&Val::U64(1 << 53)).unwrap(), j("9007199254740992"));
        assert_eq!(from_val(&Val::Float64(f64::NAN)).unwrap(), Json::String("NaN".into()));
    }
}
