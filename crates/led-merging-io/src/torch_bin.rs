//! `pytorch_model.bin` (PyTorch's `torch.save` zip format) read without running pickle code
//! (docs/formats.md, "pytorch_model.bin"): the pickle that describes the state dict is
//! interpreted by a small machine that knows only the opcodes and the few names a dict of
//! tensors uses (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter`, the `torch.*Storage` types). Any other name is refused,
//! naming it: Python's pickle would import and call it. The tensors' bytes are the zip's
//! stored (uncompressed) `data/<key>` entries, read in place like a safetensors file's.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use crate::Dtype;
use crate::error::{Error, Result};
use crate::header::{Header, RawTensor};

/// The zip signature that starts a `torch.save` file (PyTorch ≥ 1.6).
pub(crate) const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";
/// Largest `data.pkl` accepted (a state dict's pickle is kilobytes per thousand tensors).
const MAX_PICKLE: u64 = 64 << 20;
/// Most list, tuple and dict elements copied by the pickle machine in all: a bound on the work
/// a hostile pickle can ask for.
const MAX_COPIED: usize = 10_000_000;

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Pickle {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// A pickled value, as far as a state dict needs.
#[derive(Debug, Clone)]
enum Value {
    Mark,
    /// `None`, a bool, a float, bytes: values a state dict carries but led does not read.
    Other,
    Int(i64),
    Str(Rc<str>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<Vec<Value>>),
    Dict(Rc<Vec<(Value, Value)>>),
    /// An allowed global, `module.name`.
    Global(Rc<str>),
    Storage {
        dtype: Dtype,
        key: Rc<str>,
    },
    Tensor(Rc<TensorRef>),
}

/// A tensor: a contiguous view of a storage.
#[derive(Debug)]
struct TensorRef {
    dtype: Dtype,
    key: Rc<str>,
    /// In elements.
    offset: usize,
    shape: Vec<usize>,
}

/// The dtype of a legacy typed storage class name (`FloatStorage`).
fn storage_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "FloatStorage" => Dtype::F32,
        "HalfStorage" => Dtype::F16,
        "BFloat16Storage" => Dtype::BF16,
        "DoubleStorage" => Dtype::F64,
        "LongStorage" => Dtype::I64,
        "IntStorage" => Dtype::I32,
        "ShortStorage" => Dtype::I16,
        "CharStorage" => Dtype::I8,
        "ByteStorage" => Dtype::U8,
        "BoolStorage" => Dtype::Bool,
        _ => return None,
    })
}

fn allowed(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("collections", "OrderedDict")
            | ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_parameter")
    ) || (module == "torch" && storage_dtype(name).is_some())
}

/// The pickle machine: a stack, its marks, the memo.
struct Machine<'a> {
    path: &'a Path,
    code: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    copied: usize,
}

impl Machine<'_> {
    fn err(&self, reason: impl std::fmt::Display) -> Error {
        bad(self.path, format!("data.pkl at byte {}: {reason}", self.at))
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.code.len() - self.at < n {
            return Err(self.err("ends in the middle of an instruction"));
        }
        let s = &self.code[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64> {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(self.take(n)?);
        Ok(u64::from_le_bytes(b))
    }

    fn pop(&mut self) -> Result<Value> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err(self.err("stack underflow")),
            Some(v) => Ok(v),
        }
    }

    /// Everything above the topmost mark, the mark removed.
    fn pop_to_mark(&mut self) -> Result<Vec<Value>> {
        let m = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| self.err("no mark"))?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    fn text(&mut self, n: usize) -> Result<Value> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(s.into())),
            Err(e) => Err(self.err(e)),
        }
    }

    /// A copy-on-write of a shared list or dict, counted against [`MAX_COPIED`].
    fn own<T: Clone>(&mut self, v: &mut Rc<Vec<T>>) -> Result<()> {
        if Rc::strong_count(v) > 1 {
            self.copied += v.len();
            if self.copied > MAX_COPIED {
                return Err(self.err("copies too many elements: not a state dict"));
            }
        }
        Rc::make_mut(v);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<Value> {
        if !allowed(module, name) {
            return Err(self.err(format!(
                "refers to {module}.{name}, which a state dict of tensors does not use: refused \
                 (Python's pickle would import and run it); convert the checkpoint to safetensors \
                 in an environment you trust"
            )));
        }
        Ok(Value::Global(format!("{module}.{name}").into()))
    }

    fn reduce(&mut self, func: Value, args: Value) -> Result<Value> {
        let (Value::Global(f), Value::Tuple(args)) = (&func, &args) else {
            return Err(self.err("calls something that is not an allowed function"));
        };
        match &**f {
            "collections.OrderedDict" => Ok(Value::Dict(Rc::new(Vec::new()))),
            "torch._utils._rebuild_parameter" => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(self.err("_rebuild_parameter of something that is not a tensor")),
            },
            "torch._utils._rebuild_tensor_v2" => self.rebuild(args),
            other => Err(self.err(format!("calls {other}"))),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`:
    /// contiguous tensors only.
    fn rebuild(&self, args: &[Value]) -> Result<Value> {
        let ints = |v: Option<&Value>| -> Option<Vec<usize>> {
            match v? {
                Value::Tuple(t) => t
                    .iter()
                    .map(|x| match x {
                        Value::Int(i) => usize::try_from(*i).ok(),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            }
        };
        let (Some(Value::Storage { dtype, key }), Some(Value::Int(offset))) =
            (args.first(), args.get(1))
        else {
            return Err(self.err("_rebuild_tensor_v2 without a storage and an offset"));
        };
        let (Some(shape), Some(stride), Ok(offset)) = (
            ints(args.get(2)),
            ints(args.get(3)),
            usize::try_from(*offset),
        ) else {
            return Err(self.err("_rebuild_tensor_v2 with a bad size, stride or offset"));
        };
        let mut expect = 1usize;
        for (d, s) in shape.iter().zip(&stride).rev() {
            if *d != 1 && *s != expect {
                return Err(self.err(format!(
                    "a tensor of size {shape:?} with strides {stride:?} is not contiguous: \
                     save it with .contiguous() or convert the checkpoint to safetensors"
                )));
            }
            expect = expect
                .checked_mul(*d)
                .ok_or_else(|| self.err("a tensor size overflows"))?;
        }
        if shape.len() != stride.len() {
            return Err(self.err("size and stride of different lengths"));
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            dtype: *dtype,
            key: key.clone(),
            offset,
            shape,
        })))
    }

    fn persistent(&self, pid: Value) -> Result<Value> {
        let Value::Tuple(t) = &pid else {
            return Err(self.err("a persistent id that is not a tuple"));
        };
        match &t[..] {
            [Value::Str(kind), Value::Global(ty), Value::Str(key), _, _]
                if &**kind == "storage" =>
            {
                let name = ty.rsplit('.').next().unwrap_or_default();
                let dtype = storage_dtype(name)
                    .ok_or_else(|| self.err(format!("storage type {ty} is not supported")))?;
                Ok(Value::Storage {
                    dtype,
                    key: key.clone(),
                })
            }
            _ => Err(self.err("a persistent id that is not a tensor storage")),
        }
    }

    /// Run to STOP; the value left.
    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.take(1)?[0];
            if op == b'.' {
                return self.pop();
            }
            let handled = self.framing_or_memo(op)?
                || self.constant(op)?
                || self.container(op)?
                || self.call(op)?;
            if !handled {
                return Err(self.err(format!(
                    "pickle opcode 0x{op:02x} is not one a state dict of tensors uses"
                )));
            }
        }
    }

    /// PROTO, FRAME and the memo's opcodes.
    fn framing_or_memo(&mut self, op: u8) -> Result<bool> {
        match op {
            0x80 => {
                self.take(1)?;
            }
            0x95 => {
                self.take(8)?;
            }
            b'q' | b'r' | 0x94 => {
                let k = match op {
                    b'q' => self.uint(1)? as u32,
                    b'r' => self.uint(4)? as u32,
                    _ => self.memo.len() as u32,
                };
                let top = self
                    .stack
                    .last()
                    .ok_or_else(|| self.err("empty stack"))?
                    .clone();
                self.memo.insert(k, top);
            }
            b'h' | b'j' => {
                let k = self.uint(if op == b'h' { 1 } else { 4 })? as u32;
                let v = self
                    .memo
                    .get(&k)
                    .ok_or_else(|| self.err(format!("memo {k} is not set")))?
                    .clone();
                self.stack.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Opcodes that push a constant: strings, bytes, integers, floats, bools, None.
    fn constant(&mut self, op: u8) -> Result<bool> {
        let v = match op {
            b'X' | 0x8c | 0x8d => {
                let n = self.uint(match op {
                    b'X' => 4,
                    0x8c => 1,
                    _ => 8,
                })? as usize;
                self.text(n)?
            }
            b'B' | b'C' => {
                let n = self.uint(if op == b'B' { 4 } else { 1 })? as usize;
                self.take(n)?;
                Value::Other
            }
            b'K' => Value::Int(self.uint(1)? as i64),
            b'M' => Value::Int(self.uint(2)? as i64),
            b'J' => Value::Int(i64::from(self.uint(4)? as u32 as i32)),
            0x8a => {
                let n = self.uint(1)? as usize;
                if n > 8 {
                    return Err(self.err("an integer wider than 64 bits"));
                }
                let bytes = self.take(n)?;
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(bytes);
                if n > 0 && bytes[n - 1] & 0x80 != 0 {
                    b[n..].fill(0xff);
                }
                Value::Int(i64::from_le_bytes(b))
            }
            b'G' => {
                self.take(8)?;
                Value::Other
            }
            0x88 | 0x89 | b'N' => Value::Other,
            _ => return Ok(false),
        };
        self.stack.push(v);
        Ok(true)
    }

    /// Marks, tuples, lists and dicts, and filling them.
    fn container(&mut self, op: u8) -> Result<bool> {
        match op {
            b'}' => self.stack.push(Value::Dict(Rc::new(Vec::new()))),
            b']' => self.stack.push(Value::List(Rc::new(Vec::new()))),
            b')' => self.stack.push(Value::Tuple(Rc::new(Vec::new()))),
            b'(' => self.stack.push(Value::Mark),
            b't' => {
                let items = self.pop_to_mark()?;
                self.stack.push(Value::Tuple(Rc::new(items)));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < n {
                    return Err(self.err("stack underflow"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                if items.iter().any(|v| matches!(v, Value::Mark)) {
                    return Err(self.err("a mark inside a tuple"));
                }
                self.stack.push(Value::Tuple(Rc::new(items)));
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    vec![k, v]
                } else {
                    self.pop_to_mark()?
                };
                if items.len() % 2 != 0 {
                    return Err(self.err("SETITEMS with an odd number of items"));
                }
                let Some(Value::Dict(mut d)) = self.stack.pop() else {
                    return Err(self.err("SETITEM(S) on something that is not a dict"));
                };
                self.own(&mut d)?;
                let dict = Rc::get_mut(&mut d).expect("owned");
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    dict.push((k, v));
                }
                self.stack.push(Value::Dict(d));
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![self.pop()?]
                } else {
                    self.pop_to_mark()?
                };
                let Some(Value::List(mut l)) = self.stack.pop() else {
                    return Err(self.err("APPEND(S) on something that is not a list"));
                };
                self.own(&mut l)?;
                Rc::get_mut(&mut l).expect("owned").extend(items);
                self.stack.push(Value::List(l));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Names (GLOBAL, STACK_GLOBAL: the allow-list), calls (REDUCE), BUILD and storages.
    fn call(&mut self, op: u8) -> Result<bool> {
        let v = match op {
            b'c' => {
                let (module, name) = (self.line()?, self.line()?);
                self.global(&module, &name)?
            }
            0x93 => {
                let (name, module) = (self.pop()?, self.pop()?);
                let (Value::Str(m), Value::Str(n)) = (&module, &name) else {
                    return Err(self.err("STACK_GLOBAL of something that is not a name"));
                };
                self.global(m, n)?
            }
            b'Q' => {
                let pid = self.pop()?;
                self.persistent(pid)?
            }
            b'R' => {
                let args = self.pop()?;
                let func = self.pop()?;
                self.reduce(func, args)?
            }
            b'b' => {
                // The state of an OrderedDict (its `_metadata`): not needed.
                self.pop()?;
                return Ok(true);
            }
            _ => return Ok(false),
        };
        self.stack.push(v);
        Ok(true)
    }

    /// A newline-terminated line (GLOBAL's module and name).
    fn line(&mut self) -> Result<String> {
        let rest = &self.code[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("GLOBAL without its newline"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(s)
    }
}

/// The state dict pickled in `code`: tensor name → tensor.
fn state_dict(path: &Path, code: &[u8]) -> Result<Vec<(String, Rc<TensorRef>)>> {
    let mut m = Machine {
        path,
        code,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        copied: 0,
    };
    let Value::Dict(entries) = m.run()? else {
        return Err(bad(
            path,
            "data.pkl holds no dict of tensors (a whole pickled model or a training checkpoint?)",
        ));
    };
    entries
        .iter()
        .map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Ok((k.to_string(), t.clone())),
            (Value::Str(k), _) => Err(bad(path, format!("entry {k:?} is not a tensor"))),
            _ => Err(bad(path, "a state dict key that is not a string")),
        })
        .collect()
}

/// The tensors of the `torch.save` zip file `file` (at `path`), as a safetensors header would
/// give them: absolute byte ranges in the file.
pub(crate) fn read_torch_zip(path: &Path, file: &File) -> Result<Header> {
    let zip_err = |e: zip::result::ZipError| bad(path, format!("not a readable zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    let pkl = archive
        .file_names()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(str::to_owned)
        .ok_or_else(|| bad(path, "no <archive>/data.pkl: not a torch.save file"))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_owned();
    if let Ok(mut order) = archive.by_name(&format!("{prefix}byteorder")) {
        let mut s = String::new();
        order
            .read_to_string(&mut s)
            .map_err(|e| bad(path, e.to_string()))?;
        if s.trim() != "little" {
            return Err(bad(
                path,
                format!("byte order {s:?}: only little-endian is read"),
            ));
        }
    }
    let code = {
        let entry = archive.by_name(&pkl).map_err(zip_err)?;
        if entry.size() > MAX_PICKLE {
            return Err(bad(
                path,
                format!("data.pkl is {} bytes, over the limit", entry.size()),
            ));
        }
        let mut code = Vec::with_capacity(entry.size() as usize);
        entry
            .take(MAX_PICKLE)
            .read_to_end(&mut code)
            .map_err(|e| bad(path, format!("data.pkl: {e}")))?;
        code
    };
    let dict = state_dict(path, &code)?;
    // Each storage's place in the file.
    let mut storages: HashMap<Rc<str>, (u64, u64)> = HashMap::new();
    let mut tensors = Vec::with_capacity(dict.len());
    for (name, t) in dict {
        let (start, len) = match storages.get(&t.key) {
            Some(s) => *s,
            None => {
                let entry_name = format!("{prefix}data/{}", t.key);
                let entry = archive.by_name(&entry_name).map_err(|e| {
                    bad(path, format!("tensor {name:?}: storage {entry_name}: {e}"))
                })?;
                if entry.compression() != zip::CompressionMethod::Stored {
                    return Err(bad(
                        path,
                        format!(
                            "storage {entry_name} is compressed: torch.save stores them uncompressed"
                        ),
                    ));
                }
                let s = (entry.data_start(), entry.size());
                storages.insert(t.key.clone(), s);
                s
            }
        };
        let size = t.dtype.size() as u64;
        let numel = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let range = numel
            .and_then(|n| n.checked_mul(size))
            .zip((t.offset as u64).checked_mul(size))
            .and_then(|(bytes, off)| Some((off, off.checked_add(bytes)?)))
            .filter(|(_, end)| *end <= len)
            .ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "tensor {name:?} ({:?} at element {}) lies beyond its storage of {len} bytes",
                        t.shape, t.offset
                    ),
                )
            })?;
        tensors.push(RawTensor {
            name,
            dtype: t.dtype,
            shape: t.shape.clone(),
            begin: start + range.0,
            end: start + range.1,
        });
    }
    if let Some(dup) = crate::header::first_duplicate(tensors.iter().map(|t| t.name.as_str())) {
        return Err(Error::DuplicateTensor {
            path: path.into(),
            tensor: dup.into(),
        });
    }
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if tensors.iter().any(|t| t.end > file_len) {
        return Err(bad(path, "a tensor lies beyond the end of the file"));
    }
    Ok(Header {
        data_start: 0,
        tensors,
        metadata: BTreeMap::from([("format".to_owned(), "pt".to_owned())]),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::Checkpoint;

    /// One tensor of a hand-written state dict: name, storage class, key, offset, size, stride.
    type Entry<'a> = (&'a str, &'a str, &'a str, u8, &'a [u8], &'a [u8]);

    fn text(op: &mut Vec<u8>, s: &str) {
        op.push(b'X');
        op.extend_from_slice(&(s.len() as u32).to_le_bytes());
        op.extend_from_slice(s.as_bytes());
    }

    fn ints(op: &mut Vec<u8>, v: &[u8]) {
        op.push(b'(');
        for i in v {
            op.extend_from_slice(&[b'K', *i]);
        }
        op.push(b't');
    }

    /// The pickle `torch.save` writes for `entries` (protocol 2), as written by hand.
    fn pickle(entries: &[Entry]) -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend_from_slice(b"ccollections\nOrderedDict\n)R");
        for (name, class, key, offset, size, stride) in entries {
            text(&mut p, name);
            p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            p.push(b'(');
            text(&mut p, "storage");
            p.extend_from_slice(format!("ctorch\n{class}\n").as_bytes());
            text(&mut p, key);
            text(&mut p, "cpu");
            p.extend_from_slice(&[b'K', 6, b't', b'Q', b'K', *offset]);
            ints(&mut p, size);
            ints(&mut p, stride);
            p.push(0x89);
            p.extend_from_slice(b"ccollections\nOrderedDict\n)R");
            p.extend_from_slice(b"tRs");
        }
        p.push(b'.');
        p
    }

    /// A `torch.save` zip of `pkl` with storage "0" holding `data`.
    fn torch_zip(dir: &Path, pkl: &[u8], data: &[u8]) -> std::path::PathBuf {
        let path = dir.join("pytorch_model.bin");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let stored =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [
            ("archive/data.pkl", pkl),
            ("archive/byteorder", b"little".as_slice()),
            ("archive/data/0", data),
        ] {
            z.start_file(name, stored).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
        path
    }

    fn floats(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn a_hand_written_state_dict_reads_in_place() {
        let dir = tempfile::tempdir().unwrap();
        // w: [2, 3] at element 0; b: [2] at element 4 of the same storage (shared, as tied
        // weights are).
        let pkl = pickle(&[
            ("w", "FloatStorage", "0", 0, &[2, 3], &[3, 1]),
            ("b", "FloatStorage", "0", 4, &[2], &[1]),
        ]);
        let path = torch_zip(dir.path(), &pkl, &floats(&[0., 1., 2., 3., 4., 5.]));
        let ckpt = Checkpoint::open(&path).unwrap();
        assert_eq!(ckpt.read_f32("w").unwrap(), [0., 1., 2., 3., 4., 5.]);
        assert_eq!(ckpt.read_f32("b").unwrap(), [4., 5.]);
        assert_eq!(ckpt.info("w").unwrap().dtype, Dtype::F32);
        // The directory form.
        assert_eq!(Checkpoint::open(dir.path()).unwrap().tensors().len(), 2);
    }

    #[test]
    fn what_is_not_a_plain_state_dict_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = floats(&[0.; 6]);
        let refused = |pkl: &[u8], needle: &str| {
            let path = torch_zip(dir.path(), pkl, &data);
            let e = Checkpoint::open(&path).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("pytorch_model.bin"),
                "{needle}: {e}"
            );
        };
        // A global that pickle would import and call.
        let mut hostile = vec![0x80, 2];
        hostile.extend_from_slice(b"cos\nsystem\n");
        text(&mut hostile, "touch /tmp/x");
        hostile.extend_from_slice(b"\x85R.");
        refused(&hostile, "refers to os.system");
        // A builtin, by STACK_GLOBAL.
        let mut builtin = vec![0x80, 4];
        text(&mut builtin, "builtins");
        text(&mut builtin, "open");
        builtin.extend_from_slice(b"\x93.");
        refused(&builtin, "refers to builtins.open");
        // A transposed view.
        refused(
            &pickle(&[("t", "FloatStorage", "0", 0, &[3, 2], &[1, 3])]),
            "not contiguous",
        );
        // Past the storage's end.
        refused(
            &pickle(&[("w", "FloatStorage", "0", 4, &[2, 3], &[3, 1])]),
            "lies beyond its storage",
        );
        // Not a dict of tensors.
        refused(b"\x80\x02K\x01.", "no dict of tensors");
        refused(
            b"\x80\x02}X\x01\x00\x00\x00aK\x01s.",
            "entry \"a\" is not a tensor",
        );
        // An unknown storage type, an unknown opcode, a cut-off pickle.
        refused(
            &pickle(&[("w", "QInt8Storage", "0", 0, &[6], &[1])]),
            "refers to torch.QInt8Storage",
        );
        refused(b"\x80\x02\xff", "opcode 0xff");
        refused(
            &pickle(&[("w", "FloatStorage", "0", 0, &[6], &[1])])[..40],
            "data.pkl",
        );
    }

    #[test]
    fn damaged_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let pkl = pickle(&[("w", "FloatStorage", "0", 0, &[6], &[1])]);
        let path = torch_zip(dir.path(), &pkl, &floats(&[0.; 6]));
        let bytes = std::fs::read(&path).unwrap();
        // Cut short: the zip's directory (at its end) is gone.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = Checkpoint::open(&path).unwrap_err().to_string();
        assert!(e.contains("pytorch_model.bin") && e.contains("zip"), "{e}");
        // The legacy format (a bare pickle stream).
        std::fs::write(&path, b"\x80\x02\x8a\x0alegacy").unwrap();
        let e = Checkpoint::open(&path).unwrap_err().to_string();
        assert!(e.contains("legacy torch.save format"), "{e}");
    }
}
