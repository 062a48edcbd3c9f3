//! Grid search: the cartesian product of every parameter's levels, in a fixed order (last parameter
//! fastest), each point once.

use super::{Past, Result, Search, seen_keys};
use crate::space::{Assignment, Domain, Space, assignment_key};

/// The most points tuna puts on one double without a step.
const MAX_LEVELS: usize = 10_000;

/// Levels for each double without a step so that the whole grid holds at least `max_trials`
/// points: the budget, not an arbitrary resolution, decides how fine the grid is.
pub fn levels_for(space: &Space, max_trials: u32) -> usize {
    let open = space.dims.iter().filter(|d| matches!(d.domain, Domain::Double { step: None, .. })).count();
    let fixed: f64 = space.dims.iter().filter_map(|d| d.domain.levels()).map(|n| n as f64).product();
    if open == 0 {
        return 2;
    }
    let wanted = (f64::from(max_trials) / fixed).max(1.0).powf(1.0 / open as f64).ceil() as usize;
    wanted.clamp(2, MAX_LEVELS)
}

pub struct Grid {
    space: Space,
}

impl Grid {
    pub fn new(space: Space) -> Self {
        Self { space }
    }
}

impl Search for Grid {
    fn suggest(&mut self, history: &[Past], count: usize) -> Result<Vec<Assignment>> {
        let mut seen = seen_keys(history);
        let size = self.space.grid_size().unwrap_or(0);
        let mut out = Vec::with_capacity(count);
        // Points before `history.len()` were suggested already (every trial is one grid point), so
        // start there and skip any point a resumed or hand-made history already holds.
        let mut index = history.len() as u128;
        while out.len() < count && index < size {
            if let Some(point) = self.space.grid_point(index).filter(|p| seen.insert(assignment_key(p))) {
                out.push(point);
            }
            index += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Outcome;
    use crate::spec::{ParameterSpec, ParameterType, Scalar, Scale};

    fn param(name: &str, kind: ParameterType) -> ParameterSpec {
        ParameterSpec {
            name: name.into(),
            kind,
            min: None,
            max: None,
            step: None,
            scale: Scale::Linear,
            values: vec![],
        }
    }

    fn space() -> Space {
        let mut a = param("a", ParameterType::Int);
        (a.min, a.max) = (Some(1.0), Some(3.0));
        let mut b = param("b", ParameterType::Categorical);
        b.values = vec![Scalar::Text("x".into()), Scalar::Text("y".into())];
        Space::new(&[a, b])
    }

    #[test]
    fn grid_enumerates_the_product_in_order_then_stops_suggesting_when_exhausted() {
        let mut grid = Grid::new(space());
        let mut history = Vec::new();
        loop {
            let batch = grid.suggest(&history, 4).unwrap();
            if batch.is_empty() {
                break;
            }
            history.extend(batch.into_iter().map(|parameters| Past { parameters, outcome: Outcome::Pending }));
        }
        let points: Vec<String> =
            history.iter().map(|p| format!("{}{}", p.parameters["a"], p.parameters["b"])).collect();
        assert_eq!(points, ["1x", "1y", "2x", "2y", "3x", "3y"]);
        let reason = crate::search::exhausted_reason(&crate::spec::AlgorithmName::Grid);
        assert_eq!(reason.as_str(), "GridExhausted");
    }

    #[test]
    fn levels_for_unstepped_doubles_cover_the_budget() {
        let double = |name: &str| {
            let mut p = param(name, ParameterType::Double);
            (p.min, p.max) = (Some(0.0), Some(1.0));
            p
        };
        let space = Space::new(&[double("x"), double("y")]);
        let levels = levels_for(&space, 50);
        assert_eq!(levels, 8, "8 x 8 = 64 >= 50 > 7 x 7");
        assert_eq!(space.with_levels(levels).grid_size(), Some(64));
    }
}
