//! Log expected improvement, for minimization: `log E[max(best - xi - f(x), 0)]` under the GP
//! posterior `f(x) ~ N(mean, sd²)`.
//!
//! With `z = (best - xi - mean) / sd`, `EI = sd · h(z)` where `h(z) = φ(z) + z Φ(z)`. The direct
//! formula underflows to `log 0 = -inf` once `z` is below about -38, and loses all precision well
//! before, which leaves a flat acquisition over most of a well-explored space. As in BoTorch's and
//! Optuna's logEI, for `z < -1` we use `h(z) = φ(z) (1 - |z| Φ(z)/φ(z))` with
//! `Φ(z)/φ(z) = sqrt(π/2) · erfcx(-z/√2)`, so `log h` stays finite and monotone down to `z ≈ -1e150`.

use std::f64::consts::{FRAC_1_SQRT_2, LN_2, PI};

/// `log(sqrt(2π))`.
const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
/// Below this `z` the `log1mexp` term is negligible against `-z²/2` and is replaced by its leading order.
const NEG_INV_SQRT_EPS: f64 = -1e6;
/// Where `erfcx` switches from `erfc(x)·e^{x²}` (erfc underflows near 26.5) to its asymptotic series.
const ERFCX_SERIES_FROM: f64 = 26.0;

/// Log expected improvement over `best` by at least `xi`.
#[derive(Clone, Copy, Debug)]
pub struct LogEi {
    pub best: f64,
    pub xi: f64,
}

impl LogEi {
    /// The value at a posterior `mean` and standard deviation `sd` (> 0).
    pub fn value(&self, mean: f64, sd: f64) -> f64 {
        sd.ln() + log_h((self.best - self.xi - mean) / sd)
    }

    /// The value and its partial derivatives with respect to `mean` and `sd`.
    pub fn value_and_slopes(&self, mean: f64, sd: f64) -> (f64, f64, f64) {
        let z = (self.best - self.xi - mean) / sd;
        let lh = log_h(z);
        // d log h / dz = Φ(z) / h(z), computed in logs so it stays finite where both underflow.
        let r = (log_cdf(z) - lh).exp();
        (sd.ln() + lh, -r / sd, (1.0 - z * r) / sd)
    }
}

/// `log(φ(z) + z Φ(z))`, accurate for every finite `z`.
pub fn log_h(z: f64) -> f64 {
    if z > -1.0 {
        return (pdf(z) + z * cdf(z)).ln();
    }
    let log_pdf = -0.5 * z * z - LOG_SQRT_2PI;
    if z > NEG_INV_SQRT_EPS {
        // w = log(|z| Φ(z)/φ(z)) < 0
        let w = (erfcx(-z * FRAC_1_SQRT_2) * z.abs()).ln() + 0.5 * (PI / 2.0).ln();
        log_pdf + log1mexp(w)
    } else {
        log_pdf - 2.0 * z.abs().ln()
    }
}

/// `log Φ(z)`, accurate in the far left tail.
fn log_cdf(z: f64) -> f64 {
    if z > -1.0 {
        cdf(z).ln()
    } else {
        // Φ(z) = erfc(-z/√2)/2 = erfcx(-z/√2) e^{-z²/2} / 2
        (erfcx(-z * FRAC_1_SQRT_2) / 2.0).ln() - 0.5 * z * z
    }
}

fn pdf(z: f64) -> f64 {
    (-0.5 * z * z - LOG_SQRT_2PI).exp()
}

fn cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * FRAC_1_SQRT_2)
}

/// `log(1 - e^w)` for `w < 0`, accurate near 0 and far below it.
fn log1mexp(w: f64) -> f64 {
    if w > -LN_2 { (-w.exp_m1()).ln() } else { (-w.exp()).ln_1p() }
}

/// The scaled complementary error function `erfc(x) e^{x²}` for `x >= 0`.
fn erfcx(x: f64) -> f64 {
    if x < ERFCX_SERIES_FROM {
        libm::erfc(x) * (x * x).exp()
    } else {
        // Asymptotic series; from x = 26 on the first omitted term is below 2e-15 relative.
        let t = 1.0 / (2.0 * x * x);
        let series = 1.0 - t * (1.0 - 3.0 * t * (1.0 - 5.0 * t * (1.0 - 7.0 * t * (1.0 - 9.0 * t))));
        series / (x * PI.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(best: f64, mean: f64, sd: f64) -> f64 {
        let z = (best - mean) / sd;
        (sd * (pdf(z) + z * cdf(z))).ln()
    }

    #[test]
    fn log_ei_matches_the_direct_formula_where_that_is_stable() {
        let acq = LogEi { best: 0.0, xi: 0.0 };
        for &(mean, sd) in &[(-2.0, 1.0), (0.0, 1.0), (0.5, 0.3), (3.0, 1.0), (10.0, 2.0), (1.0, 0.05)] {
            let (a, b) = (acq.value(mean, sd), direct(0.0, mean, sd));
            assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "mean {mean} sd {sd}: {a} vs {b}");
        }
    }

    #[test]
    fn log_ei_stays_finite_and_monotone_where_the_direct_formula_underflows() {
        let acq = LogEi { best: 0.0, xi: 0.0 };
        assert_eq!(direct(0.0, 40.0, 1.0), f64::NEG_INFINITY);
        let mut last = f64::INFINITY;
        for k in 0..200 {
            let mean = 1.0 + k as f64 * 5.0; // z from -1 down to -996
            let v = acq.value(mean, 1.0);
            assert!(v.is_finite() && v < last, "mean {mean}: {v} after {last}");
            // Leading order: log EI ≈ -z²/2 - log(sqrt(2π)) - 2 log|z|.
            let lead = -0.5 * mean * mean - LOG_SQRT_2PI - 2.0 * mean.ln();
            assert!((v - lead).abs() < 0.5 + 3.0 / mean, "mean {mean}: {v} vs {lead}");
            last = v;
        }
        assert!(acq.value(1e100, 1.0).is_finite());
    }

    #[test]
    fn log_ei_slopes_match_finite_differences() {
        let acq = LogEi { best: 0.2, xi: 0.01 };
        for &(mean, sd) in &[(0.0, 1.0), (1.5, 0.4), (6.0, 0.5), (40.0, 1.0)] {
            let (_, dm, ds) = acq.value_and_slopes(mean, sd);
            let h = 1e-6;
            let fm = (acq.value(mean + h, sd) - acq.value(mean - h, sd)) / (2.0 * h);
            let fs = (acq.value(mean, sd + h) - acq.value(mean, sd - h)) / (2.0 * h);
            assert!((dm - fm).abs() < 1e-4 * fm.abs().max(1.0), "d/dmean at {mean}: {dm} vs {fm}");
            assert!((ds - fs).abs() < 1e-4 * fs.abs().max(1.0), "d/dsd at {mean}: {ds} vs {fs}");
        }
    }

    #[test]
    fn erfcx_is_continuous_where_its_two_formulas_meet() {
        let (a, b) = (erfcx(ERFCX_SERIES_FROM - 1e-12), erfcx(ERFCX_SERIES_FROM));
        assert!((a - b).abs() < 1e-12 * a, "{a} vs {b}");
    }
}
