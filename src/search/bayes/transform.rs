//! The objective as the GP sees it: standardized ([`plain`]), or also warped by a Yeo-Johnson
//! power transform fitted by maximum likelihood ([`warped`], as HEBO does). Objectives with a heavy
//! right tail (Rosenbrock's values span six decades) otherwise squash every good value into one flat
//! basin of the standardized scale; on others the warp distorts a surface the GP fits well as it is.
//! Both transforms are monotone (the best point stays the best) and come with the log slope of each
//! value, so the model can compare the two by their evidence about the raw values.

/// The transform's exponent is searched in this range (scikit-learn's too).
const LAMBDA_RANGE: (f64, f64) = (-2.0, 2.0);
/// Golden-section steps: the exponent to ~1e-6.
const SEARCH_STEPS: usize = 32;

/// Values as the GP sees them, with `log(d value / d raw)` of each.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    pub y: Vec<f64>,
    pub log_slope: Vec<f64>,
}

/// `raw` standardized (mean 0, variance 1).
pub fn plain(raw: &[f64]) -> Targets {
    let (y, sd) = standardize(raw);
    Targets { log_slope: vec![-sd.ln(); y.len()], y }
}

/// `raw` standardized, power-transformed, and standardized again.
pub fn warped(raw: &[f64]) -> Targets {
    let (z, sd) = standardize(raw);
    if sd == 1.0 && z.iter().all(|&v| v == 0.0) {
        return plain(raw);
    }
    let lambda = fit_lambda(&z);
    let (y, sd2) = standardize(&z.iter().map(|&v| yeo_johnson(v, lambda)).collect::<Vec<_>>());
    let log_slope = z.iter().map(|&v| yeo_johnson_log_slope(v, lambda) - sd.ln() - sd2.ln()).collect();
    Targets { y, log_slope }
}

/// Mean 0 and variance 1, and the standard deviation divided by (1, and zeros, when all are equal).
fn standardize(values: &[f64]) -> (Vec<f64>, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    if sd > 0.0 && sd.is_finite() {
        (values.iter().map(|v| (v - mean) / sd).collect(), sd)
    } else {
        (vec![0.0; values.len()], 1.0)
    }
}

/// `log dψ/dx` of the Yeo-Johnson transform.
fn yeo_johnson_log_slope(x: f64, lambda: f64) -> f64 {
    if x >= 0.0 { (lambda - 1.0) * x.ln_1p() } else { (1.0 - lambda) * (-x).ln_1p() }
}

fn yeo_johnson(x: f64, lambda: f64) -> f64 {
    const EPS: f64 = 1e-9;
    if x >= 0.0 {
        if lambda.abs() < EPS { x.ln_1p() } else { ((x + 1.0).powf(lambda) - 1.0) / lambda }
    } else if (lambda - 2.0).abs() < EPS {
        -(-x).ln_1p()
    } else {
        -((1.0 - x).powf(2.0 - lambda) - 1.0) / (2.0 - lambda)
    }
}

/// The exponent that makes the transformed values most Gaussian (profile likelihood).
fn fit_lambda(z: &[f64]) -> f64 {
    let jacobian: f64 = z.iter().map(|&x| x.signum() * x.abs().ln_1p()).sum();
    let n = z.len() as f64;
    let log_likelihood = |lambda: f64| {
        let t: Vec<f64> = z.iter().map(|&x| yeo_johnson(x, lambda)).collect();
        let mean = t.iter().sum::<f64>() / n;
        let var = t.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        if var > 0.0 && var.is_finite() { -0.5 * n * var.ln() + (lambda - 1.0) * jacobian } else { f64::NEG_INFINITY }
    };
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = LAMBDA_RANGE;
    let (mut a, mut b) = (hi - golden * (hi - lo), lo + golden * (hi - lo));
    let (mut fa, mut fb) = (log_likelihood(a), log_likelihood(b));
    for _ in 0..SEARCH_STEPS {
        if fa >= fb {
            hi = b;
            (b, fb) = (a, fa);
            a = hi - golden * (hi - lo);
            fa = log_likelihood(a);
        } else {
            lo = a;
            (a, fa) = (b, fb);
            b = lo + golden * (hi - lo);
            fb = log_likelihood(b);
        }
    }
    if fa >= fb { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(v: &[f64]) -> (f64, f64) {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (mean, v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64)
    }

    #[test]
    fn both_transforms_keep_the_order_and_standardize() {
        let raw = [3.0, 1e6, 0.5, 120.0, 7.0, 45_000.0, 2.0];
        for t in [plain(&raw), warped(&raw)] {
            let (mean, var) = moments(&t.y);
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-9);
            for i in 0..raw.len() {
                for j in 0..raw.len() {
                    assert_eq!(raw[i] < raw[j], t.y[i] < t.y[j]);
                }
            }
        }
    }

    #[test]
    fn a_heavy_right_tail_is_pulled_in() {
        let raw = [1.0, 2.0, 3.0, 4.0, 5.0, 1000.0];
        let (p, w) = (plain(&raw).y, warped(&raw).y);
        // The good values are spread further apart once the outlier no longer dominates the scale.
        assert!(w[4] - w[0] > 3.0 * (p[4] - p[0]), "{w:?} vs {p:?}");
    }

    #[test]
    fn the_log_slopes_match_finite_differences() {
        let raw = [1.0, 2.5, 3.0, 40.0, 5.0, 1000.0];
        let t = warped(&raw);
        let z = standardize(&raw).0;
        let lambda = fit_lambda(&z);
        let (sd, sd2) =
            (standardize(&raw).1, standardize(&z.iter().map(|&v| yeo_johnson(v, lambda)).collect::<Vec<_>>()).1);
        for (i, &r) in raw.iter().enumerate() {
            let h = 1e-6;
            let at = |x: f64| yeo_johnson((x - raw.iter().sum::<f64>() / 6.0) / sd, lambda) / sd2;
            let fd = ((at(r + h) - at(r - h)) / (2.0 * h)).ln();
            assert!((fd - t.log_slope[i]).abs() < 1e-5, "row {i}: {fd} vs {}", t.log_slope[i]);
        }
    }

    #[test]
    fn equal_values_give_zeros() {
        assert_eq!(warped(&[2.0, 2.0, 2.0]).y, [0.0, 0.0, 0.0]);
    }
}
