//! Path validation with ZooKeeper's rules (`PathUtils.validatePath`).
//!
//! Java checks UTF-16 code units, so every character outside the Basic Multilingual Plane (a
//! surrogate pair in Java) is invalid, as are the private-use characters U+E000 to U+F8FF.

/// Why a path is invalid; the text follows ZooKeeper's messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty.
    #[error("Path length must be > 0")]
    Empty,
    /// The path does not start with `/`.
    #[error("Path must start with / character")]
    NotAbsolute,
    /// The path ends with `/` (and is not the root).
    #[error("Path must not end with / character")]
    TrailingSlash,
    /// The path contains a null character.
    #[error("null character not allowed @{0}")]
    NullCharacter(usize),
    /// Two slashes in a row.
    #[error("empty node name specified @{0}")]
    EmptyNodeName(usize),
    /// A `.` or `..` component.
    #[error("relative paths not allowed @{0}")]
    Relative(usize),
    /// A control, surrogate, private-use or special character.
    #[error("invalid character @{0}")]
    InvalidCharacter(usize),
}

/// Whether Java's check rejects this character: controls, C1 controls, anything that is (or
/// would be, in UTF-16) a surrogate, private use, and U+FFF0 to U+FFFF.
fn is_invalid_char(c: char) -> bool {
    let c = u32::from(c);
    (0x01..=0x1f).contains(&c)
        || (0x7f..=0x9f).contains(&c)
        || (0xd800..=0xf8ff).contains(&c)
        || (0xfff0..=0xffff).contains(&c)
        || c > 0xffff
}

/// Validates a path; `sequential` validates it as ZooKeeper does for sequential creates (with
/// a digit appended, so that a trailing `/` is allowed there).
pub fn validate_path(path: &str, sequential: bool) -> Result<(), PathError> {
    if sequential {
        let mut with_suffix = String::with_capacity(path.len() + 1);
        with_suffix.push_str(path);
        with_suffix.push('1');
        return validate(&with_suffix);
    }
    validate(path)
}

fn validate(path: &str) -> Result<(), PathError> {
    // Positions are counted in chars, as before; no allocation (this runs for every request).
    match path.chars().next() {
        None => return Err(PathError::Empty),
        Some(first) if first != '/' => return Err(PathError::NotAbsolute),
        _ if path.len() == 1 => return Ok(()),
        _ if path.ends_with('/') => return Err(PathError::TrailingSlash),
        _ => {}
    }
    let mut before_last: Option<char> = None;
    let mut last = '/';
    let mut rest = path.chars().enumerate().skip(1).peekable();
    while let Some((i, c)) = rest.next() {
        let at_end_or_slash = rest.peek().is_none_or(|&(_, next)| next == '/');
        if c == '\0' {
            return Err(PathError::NullCharacter(i));
        } else if c == '/' && last == '/' {
            return Err(PathError::EmptyNodeName(i));
        } else if c == '.' && last == '.' {
            if before_last == Some('/') && at_end_or_slash {
                return Err(PathError::Relative(i));
            }
        } else if c == '.' {
            if last == '/' && at_end_or_slash {
                return Err(PathError::Relative(i));
            }
        } else if is_invalid_char(c) {
            return Err(PathError::InvalidCharacter(i));
        }
        before_last = Some(last);
        last = c;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The rules as first written, over a `Vec<char>`: the oracle for the allocation-free scan.
    fn by_char_vector(path: &str) -> Result<(), PathError> {
        let chars: Vec<char> = path.chars().collect();
        match chars.as_slice() {
            [] => return Err(PathError::Empty),
            [first, ..] if *first != '/' => return Err(PathError::NotAbsolute),
            ['/'] => return Ok(()),
            [.., '/'] => return Err(PathError::TrailingSlash),
            _ => {}
        }
        let at_end_or_slash = |i: usize| i + 1 == chars.len() || chars[i + 1] == '/';
        for i in 1..chars.len() {
            let (c, last) = (chars[i], chars[i - 1]);
            if c == '\0' {
                return Err(PathError::NullCharacter(i));
            } else if c == '/' && last == '/' {
                return Err(PathError::EmptyNodeName(i));
            } else if c == '.' && last == '.' {
                if i >= 2 && chars[i - 2] == '/' && at_end_or_slash(i) {
                    return Err(PathError::Relative(i));
                }
            } else if c == '.' {
                if last == '/' && at_end_or_slash(i) {
                    return Err(PathError::Relative(i));
                }
            } else if is_invalid_char(c) {
                return Err(PathError::InvalidCharacter(i));
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn the_scan_decides_as_the_char_vector_did(
            path in proptest::collection::vec(
                proptest::sample::select(vec!['/', '.', 'a', '\0', '\u{1}', 'é', '日', '\u{fff5}', '\u{1F600}']),
                0..10,
            )
        ) {
            let path: String = path.into_iter().collect();
            prop_assert_eq!(validate(&path), by_char_vector(&path));
        }
    }

    #[test]
    fn accepts_what_zookeeper_accepts() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/a..",
            "/...",
            "/.a",
            "/a/..b",
            "/ünï/日本",
            "/a b",
        ] {
            assert_eq!(validate_path(ok, false), Ok(()), "{ok}");
        }
        assert_eq!(validate_path("/a/", true), Ok(()));
        assert_eq!(validate_path("/", true), Ok(()));
    }

    #[test]
    fn rejects_what_zookeeper_rejects() {
        assert_eq!(validate_path("", false), Err(PathError::Empty));
        assert_eq!(validate_path("a", false), Err(PathError::NotAbsolute));
        assert_eq!(validate_path("/a/", false), Err(PathError::TrailingSlash));
        assert_eq!(
            validate_path("/a//b", false),
            Err(PathError::EmptyNodeName(3))
        );
        assert_eq!(
            validate_path("/a\0b", false),
            Err(PathError::NullCharacter(2))
        );
        assert_eq!(validate_path("/.", false), Err(PathError::Relative(1)));
        assert_eq!(validate_path("/a/./b", false), Err(PathError::Relative(3)));
        assert_eq!(validate_path("/zz/..", false), Err(PathError::Relative(5)));
        assert_eq!(
            validate_path("/a\u{1}", false),
            Err(PathError::InvalidCharacter(2))
        );
        assert_eq!(
            validate_path("/a\u{85}", false),
            Err(PathError::InvalidCharacter(2))
        );
        assert_eq!(
            validate_path("/\u{e000}", false),
            Err(PathError::InvalidCharacter(1))
        );
        assert_eq!(
            validate_path("/\u{fff5}", false),
            Err(PathError::InvalidCharacter(1))
        );
        assert_eq!(
            validate_path("/emoji/😀", false),
            Err(PathError::InvalidCharacter(7))
        );
        assert_eq!(
            validate_path("/a//", true),
            Err(PathError::EmptyNodeName(3))
        );
    }
}
