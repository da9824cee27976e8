//! The MySQL protocol's primitive encodings: fixed little-endian integers,
//! length-encoded integers and strings, NUL-terminated strings. Decoding is
//! bounds-checked everywhere: a short or inconsistent payload is a
//! [`WireError`], never a panic or an allocation of a size the peer chose.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed packet: {what} runs past the end of the packet")]
    Truncated { what: &'static str },
    #[error("malformed packet: {what}")]
    Invalid { what: String },
}

/// Reads primitives off one packet's payload.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated { what });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let b = self.bytes(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("eight bytes")))
    }

    /// A length-encoded integer; `None` for the NULL marker (0xFB).
    pub fn lenenc_int(&mut self, what: &'static str) -> Result<Option<u64>, WireError> {
        Ok(Some(match self.u8(what)? {
            0xFB => return Ok(None),
            0xFC => u64::from(self.u16(what)?),
            0xFD => {
                let b = self.bytes(3, what)?;
                u64::from(b[0]) | (u64::from(b[1]) << 8) | (u64::from(b[2]) << 16)
            }
            0xFE => self.u64(what)?,
            0xFF => {
                return Err(WireError::Invalid {
                    what: format!("{what}: 0xFF does not start a length-encoded integer"),
                });
            }
            small => u64::from(small),
        }))
    }

    /// A length-encoded string (the length is checked against what is left
    /// before anything is read).
    pub fn lenenc_bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.lenenc_int(what)?.ok_or_else(|| WireError::Invalid {
            what: format!("{what}: NULL where a string belongs"),
        })?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated { what })?;
        self.bytes(len, what)
    }

    /// Bytes up to a NUL (consumed, not returned).
    pub fn nul_bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::Truncated { what })?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    /// Bytes up to a NUL, or to the end when there is none (some clients
    /// leave the last string of a packet unterminated).
    pub fn nul_or_rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(end) => {
                self.pos += end + 1;
                &rest[..end]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }
}

/// Text of the peer, which must be UTF-8.
pub fn utf8(bytes: &[u8], what: &'static str) -> Result<String, WireError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Invalid {
        what: format!("{what} is not UTF-8"),
    })
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_lenenc_int(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=250 => out.push(v as u8),
        251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

pub fn put_lenenc_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_lenenc_int(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub fn put_nul_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_encoded_integers_round_trip_at_every_width() {
        for v in [
            0u64,
            1,
            250,
            251,
            0xFFFF,
            0x1_0000,
            0xFF_FFFF,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_lenenc_int(&mut out, v);
            let mut d = Decoder::new(&out);
            assert_eq!(d.lenenc_int("n").unwrap(), Some(v));
            assert!(d.is_empty());
        }
    }

    #[test]
    fn a_length_beyond_the_packet_is_an_error_not_an_allocation() {
        let mut out = vec![0xFE];
        out.extend_from_slice(&u64::MAX.to_le_bytes());
        out.extend_from_slice(b"abc");
        let mut d = Decoder::new(&out);
        assert!(matches!(
            d.lenenc_bytes("s"),
            Err(WireError::Truncated { .. })
        ));
        assert!(Decoder::new(&[0xFF]).lenenc_int("n").is_err());
        assert!(Decoder::new(b"abc").nul_bytes("s").is_err());
    }
}
