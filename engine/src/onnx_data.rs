//! The external-data files an ONNX model names: every tensor stored outside
//! the `.onnx` file (`data_location = EXTERNAL`) says in which file
//! (`location`, relative to the model's directory), at which `offset` and
//! how many bytes (`length`). Exporters name the file as they like
//! (`model.onnx.data`, `weights.bin`, one file per tensor), so the engine
//! reads the names from the model rather than guessing them: they are part
//! of a model's identity ([`crate::model::model_files`]), watched by a live
//! world and checked by snapshots and recordings.
//!
//! [`external_tensors`] reads only the protobuf structure around tensors:
//! it seeks over everything else (inline weights included), so a model of
//! gigabytes is scanned in milliseconds. Initializers, sparse initializers,
//! tensor-valued node attributes (`Constant`) and subgraphs (`If`, `Loop`)
//! and model-local functions are looked at.

use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;

/// One tensor stored in an external-data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTensor {
    /// The tensor's name.
    pub name: String,
    /// The file (`location`), as the model writes it.
    pub location: String,
    /// Where its bytes start (`offset`, 0 when absent).
    pub offset: u64,
    /// How many bytes (`length`), when the model says.
    pub length: Option<u64>,
}

/// Why a file's external data could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not an ONNX protobuf (or a damaged one).
    #[error("not an ONNX model: {0}")]
    Malformed(&'static str),
}

/// Most tensors a scan lists, and deepest nesting of subgraphs it follows.
const MAX_TENSORS: usize = 1 << 20;
const MAX_DEPTH: usize = 32;

/// Every external tensor of the ONNX model at `path`, in file order.
pub fn external_tensors(path: &Path) -> Result<Vec<ExternalTensor>, ScanError> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut s = Scanner {
        r: BufReader::with_capacity(64 * 1024, file),
        pos: 0,
        out: Vec::new(),
    };
    s.model(len)?;
    Ok(s.out)
}

/// The distinct external-data files the model at `path` names, in the
/// order first named (empty when its weights are inline).
pub fn external_locations(path: &Path) -> Result<Vec<String>, ScanError> {
    let mut out: Vec<String> = Vec::new();
    for t in external_tensors(path)? {
        if !out.contains(&t.location) {
            out.push(t.location);
        }
    }
    Ok(out)
}

struct Scanner<R> {
    r: BufReader<R>,
    pos: u64,
    out: Vec<ExternalTensor>,
}

/// A field's wire type and, for length-delimited fields, its length.
enum Wire {
    Varint(u64),
    Len(u64),
    Other,
}

impl<R: Read + Seek> Scanner<R> {
    fn byte(&mut self) -> Result<u8, ScanError> {
        let buf = self.r.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Err(ScanError::Malformed("the file ends inside a field"));
        };
        self.r.consume(1);
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, ScanError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ScanError::Malformed("a varint longer than 10 bytes"))
    }

    fn skip(&mut self, n: u64) -> Result<(), ScanError> {
        let n = i64::try_from(n).map_err(|_| ScanError::Malformed("a field too long"))?;
        self.r.seek_relative(n)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(())
    }

    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, ScanError> {
        if n > 1 << 20 {
            return Err(ScanError::Malformed("a name longer than 1 MiB"));
        }
        let mut v = vec![0; n as usize];
        self.r.read_exact(&mut v)?;
        self.pos += n;
        Ok(v)
    }

    fn string(&mut self, n: u64) -> Result<String, ScanError> {
        Ok(String::from_utf8_lossy(&self.bytes(n)?).into_owned())
    }

    /// The next field before `end`: its number and wire.
    fn field(&mut self, end: u64) -> Result<Option<(u64, Wire)>, ScanError> {
        if self.pos >= end {
            return Ok(None);
        }
        let tag = self.varint()?;
        let (number, wire) = (tag >> 3, tag & 7);
        let wire = match wire {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Wire::Other
            }
            5 => {
                self.skip(4)?;
                Wire::Other
            }
            2 => {
                let n = self.varint()?;
                if self.pos.saturating_add(n) > end {
                    return Err(ScanError::Malformed("a field longer than its message"));
                }
                Wire::Len(n)
            }
            _ => return Err(ScanError::Malformed("an unknown wire type")),
        };
        if number == 0 {
            return Err(ScanError::Malformed("field number 0"));
        }
        Ok(Some((number, wire)))
    }

    /// `ModelProto`: graph = 7, functions = 25 (their nodes).
    fn model(&mut self, end: u64) -> Result<(), ScanError> {
        while let Some((number, wire)) = self.field(end)? {
            match (number, wire) {
                (7, Wire::Len(n)) => {
                    let e = self.pos + n;
                    self.graph(e, 0)?;
                }
                (25, Wire::Len(n)) => {
                    let e = self.pos + n;
                    self.function(e, 0)?;
                }
                (_, Wire::Len(n)) => self.skip(n)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// `GraphProto`: node = 1, initializer = 5, sparse_initializer = 15.
    fn graph(&mut self, end: u64, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(ScanError::Malformed("subgraphs nested too deep"));
        }
        while let Some((number, wire)) = self.field(end)? {
            let Wire::Len(n) = wire else { continue };
            let e = self.pos + n;
            match number {
                1 => self.node(e, depth)?,
                5 => self.tensor(e)?,
                15 => self.sparse(e)?,
                _ => self.skip(n)?,
            }
        }
        Ok(())
    }

    /// `FunctionProto`: node = 7.
    fn function(&mut self, end: u64, depth: usize) -> Result<(), ScanError> {
        while let Some((number, wire)) = self.field(end)? {
            let Wire::Len(n) = wire else { continue };
            match number {
                7 => {
                    let e = self.pos + n;
                    self.node(e, depth)?
                }
                _ => self.skip(n)?,
            }
        }
        Ok(())
    }

    /// `NodeProto`: attribute = 5.
    fn node(&mut self, end: u64, depth: usize) -> Result<(), ScanError> {
        while let Some((number, wire)) = self.field(end)? {
            let Wire::Len(n) = wire else { continue };
            match number {
                5 => {
                    let e = self.pos + n;
                    self.attribute(e, depth)?
                }
                _ => self.skip(n)?,
            }
        }
        Ok(())
    }

    /// `AttributeProto`: t = 5, g = 6, tensors = 10, graphs = 11,
    /// sparse_tensor = 22, sparse_tensors = 23.
    fn attribute(&mut self, end: u64, depth: usize) -> Result<(), ScanError> {
        while let Some((number, wire)) = self.field(end)? {
            let Wire::Len(n) = wire else { continue };
            let e = self.pos + n;
            match number {
                5 | 10 => self.tensor(e)?,
                6 | 11 => self.graph(e, depth + 1)?,
                22 | 23 => self.sparse(e)?,
                _ => self.skip(n)?,
            }
        }
        Ok(())
    }

    /// `SparseTensorProto`: values = 1, indices = 2.
    fn sparse(&mut self, end: u64) -> Result<(), ScanError> {
        while let Some((number, wire)) = self.field(end)? {
            let Wire::Len(n) = wire else { continue };
            match number {
                1 | 2 => {
                    let e = self.pos + n;
                    self.tensor(e)?
                }
                _ => self.skip(n)?,
            }
        }
        Ok(())
    }

    /// `TensorProto`: name = 8, external_data = 13 (`key` = 1, `value` =
    /// 2), data_location = 14 (EXTERNAL = 1).
    fn tensor(&mut self, end: u64) -> Result<(), ScanError> {
        let mut name = String::new();
        let mut entries: Vec<(String, String)> = Vec::new();
        let mut external = false;
        while let Some((number, wire)) = self.field(end)? {
            match (number, wire) {
                (8, Wire::Len(n)) => name = self.string(n)?,
                (13, Wire::Len(n)) => {
                    let e = self.pos + n;
                    let (mut key, mut value) = (String::new(), String::new());
                    while let Some((number, wire)) = self.field(e)? {
                        match (number, wire) {
                            (1, Wire::Len(n)) => key = self.string(n)?,
                            (2, Wire::Len(n)) => value = self.string(n)?,
                            (_, Wire::Len(n)) => self.skip(n)?,
                            _ => {}
                        }
                    }
                    entries.push((key, value));
                }
                (14, Wire::Varint(v)) => external = v == 1,
                (_, Wire::Len(n)) => self.skip(n)?,
                _ => {}
            }
        }
        if !external {
            return Ok(());
        }
        let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let Some(location) = get("location") else {
            return Err(ScanError::Malformed(
                "an external tensor without a `location`",
            ));
        };
        if self.out.len() >= MAX_TENSORS {
            return Err(ScanError::Malformed("more than a million external tensors"));
        }
        let number = |k: &str| get(k).and_then(|v| v.trim().parse::<u64>().ok());
        self.out.push(ExternalTensor {
            name,
            location: location.clone(),
            offset: number("offset").unwrap_or(0),
            length: number("length"),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(number: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    fn entry(key: &str, value: &str) -> Vec<u8> {
        let mut e = Vec::new();
        len_field(1, key.as_bytes(), &mut e);
        len_field(2, value.as_bytes(), &mut e);
        e
    }

    #[test]
    fn lists_every_external_tensor_and_skips_inline_ones() {
        let mut w = Vec::new();
        len_field(8, b"w", &mut w);
        len_field(13, &entry("location", "weights.bin"), &mut w);
        len_field(13, &entry("offset", "4096"), &mut w);
        len_field(13, &entry("length", "16"), &mut w);
        varint(14 << 3, &mut w);
        varint(1, &mut w);
        let mut inline = Vec::new();
        len_field(8, b"b", &mut inline);
        len_field(9, &[0u8; 64], &mut inline); // raw_data
        let mut graph = Vec::new();
        len_field(5, &inline, &mut graph);
        len_field(5, &w, &mut graph);
        let mut model = Vec::new();
        varint(1 << 3, &mut model); // ir_version
        varint(8, &mut model);
        len_field(7, &graph, &mut model);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, &model).unwrap();
        let tensors = external_tensors(&path).unwrap();
        assert_eq!(
            tensors,
            [ExternalTensor {
                name: "w".into(),
                location: "weights.bin".into(),
                offset: 4096,
                length: Some(16),
            }]
        );
        assert_eq!(external_locations(&path).unwrap(), ["weights.bin"]);
        // Not a protobuf, or cut short: an error, never a panic.
        std::fs::write(&path, b"graph").unwrap();
        assert!(external_tensors(&path).is_err());
        std::fs::write(&path, &model[..model.len() - 3]).unwrap();
        assert!(external_tensors(&path).is_err());
    }
}
