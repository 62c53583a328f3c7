//! Element types of safetensors files and their conversion to and from `f32`.

use std::fmt;

use half::{bf16, f16};
use rayon::prelude::*;

/// A safetensors element type, named as in the format's header (`"BF16"`, `"F32"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Dtype {
    /// Boolean, one byte.
    Bool,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// 8-bit float, 5 exponent bits.
    F8E5M2,
    /// 8-bit float, 4 exponent bits.
    F8E4M3,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
}

impl Dtype {
    /// Parse the header spelling (`"BF16"`). Returns `None` for anything else.
    pub fn from_safetensors(s: &str) -> Option<Self> {
        Some(match s {
            "BOOL" => Dtype::Bool,
            "U8" => Dtype::U8,
            "I8" => Dtype::I8,
            "I16" => Dtype::I16,
            "U16" => Dtype::U16,
            "I32" => Dtype::I32,
            "U32" => Dtype::U32,
            "I64" => Dtype::I64,
            "U64" => Dtype::U64,
            "F8_E5M2" => Dtype::F8E5M2,
            "F8_E4M3" => Dtype::F8E4M3,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "F32" => Dtype::F32,
            "F64" => Dtype::F64,
            _ => return None,
        })
    }

    /// The header spelling.
    pub fn as_safetensors(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
        }
    }

    /// Parse a user- or config-facing name: safetensors spellings and PyTorch's
    /// (`bfloat16`, `float16`, `half`, `float32`, `float`, `float64`), case-insensitive.
    pub fn parse(s: &str) -> Option<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let lower = lower.strip_prefix("torch.").unwrap_or(&lower);
        Some(match lower {
            "bf16" | "bfloat16" => Dtype::BF16,
            "f16" | "fp16" | "float16" | "half" => Dtype::F16,
            "f32" | "fp32" | "float32" | "float" => Dtype::F32,
            "f64" | "fp64" | "float64" | "double" => Dtype::F64,
            _ => return Self::from_safetensors(&s.trim().to_ascii_uppercase()),
        })
    }

    /// The name PyTorch and `config.json`'s `torch_dtype` use.
    pub fn torch_name(self) -> &'static str {
        match self {
            Dtype::Bool => "bool",
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::U16 => "uint16",
            Dtype::I32 => "int32",
            Dtype::U32 => "uint32",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
            Dtype::F8E5M2 => "float8_e5m2",
            Dtype::F8E4M3 => "float8_e4m3fn",
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }

    /// Whether elements of this type can be read as `f32` ([`decode_f32`]).
    pub fn readable_as_f32(self) -> bool {
        !matches!(self, Dtype::F8E5M2 | Dtype::F8E4M3)
    }

    /// Whether `f32` values can be written in this type ([`encode_f32`]).
    pub fn writable_from_f32(self) -> bool {
        matches!(self, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Dtype::F8E5M2 | Dtype::F8E4M3 | Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64
        )
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_safetensors())
    }
}

/// Elements per parallel work item; small tensors are converted on the calling thread.
const PAR_CHUNK: usize = 1 << 18;

fn decode_serial(dtype: Dtype, bytes: &[u8], out: &mut [f32]) {
    macro_rules! each {
        ($n:literal, |$b:ident| $conv:expr) => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                let $b: [u8; $n] = c.try_into().unwrap();
                *o = $conv;
            }
        };
    }
    match dtype {
        Dtype::F32 => each!(4, |b| f32::from_le_bytes(b)),
        Dtype::BF16 => each!(2, |b| f32::from_bits(
            u32::from(u16::from_le_bytes(b)) << 16
        )),
        Dtype::F16 => each!(2, |b| f16::from_bits(u16::from_le_bytes(b)).to_f32()),
        Dtype::F64 => each!(8, |b| f64::from_le_bytes(b) as f32),
        Dtype::Bool => each!(1, |b| if b[0] != 0 { 1.0 } else { 0.0 }),
        Dtype::U8 => each!(1, |b| f32::from(b[0])),
        Dtype::I8 => each!(1, |b| f32::from(b[0] as i8)),
        Dtype::I16 => each!(2, |b| f32::from(i16::from_le_bytes(b))),
        Dtype::U16 => each!(2, |b| f32::from(u16::from_le_bytes(b))),
        Dtype::I32 => each!(4, |b| i32::from_le_bytes(b) as f32),
        Dtype::U32 => each!(4, |b| u32::from_le_bytes(b) as f32),
        Dtype::I64 => each!(8, |b| i64::from_le_bytes(b) as f32),
        Dtype::U64 => each!(8, |b| u64::from_le_bytes(b) as f32),
        Dtype::F8E5M2 | Dtype::F8E4M3 => unreachable!("checked by decode_f32"),
    }
}

/// Convert little-endian elements of `dtype` in `bytes` to `f32` in `out`
/// (`bytes.len() == out.len() * dtype.size()`), in parallel for large inputs.
///
/// Floats convert exactly (F64 rounds to nearest); integers convert exactly up to 2^24 in
/// magnitude and round beyond. Returns `false` (and writes nothing) for a dtype that
/// [`Dtype::readable_as_f32`] rejects or mismatched lengths.
pub fn decode_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32]) -> bool {
    let size = dtype.size();
    if !dtype.readable_as_f32() || bytes.len() != out.len() * size {
        return false;
    }
    if out.len() <= PAR_CHUNK {
        decode_serial(dtype, bytes, out);
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(bytes.par_chunks(PAR_CHUNK * size))
            .for_each(|(o, b)| decode_serial(dtype, b, o));
    }
    true
}

fn encode_serial(dtype: Dtype, values: &[f32], out: &mut [u8]) {
    macro_rules! each {
        ($n:literal, |$v:ident| $conv:expr) => {
            for (c, &$v) in out.chunks_exact_mut($n).zip(values) {
                c.copy_from_slice(&$conv);
            }
        };
    }
    match dtype {
        Dtype::F32 => each!(4, |v| v.to_le_bytes()),
        // half's conversions round to nearest, ties to even, and keep NaN a NaN: as PyTorch.
        Dtype::BF16 => each!(2, |v| bf16::from_f32(v).to_bits().to_le_bytes()),
        Dtype::F16 => each!(2, |v| f16::from_f32(v).to_bits().to_le_bytes()),
        Dtype::F64 => each!(8, |v| f64::from(v).to_le_bytes()),
        _ => unreachable!("checked by encode_f32"),
    }
}

/// Convert `values` to little-endian `dtype` elements in `out`
/// (`out.len() == values.len() * dtype.size()`), rounding to nearest, ties to even.
/// Returns `false` (and writes nothing) for a dtype that [`Dtype::writable_from_f32`]
/// rejects or mismatched lengths.
pub fn encode_f32(dtype: Dtype, values: &[f32], out: &mut [u8]) -> bool {
    let size = dtype.size();
    if !dtype.writable_from_f32() || out.len() != values.len() * size {
        return false;
    }
    if values.len() <= PAR_CHUNK {
        encode_serial(dtype, values, out);
    } else {
        out.par_chunks_mut(PAR_CHUNK * size)
            .zip(values.par_chunks(PAR_CHUNK))
            .for_each(|(o, v)| encode_serial(dtype, v, o));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_bits(v: f32) -> u16 {
        let mut out = [0u8; 2];
        assert!(encode_f32(Dtype::BF16, &[v], &mut out));
        u16::from_le_bytes(out)
    }

    #[test]
    fn bf16_round_to_nearest_even_hand_checked() {
        // 1.0 = 0x3F800000 → 0x3F80 exactly.
        assert_eq!(bf16_bits(1.0), 0x3F80);
        // 0x3F808000 is exactly halfway between 0x3F80 and 0x3F81: ties to even → 0x3F80.
        assert_eq!(bf16_bits(f32::from_bits(0x3F80_8000)), 0x3F80);
        // 0x3F818000 is halfway between 0x3F81 and 0x3F82: ties to even → 0x3F82.
        assert_eq!(bf16_bits(f32::from_bits(0x3F81_8000)), 0x3F82);
        // Just above halfway rounds up.
        assert_eq!(bf16_bits(f32::from_bits(0x3F80_8001)), 0x3F81);
        // Just below halfway rounds down.
        assert_eq!(bf16_bits(f32::from_bits(0x3F80_7FFF)), 0x3F80);
        // -2.5 = 0xC0200000 → 0xC020.
        assert_eq!(bf16_bits(-2.5), 0xC020);
        // Largest finite f32 rounds up to +inf in bf16 (0x7F7FFFFF → 0x7F80).
        assert_eq!(bf16_bits(f32::MAX), 0x7F80);
        assert_eq!(bf16_bits(f32::INFINITY), 0x7F80);
        assert_eq!(bf16_bits(-0.0), 0x8000);
        // NaN stays NaN (quiet bit set), never becomes inf.
        let nan = bf16_bits(f32::NAN);
        assert_eq!(nan & 0x7F80, 0x7F80);
        assert_ne!(nan & 0x007F, 0);
        // Subnormal 0x00010000 is exactly representable.
        assert_eq!(bf16_bits(f32::from_bits(0x0001_0000)), 0x0001);
    }

    #[test]
    fn f16_hand_checked() {
        let mut out = [0u8; 2];
        for (v, bits) in [
            (1.0f32, 0x3C00u16),
            (-2.0, 0xC000),
            (65504.0, 0x7BFF),
            (65520.0, 0x7C00), // halfway to the next binade step: rounds to even = inf
            (1.0 + 1.0 / 2048.0, 0x3C00), // halfway between 1 and 1+2^-10: ties to even
            (5.960_464_5e-8, 0x0001), // smallest subnormal
        ] {
            assert!(encode_f32(Dtype::F16, &[v], &mut out));
            assert_eq!(u16::from_le_bytes(out), bits, "{v}");
        }
    }

    #[test]
    fn decode_every_readable_dtype() {
        let cases: Vec<(Dtype, Vec<u8>, Vec<f32>)> = vec![
            (
                Dtype::F32,
                [1.5f32, -2.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![1.5, -2.0],
            ),
            (Dtype::BF16, vec![0x80, 0x3F, 0x20, 0xC0], vec![1.0, -2.5]),
            (Dtype::F16, vec![0x00, 0x3C, 0x00, 0xC0], vec![1.0, -2.0]),
            (
                Dtype::F64,
                [0.25f64, -8.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![0.25, -8.0],
            ),
            (Dtype::Bool, vec![0, 1, 7], vec![0.0, 1.0, 1.0]),
            (Dtype::U8, vec![0, 255], vec![0.0, 255.0]),
            (Dtype::I8, vec![0x80, 0x7F], vec![-128.0, 127.0]),
            (Dtype::I16, (-300i16).to_le_bytes().to_vec(), vec![-300.0]),
            (Dtype::U16, 60000u16.to_le_bytes().to_vec(), vec![60000.0]),
            (
                Dtype::I32,
                (-70000i32).to_le_bytes().to_vec(),
                vec![-70000.0],
            ),
            (Dtype::U32, 70000u32.to_le_bytes().to_vec(), vec![70000.0]),
            (Dtype::I64, (-5i64).to_le_bytes().to_vec(), vec![-5.0]),
            (Dtype::U64, 9u64.to_le_bytes().to_vec(), vec![9.0]),
        ];
        for (dtype, bytes, want) in cases {
            let mut out = vec![0.0; want.len()];
            assert!(decode_f32(dtype, &bytes, &mut out), "{dtype}");
            assert_eq!(out, want, "{dtype}");
        }
        let mut out = [0.0f32; 1];
        assert!(!decode_f32(Dtype::F8E4M3, &[0], &mut out));
        assert!(!decode_f32(Dtype::F32, &[0, 0], &mut out));
    }

    #[test]
    fn parallel_and_serial_paths_agree() {
        let n = PAR_CHUNK * 3 + 17;
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        for dtype in [Dtype::F32, Dtype::BF16, Dtype::F16, Dtype::F64] {
            let mut bytes = vec![0u8; n * dtype.size()];
            assert!(encode_f32(dtype, &values, &mut bytes));
            let mut serial = vec![0u8; n * dtype.size()];
            encode_serial(dtype, &values, &mut serial);
            assert_eq!(bytes, serial, "{dtype}");
            let mut back = vec![0.0; n];
            assert!(decode_f32(dtype, &bytes, &mut back));
            let mut back_serial = vec![0.0; n];
            decode_serial(dtype, &bytes, &mut back_serial);
            assert_eq!(back, back_serial, "{dtype}");
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!(Dtype::parse("bfloat16"), Some(Dtype::BF16));
        assert_eq!(Dtype::parse("torch.float16"), Some(Dtype::F16));
        assert_eq!(Dtype::parse("F32"), Some(Dtype::F32));
        assert_eq!(Dtype::parse("i64"), Some(Dtype::I64));
        assert_eq!(Dtype::parse("float8"), None);
        for d in [Dtype::Bool, Dtype::F8E4M3, Dtype::BF16, Dtype::U64] {
            assert_eq!(Dtype::from_safetensors(d.as_safetensors()), Some(d));
        }
    }
}
