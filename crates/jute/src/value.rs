//! A dynamic view of jute values, for schema-driven tests, tools and differential comparison.

use bytes::Bytes;

/// Any jute value. Records list their fields in schema order under the schema's names.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A `byte`.
    Byte(i8),
    /// A `boolean`.
    Bool(bool),
    /// An `int`.
    Int(i32),
    /// A `long`.
    Long(i64),
    /// A `float`.
    Float(f32),
    /// A `double`.
    Double(f64),
    /// A `ustring`; `None` is null.
    Ustring(Option<String>),
    /// A `buffer`; `None` is null.
    Buffer(Option<Bytes>),
    /// A `vector`; `None` is null.
    Vector(Option<Vec<Value>>),
    /// A `map`; `None` is null.
    Map(Option<Vec<(Value, Value)>>),
    /// A record: `(field name, value)` in declaration order.
    Record(Vec<(&'static str, Value)>),
}
