//! Encoding primitives called by the generated records (and by hand-written encoders in
//! `zk-protocol`). Writing cannot fail; lengths above `i32::MAX` are a programmer error.

use bytes::BufMut;

/// Writes a `byte`.
pub fn write_byte<B: BufMut>(out: &mut B, v: i8) {
    out.put_i8(v);
}

/// Writes a `boolean` as one byte, 1 or 0.
pub fn write_bool<B: BufMut>(out: &mut B, v: bool) {
    out.put_u8(u8::from(v));
}

/// Writes an `int`, big-endian.
pub fn write_int<B: BufMut>(out: &mut B, v: i32) {
    out.put_i32(v);
}

/// Writes a `long`, big-endian.
pub fn write_long<B: BufMut>(out: &mut B, v: i64) {
    out.put_i64(v);
}

/// Writes a `float`, big-endian IEEE 754.
pub fn write_float<B: BufMut>(out: &mut B, v: f32) {
    out.put_f32(v);
}

/// Writes a `double`, big-endian IEEE 754.
pub fn write_double<B: BufMut>(out: &mut B, v: f64) {
    out.put_f64(v);
}

/// Converts a length to jute's `int` length prefix.
fn length(len: usize) -> i32 {
    i32::try_from(len).expect("jute lengths fit in an i32")
}

/// Writes a `ustring`: length + bytes, or -1 for null.
///
/// Java (`BinaryOutputArchive.writeString`) encodes each UTF-16 code unit on its own, so a
/// character outside the Basic Multilingual Plane becomes two 3-byte surrogate encodings
/// (CESU-8) instead of one 4-byte UTF-8 sequence. We write the same bytes.
pub fn write_ustring<B: BufMut>(out: &mut B, v: Option<&str>) {
    match v {
        Some(s) if s.chars().any(|c| u32::from(c) > 0xffff) => {
            let mut bytes = Vec::with_capacity(s.len() + 8);
            for unit in s.encode_utf16() {
                let u = u32::from(unit);
                if u >= 0x800 {
                    // Three bytes, surrogates included (CESU-8).
                    bytes.extend_from_slice(&[
                        0xe0 | (u >> 12) as u8,
                        0x80 | ((u >> 6) & 0x3f) as u8,
                        0x80 | (u & 0x3f) as u8,
                    ]);
                } else {
                    let c = char::from_u32(u).expect("a non-surrogate unit below 0x800");
                    bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
            }
            write_buffer(out, Some(&bytes));
        }
        _ => write_buffer(out, v.map(str::as_bytes)),
    }
}

/// Returns the number of bytes [`write_ustring`] writes for `s`, length prefix included.
pub fn ustring_len(s: &str) -> usize {
    4 + s
        .chars()
        .map(|c| {
            if u32::from(c) > 0xffff {
                6
            } else {
                c.len_utf8()
            }
        })
        .sum::<usize>()
}

/// Writes a `buffer`: length + bytes, or -1 for null.
pub fn write_buffer<B: BufMut>(out: &mut B, v: Option<&[u8]>) {
    match v {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(length(b.len()));
            out.put_slice(b);
        }
    }
}

/// Writes a `vector`: count + elements, or -1 for null.
pub fn write_vector<B: BufMut, T>(out: &mut B, v: Option<&[T]>, mut each: impl FnMut(&mut B, &T)) {
    match v {
        None => out.put_i32(-1),
        Some(items) => {
            out.put_i32(length(items.len()));
            for item in items {
                each(out, item);
            }
        }
    }
}
