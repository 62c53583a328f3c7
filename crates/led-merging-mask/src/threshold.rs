//! Top-r threshold selection in O(n), never a sort (docs/how-led-works.md, "2. Elect"): one
//! pass keeping the scores in the band where a sample puts the cut, else a two-pass radix
//! (histogram) select on the scores' bits; over a tensor in memory or fed in parts.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// The outcome of selecting a tensor's top-r set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Number of elements n.
    pub len: usize,
    /// k = floor(r · n), computed in f64.
    pub k: usize,
    /// The k-th largest score t; `None` when k = 0 (nothing is elected).
    pub value: Option<f32>,
    /// True membership count: elements with `s ≥ t` and `s > 0` (ties at t all counted, so it
    /// can exceed k; zeros never count, so it can fall short of k).
    pub members: usize,
}

impl Threshold {
    /// Whether a score is in the top-r set: `s ≥ t` and `s > 0`.
    #[inline]
    pub fn admits(&self, s: f32) -> bool {
        s >= self.cutoff()
    }

    /// The single cut-off equivalent to `s ≥ t ∧ s > 0` for finite scores: max(t, the
    /// smallest positive f32), or +∞ when nothing is elected. One comparison per element
    /// keeps the membership scan vectorisable.
    #[inline]
    pub fn cutoff(&self) -> f32 {
        match self.value {
            Some(t) => t.max(f32::from_bits(1)),
            None => f32::INFINITY,
        }
    }
}

/// Elements per parallel histogram task.
const CHUNK: usize = 1 << 20;

/// Order-preserving map of a finite f32 onto u32 (negative values flipped).
#[inline]
fn key(s: f32) -> u32 {
    // Without a branch: all bits flipped for a negative, the sign bit set for a positive.
    let b = s.to_bits();
    let negative = ((b as i32) >> 31) as u32;
    b ^ (negative | 0x8000_0000)
}

#[inline]
fn unkey(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 {
        k & 0x7FFF_FFFF
    } else {
        !k
    })
}

fn check_ratio(tensor: &str, ratio: f64) -> Result<()> {
    if ratio.is_nan() || ratio <= 0.0 || ratio > 1.0 {
        return Err(Error::BadRatio {
            tensor: tensor.into(),
            ratio,
        });
    }
    Ok(())
}

/// k = floor(r · n) in f64, as the spec fixes it.
pub fn top_k(ratio: f64, n: usize) -> usize {
    ((ratio * n as f64).floor() as usize).min(n)
}

/// Add to `hist` (65536 buckets) the counts of one 16-bit digit of the keys, in parallel for
/// more than one chunk (one histogram per worker); `false` if any score is not finite (checked
/// in the same pass; `hist` is then partly updated).
fn histogram(
    scores: &[f32],
    hist: &mut [u64],
    select: impl Fn(u32) -> Option<usize> + Sync,
) -> bool {
    let count = |h: &mut [u64], chunk: &[f32]| {
        let mut bad = false;
        for &s in chunk {
            bad |= !s.is_finite();
            if let Some(b) = select(key(s)) {
                h[b] += 1;
            }
        }
        !bad
    };
    if scores.len() <= CHUNK {
        return count(hist, scores);
    }
    let counted = scores
        .par_chunks(CHUNK)
        .try_fold(
            || vec![0u64; 1 << 16],
            |mut h, chunk| count(&mut h, chunk).then_some(h),
        )
        .try_reduce(
            || vec![0u64; 1 << 16],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                Some(a)
            },
        );
    match counted {
        Some(h) => {
            hist.iter_mut().zip(&h).for_each(|(x, y)| *x += y);
            true
        }
        None => false,
    }
}

/// Walk buckets from the top until `k` elements are covered; returns (bucket, count above it).
fn find_bucket(h: &[u64], k: u64) -> (usize, u64) {
    let mut above = 0;
    for b in (0..h.len()).rev() {
        if above + h[b] >= k {
            return (b, above);
        }
        above += h[b];
    }
    unreachable!("k ≤ n")
}

fn count_members(scores: &[f32], t: f32) -> usize {
    scores.par_iter().filter(|&&s| s >= t && s > 0.0).count()
}

/// Select tensor `tensor`'s top-r threshold over `scores` (docs/how-led-works.md, "2. Elect"). Errors for an empty
/// tensor, r outside (0, 1], and NaN or infinite scores.
///
/// ```
/// # use led_merging_mask::select_threshold;
/// let t = select_threshold("w", &[9.0, 8.0, 7.0, 7.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0], 0.3)?;
/// assert_eq!((t.k, t.value, t.members), (3, Some(7.0), 4)); // the tie at 7 is kept
/// # Ok::<(), led_merging_mask::Error>(())
/// ```
pub fn select_threshold(tensor: &str, scores: &[f32], ratio: f64) -> Result<Threshold> {
    // The streamed selection fed the whole tensor at once: usually one pass (its band).
    let mut select = StreamingThreshold::new(tensor, scores.len(), ratio)?;
    while select.needs_pass() {
        select.feed(scores)?;
        select.end_pass()?;
    }
    Ok(select.finish())
}

/// Top-r threshold selection over a score tensor too large to hold at once (docs/how-led-works.md, "2. Elect";
/// [`select_threshold`] feeds it a whole tensor held in memory): the caller feeds every score, in chunks of any size and in
/// any order, once per pass, while [`StreamingThreshold::needs_pass`] says so. Usually one pass:
/// it keeps the scores in the band where a sample of the first chunk puts the k-th largest;
/// when the band misses it, two more (a radix select) and, when the threshold is not
/// positive, one to count the members.
///
/// ```
/// # use led_merging_mask::{StreamingThreshold, select_threshold};
/// let scores = [9.0, 8.0, 7.0, 7.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0];
/// let mut s = StreamingThreshold::new("w", scores.len(), 0.3)?;
/// while s.needs_pass() {
///     for chunk in scores.chunks(3) {
///         s.feed(chunk)?;
///     }
///     s.end_pass()?;
/// }
/// assert_eq!(s.finish(), select_threshold("w", &scores, 0.3)?);
/// # Ok::<(), led_merging_mask::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StreamingThreshold {
    tensor: String,
    len: usize,
    k: usize,
    stage: Stage,
    /// Scores fed in this pass.
    fed: usize,
    hist: Vec<u64>,
    /// Non-finite scores seen in the first pass: (count, first position).
    bad: Option<(usize, usize)>,
    /// The first pass's band, once the first chunk is fed.
    band: Option<Band>,
}

/// The first pass: the keys between `lo` and `hi`, where a sample of the first chunk fed puts
/// the k-th largest, kept (those strictly between) or counted (those at either end), and the
/// scores above the band counted. When the k-th largest is in the band, one pass is enough.
#[derive(Debug, Clone, Default)]
struct Band {
    lo: u32,
    hi: u32,
    above: u64,
    at_hi: u64,
    at_lo: u64,
    inside: Vec<u32>,
    /// At most this many keys kept: beyond, the band is given up (the usual passes follow).
    cap: usize,
    /// Whether `inside` grew over `cap`.
    overflow: bool,
    /// Whether a chunk fed had a non-finite score.
    non_finite: bool,
}

/// At least this many scores of the first chunk sampled for the band (more for long tensors,
/// up to one in 512 of all, as far as the first chunk holds them: the band narrows as √taken).
const SAMPLE: usize = 1 << 18;
/// At most this many keys kept in the band (32 MiB), whatever the tensor's length.
const MAX_KEPT: usize = 1 << 23;

impl Band {
    /// The keys where the k-th largest of `len` scores lies, as a sample of `chunk` (the first
    /// fed) estimates them: between the sample's ranks k̂ ± 4 standard deviations of a binomial
    /// count (k̂ the sample's rank matching k), plus 2.
    fn around_estimate(chunk: &[f32], len: usize, k: usize) -> Self {
        let mut sample: Vec<u32> = chunk
            .iter()
            .step_by(chunk.len().div_ceil(SAMPLE.max(len / 512)).max(1))
            .map(|&s| key(s))
            .collect();
        let taken = sample.len();
        let p = k as f64 / len as f64;
        let spread = 4.0 * (taken as f64 * p * (1.0 - p)).sqrt() + 2.0;
        let estimate = p * taken as f64;
        // The sample's keys of descending ranks r_hi ≤ r_lo (0-based): the second selected
        // among the keys below the first.
        let rank = |r: f64| (r.ceil().max(1.0) as usize).min(taken) - 1;
        let (r_hi, r_lo) = (rank(estimate - spread), rank(estimate + spread));
        let (_, &mut hi, below) = sample.select_nth_unstable_by(r_hi, |a, b| b.cmp(a));
        let lo = match r_lo - r_hi {
            0 => hi,
            d => *below.select_nth_unstable_by(d - 1, |a, b| b.cmp(a)).1,
        };
        Band {
            hi,
            lo,
            // Expected: at most 4 / √taken of the scores (len / 128 for a sample of 2^18,
            // len / 512 for 2^22). Beyond the cap (tensors of billions of scores, or a first
            // chunk too short to sample well) the band is given up for the radix passes.
            cap: (len / 32).clamp(1 << 16, MAX_KEPT),
            ..Band::default()
        }
    }

    /// Count and keep one chunk's keys; `false` if a score is not finite.
    fn feed(&mut self, chunk: &[f32]) -> bool {
        let (lo, hi) = (self.lo, self.hi);
        let count = move |mut b: Band, chunk: &[f32]| {
            // One pass: counters in a loop without branches (vectorised; u32 lanes over
            // blocks of at most 2^20) over groups of 16 scores; the few groups holding keys
            // inside are looked at again, their keys gathered without a branch.
            for block in chunk.chunks(1 << 20) {
                let (mut above, mut at_hi, mut at_lo) = (0u32, 0u32, 0u32);
                let mut non_finite = false;
                for group in block.chunks(16) {
                    let mut inside = 0u32;
                    for &s in group {
                        non_finite |= !s.is_finite();
                        let key = key(s);
                        above += u32::from(key > hi);
                        at_hi += u32::from(key == hi);
                        at_lo += u32::from(key == lo && lo != hi);
                        inside += u32::from(key > lo && key < hi);
                    }
                    if inside > 0 {
                        let (mut keys, mut n) = ([0u32; 16], 0);
                        for &s in group {
                            let key = key(s);
                            keys[n] = key;
                            n += usize::from(key > lo && key < hi);
                        }
                        b.inside.extend_from_slice(&keys[..n]);
                    }
                }
                b.above += u64::from(above);
                b.at_hi += u64::from(at_hi);
                b.at_lo += u64::from(at_lo);
                b.non_finite |= non_finite;
            }
            b
        };
        let fresh = || Band {
            lo,
            hi,
            ..Band::default()
        };
        let mut counted = if chunk.len() <= CHUNK {
            count(fresh(), chunk)
        } else {
            chunk
                .par_chunks(CHUNK)
                .fold(fresh, count)
                .reduce(fresh, |mut a, mut b| {
                    a.add(&mut b);
                    a
                })
        };
        self.add(&mut counted);
        if self.inside.len() > self.cap {
            self.overflow = true;
            self.inside = Vec::new();
        }
        !counted.non_finite
    }

    fn add(&mut self, other: &mut Band) {
        self.above += other.above;
        self.at_hi += other.at_hi;
        self.at_lo += other.at_lo;
        if !self.overflow {
            self.inside.append(&mut other.inside);
        }
    }

    /// The answer when the k-th largest is in the band (`None` when it is not, or the band
    /// overflowed): the threshold, how many scores exceed it, and the members when known
    /// (with t ≤ 0 they are the positive scores, which the band may not tell).
    fn answer(mut self, k: usize) -> Option<(f32, usize, Option<usize>)> {
        let k = k as u64;
        let inside = self.inside.len() as u64;
        if self.overflow || k <= self.above || k > self.above + self.at_hi + inside + self.at_lo {
            return None;
        }
        let r = k - self.above;
        let (t, greater, equal) = if r <= self.at_hi {
            (self.hi, self.above, self.at_hi)
        } else if r <= self.at_hi + inside {
            let i = (r - self.at_hi - 1) as usize;
            let t = *self.inside.select_nth_unstable_by(i, |a, b| b.cmp(a)).1;
            let greater = self.inside.iter().filter(|&&x| x > t).count() as u64;
            let equal = self.inside.iter().filter(|&&x| x == t).count() as u64;
            (t, self.above + self.at_hi + greater, equal)
        } else {
            (self.lo, self.above + self.at_hi + inside, self.at_lo)
        };
        let value = unkey(t);
        // Members: s ≥ t and s > 0, i.e. the keys ≥ t when t > 0, else the keys above +0's.
        let zero = key(0.0);
        let members = if value > 0.0 {
            Some(greater + equal)
        } else if (self.lo..self.hi).contains(&zero) {
            let inside_positive = self.inside.iter().filter(|&&x| x > zero).count() as u64;
            Some(self.above + self.at_hi + inside_positive)
        } else if zero == self.hi {
            Some(self.above)
        } else {
            None
        };
        Some((value, greater as usize, members.map(|m| m as usize)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// The first pass, over the band (see [`Band`]).
    First,
    /// The high digit's histogram.
    High,
    Low {
        bucket: usize,
        above: u64,
    },
    Members {
        t: f32,
        members: usize,
        greater: usize,
    },
    /// The threshold and how many scores exceed it.
    Done(Threshold, usize),
}

impl StreamingThreshold {
    /// Start selecting the top `ratio` of `len` scores of tensor `tensor`.
    pub fn new(tensor: &str, len: usize, ratio: f64) -> Result<Self> {
        check_ratio(tensor, ratio)?;
        Self::with_k(tensor, len, top_k(ratio, len))
    }

    /// Start selecting the `k` largest of `len` scores of tensor `tensor` (k ≤ len; k = 0
    /// selects nothing).
    pub fn with_k(tensor: &str, len: usize, k: usize) -> Result<Self> {
        if k > len {
            return Err(Error::BadK {
                tensor: tensor.into(),
                k,
                len,
            });
        }
        if len == 0 {
            return Err(Error::Empty {
                tensor: tensor.into(),
            });
        }
        Ok(StreamingThreshold {
            tensor: tensor.into(),
            len,
            k,
            stage: Stage::First,
            fed: 0,
            hist: Vec::new(),
            bad: None,
            band: None,
        })
    }

    /// Whether another pass over all scores is needed.
    pub fn needs_pass(&self) -> bool {
        !matches!(self.stage, Stage::Done(..))
    }

    /// Feed the next chunk of scores of the current pass.
    pub fn feed(&mut self, chunk: &[f32]) -> Result<()> {
        let start = self.fed;
        self.fed += chunk.len();
        if self.fed > self.len {
            return Err(Error::LengthMismatch {
                tensor: self.tensor.clone(),
                what: "scores fed in one pass".into(),
                expected: self.len,
                got: self.fed,
            });
        }
        match self.stage {
            // After non-finite scores the pass fails at its end: the histogram no longer matters.
            Stage::First => {
                let (len, k) = (self.len, self.k);
                let band = self
                    .band
                    .get_or_insert_with(|| Band::around_estimate(chunk, len, k));
                if !band.feed(chunk) {
                    self.note_non_finite(chunk, start);
                }
            }
            Stage::High => {
                if !histogram(chunk, &mut self.hist, |key| Some((key >> 16) as usize)) {
                    self.note_non_finite(chunk, start);
                }
            }
            Stage::Low { bucket, .. } => {
                // Finite: checked by the first pass.
                histogram(chunk, &mut self.hist, |key| {
                    ((key >> 16) as usize == bucket).then_some((key & 0xFFFF) as usize)
                });
            }
            Stage::Members {
                t,
                ref mut members,
                ref mut greater,
            } => {
                *members += count_members(chunk, t);
                *greater += chunk.par_iter().filter(|&&s| key(s) > key(t)).count();
            }
            Stage::Done(..) => {}
        }
        Ok(())
    }

    /// Non-finite scores in `chunk`, fed at `start`: the first pass fails at its end.
    fn note_non_finite(&mut self, chunk: &[f32], start: usize) {
        let count = chunk.par_iter().filter(|s| !s.is_finite()).count();
        let first = chunk.iter().position(|s| !s.is_finite()).unwrap_or(0);
        let (c, f) = self.bad.get_or_insert((0, start + first));
        *c += count;
        *f = (*f).min(start + first);
    }

    /// End the current pass (every score must have been fed).
    pub fn end_pass(&mut self) -> Result<()> {
        if self.fed != self.len && self.needs_pass() {
            return Err(Error::LengthMismatch {
                tensor: self.tensor.clone(),
                what: "scores fed in one pass".into(),
                expected: self.len,
                got: self.fed,
            });
        }
        self.fed = 0;
        let (len, k) = (self.len, self.k);
        self.stage = match self.stage {
            Stage::First | Stage::High => {
                if let Some((count, first)) = self.bad {
                    return Err(Error::NonFinite {
                        tensor: self.tensor.clone(),
                        count,
                        first,
                    });
                }
                if k == 0 {
                    Stage::Done(
                        Threshold {
                            len,
                            k,
                            value: None,
                            members: 0,
                        },
                        0,
                    )
                } else if let Some(band) = self.band.take() {
                    match band.answer(k) {
                        Some((t, greater, Some(members))) => Stage::Done(
                            Threshold {
                                len,
                                k,
                                value: Some(t),
                                members,
                            },
                            greater,
                        ),
                        Some((t, _, None)) => Stage::Members {
                            t,
                            members: 0,
                            greater: 0,
                        },
                        // The k-th largest is outside the band: the histogram passes.
                        None => {
                            self.hist = vec![0; 1 << 16];
                            Stage::High
                        }
                    }
                } else {
                    let (bucket, above) = find_bucket(&self.hist, k as u64);
                    self.hist.iter_mut().for_each(|x| *x = 0);
                    Stage::Low { bucket, above }
                }
            }
            Stage::Low { bucket, above } => {
                let (low, _) = find_bucket(&self.hist, k as u64 - above);
                let t = unkey(((bucket as u32) << 16) | low as u32);
                let greater = (above + self.hist[low + 1..].iter().sum::<u64>()) as usize;
                if t > 0.0 {
                    Stage::Done(
                        Threshold {
                            len,
                            k,
                            value: Some(t),
                            members: greater + self.hist[low] as usize,
                        },
                        greater,
                    )
                } else {
                    Stage::Members {
                        t,
                        members: 0,
                        greater: 0,
                    }
                }
            }
            Stage::Members {
                t,
                members,
                greater,
            } => Stage::Done(
                Threshold {
                    len,
                    k,
                    value: Some(t),
                    members,
                },
                greater,
            ),
            done @ Stage::Done(..) => done,
        };
        Ok(())
    }

    /// The threshold, once no pass is needed.
    ///
    /// # Panics
    /// If a pass is still needed.
    pub fn finish(self) -> Threshold {
        self.finish_with_greater().0
    }

    /// The threshold and how many scores are strictly greater than it (in the total order of
    /// f32: the k-th largest is then reached by taking `k − greater` of the scores equal to
    /// it, e.g. by lowest index, for an exact top-k).
    ///
    /// # Panics
    /// If a pass is still needed.
    pub fn finish_with_greater(self) -> (Threshold, usize) {
        match self.stage {
            Stage::Done(t, greater) => (t, greater),
            _ => panic!("StreamingThreshold::finish called before the last pass"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length past the first chunk's sample and the parallel blocks.
    const SMALL: usize = 1 << 16;

    /// The k-th largest by a selection over a copy: the reference the streamed selection is
    /// held to.
    fn select_small(scores: &[f32], k: usize) -> Threshold {
        let mut copy = scores.to_vec();
        let t = (k > 0).then(|| *copy.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1);
        Threshold {
            len: scores.len(),
            k,
            value: t,
            members: t.map_or(0, |t| scores.iter().filter(|&&s| s >= t && s > 0.0).count()),
        }
    }

    fn streamed(chunks: &[&[f32]], ratio: f64) -> (Threshold, usize, usize) {
        let len = chunks.iter().map(|c| c.len()).sum();
        let mut st = StreamingThreshold::new("w", len, ratio).unwrap();
        let mut passes = 0;
        while st.needs_pass() {
            chunks.iter().for_each(|c| st.feed(c).unwrap());
            st.end_pass().unwrap();
            passes += 1;
        }
        let (t, greater) = st.finish_with_greater();
        (t, greater, passes)
    }

    #[test]
    fn one_pass_when_the_first_chunk_is_like_the_rest() {
        // Uniform magnitudes, 90 % zeros (a sparse fine-tune's |δ|), in four chunks.
        let values: Vec<f32> = (0..400_000u32)
            .map(|i| {
                let h = i.wrapping_mul(2654435761) >> 8;
                if h % 10 == 0 {
                    (h % 1000) as f32 / 997.0
                } else {
                    0.0
                }
            })
            .collect();
        let chunks: Vec<&[f32]> = values.chunks(100_000).collect();
        for ratio in [0.01, 0.05, 0.5] {
            let (t, greater, passes) = streamed(&chunks, ratio);
            assert_eq!(passes, 1, "ratio {ratio}");
            assert_eq!(t, select_threshold("w", &values, ratio).unwrap());
            let v = t.value.unwrap();
            assert_eq!(greater, values.iter().filter(|&&x| x > v).count());
        }
    }

    #[test]
    fn exact_when_the_first_chunk_misleads() {
        // The first chunk holds only small scores, the rest large ones: the estimate misses and
        // more passes find the same threshold; a threshold of 0 away from the window still
        // counts its members.
        let small: Vec<f32> = (0..50_000).map(|i| (i % 100) as f32 * 1e-6).collect();
        let large: Vec<f32> = (0..150_000).map(|i| 1.0 + (i % 1000) as f32).collect();
        let zeros = vec![0.0f32; 600_000];
        let all: Vec<f32> = [&small[..], &large, &zeros].concat();
        for ratio in [0.1, 0.9] {
            let (t, greater, passes) = streamed(&[&small, &large, &zeros], ratio);
            assert!(passes >= 2, "ratio {ratio}: {passes}");
            assert_eq!(
                t,
                select_threshold("w", &all, ratio).unwrap(),
                "ratio {ratio}"
            );
            let v = t.value.unwrap();
            assert_eq!(
                greater,
                all.iter().filter(|x| x.total_cmp(&v).is_gt()).count()
            );
        }
    }

    #[test]
    fn key_preserves_order() {
        let vals = [
            -f32::MAX,
            -1.5,
            -1e-30,
            -0.0,
            0.0,
            1e-38,
            1.0,
            2.5,
            f32::MAX,
        ];
        for w in vals.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{} {}", w[0], w[1]);
        }
        for v in vals {
            assert_eq!(unkey(key(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn spec_worked_example_thresholds() {
        let ft_a = [9.0, 8.0, 7.0, 7.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0];
        let base_a = [8.0, 9.0, 1.0, 7.0, 7.0, 6.0, 0.0, 0.0, 0.0, 0.0];
        let t = select_threshold("a", &ft_a, 0.3).unwrap();
        assert_eq!((t.k, t.value, t.members), (3, Some(7.0), 4));
        let t = select_threshold("a", &base_a, 0.3).unwrap();
        assert_eq!((t.k, t.value, t.members), (3, Some(7.0), 4));
        let ft_b = [0.0, 1.0, 7.0, 9.0, 8.0, 2.0, 6.0, 5.0, 5.0, 3.0];
        let t = select_threshold("b", &ft_b, 0.5).unwrap();
        assert_eq!((t.k, t.value, t.members), (5, Some(5.0), 6));
    }

    #[test]
    fn zeros_are_never_members_and_k_zero_elects_nothing() {
        let t = select_threshold("z", &[0.0, 0.0, 3.0, 0.0], 0.75).unwrap();
        assert_eq!((t.k, t.value, t.members), (3, Some(0.0), 1));
        let t = select_threshold("z", &[1.0, 2.0, 3.0], 0.2).unwrap();
        assert_eq!((t.k, t.value, t.members), (0, None, 0));
        assert!(!t.admits(3.0));
        let t = select_threshold("neg", &[-1.0, -2.0, 5.0, -0.5], 1.0).unwrap();
        assert_eq!((t.k, t.value, t.members), (4, Some(-2.0), 1));
    }

    #[test]
    fn bad_inputs_name_the_tensor() {
        for r in [0.0, -0.1, 1.0001, f64::NAN] {
            let e = select_threshold("layer.w", &[1.0], r).unwrap_err();
            assert!(
                matches!(e, Error::BadRatio { .. }) && e.to_string().contains("\"layer.w\""),
                "{e}"
            );
        }
        assert!(matches!(
            select_threshold("e", &[], 0.5),
            Err(Error::Empty { .. })
        ));
        let e = StreamingThreshold::with_k("k", 3, 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tensor \"k\": cannot select the 4 largest of 3 elements"
        );
        assert!(StreamingThreshold::with_k("k", 3, 3).is_ok());
        let e = select_threshold("n", &[1.0, f32::NAN, f32::INFINITY], 0.5).unwrap_err();
        assert_eq!(
            e,
            Error::NonFinite {
                tensor: "n".into(),
                count: 2,
                first: 1
            }
        );
        let mut big = vec![1.0f32; SMALL * 3];
        big[SMALL * 2 + 5] = f32::NEG_INFINITY;
        let e = select_threshold("big", &big, 0.5).unwrap_err();
        assert_eq!(
            e,
            Error::NonFinite {
                tensor: "big".into(),
                count: 1,
                first: SMALL * 2 + 5
            }
        );
        // k = 0 still validates the scores.
        assert!(select_threshold("big", &big, 1e-9).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, failure_persistence: None, ..Default::default() })]
        #[test]
        fn radix_select_equals_sort_based_select(
            extra in 1usize..5000,
            levels in 1u32..300,
            seed in 0u64..1000,
            r in 0.0001f64..1.0,
        ) {
            // Many ties (few distinct levels), zeros and negatives, beyond the small-input path.
            let n = SMALL + extra;
            let scores: Vec<f32> = (0..n as u64)
                .map(|i| ((i.wrapping_mul(6364136223846793005).wrapping_add(seed) >> 33) % u64::from(levels)) as f32 - 3.0)
                .collect();
            let radix = select_threshold("x", &scores, r).unwrap();
            let small = select_small(&scores, top_k(r, n));
            proptest::prop_assert_eq!(radix, small);
        }
    }

    #[test]
    fn radix_and_small_paths_agree() {
        let n = SMALL * 4 + 3;
        let scores: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 10007) as f32 * 0.25 - 100.0)
            .collect();
        for r in [1e-6, 0.01, 0.1, 0.5, 0.9, 1.0] {
            let big = select_threshold("x", &scores, r).unwrap();
            let small = select_small(&scores, top_k(r, n));
            assert_eq!(big, small, "r = {r}");
        }
    }
}
