//! Property tests: the laws of the mask algebra (docs/RELIABILITY.md).

use led_merging_mask::bitvec::prelude::{BitVec, Lsb0};
use led_merging_mask::{
    DenseMask, LedTask, Mask, Pattern, StreamingThreshold, TaskUpdate, TensorStats, apply_masks,
    disjoint, elect, led_masks, led_tensor, led_tensor_at, overlap_counts, select_threshold,
    task_thresholds, top_k, top_set,
};
use proptest::prelude::*;

/// Scores with many ties and zeros, as real (bf16-accumulated, sparse-gradient) scores have.
fn scores(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![Just(0.0f32), (0u8..8).prop_map(f32::from), 0.0f32..100.0],
        len,
    )
}

fn ratio() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), 0.01f64..1.0]
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop::sample::select(Pattern::ALL.to_vec())
}

fn dense(len: usize) -> impl Strategy<Value = DenseMask> {
    prop::collection::vec(any::<bool>(), len).prop_map(|bits| {
        let mut m = DenseMask::zeros(bits.len());
        bits.iter().enumerate().for_each(|(i, &b)| m.set(i, b));
        m
    })
}

/// One task's election inputs: (base scores, model scores, ratio, pattern).
type TaskInput = (Vec<f32>, Vec<f32>, f64, Pattern);

/// K tasks over one tensor of n elements.
fn tasks() -> impl Strategy<Value = (usize, Vec<TaskInput>)> {
    (1usize..300, 1usize..5).prop_flat_map(|(n, k)| {
        (
            Just(n),
            prop::collection::vec((scores(n), scores(n), ratio(), pattern()), k),
        )
    })
}

fn elected_sets(n: usize, ts: &[TaskInput]) -> Vec<DenseMask> {
    let sets: Vec<DenseMask> = ts
        .iter()
        .map(|(b, u, r, p)| elect("t", b, u, *r, *p).unwrap().elected)
        .collect();
    assert!(sets.iter().all(|m| m.len() == n));
    sets
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn threshold_members_are_the_top(s in prop::collection::vec(prop_oneof![Just(0.0f32), -5.0f32..50.0, (0u8..4).prop_map(f32::from)], 1..500), r in ratio()) {
        let t = select_threshold("t", &s, r).unwrap();
        prop_assert_eq!(t.k, top_k(r, s.len()));
        let members: Vec<f32> = s.iter().copied().filter(|&x| t.admits(x)).collect();
        prop_assert_eq!(members.len(), t.members);
        if t.k > 0 {
            let tv = t.value.unwrap();
            // t is the k-th largest: at least k scores ≥ t, fewer than k scores > t.
            prop_assert!(s.iter().filter(|&&x| x >= tv).count() >= t.k);
            prop_assert!(s.iter().filter(|&&x| x > tv).count() < t.k);
            // Count ≥ k unless zero scores were turned away.
            let positive = s.iter().filter(|&&x| x > 0.0).count();
            prop_assert!(t.members >= t.k.min(positive));
        } else {
            prop_assert_eq!(t.members, 0);
        }
        // Every member ≥ every non-member.
        let min_in = members.iter().copied().fold(f32::INFINITY, f32::min);
        let max_out = s.iter().copied().filter(|&x| !t.admits(x) && x > 0.0).fold(f32::NEG_INFINITY, f32::max);
        prop_assert!(members.is_empty() || max_out < min_in);
        prop_assert!(members.iter().all(|&x| x > 0.0));
    }

    #[test]
    fn disjoint_masks_are_pairwise_disjoint_subsets((n, ts) in tasks()) {
        let elected = elected_sets(n, &ts);
        let mut kept = elected.clone();
        let removed = disjoint(&mut kept);
        for i in 0..kept.len() {
            // m_i ⊆ E_i
            let mut extra = kept[i].clone();
            extra.and_not_assign(&elected[i]);
            prop_assert_eq!(extra.count(), 0);
            for j in 0..kept.len() {
                if i != j {
                    prop_assert_eq!(overlap_counts(&kept[i], &kept[j]).0, 0);
                }
            }
            // Elements elected by exactly one task are kept by it; the rest are removed.
            for e in 0..n {
                let voters = elected.iter().filter(|m| m.get(e)).count();
                prop_assert_eq!(kept[i].get(e), elected[i].get(e) && voters == 1);
                prop_assert_eq!(removed.get(e), voters >= 2);
            }
        }
        // Disjoint is idempotent.
        let mut again = kept.clone();
        prop_assert_eq!(disjoint(&mut again).count(), 0);
        prop_assert_eq!(&again, &kept);
    }

    #[test]
    fn task_order_does_not_matter((n, ts) in tasks(), seed in any::<u64>()) {
        let model: Vec<Vec<f32>> = (0..ts.len()).map(|i| (0..n).map(|e| (e * 31 + i * 7) as f32 * 0.01).collect()).collect();
        let base: Vec<f32> = (0..n).map(|e| e as f32 * 0.001).collect();
        let make = |order: &[usize]| -> Vec<LedTask<'_>> {
            order.iter().map(|&i| LedTask { model: &model[i], base_scores: &ts[i].0, model_scores: &ts[i].1, ratio: ts[i].2, lambda: 1.0 + i as f32, pattern: ts[i].3, priority: false }).collect()
        };
        let forward: Vec<usize> = (0..ts.len()).collect();
        let mut shuffled = forward.clone();
        shuffled.rotate_left((seed as usize) % ts.len().max(1));
        let (m1, _) = led_masks("t", n, &make(&forward), true).unwrap();
        let (m2, _) = led_masks("t", n, &make(&shuffled), true).unwrap();
        for (pos, &i) in shuffled.iter().enumerate() {
            prop_assert_eq!(&m2[pos], &m1[i]);
        }
        // Masks are disjoint, so each element receives at most one task's update: the merged
        // tensor is the same bit for bit in any order.
        let mut o1 = vec![0.0; n];
        let mut o2 = vec![0.0; n];
        led_tensor("t", &base, &make(&forward), true, &mut o1).unwrap();
        led_tensor("t", &base, &make(&shuffled), true, &mut o2).unwrap();
        prop_assert_eq!(o1, o2);
    }

    #[test]
    fn patterns_partition_and_match_set_algebra(n in 1usize..300, b in scores(300), u in scores(300), r in ratio()) {
        let (b, u) = (&b[..n], &u[..n]);
        let (_, mb) = top_set("t", b, r).unwrap();
        let (_, mu) = top_set("t", u, r).unwrap();
        let (rb, ru) = (Mask::from_dense("t", &mb).unwrap(), Mask::from_dense("t", &mu).unwrap());
        let mut total = 0;
        let mut union = Mask::empty(n);
        for p in Pattern::ALL {
            let e = elect("t", b, u, r, p).unwrap().elected;
            let re = Mask::from_dense("t", &e).unwrap();
            prop_assert_eq!(&re, &p.combine(&rb, &ru));
            prop_assert_eq!((&re & &union).count(), 0);
            union = &union | &re;
            total += e.count();
        }
        // The four patterns partition the tensor.
        prop_assert_eq!(total, n);
        prop_assert_eq!(union, Mask::full(n));
        // 11 = M_b ∩ M_u; 00 = complement of M_b ∪ M_u (De Morgan: = !M_b ∩ !M_u).
        prop_assert_eq!(Mask::from_dense("t", &elect("t", b, u, r, Pattern::BothHigh).unwrap().elected).unwrap(), &rb & &ru);
        prop_assert_eq!(!&(&rb | &ru), &!&rb & &!&ru);
        prop_assert_eq!(!&(&rb & &ru), &!&rb | &!&ru);
    }

    #[test]
    fn roaring_dense_and_bitvec_agree(a in dense(200), b in dense(200), n in 0usize..200) {
        let cut = |m: &DenseMask| DenseMask::from_words(n, m.words()[..n.div_ceil(64)].to_vec()).unwrap();
        let (a, b) = (cut(&a), cut(&b));
        let (ra, rb) = (Mask::from_dense("t", &a).unwrap(), Mask::from_dense("t", &b).unwrap());
        prop_assert_eq!(ra.to_dense(), a.clone());
        prop_assert_eq!(ra.count() as usize, a.count());
        let mut and = a.clone(); and.and_assign(&b);
        let mut or = a.clone(); or.or_assign(&b);
        let mut sub = a.clone(); sub.and_not_assign(&b);
        prop_assert_eq!(Mask::from_dense("t", &and).unwrap(), &ra & &rb);
        prop_assert_eq!(Mask::from_dense("t", &or).unwrap(), &ra | &rb);
        prop_assert_eq!(Mask::from_dense("t", &sub).unwrap(), &ra - &rb);
        prop_assert_eq!(Mask::from_dense("t", &a.complement()).unwrap(), !&ra);
        prop_assert_eq!(a.complement().count(), n - a.count());
        prop_assert_eq!(overlap_counts(&a, &b), (ra.intersection_len(&rb), ra.union_len(&rb)));
        let bv: BitVec<u64, Lsb0> = a.to_bitvec();
        prop_assert_eq!(bv.len(), n);
        prop_assert_eq!(bv.count_ones(), a.count());
        prop_assert_eq!(DenseMask::from_bitvec(&bv), a.clone());
        prop_assert_eq!(a.iter_ones().collect::<Vec<_>>(), bv.iter_ones().collect::<Vec<_>>());
    }

    #[test]
    fn serialization_round_trips(a in dense(500)) {
        let m = Mask::from_dense("t", &a).unwrap();
        let mut buf = Vec::new();
        m.serialize_into(&mut buf).unwrap();
        prop_assert_eq!(Mask::deserialize_from(buf.as_slice()).unwrap(), m);
    }

    #[test]
    fn jaccard_is_symmetric_bounded_and_one_on_equal_sets(a in dense(300), b in dense(300)) {
        let (ra, rb) = (Mask::from_dense("t", &a).unwrap(), Mask::from_dense("t", &b).unwrap());
        let j = ra.jaccard(&rb);
        prop_assert_eq!(j, rb.jaccard(&ra));
        prop_assert!((0.0..=1.0).contains(&j));
        prop_assert_eq!(ra.jaccard(&ra), 1.0);
        prop_assert_eq!(ra.jaccard(&ra.clone()), 1.0);
    }

    #[test]
    fn merge_invariants((n, ts) in tasks()) {
        let base: Vec<f32> = (0..n).map(|e| (e as f32).sin()).collect();
        // All models equal to the base → output = base; λ = 0 → base.
        let lt = |lambda: f32, model: &'_ [f32]| -> Vec<(f32, Vec<f32>)> { ts.iter().map(|_| (lambda, model.to_vec())).collect() };
        let other: Vec<f32> = base.iter().map(|x| x + 1.0).collect();
        for (lambda, model) in [(1.0, base.clone()), (0.0, other)] {
            let inputs = lt(lambda, &model);
            let tasks: Vec<LedTask<'_>> = ts.iter().zip(&inputs).map(|(t, (l, m))| LedTask { model: m, base_scores: &t.0, model_scores: &t.1, ratio: t.2, lambda: *l, pattern: t.3, priority: false }).collect();
            let mut out = vec![f32::NAN; n];
            led_tensor("t", &base, &tasks, true, &mut out).unwrap();
            prop_assert_eq!(&out, &base);
        }
    }

    #[test]
    fn streamed_threshold_equals_the_in_memory_one(
        s in prop::collection::vec(prop_oneof![Just(0.0f32), Just(-0.0f32), -5.0f32..50.0, (0u8..4).prop_map(f32::from)], 1..700),
        r in ratio(),
        chunk in 1usize..200,
        rotate in 0usize..8,
    ) {
        let mut st = StreamingThreshold::new("t", s.len(), r).unwrap();
        let mut passes = 0;
        // Chunks in any order: the first one fed (whose sample estimates the cut) varies.
        let chunks: Vec<&[f32]> = s.chunks(chunk).collect();
        let start = rotate % chunks.len();
        while st.needs_pass() {
            for c in chunks[start..].iter().chain(&chunks[..start]) {
                st.feed(c).unwrap();
            }
            st.end_pass().unwrap();
            passes += 1;
        }
        prop_assert!(passes <= 4);
        let (t, greater) = st.finish_with_greater();
        prop_assert_eq!(t, select_threshold("t", &s, r).unwrap());
        if let Some(v) = t.value {
            prop_assert_eq!(greater, s.iter().filter(|x| x.total_cmp(&v).is_gt()).count());
            prop_assert!(greater < t.k);
        }
    }

    #[test]
    fn merging_in_chunks_equals_merging_whole((n, ts) in tasks(), cuts in prop::collection::vec(0usize..300, 0..4), disjoint_on in any::<bool>()) {
        let base: Vec<f32> = (0..n).map(|e| (e as f32).sin()).collect();
        let models: Vec<Vec<f32>> = (0..ts.len()).map(|k| base.iter().map(|x| x + k as f32 + 1.0).collect()).collect();
        let tasks: Vec<LedTask<'_>> = ts.iter().zip(&models).map(|(t, m)| LedTask { model: m, base_scores: &t.0, model_scores: &t.1, ratio: t.2, lambda: 0.5, pattern: t.3, priority: false }).collect();
        let mut whole = vec![f32::NAN; n];
        let whole_stats = led_tensor("t", &base, &tasks, disjoint_on, &mut whole).unwrap();
        let thresholds = task_thresholds("t", n, &tasks).unwrap();
        let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c % (n + 1)).chain([0, n]).collect();
        bounds.sort_unstable();
        let mut out = vec![f32::NAN; n];
        let mut stats: Option<TensorStats> = None;
        for w in bounds.windows(2) {
            let r = w[0]..w[1];
            let part: Vec<LedTask<'_>> = tasks.iter().map(|t| LedTask { model: &t.model[r.clone()], base_scores: &t.base_scores[r.clone()], model_scores: &t.model_scores[r.clone()], ..*t }).collect();
            let st = led_tensor_at("t", &base[r.clone()], &part, &thresholds, disjoint_on, &mut out[r.clone()]).unwrap();
            match &mut stats {
                None => stats = Some(st),
                Some(acc) => acc.add(&st),
            }
        }
        prop_assert_eq!(out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), whole.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        // Counts exactly; the energies (f64 sums) up to their summation order.
        let (mut parts, mut whole_stats) = (stats.unwrap(), whole_stats);
        for (a, b) in parts.tasks.iter_mut().zip(whole_stats.tasks.iter_mut()) {
            for (x, y) in [(&mut a.energy, &mut b.energy), (&mut a.kept_energy, &mut b.kept_energy)] {
                prop_assert!((*x - *y).abs() <= 1e-12 * y.abs().max(1.0), "{} vs {}", x, y);
                *x = 0.0;
                *y = 0.0;
            }
        }
        prop_assert_eq!(parts, whole_stats);
    }

    #[test]
    fn cutoff_masks_hold_exactly_the_scores_at_or_above(
        s in prop::collection::vec(prop_oneof![Just(0.0f32), Just(-0.0f32), Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY), -5.0f32..5.0], 0..300),
        cutoff in prop_oneof![Just(0.0f32), Just(-0.0f32), Just(f32::NEG_INFINITY), -5.0f32..5.0],
    ) {
        let m = DenseMask::from_cutoff(&s, cutoff);
        let want: Vec<usize> = (0..s.len()).filter(|&i| s[i] >= cutoff).collect();
        prop_assert_eq!(m.iter_ones().collect::<Vec<_>>(), want);
        prop_assert_eq!(m.len(), s.len());
    }

    #[test]
    fn applying_masks_is_the_sum_element_by_element(
        (n, masks) in (0usize..300, 1usize..4).prop_flat_map(|(n, k)| (Just(n), prop::collection::vec(dense(n), k))),
        lambdas in prop::collection::vec(-2.0f32..2.0, 3),
    ) {
        let base: Vec<f32> = (0..n).map(|e| if e % 7 == 0 { -0.0 } else { (e as f32).sin() }).collect();
        // Weights outside the masks are not finite: they must not reach the output.
        let models: Vec<Vec<f32>> = masks.iter().enumerate().map(|(k, m)| (0..n).map(|e| if m.get(e) { (e * (k + 2)) as f32 * 0.01 } else { f32::NAN }).collect()).collect();
        let tasks: Vec<TaskUpdate<'_>> = masks.iter().zip(&models).zip(&lambdas).map(|((mask, model), &lambda)| TaskUpdate { model, lambda, mask }).collect();
        let mut out = vec![7.0; n];
        apply_masks("t", &base, &tasks, &mut out).unwrap();
        let mut want = base.clone();
        for t in &tasks {
            for (e, w) in want.iter_mut().enumerate() {
                if t.mask.get(e) {
                    *w += t.lambda * (t.model[e] - base[e]);
                }
            }
        }
        prop_assert_eq!(out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
}
