//! L-BFGS (argmin, More-Thuente line search) on a function that returns its value and gradient
//! together, with a cap on evaluations: argmin's line search has no cap of its own and can spend
//! dozens of evaluations on one step it cannot satisfy, so once the budget is spent the run is
//! ended (through an error) and the best point seen is returned. A deterministic cost cap.

use std::cell::{Cell, RefCell};

use argmin::core::{CostFunction, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub iterations: u64,
    pub evaluations: u64,
    /// Stop when the gradient norm falls below this…
    pub gradient_tolerance: f64,
    /// …or an iteration lowers the value by less than this.
    pub cost_tolerance: f64,
}

/// L-BFGS history length.
const MEMORY: usize = 7;

/// A point, its value and its gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// The lowest value seen from `start` and where it was (never worse than `start`'s own).
pub fn minimize<F: Fn(&[f64]) -> (f64, Vec<f64>)>(f: F, start: Vec<f64>, limits: Limits) -> (f64, Vec<f64>) {
    let problem =
        Budgeted { f, last: RefCell::new(None), best: RefCell::new(None), left: Cell::new(limits.evaluations) };
    let start_value = problem.evaluate(&start).1;
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), MEMORY)
        .with_tolerance_grad(limits.gradient_tolerance)
        .and_then(|s| s.with_tolerance_cost(limits.cost_tolerance));
    if let Ok(solver) = solver {
        // An error (the budget spent, a failed line search) still leaves the best point seen.
        let _ =
            Executor::new(&problem, solver).configure(|s| s.param(start.clone()).max_iters(limits.iterations)).run();
    }
    match problem.best.take() {
        Some((value, point)) if value < start_value => (value, point),
        _ => (start_value, start),
    }
}

struct Budgeted<F> {
    f: F,
    /// argmin asks for the value and the gradient at the same point separately.
    last: RefCell<Option<Evaluated>>,
    best: RefCell<Option<(f64, Vec<f64>)>>,
    left: Cell<u64>,
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> Budgeted<F> {
    fn evaluate(&self, p: &[f64]) -> Evaluated {
        if let Some(last) = self.last.borrow().as_ref()
            && last.0.as_slice() == p
        {
            return last.clone();
        }
        self.left.set(self.left.get().saturating_sub(1));
        let (value, gradient) = (self.f)(p);
        let (value, gradient) = if value.is_finite() && gradient.iter().all(|g| g.is_finite()) {
            (value, gradient)
        } else {
            (f64::MAX / 4.0, vec![0.0; p.len()])
        };
        let mut best = self.best.borrow_mut();
        if best.as_ref().is_none_or(|(b, _)| value < *b) {
            *best = Some((value, p.to_vec()));
        }
        let evaluated = (p.to_vec(), value, gradient);
        *self.last.borrow_mut() = Some(evaluated.clone());
        evaluated
    }

    fn checked(&self, p: &[f64]) -> Result<Evaluated, argmin::core::Error> {
        let cached = self.last.borrow().as_ref().is_some_and(|last| last.0.as_slice() == p);
        if self.left.get() == 0 && !cached {
            return Err(argmin::core::Error::msg("evaluation budget spent"));
        }
        Ok(self.evaluate(p))
    }
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> CostFunction for &Budgeted<F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        self.checked(p).map(|e| e.1)
    }
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> Gradient for &Budgeted<F> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, p: &Self::Param) -> Result<Vec<f64>, argmin::core::Error> {
        self.checked(p).map(|e| e.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(p: &[f64]) -> (f64, Vec<f64>) {
        let (x, y) = (p[0], p[1]);
        let value = (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
        (value, vec![-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)])
    }

    #[test]
    fn lbfgs_finds_the_minimum_of_a_smooth_valley() {
        let limits = Limits { iterations: 200, evaluations: 1000, gradient_tolerance: 1e-10, cost_tolerance: 0.0 };
        let (value, p) = minimize(rosenbrock, vec![-1.2, 1.0], limits);
        assert!(value < 1e-10 && (p[0] - 1.0).abs() < 1e-4, "{value} at {p:?}");
    }

    #[test]
    fn the_evaluation_budget_ends_the_run_with_the_best_point_seen() {
        let calls = Cell::new(0);
        let counted = |p: &[f64]| {
            calls.set(calls.get() + 1);
            rosenbrock(p)
        };
        let limits = Limits { iterations: 200, evaluations: 12, gradient_tolerance: 1e-10, cost_tolerance: 0.0 };
        let (value, _) = minimize(counted, vec![-1.2, 1.0], limits);
        assert!(calls.get() <= 12, "{} evaluations", calls.get());
        assert!(value < rosenbrock(&[-1.2, 1.0]).0);
    }
}
