//! Test fixtures: `ExperimentSpec::test().bayesian().budget(8)` instead of the same minimal document
//! written out in every test.

use super::{
    AlgorithmName, ExecutorKind, ExperimentSpec, Goal, Objective, ParameterSpec, ParameterType, Strategy, TrialTemplate,
};

impl ExperimentSpec {
    /// Minimize `loss` over one double `x` in [0, 1] with random search (seed 1): 10 trials, one
    /// at a time, up to 3 failures, a local `true` as the trial.
    pub fn test() -> Self {
        Self {
            objective: Objective {
                metric: "loss".into(),
                goal: Goal::Minimize,
                target: None,
                strategy: None,
                additional_metrics: Vec::new(),
            },
            algorithm: super::Algorithm { name: AlgorithmName::Random, seed: Some(1), settings: Default::default() },
            parameters: vec![ParameterSpec::range("x", ParameterType::Double, 0.0, 1.0)],
            max_trials: 10,
            parallel_trials: 1,
            max_failed_trials: 3,
            executor: ExecutorKind::Local,
            trial: TrialTemplate { command: vec!["true".into()], ..Default::default() },
            metrics: Default::default(),
            promotion: None,
            early_stopping: None,
        }
    }

    /// The experiment document `name` with this spec.
    pub fn named(self, name: &str) -> super::Experiment {
        super::Experiment::new(name, self)
    }

    /// The objective's metric.
    pub fn metric(mut self, metric: &str) -> Self {
        self.objective.metric = metric.into();
        self
    }

    /// Metrics shown beside the objective.
    pub fn also(mut self, metrics: &[&str]) -> Self {
        self.objective.additional_metrics = metrics.iter().map(|m| m.to_string()).collect();
        self
    }

    pub fn bayesian(mut self) -> Self {
        self.algorithm.name = AlgorithmName::Bayesian;
        self
    }

    /// Grid search over one int `x` in 1..=`points`.
    pub fn grid(mut self, points: u32) -> Self {
        self.algorithm.name = AlgorithmName::Grid;
        self.parameters = vec![ParameterSpec::range("x", ParameterType::Int, 1.0, f64::from(points))];
        self
    }

    /// `maxTrials`.
    /// Early stopping by `rule` with these settings (`{"minResource": 1}`…).
    pub fn early_stopping(mut self, rule: super::StoppingRule, settings: serde_json::Value) -> Self {
        let settings = settings.as_object().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
        self.early_stopping = Some(super::EarlyStopping { rule, settings });
        self
    }

    pub fn budget(mut self, max_trials: u32) -> Self {
        self.max_trials = max_trials;
        self
    }

    pub fn parallel(mut self, parallel_trials: u32) -> Self {
        self.parallel_trials = parallel_trials;
        self
    }

    pub fn max_failed(mut self, max_failed_trials: u32) -> Self {
        self.max_failed_trials = max_failed_trials;
        self
    }

    pub fn maximize(mut self) -> Self {
        self.objective.goal = Goal::Maximize;
        self
    }

    pub fn target(mut self, target: f64) -> Self {
        self.objective.target = Some(target);
        self
    }

    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.objective.strategy = Some(strategy);
        self
    }

    pub fn retries(mut self, retries: u32) -> Self {
        self.trial.retries = retries;
        self
    }

    pub fn timeout(mut self, timeout: &str) -> Self {
        self.trial.timeout = Some(timeout.into());
        self
    }

    pub fn external(mut self) -> Self {
        self.executor = ExecutorKind::External;
        self
    }
}
