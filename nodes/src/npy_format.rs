//! Reading and writing NumPy `.npy` files (format versions 1, 2 and 3).
//!
//! A file is the magic `\x93NUMPY`, a version, a header length, a Python dict
//! literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` and
//! the raw elements. [`parse`] accepts little- and big-endian `f4`, `f8`
//! (read as f32), `i4`, `i8` (read as i64), `u1` and `b1` (read as u8), in C
//! order; it never panics on arbitrary bytes. [`write`] writes version 1.0.

use wgraph_engine::tensor::{HostData, Tensor, TensorError, element_count};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses a `.npy` file. The error reads after the file's name:
/// "is not a .npy file (bad magic)".
pub fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("is not a .npy file (bad magic)")?;
    let (len_bytes, rest) = match rest {
        [1, _, rest @ ..] => (2, rest),
        [2 | 3, _, rest @ ..] => (4, rest),
        [major, minor, ..] => {
            return Err(format!("has unsupported .npy format version {major}.{minor}"));
        }
        _ => return Err("is truncated inside its preamble".into()),
    };
    if rest.len() < len_bytes {
        return Err("is truncated inside its preamble".into());
    }
    let header_len = rest[..len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let rest = &rest[len_bytes..];
    if rest.len() < header_len {
        return Err(format!(
            "is truncated: its header should be {header_len} bytes, but only {} follow",
            rest.len()
        ));
    }
    let header = std::str::from_utf8(&rest[..header_len])
        .map_err(|_| "has a header that is not text".to_string())?;
    let (descr, shape) = parse_header(header).map_err(|e| format!("has a malformed header: {e}"))?;
    decode(&descr, &shape, &rest[header_len..])
}

/// Element layout named by a `descr`.
struct Layout {
    big_endian: bool,
    kind: u8,
    size: usize,
}

fn layout(descr: &str) -> Option<Layout> {
    let b = descr.as_bytes();
    let (order, kind, size) = match b {
        [order @ (b'<' | b'>' | b'|' | b'='), kind, size] => (*order, *kind, *size),
        _ => return None,
    };
    let size = (size as char).to_digit(10)? as usize;
    let ok = matches!((kind, size), (b'f', 4 | 8) | (b'i', 4 | 8) | (b'u' | b'b', 1));
    ok.then_some(Layout {
        big_endian: order == b'>',
        kind,
        size,
    })
}

fn decode(descr: &str, shape: &[usize], data: &[u8]) -> Result<Tensor, String> {
    let l = layout(descr).ok_or_else(|| {
        format!("has unsupported dtype '{descr}' (supported: f4, f8, i4, i8, u1, b1)")
    })?;
    let count = element_count(shape).ok_or_else(|| format!("has a too large shape {shape:?}"))?;
    let needed = count
        .checked_mul(l.size)
        .ok_or_else(|| format!("has a too large shape {shape:?}"))?;
    if data.len() != needed {
        return Err(format!(
            "has {} data bytes, but shape {shape:?} of '{descr}' needs {needed}",
            data.len()
        ));
    }
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        if l.big_endian {
            w[..c.len()].reverse();
        }
        u64::from_le_bytes(w)
    };
    let words = data.chunks_exact(l.size).map(word);
    let host = match (l.kind, l.size) {
        (b'f', 4) => HostData::F32(words.map(|w| f32::from_bits(w as u32)).collect()),
        (b'f', _) => HostData::F32(words.map(|w| f64::from_bits(w) as f32).collect()),
        (b'i', 4) => HostData::I64(words.map(|w| i64::from(w as u32 as i32)).collect()),
        (b'i', _) => HostData::I64(words.map(|w| w as i64).collect()),
        _ => HostData::U8(data.into()),
    };
    Tensor::from_host(shape, host).map_err(|e| e.to_string())
}

/// A tiny reader for the header's Python literal.
struct Lit<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lit<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }
    /// Consumes `c` (after whitespace) if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.s.get(self.pos) == Some(&c);
        self.pos += usize::from(hit);
        hit
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.pos))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let q = match self.s.get(self.pos) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a string at byte {}", self.pos)),
        };
        let start = self.pos + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("unterminated string")?;
        self.pos = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }
    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_alphanumeric) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }
}

/// The `descr` and `shape` of a header; rejects Fortran order.
fn parse_header(header: &str) -> Result<(String, Vec<usize>), String> {
    let mut p = Lit {
        s: header.as_bytes(),
        pos: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    while !p.eat(b'}') {
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => {
                fortran = Some(match p.word() {
                    "True" => true,
                    "False" => false,
                    w => return Err(format!("fortran_order is `{w}`, not True or False")),
                })
            }
            "shape" => {
                let mut dims = Vec::new();
                p.expect(b'(')?;
                while !p.eat(b')') {
                    let w = p.word().trim_end_matches('L');
                    dims.push(w.parse().map_err(|_| format!("bad dimension `{w}` in shape"))?);
                    if !p.eat(b',') {
                        p.expect(b')')?;
                        break;
                    }
                }
                shape = Some(dims);
            }
            other => return Err(format!("unknown key '{other}'")),
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    match (descr, fortran, shape) {
        (_, Some(true), _) => Err("Fortran-order arrays are not supported (save with C order)".into()),
        (Some(d), Some(false), Some(s)) => Ok((d, s)),
        _ => Err("it needs 'descr', 'fortran_order' and 'shape'".into()),
    }
}

/// Encodes a tensor as a version 1.0 `.npy` file (little-endian, C order).
pub fn write(t: &Tensor) -> Result<Vec<u8>, TensorError> {
    let (descr, data): (&str, Vec<u8>) = match t.host()? {
        HostData::F32(d) => ("<f4", d.iter().flat_map(|v| v.to_le_bytes()).collect()),
        HostData::I64(d) => ("<i8", d.iter().flat_map(|v| v.to_le_bytes()).collect()),
        HostData::U8(d) => ("|u1", d.to_vec()),
    };
    let dims: Vec<String> = t.shape().iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that the data starts at a multiple of 64 bytes.
    let total = MAGIC.len() + 4 + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend([1, 0]);
    // Header length fits in u16: the header is short.
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::mix;

    /// A file with the given version, descr, shape literal and data.
    fn file(version: u8, descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut out = MAGIC.to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_each_dtype_and_version() {
        let f4: Vec<u8> = [1.5f32, -2.0, 3.25].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = parse(&file(1, "<f4", "(3,)", &f4)).unwrap();
        assert_eq!((t.shape(), t.host_f32().unwrap()), (&[3][..], &[1.5, -2.0, 3.25][..]));

        let f8: Vec<u8> = [0.5f64, 7.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = parse(&file(2, "<f8", "(1, 2)", &f8)).unwrap();
        assert_eq!((t.shape(), t.host_f32().unwrap()), (&[1, 2][..], &[0.5, 7.0][..]));

        let i8s: Vec<u8> = [-3i64, 1 << 40].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = parse(&file(3, "<i8", "(2,)", &i8s)).unwrap();
        assert_eq!(t.host_i64().unwrap(), &[-3, 1 << 40]);

        let i4: Vec<u8> = [-7i32, 9].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(parse(&file(1, ">i4", "(2,)", &i4)).unwrap().host_i64().unwrap(), &[-7, 9]);

        let t = parse(&file(1, "|u1", "(2, 2)", &[0, 1, 254, 255])).unwrap();
        assert_eq!((t.shape(), t.host_u8().unwrap()), (&[2, 2][..], &[0, 1, 254, 255][..]));

        let t = parse(&file(1, "<f4", "()", &2.0f32.to_le_bytes())).unwrap();
        assert_eq!((t.shape(), t.host_f32().unwrap()), (&[][..], &[2.0][..]));
    }

    #[test]
    fn rejects_bad_files_with_reasons() {
        let err = |b: &[u8]| parse(b).unwrap_err();
        assert_eq!(err(b"PK\x03\x04zip"), "is not a .npy file (bad magic)");
        assert!(err(&file(1, "<c8", "(1,)", &[0; 8])).contains("unsupported dtype '<c8'"));
        assert!(err(&file(1, "<f4", "(2,)", &[0; 4])).contains("needs 8"));
        assert!(err(&file(1, "<f4", "(2,)", &[0; 12])).contains("needs 8"));
        let fortran = file(1, "<f4", "(1,)", &[0; 4]);
        let fortran = String::from_utf8_lossy(&fortran).replace("False", "True ");
        assert!(err(fortran.as_bytes()).contains("Fortran"));
        assert!(err(&file(9, "<f4", "(1,)", &[0; 4])).contains("version 9.0"));
        let huge = file(1, "<f4", "(4294967296, 4294967296, 4294967296)", &[]);
        assert!(err(&huge).contains("too large"));
    }

    #[test]
    fn round_trips_through_write() {
        for t in [
            Tensor::from_f32(&[2, 3], vec![0.0, 1.0, -1.5, 1e-9, 3.0, -0.0]).unwrap(),
            Tensor::from_i64(&[1], vec![i64::MIN]).unwrap(),
            Tensor::from_u8(&[2, 1, 2], vec![1, 2, 3, 4]).unwrap(),
            Tensor::scalar_f32(4.5),
        ] {
            let bytes = write(&t).unwrap();
            let header_end = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!(header_end % 64, 0);
            assert_eq!(parse(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn mutated_files_never_panic() {
        let data: Vec<u8> = (0..24).collect();
        let seeds = [
            file(1, "<f4", "(2, 3)", &data),
            file(2, "<i8", "(3,)", &data),
            file(3, "|u1", "(4, 6)", &data),
            file(1, ">f8", "(3, 1)", &data),
        ];
        let mut ok = 0;
        for round in 0..20_000u64 {
            let mut b = seeds[(round % 4) as usize].clone();
            let r = mix(round);
            for k in 0..1 + r % 4 {
                let h = mix(r ^ k);
                let pos = (h >> 8) as usize % b.len();
                match h % 4 {
                    0 => b[pos] = (h >> 40) as u8,
                    1 => b.truncate(pos),
                    2 => b.insert(pos, b"(),:'\"0123456789TF "[(h >> 40) as usize % 19]),
                    _ => drop(b.remove(pos)),
                }
                if b.is_empty() {
                    break;
                }
            }
            ok += usize::from(parse(&b).is_ok());
        }
        assert!(ok > 0, "some mutations should still parse");
    }
}
