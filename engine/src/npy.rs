//! Reading and writing NumPy `.npy` files (format versions 1–3).
//!
//! Used for feedback init values (`init npy("x.npy")`) and by the `npy`
//! source and `npy_dump` sink. Any byte sequence is handled without a panic:
//! what is not a well-formed, C-ordered array of a supported dtype is an
//! [`NpyError`].
//!
//! Supported dtypes: `<f4`, `<f8` (read as f32), `<i8`, `<i4` (read as i64), `|u1`.

use crate::tensor::{HostData, Tensor, element_count};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NpyError {
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("not a .npy file: {0}")]
    Format(String),
    #[error("unsupported .npy dtype `{0}` (supported: <f4, <f8, <i8, <i4, |u1)")]
    DType(String),
}

const MAGIC: &[u8] = b"\x93NUMPY";

fn format_err(m: impl Into<String>) -> NpyError {
    NpyError::Format(m.into())
}

/// Reads a `.npy` file into a host tensor.
pub fn read_npy_file(path: &Path) -> Result<Tensor, NpyError> {
    let bytes = crate::input::read(path, crate::input::DATA).map_err(|e| NpyError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    read_npy(&bytes)
}

/// Parses `.npy` bytes into a host tensor.
pub fn read_npy(bytes: &[u8]) -> Result<Tensor, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(format_err("bad magic (expected \\x93NUMPY)"));
    }
    let (header_len, header_start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            let b = bytes
                .get(8..12)
                .ok_or_else(|| format_err("truncated header"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(format_err(format!("unknown format version {v}"))),
    };
    let header_end = header_start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| format_err("truncated header"))?;
    let header = std::str::from_utf8(&bytes[header_start..header_end])
        .map_err(|_| format_err("header is not text"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| format_err("header has no 'descr'"))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| format_err("header has no 'fortran_order'"))?;
    if fortran.trim() != "False" {
        return Err(format_err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let shape_text =
        dict_value(header, "shape").ok_or_else(|| format_err("header has no 'shape'"))?;
    let shape = parse_shape(shape_text)?;
    let count = element_count(&shape).ok_or_else(|| format_err("shape too large"))?;
    let data = &bytes[header_end..];
    let need = |size: usize| -> Result<&[u8], NpyError> {
        let n = count
            .checked_mul(size)
            .ok_or_else(|| format_err("shape too large"))?;
        data.get(..n).ok_or_else(|| {
            format_err(format!(
                "data holds {} bytes, shape {shape:?} needs {n}",
                data.len()
            ))
        })
    };
    let host = match descr {
        "<f4" => HostData::F32(
            need(4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        "<f8" => HostData::F32(
            need(8)?
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
        ),
        "<i8" => HostData::I64(
            need(8)?
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        "<i4" => HostData::I64(
            need(4)?
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        ),
        "|u1" | "<u1" => HostData::U8(need(1)?.into()),
        other => return Err(NpyError::DType(other.to_string())),
    };
    Tensor::from_host(&shape, host).map_err(|e| format_err(e.to_string()))
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let pos = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[pos + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

fn parse_shape(text: &str) -> Result<Vec<usize>, NpyError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format_err(format!("bad shape `{}`", text.trim())))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format_err(format!("bad dimension `{s}`")))
        })
        .collect()
}

/// Serializes a host tensor as a version-1 `.npy` file.
pub fn write_npy(tensor: &Tensor) -> Result<Vec<u8>, crate::tensor::TensorError> {
    let (descr, body): (&str, Vec<u8>) = match tensor.host()? {
        HostData::F32(d) => ("<f4", d.iter().flat_map(|v| v.to_le_bytes()).collect()),
        HostData::I64(d) => ("<i8", d.iter().flat_map(|v| v.to_le_bytes()).collect()),
        HostData::U8(d) => ("|u1", d.to_vec()),
    };
    let dims: Vec<String> = tensor.shape().iter().map(ToString::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that data starts on a 64-byte boundary, header ends with '\n'.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    let header_len = u16::try_from(header.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_each_dtype() {
        for t in [
            Tensor::from_f32(&[2, 3], vec![0.5, -1.0, 2.0, 3.5, 1e-3, 7.0]).unwrap(),
            Tensor::from_i64(&[4], vec![1, -2, 3, i64::MAX]).unwrap(),
            Tensor::from_u8(&[1, 2, 2], vec![0, 1, 254, 255]).unwrap(),
            Tensor::scalar_f32(3.0),
        ] {
            let bytes = write_npy(&t).unwrap();
            assert_eq!(
                (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
                0
            );
            assert_eq!(read_npy(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn rejects_fortran_order_and_truncation() {
        let t = Tensor::from_f32(&[2, 2], vec![1.0; 4]).unwrap();
        let good = write_npy(&t).unwrap();
        let mut fortran = good.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(matches!(read_npy(&fortran), Err(NpyError::Format(m)) if m.contains("Fortran")));
        assert!(
            read_npy(&good[..good.len() - 1])
                .unwrap_err()
                .to_string()
                .contains("needs 16")
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let good = write_npy(&Tensor::from_f32(&[3, 2], vec![1.0; 6]).unwrap()).unwrap();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = good.clone();
            let pos = (state as usize) % bytes.len();
            bytes[pos] = (state >> 32) as u8;
            bytes.truncate(((state >> 40) as usize) % (good.len() + 1));
            let _ = read_npy(&bytes);
        }
    }
}
