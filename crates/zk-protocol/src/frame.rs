//! Frames: a 4-byte big-endian length and that many bytes; four-letter words on a fresh
//! connection.
//!
//! ZooKeeper (`NIOServerCnxn.readLength`) reads the length; on a connection that has not sent
//! its handshake yet, a length whose 4 bytes spell a known four-letter word is that command
//! instead. A length below 0 or above `jute.maxbuffer` closes the connection with no reply. A
//! frame cut short is simply not complete yet.

use bytes::{Buf, Bytes, BytesMut};

/// Why the byte stream cannot be framed; the connection must be closed without a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is negative or above the limit (ZooKeeper's "Len error").
    #[error("Len error {len} (limit {max})")]
    BadLength {
        /// The length read.
        len: i32,
        /// The limit in force.
        max: usize,
    },
}

/// The four-letter words ZooKeeper 3.9 knows (`FourLetterCommands`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FourLetterWord {
    /// `conf`: the serving configuration.
    Conf,
    /// `cons`: connections and sessions.
    Cons,
    /// `crst`: reset connection statistics.
    Crst,
    /// `dirs`: sizes of the snapshot and log directories.
    Dirs,
    /// `dump`: outstanding sessions and ephemeral nodes.
    Dump,
    /// `envi`: the server's environment.
    Envi,
    /// `gtmk`: get the trace mask.
    Gtmk,
    /// `ruok`: are you ok (answers `imok`).
    Ruok,
    /// `stmk`: set the trace mask (followed by 8 bytes).
    Stmk,
    /// `srst`: reset server statistics.
    Srst,
    /// `srvr`: server details.
    Srvr,
    /// `stat`: server details and connections.
    Stat,
    /// `wchc`: watches by session.
    Wchc,
    /// `wchp`: watches by path.
    Wchp,
    /// `wchs`: watch summary.
    Wchs,
    /// `mntr`: monitoring variables.
    Mntr,
    /// `isro`: read-only mode (`rw` or `ro`).
    Isro,
    /// `hash`: tree digests.
    Hash,
}

impl FourLetterWord {
    /// Every word, in `FourLetterCommands`' order.
    pub const ALL: [FourLetterWord; 18] = [
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Dirs,
        FourLetterWord::Dump,
        FourLetterWord::Envi,
        FourLetterWord::Gtmk,
        FourLetterWord::Ruok,
        FourLetterWord::Stmk,
        FourLetterWord::Srst,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Wchs,
        FourLetterWord::Mntr,
        FourLetterWord::Isro,
        FourLetterWord::Hash,
    ];

    /// Returns the command's four letters.
    pub fn name(self) -> &'static str {
        match self {
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Stmk => "stmk",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Hash => "hash",
        }
    }

    /// Returns the word these four bytes spell, if it is a known one.
    pub fn from_bytes(bytes: [u8; 4]) -> Option<FourLetterWord> {
        FourLetterWord::ALL
            .into_iter()
            .find(|w| w.name().as_bytes() == bytes)
    }

    /// Returns the word named `name`, if it is a known one.
    pub fn from_name(name: &str) -> Option<FourLetterWord> {
        FourLetterWord::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// What the first four bytes of a packet announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameStart {
    /// A frame of this many bytes follows.
    Frame(usize),
    /// A four-letter word (only recognised before the handshake).
    FourLetterWord(FourLetterWord),
}

/// Interprets the 4 bytes at the start of a packet. `before_handshake` enables four-letter
/// word detection; `max` is `jute.maxbuffer`.
pub fn frame_start(
    prefix: [u8; 4],
    before_handshake: bool,
    max: usize,
) -> Result<FrameStart, FrameError> {
    if before_handshake && let Some(word) = FourLetterWord::from_bytes(prefix) {
        return Ok(FrameStart::FourLetterWord(word));
    }
    let len = i32::from_be_bytes(prefix);
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(FrameStart::Frame(n)),
        _ => Err(FrameError::BadLength { len, max }),
    }
}

/// Splits one complete frame's body off the front of `buf` (check-then-parse: nothing is
/// consumed until the whole frame is there). Returns `Ok(None)` while the frame is incomplete.
/// Four-letter words are not recognised here; use [`frame_start`] on a fresh connection.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let FrameStart::Frame(len) = frame_start(*prefix, false, max)? else {
        unreachable!("four-letter words are only recognised before the handshake")
    };
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Appends a frame: the length of what `body` writes, then the bytes it writes.
pub fn write_frame(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = i32::try_from(out.len() - start - 4).expect("frames are smaller than 2 GiB");
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_outside_zero_to_max_close_the_connection() {
        let max = jute::DEFAULT_MAX_BUFFER;
        assert_eq!(
            frame_start(0i32.to_be_bytes(), false, max),
            Ok(FrameStart::Frame(0))
        );
        assert_eq!(
            frame_start(0xfffffi32.to_be_bytes(), false, max),
            Ok(FrameStart::Frame(0xfffff))
        );
        assert_eq!(
            frame_start(0x100000i32.to_be_bytes(), false, max),
            Err(FrameError::BadLength { len: 0x100000, max })
        );
        assert_eq!(
            frame_start((-1i32).to_be_bytes(), false, max),
            Err(FrameError::BadLength { len: -1, max })
        );
    }

    #[test]
    fn four_letter_words_only_before_the_handshake() {
        let max = jute::DEFAULT_MAX_BUFFER;
        assert_eq!(
            frame_start(*b"ruok", true, max),
            Ok(FrameStart::FourLetterWord(FourLetterWord::Ruok))
        );
        // After the handshake, "ruok" is just a (too large) length.
        assert!(frame_start(*b"ruok", false, max).is_err());
        // An unknown word is a length too: 'abcd' = 0x61626364 > max.
        assert!(frame_start(*b"abcd", true, max).is_err());
        for w in FourLetterWord::ALL {
            assert_eq!(FourLetterWord::from_name(w.name()), Some(w));
        }
    }

    #[test]
    fn split_waits_for_whole_frames() {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, |b| b.extend_from_slice(b"hello"));
        write_frame(&mut buf, |_| {});
        let mut partial = BytesMut::from(&buf[..6]);
        assert_eq!(split_frame(&mut partial, 100), Ok(None));
        assert_eq!(partial.len(), 6);
        assert_eq!(
            split_frame(&mut buf, 100),
            Ok(Some(Bytes::from_static(b"hello")))
        );
        assert_eq!(split_frame(&mut buf, 100), Ok(Some(Bytes::new())));
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
    }
}
