//! A component's own types as interface types ([`Ty`]), named after the
//! types its interface exports (`record point`, `variant shape`).

use std::sync::Arc;

use wasmtime::component::Type;

use crate::value::{Case, Field, Named, NamedKind, Ty};

/// Converts component types, giving each exported named type its name and
/// one shared [`Named`].
pub struct Types {
    /// The interface's exported types, by name.
    exported: Vec<(String, Type)>,
    made: Vec<(Type, Ty)>,
}

impl Types {
    pub fn new(exported: Vec<(String, Type)>) -> Self {
        Types { exported, made: Vec::new() }
    }

    pub fn ty(&mut self, t: &Type) -> Ty {
        match t {
            Type::Bool => Ty::Bool,
            Type::S8 => Ty::S8,
            Type::U8 => Ty::U8,
            Type::S16 => Ty::S16,
            Type::U16 => Ty::U16,
            Type::S32 => Ty::S32,
            Type::U32 => Ty::U32,
            Type::S64 => Ty::S64,
            Type::U64 => Ty::U64,
            Type::Float32 => Ty::F32,
            Type::Float64 => Ty::F64,
            Type::Char => Ty::Char,
            Type::String => Ty::String,
            Type::List(l) => Ty::List(Box::new(self.ty(&l.ty()))),
            Type::Map(m) => Ty::List(Box::new(Ty::Tuple(vec![self.ty(&m.key()), self.ty(&m.value())]))),
            Type::Tuple(tuple) => Ty::Tuple(tuple.types().map(|t| self.ty(&t)).collect()),
            Type::Option(o) => Ty::Option(Box::new(self.ty(&o.ty()))),
            Type::Result(r) => Ty::Result {
                ok: r.ok().map(|t| Box::new(self.ty(&t))),
                err: r.err().map(|t| Box::new(self.ty(&t))),
            },
            Type::Record(_) | Type::Variant(_) | Type::Enum(_) | Type::Flags(_) => self.named(t),
            Type::Own(_) | Type::Borrow(_) => Ty::Opaque("resource".into()),
            Type::Future(_) => Ty::Opaque("future".into()),
            Type::Stream(_) => Ty::Opaque("stream".into()),
            Type::ErrorContext => Ty::Opaque("error-context".into()),
        }
    }

    fn named(&mut self, t: &Type) -> Ty {
        if let Some((_, made)) = self.made.iter().find(|(k, _)| k == t) {
            return made.clone();
        }
        let name = self.exported.iter().find(|(_, e)| e == t).map(|(n, _)| n.clone()).unwrap_or_default();
        let kind = match t {
            Type::Record(r) => NamedKind::Record(r.fields().map(|f| Field { name: f.name.to_string(), ty: self.ty(&f.ty) }).collect()),
            Type::Variant(v) => {
                NamedKind::Variant(v.cases().map(|c| Case { name: c.name.to_string(), ty: c.ty.map(|t| self.ty(&t)) }).collect())
            }
            Type::Enum(e) => NamedKind::Enum(e.names().map(str::to_string).collect()),
            Type::Flags(f) => NamedKind::Flags(f.names().map(str::to_string).collect()),
            _ => unreachable!("only named kinds"),
        };
        let ty = Ty::Named(Arc::new(Named { name, kind }));
        self.made.push((t.clone(), ty.clone()));
        ty
    }
}
