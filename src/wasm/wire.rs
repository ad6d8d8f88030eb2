//! Fidius wire bytes <-> component values, directed by interface types, so
//! a host encodes arguments once for native and WASM plugins alike (the
//! byte layout is described in [`crate::value::json`]).

use wasmtime::component::Val;

use crate::error::{fail, Result, Status};
use crate::value::wire::{err, Reader, MAX_DEPTH};
use crate::value::{NamedKind, Ty};

/// The most zero-sized items (`tuple<>`) a list may claim.
const MAX_EMPTY_ITEMS: usize = 1 << 20;

/// One call's arguments: most methods take a few, kept off the heap.
pub type Args = smallvec::SmallVec<[Val; 4]>;

/// Decode the argument tuple into one value per parameter.
pub fn params(params: &[(String, Ty)], input: &[u8]) -> Result<Args> {
    let mut r = Reader::new(input);
    let mut vals = Args::new();
    for (name, ty) in params {
        vals.push(decode(ty, &mut r, 0).map_err(|e| e.context(format!("argument {name}")))?);
    }
    r.finish("the arguments")?;
    Ok(vals)
}

fn decode(ty: &Ty, r: &mut Reader<'_>, depth: usize) -> Result<Val> {
    if depth > MAX_DEPTH {
        return err("value nested too deeply");
    }
    let d = depth + 1;
    Ok(match ty {
        Ty::Bool => match r.array::<1>("bool")?[0] {
            0 => Val::Bool(false),
            1 => Val::Bool(true),
            b => return err(format!("{b} is not a bool (0 or 1)")),
        },
        Ty::S8 => Val::S8(i8::from_le_bytes(r.array("s8")?)),
        Ty::U8 => Val::U8(r.array::<1>("u8")?[0]),
        Ty::S16 => Val::S16(i16::from_le_bytes(r.array("s16")?)),
        Ty::U16 => Val::U16(u16::from_le_bytes(r.array("u16")?)),
        Ty::S32 => Val::S32(i32::from_le_bytes(r.array("s32")?)),
        Ty::U32 => Val::U32(u32::from_le_bytes(r.array("u32")?)),
        Ty::S64 => Val::S64(i64::from_le_bytes(r.array("s64")?)),
        Ty::U64 => Val::U64(u64::from_le_bytes(r.array("u64")?)),
        Ty::F32 => Val::Float32(f32::from_le_bytes(r.array("f32")?)),
        Ty::F64 => Val::Float64(f64::from_le_bytes(r.array("f64")?)),
        Ty::Char => Val::Char(r.char()?),
        Ty::String => Val::String(r.string()?.to_owned()),
        Ty::List(elem) => {
            let n = r.len("list")?;
            if **elem == Ty::U8 {
                Val::List(r.take(n, "list<u8>")?.iter().map(|b| Val::U8(*b)).collect())
            } else {
                let each = elem.min_wire_size();
                if (each > 0 && n > r.remaining() / each) || (each == 0 && n > MAX_EMPTY_ITEMS) {
                    return err(format!("a list of {n} items does not fit in the {} bytes left", r.remaining()));
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(decode(elem, r, d)?);
                }
                Val::List(items)
            }
        }
        Ty::Tuple(types) => Val::Tuple(types.iter().map(|t| decode(t, r, d)).collect::<Result<_>>()?),
        Ty::Option(inner) => match r.array::<1>("option tag")?[0] {
            0 => Val::Option(None),
            1 => Val::Option(Some(Box::new(decode(inner, r, d)?))),
            t => return err(format!("{t} is not an option tag (0 or 1)")),
        },
        Ty::Result { ok, err: error } => {
            let tag = u32::from_le_bytes(r.array("result tag")?);
            let mut side = |t: &Option<Box<Ty>>| t.as_ref().map(|t| decode(t, r, d)).transpose().map(|v| v.map(Box::new));
            match tag {
                0 => Val::Result(Ok(side(ok)?)),
                1 => Val::Result(Err(side(error)?)),
                t => return err(format!("{t} is not a result tag (0 or 1)")),
            }
        }
        Ty::Named(named) => match &named.kind {
            NamedKind::Record(fields) => {
                Val::Record(fields.iter().map(|f| Ok((f.name.clone(), decode(&f.ty, r, d)?))).collect::<Result<_>>()?)
            }
            NamedKind::Variant(cases) => {
                let tag = u32::from_le_bytes(r.array("variant tag")?) as usize;
                let Some(case) = cases.get(tag) else { return err(format!("variant case {tag} does not exist")) };
                Val::Variant(case.name.clone(), case.ty.as_ref().map(|t| decode(t, r, d)).transpose()?.map(Box::new))
            }
            NamedKind::Enum(cases) => {
                let tag = u32::from_le_bytes(r.array("enum tag")?) as usize;
                Val::Enum(cases.get(tag).map_or_else(|| err(format!("enum case {tag} does not exist")), Ok)?.clone())
            }
            NamedKind::Flags(_) => return fail(Status::Unsupported, "flags have no Fidius wire form"),
        },
        Ty::Opaque(what) => return fail(Status::Unsupported, format!("values of type {what} have no Fidius wire form")),
    })
}

/// Encode a value of type `ty` the way the matching Rust type's bincode would be.
pub fn encode(ty: &Ty, v: &Val, out: &mut Vec<u8>) -> Result<()> {
    let mismatch = || fail(Status::Serialization, format!("plugin returned {v:?} where the WIT type is {}", ty.wit()));
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
        (Ty::List(elem), Val::List(items)) => {
            out.extend((items.len() as u64).to_le_bytes());
            for x in items {
                encode(elem, x, out)?;
            }
        }
        (Ty::List(elem), Val::Map(pairs)) => {
            let Ty::Tuple(kv) = &**elem else { return mismatch() };
            out.extend((pairs.len() as u64).to_le_bytes());
            for (k, x) in pairs {
                encode(&kv[0], k, out)?;
                encode(&kv[1], x, out)?;
            }
        }
        (Ty::Tuple(types), Val::Tuple(items)) => {
            for (t, x) in types.iter().zip(items) {
                encode(t, x, out)?;
            }
        }
        (Ty::Option(_), Val::Option(None)) => out.push(0),
        (Ty::Option(inner), Val::Option(Some(x))) => {
            out.push(1);
            encode(inner, x, out)?;
        }
        (Ty::Result { ok, err: error }, Val::Result(r)) => {
            let (tag, t, x) = match r {
                Ok(x) => (0u32, ok, x),
                Err(x) => (1u32, error, x),
            };
            out.extend(tag.to_le_bytes());
            if let (Some(t), Some(x)) = (t, x) {
                encode(t, x, out)?;
            }
        }
        (Ty::Named(named), v) => match (&named.kind, v) {
            (NamedKind::Record(fields), Val::Record(vals)) => {
                for (f, (_, x)) in fields.iter().zip(vals) {
                    encode(&f.ty, x, out)?;
                }
            }
            (NamedKind::Variant(cases), Val::Variant(name, payload)) => {
                let Some(tag) = cases.iter().position(|c| c.name == *name) else { return mismatch() };
                out.extend((tag as u32).to_le_bytes());
                if let (Some(t), Some(x)) = (&cases[tag].ty, payload) {
                    encode(t, x, out)?;
                }
            }
            (NamedKind::Enum(cases), Val::Enum(name)) => {
                let Some(tag) = cases.iter().position(|c| c == name) else { return mismatch() };
                out.extend((tag as u32).to_le_bytes());
            }
            (NamedKind::Flags(_), _) => return fail(Status::Unsupported, "flags have no Fidius wire form"),
            _ => return mismatch(),
        },
        (Ty::Opaque(what), _) => return fail(Status::Unsupported, format!("a {what} result has no Fidius wire form")),
        _ => return mismatch(),
    }
    Ok(())
}
