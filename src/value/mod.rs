//! Interface types and value conversion, shared by every runtime.
//!
//! [`Ty`] describes a method's parameter and result types (from a
//! component's own types, or from a WIT schema for native plugins);
//! [`json`] converts between JSON and Fidius wire bytes by those types, so a
//! JSON call is the same wire call with a conversion on each side, whatever
//! runs the plugin.

mod fast;
pub mod json;
mod names;
pub mod ty;
pub mod wire;

pub use names::{indistinct, kebab, pascal, snake};
pub use ty::{Case, Field, Named, NamedKind, Ty};
