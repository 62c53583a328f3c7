//! Every operator on hand-worked tensors, including the spec's edge cases.

use led_merging_merge::Error;
use led_merging_merge::Scalar;
use led_merging_merge::ops::{ModelTensor, Params, ScorePair, TensorJob, TensorNote, method};

fn params(list: &[(&str, Scalar)]) -> Params {
    Params(
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn n(x: f64) -> Scalar {
    Scalar::Number(x)
}

fn b(x: bool) -> Scalar {
    Scalar::Bool(x)
}

struct Case<'a> {
    method: &'a str,
    base: Option<&'a [f32]>,
    models: Vec<(&'a [f32], Params)>,
    scores: Vec<Option<(&'a [f32], &'a [f32])>>,
    global: Params,
    shape: Vec<usize>,
    seed: u64,
}

impl<'a> Case<'a> {
    fn new(
        method: &'a str,
        base: Option<&'a [f32]>,
        models: Vec<(&'a [f32], Params)>,
        global: Params,
    ) -> Self {
        let len = base.map(|b| b.len()).unwrap_or_else(|| models[0].0.len());
        let scores = vec![None; models.len()];
        Case {
            method,
            base,
            models,
            scores,
            global,
            shape: vec![len],
            seed: 0,
        }
    }

    fn run(&self) -> Result<(Vec<f32>, Vec<TensorNote>), Error> {
        let m = method(self.method).expect("known method");
        let job = TensorJob {
            name: "model.layers.0.mlp.up_proj.weight",
            shape: &self.shape,
            base: self.base,
            models: self
                .models
                .iter()
                .enumerate()
                .map(|(i, (v, p))| ModelTensor {
                    index: i,
                    values: v,
                    params: p,
                    scores: self.scores[i].map(|(model, base)| ScorePair { model, base }),
                })
                .collect(),
            global: &self.global,
            seed: self.seed,
            offset: 0,
            streamed: None,
        };
        let mut out = vec![f32::NAN; self.shape.iter().product()];
        let notes = m.merge(&job, &mut out)?;
        Ok((out, notes))
    }
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} != {b:?}");
    }
}

#[test]
fn linear_weighted_average() {
    let (m1, m2) = ([1.0, 2.0], [3.0, 4.0]);
    let case = Case::new(
        "linear",
        None,
        vec![
            (&m1, params(&[("weight", n(1.0))])),
            (&m2, params(&[("weight", n(3.0))])),
        ],
        Params::default(),
    );
    close(&case.run().unwrap().0, &[2.5, 3.5]);
    let case = Case {
        global: params(&[("normalize", b(false))]),
        ..case
    };
    close(&case.run().unwrap().0, &[10.0, 14.0]);
    let zero = Case::new(
        "linear",
        None,
        vec![
            (&m1, params(&[("weight", n(1.0))])),
            (&m2, params(&[("weight", n(-1.0))])),
        ],
        Params::default(),
    );
    let e = zero.run().unwrap_err();
    assert!(
        e.to_string().contains("sum to 0") && e.to_string().contains("up_proj"),
        "{e}"
    );
}

#[test]
fn task_arithmetic_with_lambda_and_normalize() {
    let base = [1.0, 1.0];
    let (m1, m2) = ([2.0, 0.0], [1.0, 3.0]);
    let models = vec![
        (&m1[..], params(&[("weight", n(1.0))])),
        (&m2[..], params(&[("weight", n(0.5))])),
    ];
    // Σ w δ = [1, 0]; λ = 2.
    let case = Case::new(
        "task_arithmetic",
        Some(&base),
        models.clone(),
        params(&[("lambda", n(2.0))]),
    );
    close(&case.run().unwrap().0, &[3.0, 1.0]);
    let case = Case::new(
        "task_arithmetic",
        Some(&base),
        models,
        params(&[("lambda", n(2.0)), ("normalize", b(true))]),
    );
    close(&case.run().unwrap().0, &[1.0 + 2.0 / 1.5, 1.0]);
}

#[test]
fn ties_trim_elect_disjoint_mean() {
    let base = [0.0; 4];
    let (m1, m2) = ([3.0, -1.0, 2.0, 0.5], [-1.0, -2.0, 1.0, 0.0]);
    let p = params(&[("weight", n(1.0)), ("density", n(0.5))]);
    // Top-2: [3,0,2,0] and [-1,-2,0,0] (|1| tie at 0 and 2: the lower index wins).
    // Signs of the sums [2,-2,2,0] → [+,-,+,+ (zero counts as +)].
    let case = Case::new(
        "ties",
        Some(&base),
        vec![(&m1, p.clone()), (&m2, p.clone())],
        Params::default(),
    );
    close(&case.run().unwrap().0, &[3.0, -2.0, 2.0, 0.0]);
    // The zero-sign tie: +1 wins.
    let (a, c) = ([1.0], [-1.0]);
    let one = params(&[("weight", n(1.0))]);
    let case = Case::new(
        "ties",
        Some(&[0.0]),
        vec![(&a, one.clone()), (&c, one.clone())],
        Params::default(),
    );
    close(&case.run().unwrap().0, &[1.0]);
    // Weights scale before the election; normalize divides by the agreeing weights.
    let (a, c) = ([1.0, 1.0], [-1.0, 1.0]);
    let case = Case::new(
        "ties",
        Some(&[0.0, 0.0]),
        vec![
            (&a, params(&[("weight", n(1.0))])),
            (&c, params(&[("weight", n(3.0))])),
        ],
        Params::default(),
    );
    // Element 0: u = [1, -3] → sign − → -3/3 = -1. Element 1: u = [1, 3] → 4/4 = 1.
    close(&case.run().unwrap().0, &[-1.0, 1.0]);
    let case = Case {
        global: params(&[("normalize", b(false)), ("lambda", n(0.5))]),
        ..case
    };
    close(&case.run().unwrap().0, &[-1.5, 2.0]);
    // k = 0 at low density: nothing kept, and a warning.
    let low = params(&[("weight", n(1.0)), ("density", n(0.1))]);
    let case = Case::new("ties", Some(&base), vec![(&m1, low)], Params::default());
    let (out, notes) = case.run().unwrap();
    close(&out, &base);
    assert!(
        matches!(&notes[0], TensorNote::Warning(w) if w.contains("keeps 0")),
        "{notes:?}"
    );
}

#[test]
fn breadcrumbs_keeps_the_middle() {
    let base = [0.0; 10];
    let m: Vec<f32> = (1..=10).map(|x| x as f32).collect();
    let p = params(&[("weight", n(1.0)), ("density", n(0.5)), ("gamma", n(0.1))]);
    let case = Case::new("breadcrumbs", Some(&base), vec![(&m, p)], Params::default());
    close(
        &case.run().unwrap().0,
        &[0., 0., 0., 0., 5., 6., 7., 8., 9., 0.],
    );
    // n_top = 0 keeps the largest (mergekit would zero everything).
    let p = params(&[("weight", n(2.0)), ("density", n(0.2)), ("gamma", n(0.0))]);
    let case = Case::new("breadcrumbs", Some(&base), vec![(&m, p)], Params::default());
    close(
        &case.run().unwrap().0,
        &[0., 0., 0., 0., 0., 0., 0., 0., 18., 20.],
    );
    let p = params(&[("weight", n(1.0)), ("density", n(0.5)), ("gamma", n(0.1))]);
    let neg: Vec<f32> = m.iter().map(|x| -x).collect();
    let case = Case::new(
        "breadcrumbs_ties",
        Some(&base),
        vec![(&m, p.clone()), (&neg, p)],
        Params::default(),
    );
    // Equal and opposite: sums are 0 → sign + → only the positive model; no normalize.
    close(
        &case.run().unwrap().0,
        &[0., 0., 0., 0., 5., 6., 7., 8., 9., 0.],
    );
}

#[test]
fn dare_is_seeded_and_density_one_is_task_arithmetic() {
    let base = vec![0.0f32; 50_000];
    let m: Vec<f32> = (0..50_000)
        .map(|i| ((i % 13) as f32 - 6.0) * 0.1 + 0.05)
        .collect();
    let p = params(&[("weight", n(1.0)), ("density", n(0.2))]);
    let mut case = Case::new("dare_linear", Some(&base), vec![(&m, p)], Params::default());
    let (a, _) = case.run().unwrap();
    let (a2, _) = case.run().unwrap();
    assert_eq!(a, a2, "same seed, same output");
    let kept = a.iter().filter(|x| **x != 0.0).count() as f64 / a.len() as f64;
    assert!((kept - 0.2).abs() < 0.01, "kept {kept}");
    let l1 = |v: &[f32]| v.iter().map(|x| f64::from(x.abs())).sum::<f64>();
    assert!((l1(&a) / l1(&m) - 1.0).abs() < 1e-4, "L1 preserved");
    case.seed = 1;
    assert_ne!(case.run().unwrap().0, a, "another seed, another mask");
    case.global = params(&[("rescale", Scalar::Text("inverse_density".into()))]);
    let (inv, _) = case.run().unwrap();
    for (x, y) in inv.iter().zip(&m) {
        assert!(*x == 0.0 || (x - y * 5.0).abs() < 1e-5);
    }
    let full = params(&[("weight", n(0.5)), ("density", n(1.0))]);
    let case = Case::new(
        "dare_ties",
        Some(&base),
        vec![(&m, full)],
        Params::default(),
    );
    close(
        &case.run().unwrap().0,
        &m.iter().map(|x| x * 0.5).collect::<Vec<_>>(),
    );
}

#[test]
fn della_keeps_about_rho_per_row_and_checks_epsilon() {
    let base = vec![0.0f32; 400 * 100];
    let m: Vec<f32> = (0..40_000)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.001 + 0.001)
        .collect();
    let p = params(&[("weight", n(1.0)), ("density", n(0.4)), ("epsilon", n(0.1))]);
    let mut case = Case::new(
        "della_linear",
        Some(&base),
        vec![(&m, p)],
        Params::default(),
    );
    case.shape = vec![400, 100];
    let (a, _) = case.run().unwrap();
    let kept = a.iter().filter(|x| **x != 0.0).count() as f64 / a.len() as f64;
    assert!((kept - 0.4).abs() < 0.01, "kept {kept}");
    // Larger magnitudes are kept more often (p rises with rank).
    let big: Vec<usize> = (0..40_000).filter(|&i| m[i] > 0.9).collect();
    let small: Vec<usize> = (0..40_000).filter(|&i| m[i] < 0.1).collect();
    let rate =
        |idx: &[usize]| idx.iter().filter(|&&i| a[i] != 0.0).count() as f64 / idx.len() as f64;
    assert!(
        rate(&big) > rate(&small) + 0.1,
        "{} vs {}",
        rate(&big),
        rate(&small)
    );
    assert_eq!(case.run().unwrap().0, a);
    let bad = params(&[
        ("weight", n(1.0)),
        ("density", n(0.1)),
        ("epsilon", n(0.15)),
    ]);
    let case = Case::new("della", Some(&base), vec![(&m, bad)], Params::default());
    assert!(case.run().unwrap_err().to_string().contains("epsilon"));
}

#[test]
fn model_stock_two_three_and_singular() {
    let base = [0.0, 0.0];
    let none = Params::default();
    let orthogonal = Case::new(
        "model_stock",
        Some(&base),
        vec![(&[1.0, 0.0], none.clone()), (&[0.0, 1.0], none.clone())],
        none.clone(),
    );
    close(&orthogonal.run().unwrap().0, &[0.0, 0.0]); // cos 0 → t 0 → base
    let two = Case::new(
        "model_stock",
        Some(&base),
        vec![(&[1.0, 0.0], none.clone()), (&[1.0, 1.0], none.clone())],
        none.clone(),
    );
    // cos = 1/√2; t = 2c / (1 + c) = 0.828427; mean = [1, 0.5].
    close(&two.run().unwrap().0, &[0.828_427, 0.414_213_5]);
    let three = Case::new(
        "model_stock",
        Some(&base),
        vec![
            (&[1.0, 0.0], none.clone()),
            (&[0.0, 1.0], none.clone()),
            (&[1.0, 1.0], none.clone()),
        ],
        none.clone(),
    );
    // c = (0 + 2/√2) / 3 = 0.471405; t = 3c / (1 + 2c) = 0.727922; mean = [2/3, 2/3].
    close(&three.run().unwrap().0, &[0.485_281_4, 0.485_281_4]);
    let opposite = Case::new(
        "model_stock",
        Some(&base),
        vec![(&[1.0, 0.0], none.clone()), (&[-1.0, 0.0], none.clone())],
        none.clone(),
    );
    let e = opposite.run().unwrap_err();
    assert!(
        e.to_string().contains("undefined") && e.to_string().contains("up_proj"),
        "{e}"
    );
    // Filter-wise: each row gets its own ratio.
    let mut rows = Case::new(
        "model_stock",
        Some(&[0.0, 0.0, 0.0, 0.0]),
        vec![
            (&[1.0, 0.0, 1.0, 0.0], none.clone()),
            (&[0.0, 1.0, 1.0, 0.0], none.clone()),
        ],
        params(&[("filter_wise", b(true))]),
    );
    rows.shape = vec![2, 2];
    // Row 0 orthogonal → base; row 1 identical (cos 1 → t 1) → mean.
    close(&rows.run().unwrap().0, &[0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn slerp_interpolates_on_the_sphere() {
    let half = params(&[("t", n(0.5))]);
    let none = Params::default();
    let case = Case::new(
        "slerp",
        Some(&[1.0, 0.0]),
        vec![(&[0.0, 1.0], none.clone())],
        half.clone(),
    );
    let s = std::f32::consts::FRAC_1_SQRT_2;
    close(&case.run().unwrap().0, &[s, s]);
    let case = Case::new(
        "slerp",
        Some(&[1.0, 0.0]),
        vec![(&[0.0, 1.0], none.clone())],
        params(&[("t", n(0.0))]),
    );
    close(&case.run().unwrap().0, &[1.0, 0.0]);
    // Nearly parallel: plain lerp.
    let case = Case::new(
        "slerp",
        Some(&[1.0, 0.0]),
        vec![(&[2.0, 0.0], none.clone())],
        half,
    );
    close(&case.run().unwrap().0, &[1.5, 0.0]);
}

#[test]
fn led_is_the_spec_worked_example() {
    let base = [0.0f32; 10];
    let ones = [1.0f32; 10];
    let (ft_a, base_a) = (
        [9., 8., 7., 7., 5., 4., 3., 2., 1., 0.],
        [8., 9., 1., 7., 7., 6., 0., 0., 0., 0.],
    );
    let (ft_b, base_b) = (
        [0., 1., 7., 9., 8., 2., 6., 5., 5., 3.],
        [0., 0., 9., 8., 1., 2., 7., 6., 5., 5.],
    );
    let mut case = Case::new(
        "led",
        Some(&base),
        vec![
            (&ones, params(&[("weight", n(1.0)), ("density", n(0.3))])),
            (&ones, params(&[("weight", n(0.5)), ("density", n(0.5))])),
        ],
        Params::default(),
    );
    case.scores = vec![Some((&ft_a, &base_a)), Some((&ft_b, &base_b))];
    let (out, notes) = case.run().unwrap();
    close(&out, &[1., 1., 0.5, 0., 0., 0., 0.5, 0.5, 0.5, 0.]);
    assert!(matches!(&notes[0], TensorNote::Report(r)
        if r.downcast::<led_merging_mask::TensorStats>().unwrap().overlap == 1));
    case.global = params(&[("disjoint", b(false))]);
    close(
        &case.run().unwrap().0,
        &[1., 1., 0.5, 1.5, 0., 0., 0.5, 0.5, 0.5, 0.],
    );
    // Missing scores (allowed by the plan only with `missing_scores`, which warns once for
    // all tensors) fall back to the base (default) or task arithmetic, without a note.
    case.scores = vec![None, None];
    let (out, notes) = case.run().unwrap();
    close(&out, &base);
    assert!(notes.is_empty(), "{notes:?}");
    case.global = params(&[("missing_scores", Scalar::Text("task_arithmetic".into()))]);
    close(&case.run().unwrap().0, &[1.5; 10]);
}

/// RAM worked by hand (ε = 0.5): element 0 has both models over ε (their mean τ), element 1
/// only the first (its τ; RAM+ scales it by λ), element 2 neither (the base's value).
#[test]
fn ram_and_ramplus_tl_by_hand() {
    let base = [1.0, 1.0, 1.0];
    let (a, b) = ([2.0, 3.0, 1.1], [4.0, 1.2, 1.0]);
    let case = |method| {
        Case::new(
            method,
            Some(&base),
            vec![(&a, Params::default()), (&b, Params::default())],
            params(&[("epsilon", n(0.5))]),
        )
    };
    assert_eq!(case("ram").run().unwrap().0, [3.0, 3.0, 1.0]);
    // a: 1 element shared, 1 alone, λ = 1 + 0.1·clamp(1/1, 0, 0.2) = 1.02; b: nothing alone.
    assert_eq!(
        case("ramplus_tl").run().unwrap().0,
        [3.0, 1.0 + 2.0 * 1.02f32, 1.0]
    );
    // r and alpha as given: λ = 1 + 0.5·clamp(1, 0, 0.6) = 1.3.
    let given = Case {
        global: params(&[("epsilon", n(0.5)), ("r", n(0.5)), ("alpha", n(0.6))]),
        ..case("ramplus_tl")
    };
    assert_eq!(
        given.run().unwrap().0,
        [3.0, 1.0 + 2.0 * (1.0 + 0.5 * 0.6f32), 1.0]
    );
}
