//! `sce` (FuseChat's Select–Calculate–Erase, Wan et al. 2024; mergekit's `sce`): keep the
//! elements where the task vectors vary most across models (`select_topk` of the nonzero
//! variances), weight each task vector by its mean square, erase the entries against the
//! elected sign (TIES's, by sum), and average what is left, in f32 as mergekit computes it.

use super::method::{MergeMethod, TensorJob, TensorNote};
use super::params::{INT8_MASK, ParamSpec, unit};
use crate::error::Result;
use crate::sparsify::{keep_above, top_k_cut};

/// SCE.
#[derive(Debug, Clone, Copy)]
pub struct Sce;

const SELECT_TOPK: ParamSpec = ParamSpec::new("select_topk", unit).or(1.0);

impl MergeMethod for Sce {
    fn name(&self) -> &'static str {
        "sce"
    }
    fn global_params(&self) -> &'static [ParamSpec] {
        &[SELECT_TOPK, INT8_MASK]
    }
    // Chunking::Whole (the default): the selection, the weights and the merge each need the
    // whole tensor; a tensor over the part size is merged whole, one at a time.
    fn merge(&self, job: &TensorJob<'_>, out: &mut [f32]) -> Result<Vec<TensorNote>> {
        let base = job.base("sce")?;
        let n = job.models.len();
        let mut tvs: Vec<Vec<f32>> = (0..n).map(|j| job.delta(j).collect()).collect();
        let density = job.global.value(&SELECT_TOPK);
        if density < 1.0 {
            select(job.name, &mut tvs, density)?;
        }
        let weights = weights(&tvs);
        // Erase: per element, the sign of Σ τ_i elects; a task vector's entry counts where it
        // has that sign (zeros never do).
        for (j, (o, &b)) in out.iter_mut().zip(base).enumerate() {
            let up = tvs.iter().map(|t| t[j]).sum::<f32>() >= 0.0;
            let (mut num, mut den) = (0.0f32, 0.0f32);
            for (t, &w) in tvs.iter().zip(&weights) {
                let u = t[j];
                if u != 0.0 && (u > 0.0) == up {
                    num += u * w;
                    den += w;
                }
            }
            *o = b + num / den.max(1e-6);
        }
        Ok(Vec::new())
    }
}

/// Zero every task vector outside the k = ⌊nonzero · density⌋ elements of largest variance
/// across the models (population variance; ties at the cut by lowest index).
fn select(tensor: &str, tvs: &mut [Vec<f32>], density: f64) -> Result<()> {
    let n = tvs.len() as f64;
    let len = tvs.first().map_or(0, Vec::len);
    let mut var: Vec<f32> = (0..len)
        .map(|j| {
            let mean = tvs.iter().map(|t| f64::from(t[j])).sum::<f64>() / n;
            let ss: f64 = tvs.iter().map(|t| (f64::from(t[j]) - mean).powi(2)).sum();
            (ss / n) as f32
        })
        .collect();
    let nonzero = var.iter().filter(|&&v| v != 0.0).count();
    let k = (nonzero as f64 * density).floor() as usize;
    if k == 0 || len == 0 {
        tvs.iter_mut().for_each(|t| t.fill(0.0));
        return Ok(());
    }
    // The kept positions, as the variances that survive the cut.
    let (t, ties) = top_k_cut(tensor, &var, k)?;
    keep_above(&mut var, t, ties);
    for t in tvs.iter_mut() {
        t.iter_mut().zip(&var).for_each(|(x, &v)| {
            if v == 0.0 {
                *x = 0.0;
            }
        });
    }
    Ok(())
}

/// Each task vector's mean square over the tensor, normalised to sum 1 (equal weights when the
/// sum is below 1e-6).
fn weights(tvs: &[Vec<f32>]) -> Vec<f32> {
    let n = tvs.len();
    let ms: Vec<f32> = tvs
        .iter()
        .map(|t| {
            let s: f64 = t.iter().map(|&x| f64::from(x * x)).sum();
            (s / t.len().max(1) as f64) as f32
        })
        .collect();
    let total: f64 = ms.iter().map(|&m| f64::from(m)).sum();
    if total.abs() < 1e-6 {
        vec![1.0 / n as f32; n]
    } else {
        ms.iter().map(|&m| (f64::from(m) / total) as f32).collect()
    }
}
