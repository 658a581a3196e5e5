//! The msgpack forms Go's go-msgpack (`codec.MsgpackHandle{}` defaults)
//! writes and reads, as memberlist and ckit use them.
//!
//! Writing follows go-msgpack exactly, because a Go node compares nothing
//! byte-wise but our bytes should be the ones Go would send (the conformance
//! tests check them against the reference vectors):
//! - structs are maps keyed by the Go field name, in name order (the caller
//!   writes the keys in that order);
//! - strings and `[]byte` use the *old* raw family: `a0`-`bf`, `da`, `db`.
//!   `rmp` writes `d9` (str8) for 32..=255 bytes, which go-msgpack with
//!   `WriteExt=false` never writes, so [`write_raw`] writes the length
//!   marker itself;
//! - unsigned Go fields in the smallest unsigned form (`rmp`'s `write_uint`
//!   picks the same forms);
//! - Go `int` fields: memberlist v0.5.3 (go-msgpack/v2) writes values above
//!   127 in the *signed* forms `d1`/`d2`/`d3`, where `rmp`'s `write_sint`
//!   would pick unsigned ones, so [`write_go_int`] chooses the marker.
//!
//! Reading is as tolerant as Go's decoder where a real peer could differ
//! (any integer form that fits, str or bin for bytes, nil for a zero value,
//! unknown keys skipped) and strict where a value cannot mean anything
//! (wrong type, out of range). Every length is checked against the input
//! before it is used; nothing is allocated from it.

use rmp::Marker;
use std::fmt;
use std::io;

/// Why msgpack bytes could not be read as the expected value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value. `needed` is how many bytes (counted
    /// from the start of the value being decoded) it needs at least; more may
    /// be asked for once those arrived. In a packet this is a truncated
    /// message; on a stream it means "wait for more bytes".
    Incomplete {
        /// Bytes needed at least, from the start of the decoded value.
        needed: u64,
    },
    /// A field held a msgpack type Go cannot decode into the field's type.
    WrongType {
        /// The Go field (or the value) being decoded.
        field: &'static str,
        /// What the field accepts.
        expected: &'static str,
        /// The msgpack marker byte found.
        marker: u8,
    },
    /// An integer does not fit the Go field's type (or is negative where a
    /// length or an unsigned value is expected).
    OutOfRange {
        /// The Go field being decoded.
        field: &'static str,
        /// The value found.
        value: i128,
    },
    /// A string field is not UTF-8. Go strings may hold any bytes, but names
    /// are UTF-8 in every real deployment; this codec refuses the rest rather
    /// than altering them.
    NotUtf8 {
        /// The Go field being decoded.
        field: &'static str,
    },
    /// A value that names something unknown (a member state other than
    /// alive/suspect/dead/left, a ckit state other than
    /// viewer/participant/terminating, a compression algorithm other than
    /// LZW).
    UnknownValue {
        /// The Go field being decoded.
        field: &'static str,
        /// The value found.
        value: u64,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { needed } => write!(
                f,
                "msgpack value truncated: it needs at least {needed} bytes (the sender's message was cut short)"
            ),
            DecodeError::WrongType { field, expected, marker } => write!(
                f,
                "field {field}: expected {expected}, found msgpack marker 0x{marker:02x} (the sender does not speak memberlist's encoding)"
            ),
            DecodeError::OutOfRange { field, value } => {
                write!(f, "field {field}: value {value} is out of range for its Go type")
            }
            DecodeError::NotUtf8 { field } => write!(f, "field {field}: string is not UTF-8"),
            DecodeError::UnknownValue { field, value } => {
                write!(f, "field {field}: unknown value {value}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

// ---------------------------------------------------------------- writing

/// Where msgpack is written: a `Vec<u8>`, or a [`ByteCount`] that only
/// measures. Neither can fail, so `rmp`'s writers cannot either.
pub(crate) trait Sink: io::Write {}

impl Sink for Vec<u8> {}

/// A sink that keeps no bytes, only their number: a message's exact encoded
/// length without allocating it.
#[derive(Debug, Default)]
pub(crate) struct ByteCount(pub usize);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for ByteCount {}

fn infallible<T, E>(result: Result<T, E>) {
    debug_assert!(
        result.is_ok(),
        "writing msgpack into a Vec or a count failed"
    );
}

/// Raw bytes, as they are.
pub(crate) fn write_bytes(out: &mut impl Sink, bytes: &[u8]) {
    infallible(out.write_all(bytes));
}

/// A map header (`80`-`8f`, `de`, `df`): the same forms in rmp and Go.
pub(crate) fn write_map_len(out: &mut impl Sink, len: u32) {
    infallible(rmp::encode::write_map_len(out, len));
}

/// An array header (`90`-`9f`, `dc`, `dd`): the same forms in rmp and Go.
pub(crate) fn write_array_len(out: &mut impl Sink, len: u32) {
    infallible(rmp::encode::write_array_len(out, len));
}

/// `c0`.
pub(crate) fn write_nil(out: &mut impl Sink) {
    infallible(rmp::encode::write_nil(out));
}

/// `c2` / `c3`.
pub(crate) fn write_bool(out: &mut impl Sink, value: bool) {
    infallible(rmp::encode::write_bool(out, value));
}

/// A Go unsigned integer in its smallest form (fixint, `cc`, `cd`, `ce`, `cf`).
pub(crate) fn write_uint(out: &mut impl Sink, value: u64) {
    infallible(rmp::encode::write_uint(out, value));
}

/// A Go `int` as go-msgpack/v2 writes it (memberlist v0.5.3): fixint up to
/// 127, then the signed forms `d1` (int16), `d2` (int32), `d3` (int64).
/// memberlist v0.5.0 wrote `cc`/`cd`/`ce` here; both decode the same.
pub(crate) fn write_go_int(out: &mut impl Sink, value: u64) {
    if value <= 127 {
        infallible(rmp::encode::write_pfix(out, value as u8));
    } else if let Ok(v) = i16::try_from(value) {
        infallible(rmp::encode::write_i16(out, v));
    } else if let Ok(v) = i32::try_from(value) {
        infallible(rmp::encode::write_i32(out, v));
    } else {
        infallible(rmp::encode::write_i64(
            out,
            value.min(i64::MAX as u64) as i64,
        ));
    }
}

/// A string or `[]byte` in the old raw family: `a0|len` below 32 bytes,
/// `da` and a u16 below 64 KiB, else `db` and a u32. Written by hand: rmp would use `d9`
/// (str8) for 32..=255 bytes, a form go-msgpack never writes.
pub(crate) fn write_raw(out: &mut impl Sink, bytes: &[u8]) {
    let len = bytes.len();
    if len < 32 {
        write_bytes(out, &[0xa0 | len as u8]);
    } else if let Ok(len) = u16::try_from(len) {
        write_bytes(out, &[0xda]);
        write_bytes(out, &len.to_be_bytes());
    } else {
        // Callers never pass 4 GiB; saturate rather than wrap if one did.
        write_bytes(out, &[0xdb]);
        write_bytes(out, &u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    write_bytes(out, bytes);
}

/// A Go `[]byte` that may be nil: `None` is `c0`, `Some` a raw (even empty).
pub(crate) fn write_opt_raw(out: &mut impl Sink, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => write_raw(out, b),
        None => write_nil(out),
    }
}

/// A Go `[]byte` memberlist always fills: empty is written as nil (`c0`), as
/// Go's nil slice would be.
pub(crate) fn write_bytes_or_nil(out: &mut impl Sink, bytes: &[u8]) {
    write_opt_raw(out, (!bytes.is_empty()).then_some(bytes));
}

// ---------------------------------------------------------------- reading

/// A cursor over msgpack bytes that never reads past its input.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn incomplete(&self, more: u64) -> DecodeError {
        DecodeError::Incomplete {
            needed: self.pos as u64 + more,
        }
    }

    /// Takes `len` bytes, or says how many the value needs in all.
    pub(crate) fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let available = (self.buf.len() - self.pos) as u64;
        if len > available {
            return Err(self.incomplete(len));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, width: u64) -> Result<u64, DecodeError> {
        Ok(self
            .take(width)?
            .iter()
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    }

    fn marker(&mut self) -> Result<(u8, Marker), DecodeError> {
        let byte = self.byte()?;
        Ok((byte, Marker::from_u8(byte)))
    }

    /// A struct's map header: how many key/value pairs follow. Nil reads as
    /// an empty map (Go leaves the struct zero).
    pub(crate) fn read_map_len(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let (byte, marker) = self.marker()?;
        match marker {
            Marker::FixMap(n) => Ok(u64::from(n)),
            Marker::Map16 => self.be(2),
            Marker::Map32 => self.be(4),
            Marker::Null => Ok(0),
            _ => Err(DecodeError::WrongType {
                field,
                expected: "a map (a Go struct)",
                marker: byte,
            }),
        }
    }

    /// An array header; `None` for nil (Go's nil slice).
    pub(crate) fn read_array_len(
        &mut self,
        field: &'static str,
    ) -> Result<Option<u64>, DecodeError> {
        let (byte, marker) = self.marker()?;
        match marker {
            Marker::FixArray(n) => Ok(Some(u64::from(n))),
            Marker::Array16 => self.be(2).map(Some),
            Marker::Array32 => self.be(4).map(Some),
            Marker::Null => Ok(None),
            _ => Err(DecodeError::WrongType {
                field,
                expected: "an array",
                marker: byte,
            }),
        }
    }

    /// A string or binary value; `None` for nil.
    pub(crate) fn read_opt_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        let (byte, marker) = self.marker()?;
        let len = match marker {
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 | Marker::Bin8 => self.be(1)?,
            Marker::Str16 | Marker::Bin16 => self.be(2)?,
            Marker::Str32 | Marker::Bin32 => self.be(4)?,
            Marker::Null => return Ok(None),
            _ => {
                return Err(DecodeError::WrongType {
                    field,
                    expected: "a string or bytes",
                    marker: byte,
                })
            }
        };
        self.take(len).map(Some)
    }

    /// A Go string (nil reads as "").
    pub(crate) fn read_str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let bytes = self.read_opt_bytes(field)?.unwrap_or_default();
        std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8 { field })
    }

    /// A Go `bool` (nil reads as false).
    pub(crate) fn read_bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        let (byte, marker) = self.marker()?;
        match marker {
            Marker::True => Ok(true),
            Marker::False | Marker::Null => Ok(false),
            _ => Err(DecodeError::WrongType {
                field,
                expected: "a bool",
                marker: byte,
            }),
        }
    }

    /// Any integer form (nil reads as 0), as a wide signed value.
    fn read_integer(&mut self, field: &'static str) -> Result<i128, DecodeError> {
        let (byte, marker) = self.marker()?;
        Ok(match marker {
            Marker::FixPos(n) => i128::from(n),
            Marker::FixNeg(n) => i128::from(n),
            Marker::U8 => i128::from(self.be(1)?),
            Marker::U16 => i128::from(self.be(2)?),
            Marker::U32 => i128::from(self.be(4)?),
            Marker::U64 => i128::from(self.be(8)?),
            Marker::I8 => i128::from(self.be(1)? as u8 as i8),
            Marker::I16 => i128::from(self.be(2)? as u16 as i16),
            Marker::I32 => i128::from(self.be(4)? as u32 as i32),
            Marker::I64 => i128::from(self.be(8)? as i64),
            Marker::Null => 0,
            _ => {
                return Err(DecodeError::WrongType {
                    field,
                    expected: "an integer",
                    marker: byte,
                })
            }
        })
    }

    /// An integer that must lie in `0..=max` (a Go unsigned field, or a Go
    /// `int` used as a count or a length).
    pub(crate) fn read_uint(&mut self, field: &'static str, max: u64) -> Result<u64, DecodeError> {
        let value = self.read_integer(field)?;
        u64::try_from(value)
            .ok()
            .filter(|v| *v <= max)
            .ok_or(DecodeError::OutOfRange { field, value })
    }

    /// Skips one value of any type without allocating or recursing: a
    /// counter of values still to skip replaces the nesting.
    pub(crate) fn skip_value(&mut self) -> Result<(), DecodeError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let (_, marker) = self.marker()?;
            let skip = match marker {
                Marker::FixPos(_)
                | Marker::FixNeg(_)
                | Marker::Null
                | Marker::True
                | Marker::False => 0,
                // 0xc1 is never used by msgpack; Go's decoder refuses it too.
                Marker::Reserved => {
                    return Err(DecodeError::WrongType {
                        field: "value",
                        expected: "a msgpack value",
                        marker: 0xc1,
                    })
                }
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                Marker::FixStr(n) => u64::from(n),
                Marker::Str8 | Marker::Bin8 => self.be(1)?,
                Marker::Str16 | Marker::Bin16 => self.be(2)?,
                Marker::Str32 | Marker::Bin32 => self.be(4)?,
                Marker::FixExt1 => 2,
                Marker::FixExt2 => 3,
                Marker::FixExt4 => 5,
                Marker::FixExt8 => 9,
                Marker::FixExt16 => 17,
                Marker::Ext8 => self.be(1)? + 1,
                Marker::Ext16 => self.be(2)? + 1,
                Marker::Ext32 => self.be(4)? + 1,
                Marker::FixArray(n) => {
                    pending += u64::from(n);
                    0
                }
                Marker::Array16 => {
                    pending += self.be(2)?;
                    0
                }
                Marker::Array32 => {
                    pending += self.be(4)?;
                    0
                }
                Marker::FixMap(n) => {
                    pending += 2 * u64::from(n);
                    0
                }
                Marker::Map16 => {
                    pending += 2 * self.be(2)?;
                    0
                }
                Marker::Map32 => {
                    pending += 2 * self.be(4)?;
                    0
                }
            };
            self.take(skip)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_raw(&mut out, &vec![b'x'; len]);
        out
    }

    #[test]
    fn raw_lengths_use_the_old_family() {
        assert_eq!(raw(0)[0], 0xa0);
        assert_eq!(raw(31)[0], 0xbf);
        assert_eq!(&raw(32)[..3], &[0xda, 0x00, 0x20]);
        assert_eq!(&raw(255)[..3], &[0xda, 0x00, 0xff]);
        assert_eq!(&raw(65536)[..5], &[0xdb, 0x00, 0x01, 0x00, 0x00]);
    }

    #[test]
    fn go_ints_above_127_are_signed() {
        let enc = |v| {
            let mut out = Vec::new();
            write_go_int(&mut out, v);
            out
        };
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(200), [0xd1, 0x00, 0xc8]);
        assert_eq!(enc(70000), [0xd2, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(enc(1 << 40), [0xd3, 0, 0, 0x01, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn integers_of_every_form_decode_and_negative_ones_are_refused() {
        for bytes in [
            &[0xcc, 200][..],
            &[0xd1, 0, 200],
            &[0xce, 0, 0, 0, 200],
            &[0xd3, 0, 0, 0, 0, 0, 0, 0, 200],
        ] {
            assert_eq!(
                Reader::new(bytes).read_uint("x", u64::from(u32::MAX)),
                Ok(200)
            );
        }
        assert_eq!(
            Reader::new(&[0xff]).read_uint("x", 10),
            Err(DecodeError::OutOfRange {
                field: "x",
                value: -1
            })
        );
        assert_eq!(
            Reader::new(&[0xcd, 1, 0]).read_uint("x", 255),
            Err(DecodeError::OutOfRange {
                field: "x",
                value: 256
            })
        );
    }

    #[test]
    fn a_length_past_the_input_is_incomplete_not_allocated() {
        let mut r = Reader::new(&[0xdb, 0xff, 0xff, 0xff, 0xff, 1]);
        assert_eq!(
            r.read_opt_bytes("x"),
            Err(DecodeError::Incomplete {
                needed: 5 + 0xffff_ffff
            })
        );
        let mut r = Reader::new(&[0xdf, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            r.skip_value(),
            Err(DecodeError::Incomplete { .. })
        ));
    }

    #[test]
    fn skipping_deeply_nested_values_does_not_recurse() {
        let mut bytes = vec![0x91; 100_000];
        bytes.push(0xc0);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.skip_value(), Ok(()));
        assert_eq!(r.position(), bytes.len());
    }
}
