//! Part geometry: how a tensor is cut into parts of whole rows (first dimension) when it is
//! larger than the part size and its method allows it.

use std::ops::Range;

use crate::error::Result;
use crate::ops::{Chunking, MergeMethod, TensorSetup, TensorStream};

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

/// How one tensor is merged: its chunking and its parts (one when whole).
pub(crate) struct Layout {
    /// What the method allows (element by element when the tensor fits in one part).
    pub chunking: Chunking,
    /// Row ranges, in order.
    pub parts: Vec<Range<usize>>,
}

impl Layout {
    /// Tensor `t`'s layout for `method` with parts of `chunk_elements`.
    pub(crate) fn of(method: &dyn MergeMethod, t: &TensorSetup<'_>, chunk_elements: usize) -> Self {
        let per = rows_per_part(t.shape, chunk_elements);
        let rows = rows_of(t.shape).0;
        let chunking = if per < rows && !t.models.is_empty() {
            method.chunking(t)
        } else {
            Chunking::Elementwise
        };
        let parts = row_parts(
            t.shape,
            if chunking == Chunking::Whole {
                rows
            } else {
                per
            },
        );
        Layout { chunking, parts }
    }

    /// The method's stream over this tensor's parts, when it is merged in parts and needs one.
    pub(crate) fn stream(
        &self,
        method: &dyn MergeMethod,
        t: &TensorSetup<'_>,
    ) -> Result<Option<Box<dyn TensorStream>>> {
        match self.chunking {
            Chunking::Streamed if self.parts.len() > 1 => method.stream(t).map(Some),
            _ => Ok(None),
        }
    }
}
