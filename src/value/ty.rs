//! The types a Fidius interface's methods take and return, as WIT names
//! them, and what each means on the wire.

use std::sync::Arc;

use serde_json::{json, Value as Json};

/// One parameter or result type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List(Box<Ty>),
    Option(Box<Ty>),
    Result { ok: Option<Box<Ty>>, err: Option<Box<Ty>> },
    Tuple(Vec<Ty>),
    /// A record, variant, enum or flags type, shared by every use.
    Named(Arc<Named>),
    /// A type with no wire form (a resource handle, a stream): never converted.
    Opaque(String),
}

/// A named type of the interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    /// Its WIT name (kebab-case); empty for an anonymous one.
    pub name: String,
    pub kind: NamedKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NamedKind {
    Record(Vec<Field>),
    Variant(Vec<Case>),
    Enum(Vec<String>),
    Flags(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: Ty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub ty: Option<Ty>,
}

impl Ty {
    /// `list<u8>`: raw methods take and return bytes of this type.
    pub fn is_bytes(&self) -> bool {
        matches!(self, Ty::List(t) if **t == Ty::U8)
    }

    /// `result<_, plugin-error>`: the method's error is the call's plugin error.
    pub fn is_plugin_result(&self) -> bool {
        let Ty::Result { err: Some(err), .. } = self else { return false };
        let Ty::Named(named) = &**err else { return false };
        match &named.kind {
            NamedKind::Record(fields) => fields.iter().map(|f| f.name.as_str()).eq(["code", "message", "details"]),
            _ => false,
        }
    }

    /// For `result<T, plugin-error>`, T (None for `result<_, ...>`); else itself.
    pub fn outcome(&self) -> Option<&Ty> {
        match self {
            Ty::Result { ok, .. } if self.is_plugin_result() => ok.as_deref(),
            other => Some(other),
        }
    }

    /// The fewest wire bytes a value of this type takes.
    pub fn min_wire_size(&self) -> usize {
        match self {
            Ty::Bool | Ty::S8 | Ty::U8 | Ty::Char | Ty::Option(_) => 1,
            Ty::S16 | Ty::U16 => 2,
            Ty::S32 | Ty::U32 | Ty::F32 | Ty::Result { .. } => 4,
            Ty::S64 | Ty::U64 | Ty::F64 | Ty::String | Ty::List(_) => 8,
            Ty::Tuple(ts) => ts.iter().map(Ty::min_wire_size).sum(),
            Ty::Named(n) => match &n.kind {
                NamedKind::Record(fields) => fields.iter().map(|f| f.ty.min_wire_size()).sum(),
                NamedKind::Variant(_) | NamedKind::Enum(_) => 4,
                NamedKind::Flags(_) => 0,
            },
            Ty::Opaque(_) => 0,
        }
    }

    /// The type as WIT writes it (`list<point>`, `option<u32>`, `s64`).
    pub fn wit(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::S8 => "s8".into(),
            Ty::U8 => "u8".into(),
            Ty::S16 => "s16".into(),
            Ty::U16 => "u16".into(),
            Ty::S32 => "s32".into(),
            Ty::U32 => "u32".into(),
            Ty::S64 => "s64".into(),
            Ty::U64 => "u64".into(),
            Ty::F32 => "f32".into(),
            Ty::F64 => "f64".into(),
            Ty::Char => "char".into(),
            Ty::String => "string".into(),
            Ty::List(t) => format!("list<{}>", t.wit()),
            Ty::Option(t) => format!("option<{}>", t.wit()),
            Ty::Result { ok, err } => {
                let side = |t: &Option<Box<Ty>>| t.as_ref().map_or("_".to_string(), |t| t.wit());
                match (ok, err) {
                    (None, None) => "result".into(),
                    (Some(_), None) => format!("result<{}>", side(ok)),
                    _ => format!("result<{}, {}>", side(ok), side(err)),
                }
            }
            Ty::Tuple(ts) => format!("tuple<{}>", ts.iter().map(Ty::wit).collect::<Vec<_>>().join(", ")),
            Ty::Named(n) if !n.name.is_empty() => n.name.clone(),
            Ty::Named(n) => n.describe_kind().to_string(),
            Ty::Opaque(what) => what.clone(),
        }
    }

    /// Every named type this type mentions, depth first, each once.
    pub fn collect_named(&self, out: &mut Vec<Arc<Named>>) {
        match self {
            Ty::List(t) | Ty::Option(t) => t.collect_named(out),
            Ty::Result { ok, err } => {
                for t in [ok, err].into_iter().flatten() {
                    t.collect_named(out);
                }
            }
            Ty::Tuple(ts) => ts.iter().for_each(|t| t.collect_named(out)),
            Ty::Named(n) => {
                if out.iter().any(|o| Arc::ptr_eq(o, n) || (**o == **n)) {
                    return;
                }
                match &n.kind {
                    NamedKind::Record(fields) => fields.iter().for_each(|f| f.ty.collect_named(out)),
                    NamedKind::Variant(cases) => cases.iter().filter_map(|c| c.ty.as_ref()).for_each(|t| t.collect_named(out)),
                    NamedKind::Enum(_) | NamedKind::Flags(_) => {}
                }
                out.push(n.clone());
            }
            _ => {}
        }
    }
}

impl Named {
    fn describe_kind(&self) -> &'static str {
        match self.kind {
            NamedKind::Record(_) => "record",
            NamedKind::Variant(_) => "variant",
            NamedKind::Enum(_) => "enum",
            NamedKind::Flags(_) => "flags",
        }
    }

    /// The type's entry in a plugin description.
    pub fn describe(&self) -> Json {
        let body = match &self.kind {
            NamedKind::Record(fields) => json!({
                "fields": fields.iter().map(|f| json!({"name": f.name, "type": f.ty.wit()})).collect::<Vec<_>>()
            }),
            NamedKind::Variant(cases) => json!({
                "cases": cases.iter().map(|c| json!({"name": c.name, "type": c.ty.as_ref().map(Ty::wit)})).collect::<Vec<_>>()
            }),
            NamedKind::Enum(cases) => json!({ "cases": cases }),
            NamedKind::Flags(flags) => json!({ "flags": flags }),
        };
        let mut out = json!({ "name": self.name, "kind": self.describe_kind() });
        out.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        out
    }
}
