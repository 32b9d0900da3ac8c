//! Reading and writing NumPy `.npy` files (format versions 1–3).
//!
//! Used for feedback init values (`init npy("x.npy")`) and by the `npy`
//! source and `npy_dump` sink. Any byte sequence is handled without a panic:
//! what is not a well-formed, C-ordered array of a supported dtype is an
//! [`NpyError`].
//!
//! Supported dtypes, each read as the wgraph dtype of the same width:
//! `<f4` f32, `<f8` f64, `<f2` f16, `<i8` i64, `<i4` i32, `<i2` i16, `|i1`
//! i8, `|u1` u8, `<u2` u16, `<u4` u32, `|b1` bool. Big-endian data, `<u8`
//! (u64), complex, string and object arrays are refused.

use crate::tensor::{DType, HostData, Tensor, element_count};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NpyError {
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("not a .npy file: {0}")]
    Format(String),
    #[error(
        "unsupported .npy dtype `{0}` (supported: <f4, <f8, <f2, <i8, <i4, <i2, |i1, |u1, <u2, <u4, |b1)"
    )]
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
    let dtype = dtype_of(descr).ok_or_else(|| NpyError::DType(descr.to_string()))?;
    let host = HostData::from_le_bytes(dtype, need(dtype.size())?)
        .ok_or_else(|| format_err("data is not a whole number of elements"))?;
    Tensor::from_host(&shape, host).map_err(|e| format_err(e.to_string()))
}

/// The `.npy` descriptor of each dtype, as NumPy writes it.
fn descr_of(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I16 => "<i2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::Bool => "|b1",
    }
}

/// The dtype of a descriptor: NumPy's own (`descr_of`), or a one-byte type
/// written with `<` or `=`, which mean the same for one byte.
fn dtype_of(descr: &str) -> Option<DType> {
    let one_byte = |d: &str| ["|", "<", "="].iter().any(|p| descr == format!("{p}{d}"));
    DType::ALL.into_iter().find(|&t| {
        let own = descr_of(t);
        descr == own || (t.size() == 1 && one_byte(&own[1..]))
    })
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

/// Serializes a tensor as a version-1 `.npy` file (a device tensor is
/// copied to the host first).
pub fn write_npy(tensor: &Tensor) -> Result<Vec<u8>, crate::tensor::TensorError> {
    let tensor = tensor.to_host()?;
    let host = tensor.host()?;
    let (descr, body) = (descr_of(host.dtype()), host.to_le_bytes());
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

    /// A version-1 `.npy` file as NumPy writes it: `descr`, `shape` (as
    /// NumPy spells it) and the raw data.
    fn numpy_file(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn round_trip_f64_exactly() {
        let t = Tensor::from_f64(
            &[2, 3],
            vec![
                0.1,
                -1e300,
                f64::MIN_POSITIVE,
                1.0 + f64::EPSILON,
                -0.0,
                7.25,
            ],
        )
        .unwrap();
        let bytes = write_npy(&t).unwrap();
        assert!(bytes.windows(12).any(|w| w == b"'descr': '<f"));
        let back = read_npy(&bytes).unwrap();
        assert_eq!(back.dtype(), DType::F64);
        // Bit for bit: no detour through f32.
        let bits = |t: &Tensor| -> Vec<u64> {
            t.host_f64().unwrap().iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(&back), bits(&t));
        // As NumPy writes it (np.save of a float64 array).
        let data: Vec<u8> = [0.1f64, 2.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = read_npy(&numpy_file("<f8", "(2,)", &data)).unwrap();
        assert_eq!(t.host_f64().unwrap(), &[0.1, 2.5]);
    }

    #[test]
    fn round_trip_i32() {
        let t = Tensor::from_i32(&[5], vec![0, -1, 7, i32::MIN, i32::MAX]).unwrap();
        let bytes = write_npy(&t).unwrap();
        assert!(bytes.windows(4).any(|w| w == b"<i4'"));
        assert_eq!(read_npy(&bytes).unwrap(), t);
        let data: Vec<u8> = [3i32, -4].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = read_npy(&numpy_file("<i4", "(1, 2)", &data)).unwrap();
        assert_eq!(
            (t.shape(), t.host_i32().unwrap()),
            (&[1, 2][..], &[3, -4][..])
        );
    }

    #[test]
    fn round_trip_bool() {
        let t = Tensor::from_bool(&[2, 2], vec![true, false, false, true]).unwrap();
        let bytes = write_npy(&t).unwrap();
        assert!(bytes.windows(4).any(|w| w == b"|b1'"));
        assert_eq!(&bytes[bytes.len() - 4..], &[1, 0, 0, 1]);
        assert_eq!(read_npy(&bytes).unwrap(), t);
        let t = read_npy(&numpy_file("|b1", "(3,)", &[0, 1, 1])).unwrap();
        assert_eq!(t.host_bool().unwrap(), &[false, true, true]);
    }

    #[test]
    fn round_trip_small_ints_and_f16() {
        use crate::tensor::f16;
        for (t, descr) in [
            (Tensor::from_i8(&[3], vec![-128, 0, 127]).unwrap(), "|i1"),
            (
                Tensor::from_i16(&[3], vec![i16::MIN, -2, i16::MAX]).unwrap(),
                "<i2",
            ),
            (Tensor::from_u16(&[2], vec![0, u16::MAX]).unwrap(), "<u2"),
            (Tensor::from_u32(&[2], vec![1, u32::MAX]).unwrap(), "<u4"),
            (
                Tensor::from_f16(
                    &[1, 3],
                    vec![f16::from_f32(0.5), f16::MAX, f16::from_f32(-2.0)],
                )
                .unwrap(),
                "<f2",
            ),
        ] {
            let bytes = write_npy(&t).unwrap();
            let header = std::str::from_utf8(&bytes[10..64]).unwrap();
            assert!(header.contains(&format!("'descr': '{descr}'")), "{header}");
            assert_eq!(read_npy(&bytes).unwrap(), t, "{descr}");
        }
        // One-byte types with the other byte-order marks NumPy accepts.
        for descr in ["<i1", "=i1"] {
            let t = read_npy(&numpy_file(descr, "(2,)", &[255, 1])).unwrap();
            assert_eq!(t.host_i8().unwrap(), &[-1, 1]);
        }
        assert_eq!(
            read_npy(&numpy_file("<u1", "(1,)", &[9]))
                .unwrap()
                .host_u8()
                .unwrap(),
            &[9]
        );
    }

    #[test]
    fn refuses_other_dtypes_by_name() {
        for descr in ["<u8", ">f4", "<c8", "|O", "<U3"] {
            let e = read_npy(&numpy_file(descr, "(1,)", &[0; 16])).unwrap_err();
            assert_eq!(e, NpyError::DType(descr.into()));
            assert!(e.to_string().contains("|b1"), "{e}");
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
