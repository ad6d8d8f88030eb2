//! Reading Fidius wire bytes (bincode 1.3 legacy: little-endian, fixed-width
//! integers, u64 lengths), hostile until decoded: every read is bounded by
//! what is left, and nesting is capped.

use crate::error::{fail, Result, Status};

/// Nesting deeper than this is refused rather than risking the host's stack.
pub const MAX_DEPTH: usize = 128;

pub fn err<T>(message: impl std::fmt::Display) -> Result<T> {
    fail(Status::Serialization, message.to_string())
}

/// A cursor over wire bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return err(format!("input ends at byte {} while reading {what} ({n} more bytes needed)", self.bytes.len()));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N, what)?.try_into().unwrap())
    }

    /// A u64 length prefix.
    pub fn len(&mut self, what: &str) -> Result<usize> {
        let n = u64::from_le_bytes(self.array(what)?);
        usize::try_from(n).or_else(|_| err(format!("{what} length {n} is too large")))
    }

    /// A `char`: its UTF-8 bytes.
    pub fn char(&mut self) -> Result<char> {
        let first = self.array::<1>("char")?[0];
        let width = match first {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return err("invalid UTF-8 in char"),
        };
        let mut buf = [first, 0, 0, 0];
        buf[1..width].copy_from_slice(self.take(width - 1, "char")?);
        let s = std::str::from_utf8(&buf[..width]).or_else(|_| err("invalid UTF-8 in char"))?;
        Ok(s.chars().next().unwrap())
    }

    pub fn string(&mut self) -> Result<&'a str> {
        let n = self.len("string")?;
        std::str::from_utf8(self.take(n, "string")?).or_else(|_| err("string is not valid UTF-8"))
    }

    /// Fail unless every byte was read.
    pub fn finish(&self, what: &str) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => err(format!("{n} bytes left over after {what}")),
        }
    }
}
