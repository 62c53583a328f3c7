//! Part geometry: how a tensor is cut into parts of whole rows (first dimension) when it is
//! larger than the part size and its method allows it.

use std::ops::Range;

use crate::error::Result;
use crate::ops::{Chunking, MergeMethod, TensorSetup, TensorStream};
use crate::options::{BLOCK_ELEMENTS, RunOptions};

/// Rows (first dimension; a scalar is one row) and elements per row of `shape`.
pub(crate) fn rows_of(shape: &[usize]) -> (usize, usize) {
    let rows = shape.first().copied().unwrap_or(1);
    let numel: usize = shape.iter().product();
    (rows, numel.checked_div(rows).unwrap_or(0))
}

/// `shape` with its first dimension cut to `rows`: the shape of a part.
pub(crate) fn part_shape(shape: &[usize], rows: usize) -> Vec<usize> {
    let mut shape = shape.to_vec();
    if let Some(first) = shape.first_mut() {
        *first = rows;
    }
    shape
}

/// Consecutive row ranges of at most `per` rows covering `shape`.
pub(crate) fn row_parts(shape: &[usize], per: usize) -> Vec<Range<usize>> {
    let rows = rows_of(shape).0.max(1);
    (0..rows)
        .step_by(per.max(1))
        .map(|s| s..(s + per).min(rows))
        .collect()
}

/// Rows per part of a tensor of `shape`: all of them unless it has more than `chunk_elements`.
pub(crate) fn rows_per_part(shape: &[usize], chunk_elements: usize) -> usize {
    let (rows, row) = rows_of(shape);
    let numel: usize = shape.iter().product();
    if numel > chunk_elements && row > 0 {
        (chunk_elements / row).clamp(1, rows)
    } else {
        rows.max(1)
    }
}

/// How one tensor is merged: its chunking and its parts.
pub(crate) struct Layout {
    /// What the method allows (element by element when no model holds the tensor).
    pub chunking: Chunking,
    /// Row ranges, in order: blocks for an element-by-element method, else parts within the
    /// memory budget (one when the tensor fits or the method needs it whole).
    pub parts: Vec<Range<usize>>,
    /// Whether the parts may be merged in any order, at once (element by element).
    pub parallel: bool,
    /// Merged whole although larger than a part: run alone, after the others.
    pub oversized: bool,
}

impl Layout {
    /// Tensor `t`'s layout for `method` with `options`' part size.
    pub(crate) fn of(method: &dyn MergeMethod, t: &TensorSetup<'_>, options: &RunOptions) -> Self {
        let part = options.part_elements(t.models.len() + 1);
        let rows = rows_of(t.shape).0;
        let chunking = if t.models.is_empty() {
            Chunking::Elementwise
        } else {
            method.chunking(t)
        };
        let per = rows_per_part(t.shape, part);
        let (per_part, parallel) = match chunking {
            Chunking::Elementwise => (rows_per_part(t.shape, part.min(BLOCK_ELEMENTS)), true),
            Chunking::Whole => (rows, false),
            Chunking::Streamed => (rows_per_part(t.shape, part.min(BLOCK_ELEMENTS)), false),
            Chunking::StreamedIfLarge => (per, false),
        };
        Layout {
            chunking,
            parts: row_parts(t.shape, per_part),
            parallel,
            oversized: chunking == Chunking::Whole && per < rows,
        }
    }

    /// The method's stream over this tensor's parts, when it is merged in parts and needs one.
    pub(crate) fn stream(
        &self,
        method: &dyn MergeMethod,
        t: &TensorSetup<'_>,
    ) -> Result<Option<Box<dyn TensorStream>>> {
        match self.chunking {
            Chunking::Streamed | Chunking::StreamedIfLarge if self.parts.len() > 1 => {
                method.stream(t).map(Some)
            }
            _ => Ok(None),
        }
    }
}
