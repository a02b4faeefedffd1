//! Just enough of the protobuf wire format to read CRIU images: varints, field keys,
//! fixed-width and length-delimited values, read from a byte slice.
//!
//! Nothing here allocates from a length found in the input: a length-delimited value is a
//! sub-slice, and a length running past the end of its buffer is an error. Every error
//! carries the byte offset where the bad data starts, counted from the start of the file
//! (each reader knows the file offset of its first byte).

/// What is wrong with the bytes at some offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The data stops in the middle of a value.
    #[error("truncated: {what} needs {needed} bytes, {left} left")]
    Truncated {
        what: &'static str,
        needed: u64,
        left: u64,
    },
    /// A varint with more than 10 bytes (no 64-bit value needs more).
    #[error("bad varint: more than 10 bytes")]
    VarintTooLong,
    /// A field key with number 0 (never valid in protobuf).
    #[error("bad field key: field number 0")]
    FieldZero,
    /// A wire type this reader does not know (3 and 4 are the long-deprecated groups).
    #[error("bad wire type {wire_type} for field {field}")]
    WireType { field: u64, wire_type: u8 },
    /// A known field encoded with the wrong wire type.
    #[error("field `{field}` has wire type {wire_type}, expected {expected}")]
    WrongType {
        field: &'static str,
        wire_type: u8,
        expected: &'static str,
    },
    /// A value too big for its declared type (a uint32 above 2^32 - 1).
    #[error("field `{field}` is out of range: {value}")]
    OutOfRange { field: &'static str, value: u64 },
    /// A string field that is not UTF-8.
    #[error("field `{field}` is not UTF-8")]
    NotUtf8 { field: &'static str },
    /// A required field is absent from its message.
    #[error("required field `{0}` is missing")]
    Missing(&'static str),
}

/// A [`Problem`] and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte offset {offset}: {problem}")]
pub struct ProtoError {
    /// Offset from the start of the file.
    pub offset: u64,
    pub problem: Problem,
}

impl ProtoError {
    pub fn new(offset: u64, problem: Problem) -> Self {
        ProtoError { offset, problem }
    }
}

/// A cursor over a byte slice whose first byte sits at `base` in the file.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Cursor { buf, pos: 0, base }
    }

    /// The file offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn truncated(&self, what: &'static str, needed: u64) -> ProtoError {
        ProtoError::new(
            self.offset(),
            Problem::Truncated {
                what,
                needed,
                left: self.remaining() as u64,
            },
        )
    }

    /// The next `n` bytes, or an error naming `what` if fewer are left.
    pub fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], ProtoError> {
        if n > self.remaining() as u64 {
            return Err(self.truncated(what, n));
        }
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, ProtoError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, ProtoError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A base-128 varint (at most 10 bytes; bits past 64 are dropped, as protobuf does).
    pub fn varint(&mut self) -> Result<u64, ProtoError> {
        let start = self.offset();
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(ProtoError::new(
                    start,
                    Problem::Truncated {
                        what: "varint",
                        needed: i as u64 + 1,
                        left: i as u64,
                    },
                ));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::new(start, Problem::VarintTooLong))
    }
}

/// A field's value as the wire carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Value<'_> {
    fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32(_) => 5,
        }
    }
}

/// One field of a message: its number, its value and the file offset of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u64,
    pub value: Value<'a>,
    pub offset: u64,
}

impl<'a> Field<'a> {
    fn wrong(&self, field: &'static str, expected: &'static str) -> ProtoError {
        ProtoError::new(
            self.offset,
            Problem::WrongType {
                field,
                wire_type: self.value.wire_type(),
                expected,
            },
        )
    }

    /// A `uint64` (or any varint field taken whole).
    pub fn u64(&self, field: &'static str) -> Result<u64, ProtoError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong(field, "varint")),
        }
    }

    /// A `uint32` or enum.
    pub fn u32(&self, field: &'static str) -> Result<u32, ProtoError> {
        let v = self.u64(field)?;
        u32::try_from(v)
            .map_err(|_| ProtoError::new(self.offset, Problem::OutOfRange { field, value: v }))
    }

    /// An `int32`: negative values are sign-extended to ten bytes on the wire.
    pub fn i32(&self, field: &'static str) -> Result<i32, ProtoError> {
        Ok(self.u64(field)? as i64 as i32)
    }

    /// A `sint32` (zigzag).
    pub fn sint32(&self, field: &'static str) -> Result<i32, ProtoError> {
        let v = self.u64(field)?;
        Ok(((v >> 1) as i64 ^ -((v & 1) as i64)) as i32)
    }

    pub fn bool(&self, field: &'static str) -> Result<bool, ProtoError> {
        Ok(self.u64(field)? != 0)
    }

    pub fn bytes(&self, field: &'static str) -> Result<&'a [u8], ProtoError> {
        match self.value {
            Value::Bytes(b) => Ok(b),
            _ => Err(self.wrong(field, "length-delimited")),
        }
    }

    pub fn string(&self, field: &'static str) -> Result<String, ProtoError> {
        let b = self.bytes(field)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| ProtoError::new(self.offset, Problem::NotUtf8 { field }))
    }

    /// The fields of an embedded message.
    pub fn message(&self, field: &'static str) -> Result<Fields<'a>, ProtoError> {
        Ok(Fields::new(self.bytes(field)?, self.offset))
    }

    /// Appends a repeated `uint32`, in either encoding: one varint per field, or packed.
    pub fn push_u32s(&self, field: &'static str, out: &mut Vec<u32>) -> Result<(), ProtoError> {
        match self.value {
            Value::Varint(_) => out.push(self.u32(field)?),
            Value::Bytes(b) => {
                let mut c = Cursor::new(b, self.offset);
                while !c.is_empty() {
                    let at = c.offset();
                    let v = c.varint()?;
                    out.push(u32::try_from(v).map_err(|_| {
                        ProtoError::new(at, Problem::OutOfRange { field, value: v })
                    })?);
                }
            }
            _ => return Err(self.wrong(field, "varint or packed")),
        }
        Ok(())
    }
}

/// The fields of a message, in wire order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    cursor: Cursor<'a>,
    failed: bool,
}

impl<'a> Fields<'a> {
    /// The fields of `buf`, a whole message whose first byte is at `base` in the file.
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Fields {
            cursor: Cursor::new(buf, base),
            failed: false,
        }
    }

    /// The file offset of the message's first byte (for errors about the whole message).
    pub fn start(&self) -> u64 {
        self.cursor.base
    }

    fn next_field(&mut self) -> Result<Field<'a>, ProtoError> {
        let key_at = self.cursor.offset();
        let key = self.cursor.varint()?;
        let number = key >> 3;
        let wire_type = (key & 7) as u8;
        if number == 0 {
            return Err(ProtoError::new(key_at, Problem::FieldZero));
        }
        let offset = self.cursor.offset();
        let value = match wire_type {
            0 => Value::Varint(self.cursor.varint()?),
            1 => Value::Fixed64(self.cursor.u64_le("fixed64 value")?),
            2 => {
                let len_at = self.cursor.offset();
                let len = self.cursor.varint()?;
                let data_at = self.cursor.offset();
                // A length past the end is reported where the length is, the culprit.
                let data = self
                    .cursor
                    .take(len, "length-delimited value")
                    .map_err(|e| ProtoError::new(len_at, e.problem))?;
                return Ok(Field {
                    number,
                    value: Value::Bytes(data),
                    offset: data_at,
                });
            }
            5 => Value::Fixed32(self.cursor.u32_le("fixed32 value")?),
            _ => {
                return Err(ProtoError::new(
                    key_at,
                    Problem::WireType {
                        field: number,
                        wire_type,
                    },
                ))
            }
        };
        Ok(Field {
            number,
            value,
            offset,
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, ProtoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.cursor.is_empty() {
            return None;
        }
        let r = self.next_field();
        self.failed = r.is_err();
        Some(r)
    }
}

/// `value` or the error that the required field `name` of the message at `start` is missing.
pub fn required<T>(value: Option<T>, start: u64, name: &'static str) -> Result<T, ProtoError> {
    value.ok_or(ProtoError::new(start, Problem::Missing(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, ProtoError> {
        Fields::new(buf, 100).collect()
    }

    #[test]
    fn varints() {
        let cases: &[(&[u8], u64)] = &[
            (&[0x00], 0),
            (&[0x01], 1),
            (&[0x96, 0x01], 150),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], u32::MAX as u64),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                u64::MAX,
            ),
        ];
        for (bytes, want) in cases {
            let mut c = Cursor::new(bytes, 0);
            assert_eq!(c.varint(), Ok(*want), "{bytes:x?}");
            assert!(c.is_empty());
        }
    }

    #[test]
    fn bad_varints_name_their_offset() {
        let mut c = Cursor::new(&[0x80, 0x80], 7);
        let e = c.varint().unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(matches!(
            e.problem,
            Problem::Truncated { what: "varint", .. }
        ));
        let mut c = Cursor::new(&[0xff; 11], 7);
        assert_eq!(c.varint(), Err(ProtoError::new(7, Problem::VarintTooLong)));
    }

    #[test]
    fn fields_of_a_pstree_entry() {
        // pid 154, ppid 0, pgid 154, sid 154, threads [154]
        let buf = [
            0x08, 0x9a, 0x01, 0x10, 0x00, 0x18, 0x9a, 0x01, 0x20, 0x9a, 0x01, 0x28, 0x9a, 0x01,
        ];
        let f = fields(&buf).unwrap();
        let got: Vec<(u64, u32)> = f.iter().map(|f| (f.number, f.u32("x").unwrap())).collect();
        assert_eq!(got, [(1, 154), (2, 0), (3, 154), (4, 154), (5, 154)]);
        assert_eq!(f[0].offset, 101);
    }

    #[test]
    fn strings_messages_and_packed() {
        // field 6 "ab", field 7 { field 1 = 5 }, field 5 packed [1, 300]
        let buf = [
            0x32, 0x02, b'a', b'b', 0x3a, 0x02, 0x08, 0x05, 0x2a, 0x03, 0x01, 0xac, 0x02,
        ];
        let f = fields(&buf).unwrap();
        assert_eq!(f[0].string("comm").unwrap(), "ab");
        let inner: Vec<_> = f[1]
            .message("m")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(inner[0].u32("x"), Ok(5));
        assert_eq!(inner[0].offset, 107);
        let mut v = vec![];
        f[2].push_u32s("threads", &mut v).unwrap();
        assert_eq!(v, [1, 300]);
    }

    #[test]
    fn signed_values() {
        let neg = [
            0x08, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(fields(&neg).unwrap()[0].i32("oom"), Ok(-2));
        let zigzag = [0x08, 0x03]; // sint32 -2
        assert_eq!(fields(&zigzag).unwrap()[0].sint32("nice"), Ok(-2));
    }

    #[test]
    fn corrupt_messages() {
        // A length running past the end: reported at the length byte, nothing allocated.
        let e = fields(&[0x08, 0x01, 0x32, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a']).unwrap_err();
        assert_eq!(e.offset, 103);
        assert!(matches!(
            e.problem,
            Problem::Truncated {
                needed: 0xffff_ffff,
                left: 1,
                ..
            }
        ));
        // Field number 0.
        assert_eq!(
            fields(&[0x00, 0x01]).unwrap_err(),
            ProtoError::new(100, Problem::FieldZero)
        );
        // A group (wire type 3).
        assert!(matches!(
            fields(&[0x0b]).unwrap_err().problem,
            Problem::WireType {
                field: 1,
                wire_type: 3
            }
        ));
        // Truncated fixed32.
        assert!(matches!(
            fields(&[0x0d, 0x01]).unwrap_err().problem,
            Problem::Truncated { needed: 4, .. }
        ));
        // A key cut in the middle.
        assert!(fields(&[0x80]).is_err());
    }

    #[test]
    fn type_checks() {
        let f = fields(&[0x32, 0x01, 0xff]).unwrap();
        assert!(matches!(
            f[0].u32("pid").unwrap_err().problem,
            Problem::WrongType { field: "pid", .. }
        ));
        assert_eq!(
            f[0].string("comm").unwrap_err().problem,
            Problem::NotUtf8 { field: "comm" }
        );
        let big = fields(&[0x08, 0x80, 0x80, 0x80, 0x80, 0x10]).unwrap();
        assert!(matches!(
            big[0].u32("pid").unwrap_err().problem,
            Problem::OutOfRange { field: "pid", .. }
        ));
    }

    #[test]
    fn iteration_stops_after_an_error() {
        let mut it = Fields::new(&[0x00, 0x08, 0x01], 0);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
