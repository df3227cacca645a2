//! Bounded decoding of jute's primitive types.

use bytes::{Buf, Bytes};

use crate::{DEFAULT_EXTRA_MAX_BUFFER, DEFAULT_MAX_BUFFER};

/// Why a record could not be decoded. Every variant leaves the input unusable; none panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("unexpected end of input: needed {needed} bytes, {remaining} left")]
    UnexpectedEof {
        /// Bytes the value needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A string or buffer length was negative (other than -1, null) or above the limit
    /// (Java's "Unreasonable length").
    #[error("unreasonable length {len} (limit {max})")]
    BadLength {
        /// The length read from the input.
        len: i32,
        /// The limit in force.
        max: usize,
    },
    /// A vector count claimed more elements than the remaining input can hold.
    #[error("vector of {count} elements cannot fit in {remaining} remaining bytes")]
    BadCount {
        /// The count read from the input.
        count: i32,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A vector element (which is never null in the protocol) was encoded as null.
    #[error("null element in a vector")]
    NullElement,
}

/// Reads jute values from the front of a buffer, enforcing ZooKeeper's length limit on every
/// string and buffer. `buffer` values are zero-copy slices of the input.
#[derive(Clone, Debug)]
pub struct Reader {
    buf: Bytes,
    max_len: usize,
}

impl Reader {
    /// Creates a reader with Java's default limit on a single string or buffer:
    /// `jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize` (both 0xfffff by default).
    pub fn new(buf: Bytes) -> Self {
        Self::with_max_len(buf, DEFAULT_MAX_BUFFER + DEFAULT_EXTRA_MAX_BUFFER)
    }

    /// Creates a reader that rejects any string or buffer longer than `max_len` bytes.
    pub fn with_max_len(buf: Bytes, max_len: usize) -> Self {
        Self { buf, max_len }
    }

    /// Returns the number of bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Returns the bytes not read yet.
    pub fn into_remaining(self) -> Bytes {
        self.buf
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::UnexpectedEof {
                needed: n,
                remaining: self.buf.len(),
            });
        }
        Ok(())
    }

    /// Reads a `byte`.
    pub fn read_byte(&mut self) -> Result<i8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }

    /// Reads a `boolean`: any non-zero byte is true (Java's `DataInput.readBoolean`).
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8() != 0)
    }

    /// Reads an `int`.
    pub fn read_int(&mut self) -> Result<i32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    /// Reads a `long`.
    pub fn read_long(&mut self) -> Result<i64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    /// Reads a `float`.
    pub fn read_float(&mut self) -> Result<f32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_f32())
    }

    /// Reads a `double`.
    pub fn read_double(&mut self) -> Result<f64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_f64())
    }

    /// Reads a `buffer`; `None` is null (-1).
    pub fn read_buffer(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let len = self.read_int()?;
        if len == -1 {
            return Ok(None);
        }
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.max_len)
            .ok_or(DecodeError::BadLength {
                len,
                max: self.max_len,
            })?;
        self.need(n)?;
        Ok(Some(self.buf.split_to(n)))
    }

    /// Reads a `ustring`; `None` is null (-1). Invalid UTF-8 is replaced with U+FFFD, as Java's
    /// `new String(bytes, UTF_8)` does (see [`decode_utf8_like_java`]).
    pub fn read_ustring(&mut self) -> Result<Option<String>, DecodeError> {
        Ok(self.read_buffer()?.map(|b| decode_utf8_like_java(&b)))
    }

    /// Reads a `ustring` that is an element of a vector, where null is not allowed.
    pub fn read_ustring_element(&mut self) -> Result<String, DecodeError> {
        self.read_ustring()?.ok_or(DecodeError::NullElement)
    }

    /// Reads a `buffer` that is an element of a vector, where null is not allowed.
    pub fn read_buffer_element(&mut self) -> Result<Bytes, DecodeError> {
        self.read_buffer()?.ok_or(DecodeError::NullElement)
    }

    /// Reads a `vector` whose elements `each` decodes; `None` is null (-1). A count below -1
    /// reads as empty, as in Java. Every element takes at least one byte, so a count larger
    /// than the remaining input is rejected before anything is allocated.
    pub fn read_vector<T>(
        &mut self,
        mut each: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let count = self.read_int()?;
        if count == -1 {
            return Ok(None);
        }
        let Ok(n) = usize::try_from(count) else {
            return Ok(Some(Vec::new()));
        };
        if n > self.buf.len() {
            return Err(DecodeError::BadCount {
                count,
                remaining: self.buf.len(),
            });
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(each(self)?);
        }
        Ok(Some(items))
    }
}

/// Decodes UTF-8 replacing invalid sequences with U+FFFD the way the JDK does. It agrees with
/// Rust's lossy decoding (one replacement per maximal invalid subpart) except for encoded
/// surrogates (`ED A0..BF xx`, as Java's own writer produces for non-BMP characters): the JDK
/// reads each such 3-byte sequence as one malformed character, Rust as three.
pub fn decode_utf8_like_java(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).expect("checked by from_utf8"));
                out.push('\u{fffd}');
                let skip = match rest {
                    [0xed, 0xa0..=0xbf, c, ..] if c & 0xc0 == 0x80 => 3,
                    _ => e.error_len().unwrap_or(rest.len()),
                };
                bytes = &rest[skip..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_differ() {
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]));
        assert_eq!(r.read_buffer(), Ok(None));
        assert_eq!(r.read_buffer(), Ok(Some(Bytes::new())));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn lengths_are_bounded() {
        let mut r = Reader::with_max_len(Bytes::from_static(&[0, 0, 0, 5, 1, 2, 3, 4, 5]), 4);
        assert_eq!(
            r.read_buffer(),
            Err(DecodeError::BadLength { len: 5, max: 4 })
        );
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]));
        assert!(matches!(
            r.read_ustring(),
            Err(DecodeError::BadLength { len: -2, .. })
        ));
        let mut r = Reader::new(Bytes::from_static(&[0, 0, 0, 3, b'a']));
        assert_eq!(
            r.read_ustring(),
            Err(DecodeError::UnexpectedEof {
                needed: 3,
                remaining: 1
            })
        );
    }

    #[test]
    fn vector_counts_follow_java() {
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]));
        assert_eq!(r.read_vector(Reader::read_int), Ok(Some(vec![])));
        let mut r = Reader::new(Bytes::from_static(&[0x10, 0, 0, 0, 0, 0, 0, 1]));
        assert!(matches!(
            r.read_vector(Reader::read_int),
            Err(DecodeError::BadCount { .. })
        ));
    }

    #[test]
    fn invalid_utf8_is_replaced_like_java() {
        let mut r = Reader::new(Bytes::from_static(&[0, 0, 0, 3, b'/', 0xff, b'a']));
        assert_eq!(r.read_ustring(), Ok(Some("/\u{fffd}a".to_string())));
    }

    #[test]
    fn encoded_surrogates_are_one_replacement_each_like_the_jdk() {
        // "/" + U+1F600 as Java writes it (CESU-8), then a truncated sequence.
        let cesu = [b'/', 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80, b'x', 0xe6, 0x97];
        assert_eq!(decode_utf8_like_java(&cesu), "/\u{fffd}\u{fffd}x\u{fffd}");
        assert_eq!(decode_utf8_like_java("/日本😀".as_bytes()), "/日本😀");
    }

    #[test]
    fn booleans_are_any_nonzero_byte() {
        let mut r = Reader::new(Bytes::from_static(&[0, 1, 7]));
        assert_eq!(r.read_bool(), Ok(false));
        assert_eq!(r.read_bool(), Ok(true));
        assert_eq!(r.read_bool(), Ok(true));
    }
}
