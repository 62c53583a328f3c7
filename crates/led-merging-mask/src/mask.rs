//! The mask type of one tensor: a roaring bitmap over its `len` elements. Set algebra reads
//! like the spec (`elected = &base_top & &ft_top; kept = &elected - &others`), storage is
//! compact at any density, and the serialized form is roaring's portable format.

use std::io::{Read, Write};
use std::ops::{BitAnd, BitOr, Not, Sub};

use roaring::RoaringBitmap;

use crate::dense::DenseMask;
use crate::error::{Error, Result};

/// Largest tensor a mask can cover (roaring indexes elements with `u32`).
pub const MAX_MASK_LEN: usize = u32::MAX as usize;

/// Magic bytes that start a serialized [`Mask`].
const MAGIC: &[u8; 4] = b"LEDM";
/// Serialization format version.
const VERSION: u8 = 1;

/// A set of element indices of one tensor of `len` elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    len: usize,
    bits: RoaringBitmap,
}

impl Mask {
    /// The empty set over `len` elements. Panics if `len` > [`MAX_MASK_LEN`].
    pub fn empty(len: usize) -> Self {
        assert!(
            len <= MAX_MASK_LEN,
            "mask of {len} elements is beyond {MAX_MASK_LEN}"
        );
        Mask {
            len,
            bits: RoaringBitmap::new(),
        }
    }

    /// Every element of a tensor of `len` elements.
    pub fn full(len: usize) -> Self {
        let mut m = Mask::empty(len);
        m.bits.insert_range(0..len as u32);
        m
    }

    /// From element indices; `None` if one is `>= len`.
    pub fn from_indices(len: usize, indices: impl IntoIterator<Item = u32>) -> Option<Self> {
        let mut m = Mask::empty(len);
        for i in indices {
            if i as usize >= len {
                return None;
            }
            m.bits.insert(i);
        }
        Some(m)
    }

    /// From a dense mask: built from its words as LSB-first bytes (never element by element).
    pub fn from_dense(tensor: &str, dense: &DenseMask) -> Result<Self> {
        if dense.len() > MAX_MASK_LEN {
            return Err(Error::TooLarge {
                tensor: tensor.into(),
                len: dense.len(),
            });
        }
        let bytes: &[u8] = bytemuck::cast_slice(dense.words());
        let bytes = if cfg!(target_endian = "little") {
            std::borrow::Cow::Borrowed(bytes)
        } else {
            std::borrow::Cow::Owned(dense.words().iter().flat_map(|w| w.to_le_bytes()).collect())
        };
        Ok(Mask {
            len: dense.len(),
            bits: RoaringBitmap::from_lsb0_bytes(0, &bytes),
        })
    }

    /// As a dense mask.
    pub fn to_dense(&self) -> DenseMask {
        let mut words = vec![0u64; self.len.div_ceil(64)];
        let mut iter = self.bits.iter();
        let mut buf = [0u32; 4096];
        loop {
            let got = iter.next_many(&mut buf);
            if got.is_empty() {
                break;
            }
            for &i in got.iter() {
                words[i as usize / 64] |= 1 << (i % 64);
            }
        }
        DenseMask::from_words(self.len, words).expect("word count from len")
    }

    /// Number of elements of the tensor (the universe), not of the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of elements in the set.
    pub fn count(&self) -> u64 {
        self.bits.len()
    }

    /// Whether element `i` is in the set.
    pub fn contains(&self, i: u32) -> bool {
        self.bits.contains(i)
    }

    /// The elements, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter()
    }

    /// The underlying bitmap.
    pub fn bitmap(&self) -> &RoaringBitmap {
        &self.bits
    }

    /// |self ∩ other| without building the intersection.
    pub fn intersection_len(&self, other: &Mask) -> u64 {
        self.bits.intersection_len(&other.bits)
    }

    /// |self ∪ other| without building the union.
    pub fn union_len(&self, other: &Mask) -> u64 {
        self.bits.union_len(&other.bits)
    }

    /// Jaccard index |A ∩ B| / |A ∪ B|; 1 for two empty sets (they are equal).
    pub fn jaccard(&self, other: &Mask) -> f64 {
        crate::jaccard::jaccard_from_counts(self.intersection_len(other), self.union_len(other))
    }

    /// Bytes [`Mask::serialize_into`] writes.
    pub fn serialized_size(&self) -> usize {
        MAGIC.len() + 1 + 8 + self.bits.serialized_size()
    }

    /// Write `LEDM`, a version byte, `len` as u64 LE, then the bitmap in roaring's portable
    /// format (readable by CRoaring, Java and Go roaring).
    pub fn serialize_into<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&[VERSION])?;
        w.write_all(&(self.len as u64).to_le_bytes())?;
        self.bits.serialize_into(w)
    }

    /// Read what [`Mask::serialize_into`] wrote, checking every element is `< len`.
    pub fn deserialize_from<R: Read>(mut r: R) -> Result<Self> {
        let bad = |m: String| Error::BadMaskData(m);
        let mut head = [0u8; 13];
        r.read_exact(&mut head)
            .map_err(|e| bad(format!("header: {e}")))?;
        if &head[..4] != MAGIC {
            return Err(bad("not a led mask (magic bytes differ)".into()));
        }
        if head[4] != VERSION {
            return Err(bad(format!("unsupported version {}", head[4])));
        }
        let len = u64::from_le_bytes(head[5..13].try_into().expect("8 bytes"));
        if len > MAX_MASK_LEN as u64 {
            return Err(bad(format!("length {len} is beyond {MAX_MASK_LEN}")));
        }
        let bits = RoaringBitmap::deserialize_from(r).map_err(|e| bad(format!("bitmap: {e}")))?;
        if bits.max().is_some_and(|m| u64::from(m) >= len) {
            return Err(bad(format!(
                "element {} is outside a tensor of {len}",
                bits.max().unwrap_or(0)
            )));
        }
        Ok(Mask {
            len: len as usize,
            bits,
        })
    }

    fn same_len(&self, other: &Mask) {
        assert_eq!(self.len, other.len, "masks over tensors of different sizes");
    }
}

impl BitAnd for &Mask {
    type Output = Mask;
    /// Intersection. Panics on masks of different lengths.
    fn bitand(self, rhs: &Mask) -> Mask {
        self.same_len(rhs);
        Mask {
            len: self.len,
            bits: &self.bits & &rhs.bits,
        }
    }
}

impl BitOr for &Mask {
    type Output = Mask;
    /// Union. Panics on masks of different lengths.
    fn bitor(self, rhs: &Mask) -> Mask {
        self.same_len(rhs);
        Mask {
            len: self.len,
            bits: &self.bits | &rhs.bits,
        }
    }
}

impl Sub for &Mask {
    type Output = Mask;
    /// Difference. Panics on masks of different lengths.
    fn sub(self, rhs: &Mask) -> Mask {
        self.same_len(rhs);
        Mask {
            len: self.len,
            bits: &self.bits - &rhs.bits,
        }
    }
}

impl Not for &Mask {
    type Output = Mask;
    /// Complement within the tensor's `len` elements.
    fn not(self) -> Mask {
        &Mask::full(self.len) - self
    }
}
