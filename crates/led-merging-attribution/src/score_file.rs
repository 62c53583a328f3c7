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

/// Tensors queued to the writer thread at most: each one's scores are held on the host while
/// they wait, so this bounds the host memory the overlap costs (two of the largest tensor).
const QUEUED: usize = 2;

/// A score file written by its own thread while the caller goes on computing: the caller
/// copies each finished tensor's scores to the host and queues them ([`ScoreSink::send`]); the
/// thread writes them at the disk's pace. [`ScoreSink::finish`] waits for the queue to drain.
/// Dropped unfinished (an error, Ctrl-C), the writer is dropped too and leaves no file.
pub(crate) struct ScoreSink {
    /// The queue to the thread (`None` once closed).
    queue: Option<std::sync::mpsc::SyncSender<(String, Vec<f32>)>>,
    /// The thread: the writer back, and its seconds busy writing.
    thread: Option<std::thread::JoinHandle<Result<(CheckpointWriter, f64)>>>,
}

/// What finishing a [`ScoreSink`] took.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SinkTimes {
    /// Seconds the writer thread spent writing (overlapped with the compute but for `drain`).
    pub busy: f64,
    /// Seconds [`ScoreSink::finish`] waited for the thread after the compute ended.
    pub drain: f64,
}

impl ScoreSink {
    /// Start the writer thread for `writer` (the score file `out`).
    pub(crate) fn new(writer: CheckpointWriter, out: &Path) -> Self {
        let (queue, incoming) = std::sync::mpsc::sync_channel::<(String, Vec<f32>)>(QUEUED);
        let out = out.to_path_buf();
        let thread = std::thread::spawn(move || {
            let mut busy = 0.0;
            for (name, values) in incoming {
                let start = std::time::Instant::now();
                write_score(&writer, &out, &name, &values)?;
                busy += start.elapsed().as_secs_f64();
            }
            Ok((writer, busy))
        });
        ScoreSink {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Queue one tensor's scores; waits while the queue is full. A failed write (disk full,
    /// a non-finite score) comes back here, from the next call.
    pub(crate) fn send(&mut self, name: &str, values: Vec<f32>) -> Result<()> {
        let queue = self
            .queue
            .as_ref()
            .expect("a sink is not used after finish");
        if queue.send((name.to_owned(), values)).is_ok() {
            return Ok(());
        }
        // The thread stopped, which it does early only on an error: that error.
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => unreachable!("the writer thread ends early only on an error"),
        }
    }

    /// Close the queue, wait for the thread to write what is queued, and complete the file.
    pub(crate) fn finish(mut self) -> Result<SinkTimes> {
        let start = std::time::Instant::now();
        let (writer, busy) = self.join()?;
        writer.finish()?;
        Ok(SinkTimes {
            busy,
            drain: start.elapsed().as_secs_f64(),
        })
    }

    /// Close the queue and take the thread's result.
    fn join(&mut self) -> Result<(CheckpointWriter, f64)> {
        self.queue = None;
        let thread = self
            .thread
            .take()
            .expect("the writer thread is joined once");
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for ScoreSink {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            // Unfinished: the writer is dropped in the thread, which removes its temporary file.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use led_merging_io::{Checkpoint, Dtype};

    fn sink(out: &Path, tensors: usize) -> ScoreSink {
        let specs = (0..tensors)
            .map(|i| TensorSpec::new(format!("t{i}"), Dtype::F32, vec![1000]))
            .collect();
        let record = ScoreMetadata {
            scorer: "snip".into(),
            ..Default::default()
        };
        ScoreSink::new(score_writer(out, &record, false, specs).unwrap(), out)
    }

    #[test]
    fn the_writer_thread_writes_every_queued_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.safetensors");
        let mut s = sink(&out, 5);
        for i in 0..5 {
            s.send(&format!("t{i}"), vec![i as f32; 1000]).unwrap();
        }
        let times = s.finish().unwrap();
        assert!(times.busy >= 0.0 && times.drain >= 0.0);
        let c = Checkpoint::open(&out).unwrap();
        for i in 0..5 {
            assert_eq!(c.read_f32(&format!("t{i}")).unwrap(), vec![i as f32; 1000]);
        }
    }

    #[test]
    fn a_failed_write_comes_back_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.safetensors");
        let mut s = sink(&out, 6);
        let mut bad = vec![1.0f32; 1000];
        bad[7] = f32::NAN;
        s.send("t0", bad).unwrap();
        // The error surfaces from a later send (once the thread has stopped) or from finish.
        let mut err = None;
        for i in 1..6 {
            if let Err(e) = s.send(&format!("t{i}"), vec![1.0; 1000]) {
                err = Some(e);
                break;
            }
        }
        let err = match err {
            Some(e) => e,
            None => s.finish().unwrap_err(),
        };
        assert!(err.to_string().contains("not finite at element 7"), "{err}");
        assert!(!out.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_sink_dropped_unfinished_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.safetensors");
        let mut s = sink(&out, 3);
        s.send("t0", vec![1.0; 1000]).unwrap();
        drop(s);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
