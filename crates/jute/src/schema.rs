//! The jute schema language: a `nom` parser and the Rust code generator.
//!
//! This file is compiled twice: by `build.rs` (which generates the records from
//! `jute-schemas/*.jute` into `OUT_DIR`) and, under `cfg(test)`, into the library so that the
//! parser and generator have unit tests of their own.
//!
//! Grammar (the subset ZooKeeper's schema uses, plus `map`):
//! ```text
//! file   := (module)*
//! module := "module" qname "{" (class)* "}"
//! class  := "class" ident "{" (field)* "}"
//! field  := type ident ";"
//! type   := "byte" | "boolean" | "int" | "long" | "float" | "double" | "ustring" | "buffer"
//!         | "vector" "<" type ">" | "map" "<" type "," type ">" | qname
//! ```
//! Whitespace, `// line` and `/* block */` comments may appear between any two tokens.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_until, take_while, take_while1};
use nom::character::complete::{char, multispace1};
use nom::combinator::{all_consuming, cut, map, recognize, value};
use nom::multi::{many0, separated_list1};
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};

/// A field type as written in the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// `byte`: one signed byte.
    Byte,
    /// `boolean`: one byte, non-zero is true.
    Boolean,
    /// `int`: 4 bytes, big-endian.
    Int,
    /// `long`: 8 bytes, big-endian.
    Long,
    /// `float`: 4 bytes IEEE 754.
    Float,
    /// `double`: 8 bytes IEEE 754.
    Double,
    /// `ustring`: int length (-1 = null) + UTF-8 bytes.
    Ustring,
    /// `buffer`: int length (-1 = null) + bytes.
    Buffer,
    /// `vector<T>`: int count (-1 = null) + elements.
    Vector(Box<Type>),
    /// `map<K, V>`: int count (-1 = null) + key/value pairs.
    Map(Box<Type>, Box<Type>),
    /// A record, by (possibly qualified) name.
    Record(String),
}

/// One field of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's type.
    pub ty: Type,
    /// The field's name as written (the protocol's camelCase name).
    pub name: String,
}

/// One record (`class`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// The record's name.
    pub name: String,
    /// Its fields in declaration order, which is the encoding order.
    pub fields: Vec<Field>,
}

/// One `module` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Dotted module name, e.g. `org.apache.zookeeper.proto`.
    pub name: String,
    /// The records declared in it.
    pub classes: Vec<Class>,
}

/// Skips whitespace and comments (possibly none).
fn ws(input: &str) -> IResult<&str, ()> {
    value(
        (),
        many0(alt((
            value((), multispace1),
            value((), (tag("//"), take_while(|c| c != '\n'))),
            value((), (tag("/*"), take_until("*/"), tag("*/"))),
        ))),
    )
    .parse(input)
}

/// Wraps a parser so that whitespace and comments before it are skipped.
fn tok<'a, O, P>(p: P) -> impl Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>>
where
    P: Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>>,
{
    preceded(ws, p)
}

fn ident(input: &str) -> IResult<&str, &str> {
    recognize((
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(input)
}

fn qname(input: &str) -> IResult<&str, String> {
    map(separated_list1(char('.'), ident), |parts| parts.join(".")).parse(input)
}

fn ty(input: &str) -> IResult<&str, Type> {
    let vector = map(
        preceded(
            (tag("vector"), tok(char('<'))),
            terminated(tok(ty), tok(char('>'))),
        ),
        |t| Type::Vector(Box::new(t)),
    );
    let map_ty = map(
        (
            tag("map"),
            tok(char('<')),
            tok(ty),
            tok(char(',')),
            tok(ty),
            tok(char('>')),
        ),
        |(_, _, k, _, v, _)| Type::Map(Box::new(k), Box::new(v)),
    );
    let named = map(qname, |name| match name.as_str() {
        "byte" => Type::Byte,
        "boolean" => Type::Boolean,
        "int" => Type::Int,
        "long" => Type::Long,
        "float" => Type::Float,
        "double" => Type::Double,
        "ustring" => Type::Ustring,
        "buffer" => Type::Buffer,
        _ => Type::Record(name),
    });
    alt((vector, map_ty, named)).parse(input)
}

fn field(input: &str) -> IResult<&str, Field> {
    map((tok(ty), tok(ident), tok(char(';'))), |(ty, name, _)| {
        Field {
            ty,
            name: name.to_string(),
        }
    })
    .parse(input)
}

fn class(input: &str) -> IResult<&str, Class> {
    map(
        preceded(
            tok(tag("class")),
            cut((
                tok(ident),
                delimited(tok(char('{')), many0(field), tok(char('}'))),
            )),
        ),
        |(name, fields)| Class {
            name: name.to_string(),
            fields,
        },
    )
    .parse(input)
}

fn module(input: &str) -> IResult<&str, Module> {
    map(
        preceded(
            tok(tag("module")),
            cut((
                tok(qname),
                delimited(tok(char('{')), many0(class), tok(char('}'))),
            )),
        ),
        |(name, classes)| Module { name, classes },
    )
    .parse(input)
}

/// Parses a whole schema file. On failure, returns the line number and the text where parsing
/// stopped.
pub fn parse(input: &str) -> Result<Vec<Module>, String> {
    match all_consuming(terminated(many0(module), ws)).parse(input) {
        Ok((_, modules)) => Ok(modules),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            let offset = input.len() - e.input.len();
            let line = input[..offset].matches('\n').count() + 1;
            let snippet: String = e.input.chars().take(40).collect();
            Err(format!(
                "jute schema: syntax error at line {line}: {snippet:?}"
            ))
        }
        Err(nom::Err::Incomplete(_)) => Err("jute schema: unexpected end of input".to_string()),
    }
}

/// The Rust module a jute module maps to: its last dotted component (`data`, `proto`, `txn`,
/// `quorum`, `persistence`).
pub fn rust_module(module: &str) -> &str {
    module.rsplit('.').next().unwrap_or(module)
}

/// Converts a camelCase protocol name to a snake_case Rust field name.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    match out.as_str() {
        "type" | "ref" | "match" | "mod" | "fn" | "struct" | "impl" | "use" | "loop" => {
            format!("r#{out}")
        }
        _ => out,
    }
}

/// Resolves record references to `(module, class)` pairs and checks that every reference
/// exists and that no two records share a qualified name.
struct Resolver<'a> {
    records: BTreeMap<(String, String), &'a Class>,
}

impl<'a> Resolver<'a> {
    fn new(modules: &'a [Module]) -> Result<Self, String> {
        let mut records = BTreeMap::new();
        for m in modules {
            for c in &m.classes {
                if records
                    .insert((m.name.clone(), c.name.clone()), c)
                    .is_some()
                {
                    return Err(format!(
                        "jute schema: record {}.{} declared twice",
                        m.name, c.name
                    ));
                }
            }
        }
        Ok(Self { records })
    }

    /// Returns the (module, class) that `name` refers to from inside `module`.
    fn resolve(&self, module: &str, name: &str) -> Result<(String, String), String> {
        let key = match name.rsplit_once('.') {
            Some((m, c)) => (m.to_string(), c.to_string()),
            None => (module.to_string(), name.to_string()),
        };
        if self.records.contains_key(&key) {
            Ok(key)
        } else {
            Err(format!(
                "jute schema: unknown record {name} (used in module {module})"
            ))
        }
    }

    /// Whether a type contains a float or double (such records cannot derive `Eq`).
    /// `visiting` holds the records on the current path, so that recursive records terminate.
    fn has_float(&self, module: &str, ty: &Type, visiting: &mut Vec<(String, String)>) -> bool {
        match ty {
            Type::Float | Type::Double => true,
            Type::Vector(t) => self.has_float(module, t, visiting),
            Type::Map(k, v) => {
                self.has_float(module, k, visiting) || self.has_float(module, v, visiting)
            }
            Type::Record(name) => match self.resolve(module, name) {
                Ok(key) if !visiting.contains(&key) => {
                    let class = self.records[&key];
                    visiting.push(key.clone());
                    let found = class
                        .fields
                        .iter()
                        .any(|f| self.has_float(&key.0, &f.ty, visiting));
                    visiting.pop();
                    found
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// Why `map` is parsed but not generated: no ZooKeeper record uses it, and Java decodes a map
/// count of -1 as an empty map rather than null, a rule we would rather not carry untested.
const MAP_UNSUPPORTED: &str =
    "jute schema: map<K,V> fields are parsed but not supported by the generator";

/// What the generator needs to know about a type in one position.
struct Gen<'a> {
    resolver: &'a Resolver<'a>,
    module: &'a str,
}

impl Gen<'_> {
    /// The Rust path of a record type as seen from the generated root module.
    fn record_path(&self, name: &str) -> Result<String, String> {
        let (m, c) = self.resolver.resolve(self.module, name)?;
        Ok(format!("crate::{}::{}", rust_module(&m), c))
    }

    /// The Rust type of a value. Top-level `ustring`, `buffer`, `vector` and `map` fields are
    /// `Option`s because jute encodes null (-1) distinctly from empty; elements of a vector or
    /// map are never null.
    fn rust_type(&self, ty: &Type, nullable: bool) -> Result<String, String> {
        let inner = match ty {
            Type::Byte => return Ok("i8".into()),
            Type::Boolean => return Ok("bool".into()),
            Type::Int => return Ok("i32".into()),
            Type::Long => return Ok("i64".into()),
            Type::Float => return Ok("f32".into()),
            Type::Double => return Ok("f64".into()),
            Type::Record(name) => return self.record_path(name),
            Type::Ustring => "::std::string::String".to_string(),
            Type::Buffer => "::bytes::Bytes".to_string(),
            Type::Vector(t) => format!("::std::vec::Vec<{}>", self.rust_type(t, false)?),
            Type::Map(..) => return Err(MAP_UNSUPPORTED.to_string()),
        };
        Ok(if nullable {
            format!("::std::option::Option<{inner}>")
        } else {
            inner
        })
    }

    /// An expression that encodes `v` (a reference) into `out`.
    fn encode(&self, ty: &Type, v: &str, nullable: bool) -> Result<String, String> {
        let v = &format!("({v})");
        let rt = "crate::rt";
        Ok(match ty {
            Type::Byte => format!("{rt}::write_byte(out, *{v})"),
            Type::Boolean => format!("{rt}::write_bool(out, *{v})"),
            Type::Int => format!("{rt}::write_int(out, *{v})"),
            Type::Long => format!("{rt}::write_long(out, *{v})"),
            Type::Float => format!("{rt}::write_float(out, *{v})"),
            Type::Double => format!("{rt}::write_double(out, *{v})"),
            Type::Record(_) => format!("crate::Record::encode({v}, out)"),
            Type::Ustring if nullable => format!("{rt}::write_ustring(out, {v}.as_deref())"),
            Type::Ustring => format!("{rt}::write_ustring(out, Some({v}.as_str()))"),
            Type::Buffer if nullable => format!("{rt}::write_buffer(out, {v}.as_deref())"),
            Type::Buffer => format!("{rt}::write_buffer(out, Some(&{v}[..]))"),
            Type::Vector(t) => {
                let body = self.encode(t, "e", false)?;
                let seq = if nullable {
                    format!("{v}.as_deref()")
                } else {
                    format!("Some(&{v}[..])")
                };
                format!("{rt}::write_vector(out, {seq}, |out, e| {{ {body}; }})")
            }
            Type::Map(..) => return Err(MAP_UNSUPPORTED.to_string()),
        })
    }

    /// An expression for the encoded length of `v` (a reference).
    fn len(&self, ty: &Type, v: &str, nullable: bool) -> Result<String, String> {
        let v = &format!("({v})");
        Ok(match ty {
            Type::Byte | Type::Boolean => "1".into(),
            Type::Int | Type::Float => "4".into(),
            Type::Long | Type::Double => "8".into(),
            Type::Record(_) => format!("crate::Record::encoded_len({v})"),
            Type::Ustring if nullable => {
                format!("{v}.as_deref().map_or(4, crate::rt::ustring_len)")
            }
            Type::Ustring => format!("crate::rt::ustring_len({v})"),
            Type::Buffer if nullable => format!("4 + {v}.as_ref().map_or(0, |b| b.len())"),
            Type::Buffer => format!("4 + {v}.len()"),
            Type::Vector(t) => {
                let body = self.len(t, "e", false)?;
                let sum = format!("s.iter().map(|e| {body}).sum::<usize>()");
                if nullable {
                    format!("4 + {v}.as_ref().map_or(0, |s| {sum})")
                } else {
                    format!("4 + {{ let s = {v}; {sum} }}")
                }
            }
            Type::Map(..) => return Err(MAP_UNSUPPORTED.to_string()),
        })
    }

    /// An expression that decodes a value from `r` (a `&mut Reader`), yielding a `Result`.
    fn decode(&self, ty: &Type, nullable: bool) -> Result<String, String> {
        Ok(match ty {
            Type::Byte => "r.read_byte()".into(),
            Type::Boolean => "r.read_bool()".into(),
            Type::Int => "r.read_int()".into(),
            Type::Long => "r.read_long()".into(),
            Type::Float => "r.read_float()".into(),
            Type::Double => "r.read_double()".into(),
            Type::Record(name) => {
                format!("<{} as crate::Record>::decode(r)", self.record_path(name)?)
            }
            Type::Ustring if nullable => "r.read_ustring()".into(),
            Type::Ustring => "r.read_ustring_element()".into(),
            Type::Buffer if nullable => "r.read_buffer()".into(),
            Type::Buffer => "r.read_buffer_element()".into(),
            Type::Vector(t) => {
                let body = self.decode(t, false)?;
                let call = format!("r.read_vector(|r| {body})");
                if nullable {
                    call
                } else {
                    format!("{call}.and_then(|v| v.ok_or(crate::DecodeError::NullElement))")
                }
            }
            Type::Map(..) => return Err(MAP_UNSUPPORTED.to_string()),
        })
    }

    /// An expression converting `v` (a reference) into a `crate::Value`.
    fn value(&self, ty: &Type, v: &str, nullable: bool) -> Result<String, String> {
        let v = &format!("({v})");
        let val = "crate::Value";
        Ok(match ty {
            Type::Byte => format!("{val}::Byte(*{v})"),
            Type::Boolean => format!("{val}::Bool(*{v})"),
            Type::Int => format!("{val}::Int(*{v})"),
            Type::Long => format!("{val}::Long(*{v})"),
            Type::Float => format!("{val}::Float(*{v})"),
            Type::Double => format!("{val}::Double(*{v})"),
            Type::Record(_) => format!("crate::Record::to_value({v})"),
            Type::Ustring if nullable => format!("{val}::Ustring({v}.clone())"),
            Type::Ustring => format!("{val}::Ustring(Some({v}.clone()))"),
            Type::Buffer if nullable => format!("{val}::Buffer({v}.clone())"),
            Type::Buffer => format!("{val}::Buffer(Some({v}.clone()))"),
            Type::Vector(t) => {
                let body = self.value(t, "e", false)?;
                let list = format!("s.iter().map(|e| {body}).collect()");
                if nullable {
                    format!("{val}::Vector({v}.as_ref().map(|s| {list}))")
                } else {
                    format!("{val}::Vector(Some({{ let s = {v}; {list} }}))")
                }
            }
            Type::Map(..) => return Err(MAP_UNSUPPORTED.to_string()),
        })
    }
}

/// Generates the Rust source for all modules: one `pub mod` per jute module, a struct and a
/// `Record` impl per class, and `decode_value_by_name` for schema-driven tests and tools.
pub fn generate(modules: &[Module]) -> Result<String, String> {
    let resolver = Resolver::new(modules)?;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "// @generated by crates/jute/build.rs from jute-schemas/*.jute.\n"
    );

    // Group by Rust module name, so that two jute modules cannot silently collide.
    let mut seen = BTreeMap::new();
    for m in modules {
        if let Some(other) = seen.insert(rust_module(&m.name), &m.name) {
            return Err(format!(
                "jute schema: modules {other} and {} both map to Rust module {}",
                m.name,
                rust_module(&m.name)
            ));
        }
    }

    for m in modules {
        let g = Gen {
            resolver: &resolver,
            module: &m.name,
        };
        let _ = writeln!(w, "/// Records of the jute module `{}`.", m.name);
        let _ = writeln!(
            w,
            "#[allow(unused_qualifications, unused_parens, clippy::all)]"
        );
        let _ = writeln!(w, "pub mod {} {{", rust_module(&m.name));
        for c in &m.classes {
            let eq = if c
                .fields
                .iter()
                .any(|f| resolver.has_float(&m.name, &f.ty, &mut Vec::new()))
            {
                ""
            } else {
                ", Eq"
            };
            let _ = writeln!(w, "    /// The jute record `{}.{}`.", m.name, c.name);
            let _ = writeln!(w, "    #[derive(Clone, Debug, Default, PartialEq{eq})]");
            let _ = writeln!(w, "    pub struct {} {{", c.name);
            for f in &c.fields {
                let _ = writeln!(w, "        /// The `{}` field.", f.name);
                let _ = writeln!(
                    w,
                    "        pub {}: {},",
                    snake_case(&f.name),
                    g.rust_type(&f.ty, true)?
                );
            }
            let _ = writeln!(w, "    }}\n");

            let _ = writeln!(w, "    impl crate::Record for {} {{", c.name);
            let _ = writeln!(w, "        const MODULE: &'static str = {:?};", m.name);
            let _ = writeln!(w, "        const NAME: &'static str = {:?};", c.name);

            let _ = writeln!(w, "        #[allow(unused_variables)]");
            let _ = writeln!(
                w,
                "        fn encode<B: ::bytes::BufMut>(&self, out: &mut B) {{"
            );
            for f in &c.fields {
                let v = format!("&self.{}", snake_case(&f.name));
                let _ = writeln!(w, "            {};", g.encode(&f.ty, &v, true)?);
            }
            let _ = writeln!(w, "        }}");

            let _ = writeln!(w, "        fn encoded_len(&self) -> usize {{");
            let mut parts = vec!["0".to_string()];
            for f in &c.fields {
                let v = format!("&self.{}", snake_case(&f.name));
                parts.push(format!("({})", g.len(&f.ty, &v, true)?));
            }
            let _ = writeln!(w, "            {}", parts.join(" + "));
            let _ = writeln!(w, "        }}");

            let _ = writeln!(w, "        #[allow(unused_variables)]");
            let _ = writeln!(
                w,
                "        fn decode(r: &mut crate::Reader) -> ::std::result::Result<Self, crate::DecodeError> {{"
            );
            let _ = writeln!(w, "            Ok(Self {{");
            for f in &c.fields {
                let _ = writeln!(
                    w,
                    "                {}: {}?,",
                    snake_case(&f.name),
                    g.decode(&f.ty, true)?
                );
            }
            let _ = writeln!(w, "            }})");
            let _ = writeln!(w, "        }}");

            let _ = writeln!(w, "        fn to_value(&self) -> crate::Value {{");
            let _ = writeln!(w, "            crate::Value::Record(::std::vec![");
            for f in &c.fields {
                let v = format!("&self.{}", snake_case(&f.name));
                let _ = writeln!(
                    w,
                    "                ({:?}, {}),",
                    f.name,
                    g.value(&f.ty, &v, true)?
                );
            }
            let _ = writeln!(w, "            ])");
            let _ = writeln!(w, "        }}");
            let _ = writeln!(w, "    }}\n");
        }
        let _ = writeln!(w, "}}\n");
    }

    let _ = writeln!(
        w,
        "/// Every record of the schema as `(module, name)`, in schema order."
    );
    let _ = writeln!(w, "pub const RECORDS: &[(&str, &str)] = &[");
    for m in modules {
        for c in &m.classes {
            let _ = writeln!(w, "    ({:?}, {:?}),", m.name, c.name);
        }
    }
    let _ = writeln!(w, "];\n");
    let _ = writeln!(
        w,
        "/// Decodes the record named `module`.`record` from `r` and returns it as a [`Value`] along\n\
         /// with its re-encoding, or `None` if the schema has no such record.\n\
         #[allow(unused_qualifications, unused_parens, clippy::all)]\n\
         pub fn decode_value_by_name(module: &str, record: &str, r: &mut crate::Reader)\n\
         \x20   -> ::std::option::Option<::std::result::Result<(crate::Value, ::bytes::Bytes), crate::DecodeError>> {{\n\
         \x20   fn go<T: crate::Record>(r: &mut crate::Reader) -> ::std::result::Result<(crate::Value, ::bytes::Bytes), crate::DecodeError> {{\n\
         \x20       let rec = T::decode(r)?;\n\
         \x20       Ok((rec.to_value(), rec.to_bytes()))\n\
         \x20   }}\n\
         \x20   match (module, record) {{"
    );
    for m in modules {
        for c in &m.classes {
            let _ = writeln!(
                w,
                "        ({:?}, {:?}) => Some(go::<{}::{}>(r)),",
                m.name,
                c.name,
                rust_module(&m.name),
                c.name
            );
        }
    }
    let _ = writeln!(w, "        _ => None,\n    }}\n}}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_types_and_comments() {
        let src = "// head\nmodule a.b { /* c */ class R { vector<map<ustring,a.b.S>>x; int y; }\n class S { long z; } }";
        let m = parse(src).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "a.b");
        let r = &m[0].classes[0];
        assert_eq!(r.name, "R");
        assert_eq!(
            r.fields[0].ty,
            Type::Vector(Box::new(Type::Map(
                Box::new(Type::Ustring),
                Box::new(Type::Record("a.b.S".into()))
            )))
        );
        assert_eq!(
            r.fields[1],
            Field {
                ty: Type::Int,
                name: "y".into()
            }
        );
        assert_eq!(generate(&m).unwrap_err(), MAP_UNSUPPORTED);
        let plain = parse("module a.b { class S { long z; vector<S> s; } }").unwrap();
        assert!(generate(&plain).unwrap().contains("pub struct S"));
    }

    #[test]
    fn reports_the_line_of_a_syntax_error() {
        let err = parse("module a {\n class R {\n int ; }\n}").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn rejects_unknown_and_duplicate_records() {
        let unknown = parse("module a { class R { Missing m; } }").unwrap();
        assert!(
            generate(&unknown)
                .unwrap_err()
                .contains("unknown record Missing")
        );
        let dup = parse("module a { class R { int x; } class R { int y; } }").unwrap();
        assert!(generate(&dup).unwrap_err().contains("declared twice"));
        let clash = parse("module x.a { } module y.a { }").unwrap();
        assert!(
            generate(&clash)
                .unwrap_err()
                .contains("both map to Rust module a")
        );
    }

    #[test]
    fn snake_cases_protocol_names() {
        assert_eq!(snake_case("ephemeralOwner"), "ephemeral_owner");
        assert_eq!(snake_case("paths2Delete"), "paths2_delete");
        assert_eq!(snake_case("type"), "r#type");
        assert_eq!(snake_case("czxid"), "czxid");
    }
}
