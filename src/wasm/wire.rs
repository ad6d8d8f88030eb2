//! Fidius wire bytes (bincode 1.3 legacy: little-endian, fixed-width
//! integers, u64 lengths) <-> component values, directed by WIT types, so a
//! host encodes arguments once for native and WASM plugins alike.
//!
//! The Rust type behind each WIT type (as fidius maps them) fixes the bytes:
//! `string`/`list<T>`/maps are a u64 length then the items; `option` a 1-byte
//! tag; `tuple`/`record` their members in order; `variant`/`enum` a u32 case
//! index then the payload; `result` a u32 (0 ok, 1 err) then the payload;
//! `char` its UTF-8 bytes.

use wasmtime::component::{Type, Val};

use crate::error::{fail, Result, Status};

/// Nesting deeper than this is refused rather than risking the host's stack.
const MAX_DEPTH: usize = 128;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn err<T>(message: impl std::fmt::Display) -> Result<T> {
    fail(Status::Serialization, message.to_string())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.bytes.len() - self.pos < n {
            return err(format!(
                "input ends at byte {} while reading {what} ({n} more bytes needed)",
                self.bytes.len()
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N, what)?.try_into().unwrap())
    }

    fn len(&mut self, what: &str) -> Result<usize> {
        let n = u64::from_le_bytes(self.array(what)?);
        // Every item takes at least... zero bytes (unit), so only the remaining
        // input can bound how much we reserve up front.
        usize::try_from(n).or_else(|_| err(format!("{what} length {n} is too large")))
    }
}

/// Decode the argument tuple into one value per parameter.
pub fn params(params: &[(String, Type)], input: &[u8]) -> Result<Vec<Val>> {
    let mut r = Reader { bytes: input, pos: 0 };
    let vals = params.iter().map(|(name, ty)| decode(ty, &mut r, 0).map_err(|e| e.context(format!("argument {name}")))).collect::<Result<Vec<_>>>()?;
    if r.pos != input.len() {
        return err(format!("{} bytes left over after the arguments", input.len() - r.pos));
    }
    Ok(vals)
}

fn decode(ty: &Type, r: &mut Reader<'_>, depth: usize) -> Result<Val> {
    if depth > MAX_DEPTH {
        return err("value nested too deeply");
    }
    let d = depth + 1;
    Ok(match ty {
        Type::Bool => match r.array::<1>("bool")?[0] {
            0 => Val::Bool(false),
            1 => Val::Bool(true),
            b => return err(format!("{b} is not a bool (0 or 1)")),
        },
        Type::S8 => Val::S8(i8::from_le_bytes(r.array("s8")?)),
        Type::U8 => Val::U8(r.array::<1>("u8")?[0]),
        Type::S16 => Val::S16(i16::from_le_bytes(r.array("s16")?)),
        Type::U16 => Val::U16(u16::from_le_bytes(r.array("u16")?)),
        Type::S32 => Val::S32(i32::from_le_bytes(r.array("s32")?)),
        Type::U32 => Val::U32(u32::from_le_bytes(r.array("u32")?)),
        Type::S64 => Val::S64(i64::from_le_bytes(r.array("s64")?)),
        Type::U64 => Val::U64(u64::from_le_bytes(r.array("u64")?)),
        Type::Float32 => Val::Float32(f32::from_le_bytes(r.array("f32")?)),
        Type::Float64 => Val::Float64(f64::from_le_bytes(r.array("f64")?)),
        Type::Char => {
            let first = r.array::<1>("char")?[0];
            let width = match first {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => return err("invalid UTF-8 in char"),
            };
            let mut buf = vec![first];
            buf.extend_from_slice(r.take(width - 1, "char")?);
            let s = std::str::from_utf8(&buf).or_else(|_| err("invalid UTF-8 in char"))?;
            Val::Char(s.chars().next().unwrap())
        }
        Type::String => {
            let n = r.len("string")?;
            let bytes = r.take(n, "string")?;
            Val::String(String::from_utf8(bytes.to_vec()).or_else(|_| err("string is not valid UTF-8"))?)
        }
        Type::List(list) => {
            let n = r.len("list")?;
            let elem = list.ty();
            if let Type::U8 = elem {
                Val::List(r.take(n, "list<u8>")?.iter().map(|b| Val::U8(*b)).collect())
            } else {
                let mut items = Vec::with_capacity(n.min(r.bytes.len() - r.pos));
                for _ in 0..n {
                    items.push(decode(&elem, r, d)?);
                }
                Val::List(items)
            }
        }
        Type::Map(map) => {
            let n = r.len("map")?;
            let (kt, vt) = (map.key(), map.value());
            let mut pairs = Vec::with_capacity(n.min(r.bytes.len() - r.pos));
            for _ in 0..n {
                pairs.push((decode(&kt, r, d)?, decode(&vt, r, d)?));
            }
            Val::Map(pairs)
        }
        Type::Tuple(tuple) => Val::Tuple(tuple.types().map(|t| decode(&t, r, d)).collect::<Result<_>>()?),
        Type::Record(record) => Val::Record(
            record.fields().map(|f| Ok((f.name.to_string(), decode(&f.ty, r, d)?))).collect::<Result<_>>()?,
        ),
        Type::Variant(variant) => {
            let tag = u32::from_le_bytes(r.array("variant tag")?) as usize;
            let case = variant.cases().nth(tag).map_or_else(|| err(format!("variant case {tag} does not exist")), Ok)?;
            let payload = case.ty.map(|t| decode(&t, r, d)).transpose()?.map(Box::new);
            Val::Variant(case.name.to_string(), payload)
        }
        Type::Enum(en) => {
            let tag = u32::from_le_bytes(r.array("enum tag")?) as usize;
            Val::Enum(en.names().nth(tag).map_or_else(|| err(format!("enum case {tag} does not exist")), Ok)?.to_string())
        }
        Type::Option(opt) => match r.array::<1>("option tag")?[0] {
            0 => Val::Option(None),
            1 => Val::Option(Some(Box::new(decode(&opt.ty(), r, d)?))),
            t => return err(format!("{t} is not an option tag (0 or 1)")),
        },
        Type::Result(res) => {
            let side = |t: Option<Type>, r: &mut Reader<'_>| t.map(|t| decode(&t, r, d)).transpose().map(|v| v.map(Box::new));
            match u32::from_le_bytes(r.array("result tag")?) {
                0 => Val::Result(Ok(side(res.ok(), r)?)),
                1 => Val::Result(Err(side(res.err(), r)?)),
                t => return err(format!("{t} is not a result tag (0 or 1)")),
            }
        }
        other => return fail(Status::Unsupported, format!("values of type {other:?} have no Fidius wire form")),
    })
}

/// Encode a value of type `ty` the way the matching Rust type's bincode would be.
pub fn encode(ty: &Type, v: &Val, out: &mut Vec<u8>) -> Result<()> {
    let mismatch = || fail(Status::Serialization, format!("plugin returned {v:?} where the WIT type is {ty:?}"));
    match (ty, v) {
        (_, Val::Bool(b)) => out.push(*b as u8),
        (_, Val::S8(i)) => out.extend(i.to_le_bytes()),
        (_, Val::U8(i)) => out.push(*i),
        (_, Val::S16(i)) => out.extend(i.to_le_bytes()),
        (_, Val::U16(i)) => out.extend(i.to_le_bytes()),
        (_, Val::S32(i)) => out.extend(i.to_le_bytes()),
        (_, Val::U32(i)) => out.extend(i.to_le_bytes()),
        (_, Val::S64(i)) => out.extend(i.to_le_bytes()),
        (_, Val::U64(i)) => out.extend(i.to_le_bytes()),
        (_, Val::Float32(f)) => out.extend(f.to_le_bytes()),
        (_, Val::Float64(f)) => out.extend(f.to_le_bytes()),
        (_, Val::Char(c)) => out.extend(c.encode_utf8(&mut [0; 4]).as_bytes()),
        (_, Val::String(s)) => {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        (Type::List(list), Val::List(items)) => {
            out.extend((items.len() as u64).to_le_bytes());
            let elem = list.ty();
            for x in items {
                encode(&elem, x, out)?;
            }
        }
        (Type::Map(map), Val::Map(pairs)) => {
            out.extend((pairs.len() as u64).to_le_bytes());
            let (kt, vt) = (map.key(), map.value());
            for (k, x) in pairs {
                encode(&kt, k, out)?;
                encode(&vt, x, out)?;
            }
        }
        (Type::Tuple(tuple), Val::Tuple(items)) => {
            for (t, x) in tuple.types().zip(items) {
                encode(&t, x, out)?;
            }
        }
        (Type::Record(record), Val::Record(fields)) => {
            for (f, (_, x)) in record.fields().zip(fields) {
                encode(&f.ty, x, out)?;
            }
        }
        (Type::Variant(variant), Val::Variant(name, payload)) => {
            let Some((tag, case)) = variant.cases().enumerate().find(|(_, c)| c.name == name) else {
                return mismatch();
            };
            out.extend((tag as u32).to_le_bytes());
            if let (Some(t), Some(x)) = (case.ty, payload) {
                encode(&t, x, out)?;
            }
        }
        (Type::Enum(en), Val::Enum(name)) => {
            let Some(tag) = en.names().position(|n| n == name) else { return mismatch() };
            out.extend((tag as u32).to_le_bytes());
        }
        (Type::Option(_), Val::Option(None)) => out.push(0),
        (Type::Option(opt), Val::Option(Some(x))) => {
            out.push(1);
            encode(&opt.ty(), x, out)?;
        }
        (Type::Result(res), Val::Result(r)) => {
            let (tag, t, x) = match r {
                Ok(x) => (0u32, res.ok(), x),
                Err(x) => (1u32, res.err(), x),
            };
            out.extend(tag.to_le_bytes());
            if let (Some(t), Some(x)) = (t, x) {
                encode(&t, x, out)?;
            }
        }
        (Type::Flags(_) | Type::Own(_) | Type::Borrow(_), _) => {
            return fail(Status::Unsupported, format!("a {ty:?} result has no Fidius wire form"))
        }
        _ => return mismatch(),
    }
    Ok(())
}
