//! The spec's worked example (§5), step by step, and bad inputs.

use led_merging_mask::{
    DenseMask, Error, LedTask, Mask, Pattern, TaskUpdate, apply_masks, disjoint, elect, led_masks,
    led_tensor,
};

const FT_A: [f32; 10] = [9., 8., 7., 7., 5., 4., 3., 2., 1., 0.];
const BASE_A: [f32; 10] = [8., 9., 1., 7., 7., 6., 0., 0., 0., 0.];
const FT_B: [f32; 10] = [0., 1., 7., 9., 8., 2., 6., 5., 5., 3.];
const BASE_B: [f32; 10] = [0., 0., 9., 8., 1., 2., 7., 6., 5., 5.];

fn ones(m: &DenseMask) -> Vec<usize> {
    m.iter_ones().collect()
}

#[test]
fn every_step_of_the_worked_example() {
    let a = elect("w", &BASE_A, &FT_A, 0.3, Pattern::BothHigh).unwrap();
    assert_eq!(
        (a.model.k, a.model.value, a.base.value),
        (3, Some(7.0), Some(7.0))
    );
    assert_eq!((a.model.members, a.base.members), (4, 4)); // M_u = {0,1,2,3}, M_b = {0,1,3,4}
    assert_eq!(ones(&a.elected), [0, 1, 3]);
    let b = elect("w", &BASE_B, &FT_B, 0.5, Pattern::BothHigh).unwrap();
    assert_eq!(
        (b.model.k, b.model.value, b.base.value),
        (5, Some(5.0), Some(5.0))
    );
    assert_eq!(ones(&b.elected), [2, 3, 6, 7, 8]);

    let mut masks = vec![a.elected.clone(), b.elected.clone()];
    let removed = disjoint(&mut masks);
    assert_eq!(ones(&removed), [3]);
    assert_eq!(ones(&masks[0]), [0, 1]);
    assert_eq!(ones(&masks[1]), [2, 6, 7, 8]);

    let base = [0.0f32; 10];
    let model = [1.0f32; 10];
    let mut out = [f32::NAN; 10];
    let updates = [
        TaskUpdate {
            model: &model,
            lambda: 1.0,
            mask: &masks[0],
        },
        TaskUpdate {
            model: &model,
            lambda: 0.5,
            mask: &masks[1],
        },
    ];
    apply_masks("w", &base, &updates, &mut out).unwrap();
    assert_eq!(out, [1., 1., 0.5, 0., 0., 0., 0.5, 0.5, 0.5, 0.]);

    // The same sets with roaring masks and the spec's set algebra.
    let m_u = Mask::from_indices(10, [0, 1, 2, 3]).unwrap();
    let m_b = Mask::from_indices(10, [0, 1, 3, 4]).unwrap();
    let e_a = &m_b & &m_u;
    assert_eq!(e_a, Mask::from_dense("w", &a.elected).unwrap());
    let e_b = Mask::from_dense("w", &b.elected).unwrap();
    let kept_a = &e_a - &e_b;
    assert_eq!(kept_a.iter().collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn without_disjoint_the_overlap_is_kept_by_both() {
    let base = [0.0f32; 10];
    let model = [1.0f32; 10];
    let tasks = [
        LedTask {
            model: &model,
            base_scores: &BASE_A,
            model_scores: &FT_A,
            ratio: 0.3,
            lambda: 1.0,
            pattern: Pattern::BothHigh,
            priority: false,
        },
        LedTask {
            model: &model,
            base_scores: &BASE_B,
            model_scores: &FT_B,
            ratio: 0.5,
            lambda: 0.5,
            pattern: Pattern::BothHigh,
            priority: false,
        },
    ];
    let mut out = [0.0f32; 10];
    let stats = led_tensor("w", &base, &tasks, false, &mut out).unwrap();
    assert_eq!(out, [1., 1., 0.5, 1.5, 0., 0., 0.5, 0.5, 0.5, 0.]);
    assert_eq!(stats.overlap, 1);
    assert_eq!(
        stats
            .tasks
            .iter()
            .map(|t| (t.elected, t.removed, t.kept))
            .collect::<Vec<_>>(),
        [(3, 0, 3), (5, 0, 5)]
    );
    let stats = led_tensor("w", &base, &tasks, true, &mut out).unwrap();
    assert_eq!(
        stats
            .tasks
            .iter()
            .map(|t| (t.elected, t.removed, t.kept))
            .collect::<Vec<_>>(),
        [(3, 1, 2), (5, 1, 4)]
    );
}

#[test]
fn other_patterns_on_task_a() {
    let sets: Vec<Vec<usize>> = Pattern::ALL
        .iter()
        .map(|&p| ones(&elect("w", &BASE_A, &FT_A, 0.3, p).unwrap().elected))
        .collect();
    // M_b = {0,1,3,4}, M_u = {0,1,2,3}.
    assert_eq!(sets, [vec![0, 1, 3], vec![2], vec![4], vec![5, 6, 7, 8, 9]]);
    assert_eq!("01".parse::<Pattern>().unwrap(), Pattern::FineTunedOnly);
    assert!(matches!("12".parse::<Pattern>(), Err(Error::BadPattern(_))));
}

#[test]
fn bad_inputs_are_errors_naming_the_tensor() {
    let e = elect(
        "model.layers.0.mlp.up_proj.weight",
        &BASE_A,
        &FT_A[..9],
        0.3,
        Pattern::BothHigh,
    )
    .unwrap_err();
    assert!(matches!(
        e,
        Error::LengthMismatch {
            expected: 10,
            got: 9,
            ..
        }
    ));
    assert!(e.to_string().contains("up_proj"), "{e}");
    assert!(matches!(
        elect("e", &[], &[], 0.5, Pattern::BothHigh),
        Err(Error::Empty { .. })
    ));
    let mut nan = FT_A;
    nan[4] = f32::NAN;
    let e = elect("n", &BASE_A, &nan, 0.3, Pattern::BothHigh).unwrap_err();
    assert_eq!(
        e,
        Error::NonFinite {
            tensor: "n".into(),
            count: 1,
            first: 4
        }
    );
    let e = elect("r", &BASE_A, &FT_A, 1.5, Pattern::BothHigh).unwrap_err();
    assert!(matches!(e, Error::BadRatio { .. }));
    let model = [1.0f32; 9];
    let tasks = [LedTask {
        model: &model,
        base_scores: &BASE_A,
        model_scores: &FT_A,
        ratio: 0.3,
        lambda: 1.0,
        pattern: Pattern::BothHigh,
        priority: false,
    }];
    let e = led_tensor("w", &[0.0; 10], &tasks, true, &mut [0.0; 10]).unwrap_err();
    assert!(matches!(e, Error::LengthMismatch { got: 9, .. }), "{e}");
    let e = led_masks("w", 11, &tasks, true).unwrap_err();
    assert!(
        matches!(e, Error::LengthMismatch { expected: 11, .. }),
        "{e}"
    );
}

#[test]
fn masked_out_non_finite_weights_do_not_leak() {
    let base = [1.0f32, 2.0];
    let model = [f32::INFINITY, 3.0];
    let mut mask = DenseMask::zeros(2);
    mask.set(1, true);
    let mut out = [0.0; 2];
    apply_masks(
        "w",
        &base,
        &[TaskUpdate {
            model: &model,
            lambda: 2.0,
            mask: &mask,
        }],
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [1.0, 4.0]);
}

#[test]
fn mask_files_reject_bad_data() {
    let m = Mask::from_indices(100, [1, 50, 99]).unwrap();
    let mut buf = Vec::new();
    m.serialize_into(&mut buf).unwrap();
    assert_eq!(buf.len(), m.serialized_size());
    assert_eq!(Mask::deserialize_from(buf.as_slice()).unwrap(), m);
    // Claims a smaller tensor than its elements need.
    let mut lie = buf.clone();
    lie[5..13].copy_from_slice(&50u64.to_le_bytes());
    assert!(
        Mask::deserialize_from(lie.as_slice())
            .unwrap_err()
            .to_string()
            .contains("outside")
    );
    let mut magic = buf.clone();
    magic[0] = b'X';
    assert!(Mask::deserialize_from(magic.as_slice()).is_err());
    assert!(Mask::deserialize_from(&buf[..buf.len() - 3]).is_err());
    assert!(Mask::deserialize_from(&buf[..5]).is_err());
}

/// The authors' safety priority, by hand. Task a elects {0, 1, 3}, task b {2, 3, 6, 7, 8};
/// they share {3}. τ_a = 1, τ_b = 2, λ = 1: with priority on a, element 3 gets τ_a alone, with
/// or without Disjoint; with priority on b, τ_b alone; without priority, Disjoint drops it and
/// no Disjoint adds both.
#[test]
fn priority_gives_a_task_its_whole_election_and_its_update_alone() {
    let base = [0.0f32; 10];
    let (ones, twos) = ([1.0f32; 10], [2.0f32; 10]);
    let task = |model, base_scores, model_scores, ratio, priority| LedTask {
        model,
        base_scores,
        model_scores,
        ratio,
        lambda: 1.0,
        pattern: Pattern::BothHigh,
        priority,
    };
    let merge = |pa: bool, pb: bool, disjoint: bool| {
        let tasks = [
            task(&ones[..], &BASE_A[..], &FT_A[..], 0.3, pa),
            task(&twos[..], &BASE_B[..], &FT_B[..], 0.5, pb),
        ];
        let mut out = [0.0f32; 10];
        let stats = led_tensor("w", &base, &tasks, disjoint, &mut out).unwrap();
        let counts: Vec<_> = stats
            .tasks
            .iter()
            .map(|t| (t.elected, t.removed, t.kept))
            .collect();
        (out, counts)
    };
    let no_priority = [1., 1., 2., 0., 0., 0., 2., 2., 2., 0.];
    assert_eq!(merge(false, false, true).0, no_priority);
    assert_eq!(
        merge(false, false, false).0,
        [1., 1., 2., 3., 0., 0., 2., 2., 2., 0.]
    );
    let a_first = [1., 1., 2., 1., 0., 0., 2., 2., 2., 0.];
    assert_eq!(
        merge(true, false, true),
        (a_first, vec![(3, 0, 3), (5, 1, 4)])
    );
    assert_eq!(
        merge(true, false, false),
        (a_first, vec![(3, 0, 3), (5, 1, 4)])
    );
    // The energies kept: ‖τ_a‖² = 10, ‖τ_b‖² = 40; with priority on a, a keeps 3 ones, b 4 twos.
    let tasks = [
        task(&ones[..], &BASE_A[..], &FT_A[..], 0.3, true),
        task(&twos[..], &BASE_B[..], &FT_B[..], 0.5, false),
    ];
    let stats = led_tensor("w", &base, &tasks, true, &mut [0.0; 10]).unwrap();
    let energies: Vec<_> = stats
        .tasks
        .iter()
        .map(|t| (t.energy, t.kept_energy))
        .collect();
    assert_eq!(energies, [(10.0, 3.0), (40.0, 16.0)]);
    let b_first = [1., 1., 2., 2., 0., 0., 2., 2., 2., 0.];
    assert_eq!(
        merge(false, true, true),
        (b_first, vec![(3, 1, 2), (5, 0, 5)])
    );
    // Two tasks with priority: an error naming the tensor.
    let tasks = [
        task(&ones[..], &BASE_A[..], &FT_A[..], 0.3, true),
        task(&twos[..], &BASE_B[..], &FT_B[..], 0.5, true),
    ];
    let err = led_tensor("w", &base, &tasks, true, &mut [0.0; 10]).unwrap_err();
    assert!(err.to_string().contains("both have priority"), "{err}");
}
