//! Grid search: the cartesian product of every parameter's levels, in a fixed order (last parameter
//! fastest), each point once.

use super::{Past, Result, Search, seen_keys};
use crate::space::{Assignment, Space, assignment_key};

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

    fn exhausted_reason(&self) -> &'static str {
        "GridExhausted"
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
        assert_eq!(grid.exhausted_reason(), "GridExhausted");
    }
}
