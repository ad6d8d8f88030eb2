//! Interface schemas: the WIT the Fidius toolchain writes for an interface
//! (`fidius wit`, `fidius_build::emit_wit()`), read into method signatures,
//! so plugins whose binaries carry no types (native libraries) can be
//! called by name with JSON and described.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use wit_parser::{Resolve, Type as WitType, TypeDefKind, TypeId};

use crate::error::{fail, Error, Result, Status};
use crate::value::{kebab, Case, Field, Named, NamedKind, Ty};

/// How deep brackets may nest in a schema's text.
const MAX_NESTING: usize = 64;

/// Functions every Fidius WIT interface carries that are not methods.
const NOT_METHODS: [&str; 2] = ["fidius-interface-hash", "fidius-configure"];

/// One interface of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    /// Its WIT name (kebab-case: the Rust trait `PriceEngine` is `price-engine`).
    pub name: String,
    /// In declaration order (the method index), without the
    /// `fidius-interface-hash` and `fidius-configure` functions.
    pub methods: Vec<MethodSig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MethodSig {
    pub name: String,
    pub params: Vec<(String, Ty)>,
    pub result: Option<Ty>,
    /// Returns a stream resource (a server-streaming or bidirectional method).
    pub streaming: bool,
    /// The stream's item type (`T` of its resource's `next: func() ->
    /// result<option<T>, plugin-error>`).
    pub item: Option<Ty>,
}

impl MethodSig {
    /// The method's signature as calls use it (raw when shaped like a raw method).
    pub fn signature(&self) -> crate::info::Signature {
        crate::info::Signature {
            params: self.params.clone(),
            result: self.result.clone(),
            raw: crate::info::Signature::raw_shape(&self.params, self.result.as_ref()),
            streaming: self.streaming,
            item: self.item.clone(),
        }
    }
}

/// A parsed schema: every interface in the WIT text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    pub interfaces: Vec<Arc<Interface>>,
    /// Where it came from, for messages.
    pub origin: String,
}

impl Schema {
    /// Parse WIT text (`origin` names it in messages: a path, or "the load options").
    pub fn parse(text: &str, origin: &str) -> Result<Schema> {
        // The WIT parser recurses per nesting level: a hostile schema nested
        // deep enough would overflow the host's stack, so depth is capped first.
        if nesting(text.as_bytes()) > MAX_NESTING {
            return fail(
                Status::InvalidArgument,
                format!("{origin}: not a valid WIT schema: brackets nest deeper than {MAX_NESTING} levels"),
            );
        }
        // wit-parser 0.251 takes `/**/` for a doc comment and then unwraps a
        // None on it (found by fuzzing): refused before it gets there.
        if text.contains("/**/") {
            return fail(
                Status::InvalidArgument,
                format!("{origin}: not a valid WIT schema: an empty block comment \"/**/\" (the WIT parser cannot read it)"),
            );
        }
        let mut resolve = Resolve::new();
        // wit-parser 0.251 panics on some malformed input (found by fuzzing:
        // an empty block doc comment `/**/` unwraps a None), so a panic in it
        // is one more way for a schema to be invalid.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| resolve.push_str(origin, text)))
            .map_err(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Error::new(Status::InvalidArgument, format!("{origin}: not a valid WIT schema (the WIT parser failed: {what})"))
            })?;
        let package =
            parsed.map_err(|e| Error::new(Status::InvalidArgument, format!("{origin}: not a valid WIT schema: {e:#}")))?;
        let mut types = TypeMap::default();
        let mut interfaces = Vec::new();
        for (name, id) in &resolve.packages[package].interfaces {
            let iface = &resolve.interfaces[*id];
            let mut methods = Vec::new();
            for (fname, f) in &iface.functions {
                if NOT_METHODS.contains(&fname.as_str()) || !matches!(f.kind, wit_parser::FunctionKind::Freestanding) {
                    continue;
                }
                let params = f
                    .params
                    .iter()
                    .map(|p| Ok((p.name.clone(), types.ty(&resolve, &p.ty)?)))
                    .collect::<Result<Vec<_>>>()
                    .map_err(|e| e.context(format!("{origin}: {name}.{fname}")))?;
                let result = f.result.as_ref().map(|t| types.ty(&resolve, t)).transpose()?;
                let streaming = matches!(result, Some(Ty::Opaque(_)));
                let item = match iface.functions.get(&format!("[method]{fname}-stream.next")) {
                    Some(next) if streaming => match next.result.as_ref().map(|t| types.ty(&resolve, t)).transpose()? {
                        Some(Ty::Result { ok: Some(ok), .. }) => match *ok {
                            Ty::Option(item) => Some(*item),
                            _ => None,
                        },
                        _ => None,
                    },
                    _ => None,
                };
                methods.push(MethodSig { name: fname.clone(), params, result, streaming, item });
            }
            interfaces.push(Arc::new(Interface { name: name.clone(), methods }));
        }
        if interfaces.is_empty() {
            return fail(Status::InvalidArgument, format!("{origin}: the WIT schema declares no interface"));
        }
        Ok(Schema { interfaces, origin: origin.to_string() })
    }

    /// Read and parse a `.wit` file.
    pub fn read(path: &Path) -> Result<Schema> {
        let bytes = crate::files::read_regular(path, crate::files::MAX_MANIFEST_BYTES)?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Schema> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::new(Status::InvalidUtf8, format!("{origin}: the schema is not UTF-8: {e}")))?;
        Self::parse(text, origin)
    }

    /// The interface for a plugin whose interface is `interface_name` (a
    /// native descriptor's trait name, or a package's interface): matched in
    /// kebab-case; a schema with one interface serves any name.
    pub fn interface(&self, interface_name: &str) -> Option<Arc<Interface>> {
        let wanted = kebab(interface_name);
        self.interfaces
            .iter()
            .find(|i| i.name == wanted)
            .or_else(|| (self.interfaces.len() == 1).then(|| &self.interfaces[0]))
            .cloned()
    }

    /// The interface named `interface_name` (compared in kebab-case), only.
    pub fn interface_named(&self, interface_name: &str) -> Option<Arc<Interface>> {
        let wanted = kebab(interface_name);
        self.interfaces.iter().find(|i| i.name == wanted).cloned()
    }

    /// The interface names, for messages.
    pub fn names(&self) -> Vec<String> {
        self.interfaces.iter().map(|i| i.name.clone()).collect()
    }
}

/// How deep `<`, `(` and `{` nest in WIT text, outside comments (which
/// may nest) and not counting the `>` of `->`.
fn nesting(text: &[u8]) -> usize {
    let (mut i, mut depth, mut deepest) = (0, 0usize, 0usize);
    while i < text.len() {
        match (text[i], text.get(i + 1)) {
            (b'/', Some(b'/')) => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                let mut open = 0usize;
                while i < text.len() {
                    match (text[i], text.get(i + 1)) {
                        (b'/', Some(b'*')) => {
                            open += 1;
                            i += 2;
                        }
                        (b'*', Some(b'/')) => {
                            open -= 1;
                            i += 2;
                            if open == 0 {
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
                continue;
            }
            (b'-', Some(b'>')) => i += 1,
            (b'<' | b'(' | b'{', _) => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (b'>' | b')' | b'}', _) => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Named WIT types already converted, so each is shared, not rebuilt per use.
#[derive(Default)]
struct TypeMap {
    done: HashMap<TypeId, Ty>,
    depth: usize,
}

impl TypeMap {
    fn ty(&mut self, resolve: &Resolve, t: &WitType) -> Result<Ty> {
        Ok(match t {
            WitType::Bool => Ty::Bool,
            WitType::U8 => Ty::U8,
            WitType::U16 => Ty::U16,
            WitType::U32 => Ty::U32,
            WitType::U64 => Ty::U64,
            WitType::S8 => Ty::S8,
            WitType::S16 => Ty::S16,
            WitType::S32 => Ty::S32,
            WitType::S64 => Ty::S64,
            WitType::F32 => Ty::F32,
            WitType::F64 => Ty::F64,
            WitType::Char => Ty::Char,
            WitType::String => Ty::String,
            WitType::ErrorContext => Ty::Opaque("error-context".into()),
            WitType::Id(id) => {
                if let Some(done) = self.done.get(id) {
                    return Ok(done.clone());
                }
                self.depth += 1;
                if self.depth > 64 {
                    return fail(Status::InvalidArgument, "types nest deeper than 64 levels");
                }
                let ty = self.def(resolve, *id);
                self.depth -= 1;
                let ty = ty?;
                self.done.insert(*id, ty.clone());
                ty
            }
        })
    }

    fn def(&mut self, resolve: &Resolve, id: TypeId) -> Result<Ty> {
        let def = &resolve.types[id];
        let name = def.name.clone().unwrap_or_default();
        // Names JSON cannot tell apart (wit-parser accepts `variant v { a, a(u8) }`)
        // would make a value read back as another: refused.
        let names: Vec<&str> = match &def.kind {
            TypeDefKind::Record(r) => r.fields.iter().map(|f| f.name.as_str()).collect(),
            TypeDefKind::Variant(v) => v.cases.iter().map(|c| c.name.as_str()).collect(),
            TypeDefKind::Enum(e) => e.cases.iter().map(|c| c.name.as_str()).collect(),
            TypeDefKind::Flags(f) => f.flags.iter().map(|c| c.name.as_str()).collect(),
            _ => Vec::new(),
        };
        if let Some((a, b)) = crate::value::indistinct(names) {
            return fail(
                Status::InvalidArgument,
                format!("type {name}: \"{a}\" and \"{b}\" are the same name in JSON (kebab-case, snake_case and PascalCase are one spelling)"),
            );
        }
        let named = |kind| Ty::Named(Arc::new(Named { name: name.clone(), kind }));
        Ok(match &def.kind {
            TypeDefKind::Record(r) => named(NamedKind::Record(
                r.fields.iter().map(|f| Ok(Field { name: f.name.clone(), ty: self.ty(resolve, &f.ty)? })).collect::<Result<_>>()?,
            )),
            TypeDefKind::Variant(v) => named(NamedKind::Variant(
                v.cases
                    .iter()
                    .map(|c| Ok(Case { name: c.name.clone(), ty: c.ty.as_ref().map(|t| self.ty(resolve, t)).transpose()? }))
                    .collect::<Result<_>>()?,
            )),
            TypeDefKind::Enum(e) => named(NamedKind::Enum(e.cases.iter().map(|c| c.name.clone()).collect())),
            TypeDefKind::Flags(f) => named(NamedKind::Flags(f.flags.iter().map(|c| c.name.clone()).collect())),
            TypeDefKind::Tuple(t) => Ty::Tuple(t.types.iter().map(|t| self.ty(resolve, t)).collect::<Result<_>>()?),
            TypeDefKind::Option(t) => Ty::Option(Box::new(self.ty(resolve, t)?)),
            TypeDefKind::List(t) => Ty::List(Box::new(self.ty(resolve, t)?)),
            TypeDefKind::Map(k, v) => {
                Ty::List(Box::new(Ty::Tuple(vec![self.ty(resolve, k)?, self.ty(resolve, v)?])))
            }
            TypeDefKind::Result(r) => Ty::Result {
                ok: r.ok.as_ref().map(|t| self.ty(resolve, t)).transpose()?.map(Box::new),
                err: r.err.as_ref().map(|t| self.ty(resolve, t)).transpose()?.map(Box::new),
            },
            TypeDefKind::Type(t) => self.ty(resolve, t)?,
            TypeDefKind::Resource | TypeDefKind::Handle(_) => Ty::Opaque(if name.is_empty() { "resource".into() } else { name }),
            TypeDefKind::Future(_) | TypeDefKind::Stream(_) | TypeDefKind::FixedLengthList(..) | TypeDefKind::Unknown => {
                Ty::Opaque(format!("{:?}", def.kind).split('(').next().unwrap_or("unknown").to_lowercase())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIT: &str = r#"
package fidius:price-engine@0.1.0;

interface price-engine {
    record plugin-error { code: string, message: string, details: option<string> }
    record order { id: u64, sku: string, note: option<string> }
    variant shape { empty, circle(f64), rect(tuple<f64, f64>) }
    price: func(order: order) -> s64;
    totals: func(orders: list<order>) -> list<tuple<string, s64>>;
    divide: func(a: s64, b: s64) -> result<s64, plugin-error>;
    area: func(s: shape) -> f64;
    nothing: func();
    fidius-interface-hash: func() -> u64;
    fidius-configure: func(config: list<u8>);
}
"#;

    #[test]
    fn reads_methods_in_declaration_order() {
        let schema = Schema::parse(WIT, "test.wit").unwrap();
        let iface = schema.interface("PriceEngine").unwrap();
        let names: Vec<&str> = iface.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["price", "totals", "divide", "area", "nothing"]);
        assert_eq!(iface.methods[0].params[0].1.wit(), "order");
        assert_eq!(iface.methods[1].result.as_ref().unwrap().wit(), "list<tuple<string, s64>>");
        assert!(iface.methods[2].result.as_ref().unwrap().is_plugin_result());
        assert!(iface.methods[4].result.is_none());
    }

    #[test]
    fn malformed_schemas_say_where() {
        let e = Schema::parse("package a:b;\ninterface x { f: func(a: nope) -> u32; }", "bad.wit").unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        assert!(e.message.contains("bad.wit") && e.message.contains("nope"), "{}", e.message);
        assert!(Schema::parse("package a:b;\n", "empty.wit").unwrap_err().message.contains("no interface"));
        let deep = format!("package a:b;\ninterface x {{ f: func(a: {}u8{}); }}", "list<".repeat(100_000), ">".repeat(100_000));
        assert!(Schema::parse(&deep, "deep.wit").unwrap_err().message.contains("nest deeper"));
        // Comments and arrows do not hide nesting.
        let hidden = format!("package a:b;\ninterface x {{ f: func(a: {}u8{}); }}", "list<\n// >>>\n/* > /* > */ > */ -> ".repeat(100), ">".repeat(100));
        assert!(Schema::parse(&hidden, "hidden.wit").unwrap_err().message.contains("nest deeper"));
        assert_eq!(nesting(b"interface x { f: func(a: list<u8>) -> list<u8>; }"), 3);
    }

    #[test]
    fn names_json_cannot_tell_apart_are_refused() {
        // Found by the wire_json fuzz target (fuzz/corpus/wire_json/crash-variant-duplicate-case):
        // `{"A": 102}` of case `a(u8)` read back as the payload-free case `a`.
        for body in ["variant v { a, a(u8) }", "variant v { shape-rect, shape-rect(u8) }", "record v { a-b: u8, a-b: u8 }", "enum v { x, x }"] {
            let wit = format!("package a:b;\ninterface x {{\n  {body}\n  f: func(a: v) -> v;\n}}\n");
            match Schema::parse(&wit, "dup.wit") {
                Ok(_) => {} // wit-parser itself refused it: nothing to convert
                Err(e) => assert_eq!(e.status, Status::InvalidArgument, "{body}: {}", e.message),
            }
        }
        let e = Schema::parse("package a:b;\ninterface x {\n  variant v { a, a(u8) }\n  f: func(a: v) -> v;\n}\n", "dup.wit").unwrap_err();
        assert!(e.message.contains("same name in JSON"), "{}", e.message);
    }

    #[test]
    fn a_schema_the_wit_parser_panics_on_is_refused() {
        // Found by the json_wire fuzz target (fuzz/corpus/json_wire/crash-wit-empty-doc).
        let e = Schema::parse("package a:b;
interface x {
  record r {
    /**/
    a: u8,
  }
}
", "doc.wit").unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        assert!(e.message.contains("doc.wit") && e.message.contains("/**/"), "{}", e.message);
    }
}
