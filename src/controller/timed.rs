//! A search whose suggestions are timed into `tuna_controller_suggestion_duration_seconds`: the
//! core that calls it is pure and keeps no clock, so the clock sits in this wrapper.

use std::time::Instant;

use crate::search::{Past, Result, Search};
use crate::space::Assignment;
use crate::spec::{ExecutorKind, ExperimentSpec};

/// The search of one experiment, labelled with its algorithm and executor.
pub(super) struct Timed {
    inner: Box<dyn Search>,
    algorithm: String,
    executor: &'static str,
}

/// The `executor` label of an experiment's metrics.
pub(super) fn executor_label(kind: ExecutorKind) -> &'static str {
    match kind {
        ExecutorKind::Local => "local",
        ExecutorKind::External => "external",
        ExecutorKind::Kubernetes => "kubernetes",
    }
}

impl Timed {
    pub(super) fn wrap(inner: Box<dyn Search>, spec: &ExperimentSpec) -> Box<dyn Search> {
        let algorithm = spec.algorithm.name.to_string();
        Box::new(Self { inner, algorithm, executor: executor_label(spec.executor) })
    }
}

impl Search for Timed {
    fn suggest(&mut self, history: &[Past], count: usize) -> Result<Vec<Assignment>> {
        let started = Instant::now();
        let picked = self.inner.suggest(history, count);
        crate::instruments::global().suggested(&self.algorithm, self.executor, started.elapsed().as_secs_f64());
        picked
    }

    fn anticipate(&mut self, history: &[Past]) {
        self.inner.anticipate(history);
    }

    fn costly(&self) -> bool {
        self.inner.costly()
    }

    fn exhausts_when_short(&self) -> bool {
        self.inner.exhausts_when_short()
    }
}
