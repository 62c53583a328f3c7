//! Writing a score checkpoint: one f32 tensor per scored weight, with the run's metadata;
//! shared by `led locate` and `led scores sum`.

use std::path::Path;

use led_merging_io::{CheckpointWriter, ScoreMetadata, TensorSpec, WriterOptions};

use crate::{Error, Result};

/// A writer of the score file `out`: one f32 tensor per spec, in any order.
pub(crate) fn score_writer(
    out: &Path,
    record: &ScoreMetadata,
    overwrite: bool,
    specs: Vec<TensorSpec>,
) -> Result<CheckpointWriter> {
    Ok(CheckpointWriter::create_file(
        out,
        specs,
        WriterOptions {
            overwrite,
            metadata: record.to_map(),
            ..Default::default()
        },
    )?)
}

/// Write one tensor's scores, refusing non-finite values.
pub(crate) fn write_score(
    writer: &CheckpointWriter,
    out: &Path,
    name: &str,
    values: &[f32],
) -> Result<()> {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::Model(
            out.to_path_buf(),
            format!("score of tensor {name:?} is not finite at element {i}"),
        ));
    }
    Ok(writer.write_f32(name, values)?)
}
