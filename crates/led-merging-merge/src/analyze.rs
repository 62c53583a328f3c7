//! The paper's overlap analysis (Fig. 4): Jaccard indices between the top-r sets of two score
//! checkpoints, per layer and tensor kind.

use led_merging_io::Checkpoint;
use led_merging_mask::{DenseMask, JaccardTable, StreamingThreshold, overlap_counts, top_set};

use crate::error::{Error, Result};
use crate::options::DEFAULT_CHUNK_ELEMENTS as PART;

/// Jaccard indices of the top-`ratio` sets of `a` and `b`, over the tensors both hold (with
/// equal shapes; a shape mismatch is an error naming the tensor).
pub fn overlap_table(a: &Checkpoint, b: &Checkpoint, ratio: f64) -> Result<JaccardTable> {
    overlap_table_in_parts(a, b, ratio, PART)
}

/// [`overlap_table`] with tensors of more than `part` elements read `part` elements at a time
/// (their thresholds streamed first), so memory stays bounded; the result is the same.
pub fn overlap_table_in_parts(
    a: &Checkpoint,
    b: &Checkpoint,
    ratio: f64,
    part: usize,
) -> Result<JaccardTable> {
    let part = part.max(1);
    let mut table = JaccardTable::new();
    let mut problems = Vec::new();
    for t in a.tensors() {
        let Some(u) = b.get(&t.name) else { continue };
        if u.shape != t.shape {
            problems.push(format!(
                "tensor {:?} is {:?} in {} but {:?} in {}",
                t.name,
                t.shape,
                a.path().display(),
                u.shape,
                b.path().display()
            ));
            continue;
        }
        let n = t.numel();
        if n <= part {
            let (_, ma) = top_set(&t.name, &a.read_f32(&t.name)?, ratio)?;
            let (_, mb) = top_set(&t.name, &b.read_f32(&t.name)?, ratio)?;
            let (inter, union) = overlap_counts(&ma, &mb);
            table.add(&t.name, inter, union);
            continue;
        }
        // A large tensor: thresholds streamed over parts, then the sets counted part by part
        // (bounded memory; the same result as in memory).
        let parts: Vec<_> = (0..n).step_by(part).map(|s| s..(s + part).min(n)).collect();
        let cutoff = |c: &Checkpoint| -> Result<f32> {
            let select = StreamingThreshold::new(&t.name, n, ratio)?;
            let select = crate::sparsify::select_over_parts(select, &parts, |r| {
                Ok(c.read_f32_range(&t.name, r)?)
            })?;
            Ok(select.finish().cutoff())
        };
        let (ca, cb) = (cutoff(a)?, cutoff(b)?);
        let (mut inter, mut union) = (0, 0);
        for r in &parts {
            let ma = DenseMask::from_cutoff(&a.read_f32_range(&t.name, r.clone())?, ca);
            let mb = DenseMask::from_cutoff(&b.read_f32_range(&t.name, r.clone())?, cb);
            let (i, u) = overlap_counts(&ma, &mb);
            inter += i;
            union += u;
        }
        table.add(&t.name, inter, union);
    }
    if !problems.is_empty() {
        return Err(Error::Incompatible { problems });
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_in_parts_equals_overlap_in_memory() {
        use led_merging_io::{CheckpointWriter, Dtype, TensorSpec, WriterOptions};
        let dir = tempfile::tempdir().unwrap();
        let specs = vec![
            TensorSpec::new("model.layers.0.mlp.up_proj.weight", Dtype::F32, [16, 8]),
            TensorSpec::new("model.layers.1.self_attn.q_proj.weight", Dtype::F32, [8, 8]),
            TensorSpec::new("model.norm.weight", Dtype::F32, [8]),
        ];
        let files: Vec<Checkpoint> = (0..2u64)
            .map(|k| {
                let path = dir.path().join(format!("s{k}.safetensors"));
                let w =
                    CheckpointWriter::create_file(&path, specs.clone(), WriterOptions::default())
                        .unwrap();
                for s in &specs {
                    // Few distinct values (ties) and zeros, as real scores have.
                    let v: Vec<f32> = (0..s.numel() as u64)
                        .map(|i| ((i * (k + 3) * 2654435761) % 7) as f32)
                        .collect();
                    w.write_f32(&s.name, &v).unwrap();
                }
                w.finish().unwrap();
                Checkpoint::open(&path).unwrap()
            })
            .collect();
        for ratio in [0.1, 0.3, 0.9] {
            let whole = overlap_table(&files[0], &files[1], ratio).unwrap();
            let cells = |t: &JaccardTable| t.cells().collect::<Vec<_>>();
            for part in [1, 7, 50] {
                let parts = overlap_table_in_parts(&files[0], &files[1], ratio, part).unwrap();
                assert_eq!(cells(&parts), cells(&whole), "ratio {ratio}, part {part}");
            }
            assert!(whole.overall().union > 0);
        }
    }
}
