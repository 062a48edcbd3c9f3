use super::*;
use crate::spec::{ParameterSpec, ParameterType, Scalar, Scale};
use rand::SeedableRng;

fn range(name: &str, kind: ParameterType, min: f64, max: f64) -> ParameterSpec {
    ParameterSpec::range(name, kind, min, max)
}

fn values(name: &str, kind: ParameterType, values: Vec<Scalar>) -> ParameterSpec {
    ParameterSpec::choices(name, kind, values)
}

fn quickstart() -> Space {
    let mut lr = range("lr", ParameterType::Double, 1e-4, 1.0);
    lr.scale = Scale::Log;
    let mut momentum = range("momentum", ParameterType::Double, 0.0, 0.9);
    momentum.step = Some(0.1);
    Space::new(&[
        lr,
        range("epochs", ParameterType::Int, 1.0, 30.0),
        values("penalty", ParameterType::Categorical, vec![Scalar::Text("l1".into()), Scalar::Text("l2".into())]),
        values(
            "batch",
            ParameterType::Discrete,
            vec![Scalar::Number(64.0), Scalar::Number(16.0), Scalar::Number(32.0)],
        ),
        momentum,
    ])
}

#[test]
fn samples_respect_types_bounds_and_steps() {
    let space = quickstart();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..500 {
        let a = space.sample(&mut rng);
        assert!(matches!(a["lr"], ParamValue::Float(v) if (1e-4..=1.0).contains(&v)));
        assert!(matches!(a["epochs"], ParamValue::Int(v) if (1..=30).contains(&v)));
        assert!(matches!(&a["penalty"], ParamValue::Text(v) if v == "l1" || v == "l2"));
        assert!(matches!(a["batch"], ParamValue::Int(16 | 32 | 64)));
        let ParamValue::Float(m) = a["momentum"] else { panic!("momentum is a double") };
        assert!((0.0..=0.9).contains(&m) && ((m * 10.0).round() - m * 10.0).abs() < 1e-9, "{m}");
    }
}

#[test]
fn to_unit_and_from_unit_round_trip_every_kind() {
    let space = quickstart();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for _ in 0..200 {
        let a = space.sample(&mut rng);
        let u = space.to_unit(&a).unwrap();
        assert!(u.iter().all(|x| (0.0..=1.0).contains(x)));
        let back = space.from_unit(&u);
        for (name, v) in &a {
            match (v, &back[name]) {
                (ParamValue::Float(x), ParamValue::Float(y)) => {
                    assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{name}: {x} vs {y}")
                }
                (x, y) => assert_eq!(x, y, "{name}"),
            }
        }
    }
}

#[test]
fn int_levels_are_drawn_evenly_including_the_ends() {
    let space = Space::new(&[range("n", ParameterType::Int, 1.0, 4.0)]);
    let mut counts = [0; 4];
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..4000 {
        if let ParamValue::Int(n) = space.sample(&mut rng)["n"] {
            counts[(n - 1) as usize] += 1;
        }
    }
    assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
}

#[test]
fn grid_size_multiplies_the_levels_and_steps_forgive_rounding() {
    let space = quickstart();
    assert_eq!(space.grid_size(), None, "a continuous double makes the space infinite");
    let mut m = range("m", ParameterType::Double, 0.0, 0.9);
    m.step = Some(0.1);
    let mut k = range("k", ParameterType::Int, 2.0, 10.0);
    k.step = Some(4.0);
    let space = Space::new(&[m, k]);
    assert_eq!(space.grid_size(), Some(10 * 3));
    assert_eq!(space.grid_point(0).unwrap()["m"], ParamValue::Float(0.0));
    assert_eq!(space.grid_point(29).unwrap()["m"], ParamValue::Float(0.9));
    assert_eq!(space.grid_point(10).unwrap()["m"], ParamValue::Float(0.3));
    assert_eq!(space.grid_point(29).unwrap()["k"], ParamValue::Int(10));
    assert_eq!(space.grid_point(30), None);
}

#[test]
fn discrete_values_are_ordered_and_whole_numbers_stay_ints() {
    let space = quickstart();
    let Domain::Discrete { values, .. } = &space.dims[3].domain else { panic!("batch is discrete") };
    assert_eq!(values, &[16.0, 32.0, 64.0]);
    assert_eq!(space.dims[3].domain.level(0).to_string(), "16");
}

#[test]
fn with_levels_turns_unstepped_doubles_into_even_float_levels() {
    let mut lr = range("lr", ParameterType::Double, 1e-4, 1.0);
    lr.scale = Scale::Log;
    let space = Space::new(&[range("x", ParameterType::Double, -5.0, 10.0), lr]).with_levels(5);
    assert_eq!(space.grid_size(), Some(25));
    let level = |d: usize| (0..5).map(|i| space.dims[d].domain.level(i)).collect::<Vec<_>>();
    let floats = |v: &[f64]| v.iter().map(|x| ParamValue::Float(*x)).collect::<Vec<_>>();
    assert_eq!(level(0), floats(&[-5.0, -1.25, 2.5, 6.25, 10.0]));
    assert_eq!(level(1), floats(&[1e-4, 1e-3, 1e-2, 0.1, 1.0]), "evenly in log space, read as written");
}

#[test]
fn parameter_values_keep_their_json_type_through_a_round_trip() {
    let values = vec![
        ParamValue::Int(-3),
        ParamValue::Int(i64::MAX),
        ParamValue::Float(3.0),
        ParamValue::Float(0.1 + 0.2),
        ParamValue::Text("adam".into()),
    ];
    let json = serde_json::to_string(&values).unwrap();
    assert_eq!(serde_json::from_str::<Vec<ParamValue>>(&json).unwrap(), values, "{json}");
    assert_eq!(
        serde_json::from_str::<ParamValue>("18446744073709551615").unwrap(),
        ParamValue::Float(1.8446744073709552e19)
    );
    assert!(serde_json::from_str::<ParamValue>("true").is_err());
}

#[test]
fn snapping_a_unit_coordinate_lands_where_its_value_sits() {
    let mut lr = range("lr", ParameterType::Double, 1e-4, 1.0);
    lr.scale = Scale::Log;
    let mut stepped = range("s", ParameterType::Double, 0.0, 1.0);
    stepped.step = Some(0.25);
    let mut dims = quickstart().dims;
    dims.extend(Space::new(&[lr, stepped, range("n", ParameterType::Int, 1.0, 8.0)]).dims);
    for dim in &dims {
        for k in 0..=200 {
            let u = k as f64 / 200.0;
            let expected = match dim.domain {
                Domain::Double { step: None, .. } => u, // continuous: nothing to snap to
                _ => dim.domain.unit_of(&dim.domain.at_unit(u)).unwrap(),
            };
            assert_eq!(dim.domain.snap_unit(u), expected, "{} at {u}", dim.name);
        }
    }
}
