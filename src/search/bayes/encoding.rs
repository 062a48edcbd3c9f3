//! How each dimension of the space looks to the model. Every point lives on the unit cube that
//! `Space::to_unit` defines (log scales already in log space); ints, stepped doubles and discrete
//! values are snapped to the unit coordinate of a level, so the acquisition is always scored at a
//! point the trial can actually run; categoricals keep their bin centre and the kernel compares
//! them by equality (Hamming distance).

use crate::space::{Domain, Space};

/// Axes with at most this many levels are searched level by level; more are treated as
/// continuous by the local search and snapped afterwards.
const SWEEP_LIMIT: usize = 32;

#[derive(Clone, Debug)]
enum Axis {
    Continuous,
    /// Ordered levels (ints, stepped doubles, discrete values), with their unit coordinates.
    Levels(Vec<f64>),
    /// Ordered levels, too many to try one by one.
    ManyLevels,
    /// Unordered levels, with their unit coordinates (bin centres).
    Categorical(Vec<f64>),
}

/// The model's view of a space.
#[derive(Clone, Debug)]
pub struct Encoding {
    axes: Vec<Axis>,
    /// Each axis' domain, to snap a coordinate exactly as `Space` rounds it.
    domains: Vec<Domain>,
}

impl Encoding {
    pub fn new(space: &Space) -> Self {
        let domains: Vec<Domain> = space.dims.iter().map(|d| d.domain.clone()).collect();
        Self { axes: domains.iter().map(axis).collect(), domains }
    }

    pub fn dims(&self) -> usize {
        self.axes.len()
    }

    /// Which axes the kernel compares by equality.
    pub fn categorical(&self) -> Vec<bool> {
        self.axes.iter().map(|a| matches!(a, Axis::Categorical(_))).collect()
    }

    /// Axes the gradient-based local search moves (continuous, or with many levels).
    pub fn free_axes(&self) -> Vec<usize> {
        (0..self.dims()).filter(|&i| matches!(self.axes[i], Axis::Continuous | Axis::ManyLevels)).collect()
    }

    /// The unit coordinates of an axis' levels, when it is searched level by level.
    pub fn levels(&self, axis: usize) -> Option<&[f64]> {
        match &self.axes[axis] {
            Axis::Levels(l) | Axis::Categorical(l) => Some(l),
            Axis::Continuous | Axis::ManyLevels => None,
        }
    }

    /// Rounds every non-continuous coordinate to its level, in place.
    pub fn snap(&self, x: &mut [f64]) {
        for (i, u) in x.iter_mut().enumerate() {
            *u = self.snap_axis(i, *u);
        }
    }

    fn snap_axis(&self, axis: usize, u: f64) -> f64 {
        if matches!(self.axes[axis], Axis::Continuous) {
            return u.clamp(0.0, 1.0);
        }
        self.domains[axis].snap_unit(u)
    }
}

fn axis(domain: &Domain) -> Axis {
    let unit_of_level = |i: usize| domain.unit_of(&domain.level(i)).unwrap_or(0.5);
    match (domain, domain.levels()) {
        (Domain::Double { step: None, .. }, _) | (_, None) => Axis::Continuous,
        (Domain::Categorical { .. }, Some(n)) => Axis::Categorical((0..n).map(unit_of_level).collect()),
        (_, Some(n)) if n <= SWEEP_LIMIT => Axis::Levels((0..n).map(unit_of_level).collect()),
        _ => Axis::ManyLevels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ParameterSpec, ParameterType, Scalar};

    fn param(name: &str, kind: ParameterType, min: f64, max: f64) -> ParameterSpec {
        ParameterSpec::range(name, kind, min, max)
    }

    #[test]
    fn snapping_rounds_levels_and_leaves_continuous_axes_alone() {
        let mut cat = param("c", ParameterType::Categorical, 0.0, 0.0);
        cat.values = vec![Scalar::Text("a".into()), Scalar::Text("b".into())];
        let space = Space::new(&[
            param("x", ParameterType::Double, 0.0, 1.0),
            param("n", ParameterType::Int, 1.0, 4.0),
            param("m", ParameterType::Int, 0.0, 1000.0),
            cat,
        ]);
        let enc = Encoding::new(&space);
        assert_eq!(enc.categorical(), [false, false, false, true]);
        assert_eq!(enc.free_axes(), [0, 2]);
        assert_eq!(enc.levels(1).unwrap(), [0.125, 0.375, 0.625, 0.875]);
        let mut x = [0.3333, 0.3, 0.5004, 0.9];
        enc.snap(&mut x);
        assert_eq!(x[0], 0.3333);
        assert_eq!(x[1], 0.375);
        assert_eq!(x[3], 0.75);
        let a = space.from_unit(&x);
        assert_eq!(space.to_unit(&a).unwrap()[2], x[2]);
    }
}
