//! The covariance between two points of the unit cube: Matérn 5/2 with one length scale per
//! dimension (ARD), times a signal variance. Categorical dimensions enter through the Hamming
//! distance (`0` for the same category, `1` otherwise), as in Optuna's GP.
//!
//! ```text
//! r² = Σ_i θ_i · d_i²      θ_i = 1 / lengthscale_i²,  d_i² = (x_i - x'_i)² or [x_i ≠ x'_i]
//! k  = s · (1 + √5 r + 5/3 r²) · exp(-√5 r)
//! ```

/// The smallest noise variance, on the standardized objective: keeps the kernel matrix well
/// conditioned for a noise-free objective without blurring it (Optuna's minimum as well).
pub const NOISE_FLOOR: f64 = 1e-6;
/// The fit works in logs; these bounds keep it out of numerically meaningless regions
/// (length scales from ~1e-4 to ~150 unit cubes, signal variance 1e-4..150, noise up to 150).
pub const LOG_BOUNDS: (f64, f64) = (-10.0, 18.0);
const LOG_SCALE_BOUNDS: (f64, f64) = (-9.0, 5.0);
const LOG_NOISE_BOUNDS: (f64, f64) = (-25.0, 5.0);
/// Where the fit starts: unit length scales and signal variance (Optuna's start), a little noise.
const INITIAL_LOG_NOISE: f64 = -4.6;

/// Kernel hyperparameters in the log space the fit works in.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    /// `log θ_i`, the log inverse squared length scale of each dimension.
    pub log_inv_sq_ls: Vec<f64>,
    /// `log s`, the log signal variance.
    pub log_scale: f64,
    /// `log(noise variance - NOISE_FLOOR)`.
    pub log_noise: f64,
}

impl Hyper {
    pub fn initial(dims: usize) -> Self {
        Self { log_inv_sq_ls: vec![0.0; dims], log_scale: 0.0, log_noise: INITIAL_LOG_NOISE }
    }

    /// From the flat vector the optimizer works on (`[log θ…, log s, log noise]`), clamped to bounds.
    pub fn from_flat(v: &[f64]) -> Self {
        let d = v.len().saturating_sub(2);
        let clamp = |x: f64, (lo, hi): (f64, f64)| if x.is_nan() { lo } else { x.clamp(lo, hi) };
        Self {
            log_inv_sq_ls: v[..d].iter().map(|&x| clamp(x, LOG_BOUNDS)).collect(),
            log_scale: clamp(v.get(d).copied().unwrap_or(0.0), LOG_SCALE_BOUNDS),
            log_noise: clamp(v.get(d + 1).copied().unwrap_or(INITIAL_LOG_NOISE), LOG_NOISE_BOUNDS),
        }
    }

    pub fn flat(&self) -> Vec<f64> {
        let mut v = self.log_inv_sq_ls.clone();
        v.extend([self.log_scale, self.log_noise]);
        v
    }

    pub fn noise(&self) -> f64 {
        NOISE_FLOOR + self.log_noise.exp()
    }
}

/// The kernel with its hyperparameters out of logs, ready to evaluate.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub inv_sq_ls: Vec<f64>,
    pub scale: f64,
    pub categorical: Vec<bool>,
    any_categorical: bool,
}

impl Kernel {
    pub fn new(hyper: &Hyper, categorical: &[bool]) -> Self {
        Self {
            inv_sq_ls: hyper.log_inv_sq_ls.iter().map(|x| x.exp()).collect(),
            scale: hyper.log_scale.exp(),
            categorical: categorical.to_vec(),
            any_categorical: categorical.contains(&true),
        }
    }

    /// The scaled squared distance `r²` between two points.
    pub fn r2(&self, a: &[f64], b: &[f64]) -> f64 {
        if !self.any_categorical {
            return a.iter().zip(b).zip(&self.inv_sq_ls).map(|((x, y), t)| t * (x - y) * (x - y)).sum();
        }
        let mut r2 = 0.0;
        for i in 0..a.len() {
            r2 += self.inv_sq_ls[i] * axis_sq_dist(a[i], b[i], self.categorical[i]);
        }
        r2
    }

    /// `k` at a squared distance.
    pub fn at(&self, r2: f64) -> f64 {
        self.scale * matern52(r2)
    }
}

/// One axis' contribution to the squared distance.
pub fn axis_sq_dist(a: f64, b: f64, categorical: bool) -> f64 {
    if categorical { if a == b { 0.0 } else { 1.0 } } else { (a - b) * (a - b) }
}

/// Matérn 5/2 at unit scale, as a function of the squared distance.
pub fn matern52(r2: f64) -> f64 {
    let r = (5.0 * r2).sqrt();
    (1.0 + r + r * r / 3.0) * (-r).exp()
}

/// [`matern52`] and its derivative with respect to the squared distance (finite at 0), with one
/// square root and one exponential.
pub fn matern52_and_slope(r2: f64) -> (f64, f64) {
    let r = (5.0 * r2).sqrt();
    let e = (-r).exp();
    ((1.0 + r + r * r / 3.0) * e, -5.0 / 6.0 * (1.0 + r) * e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matern_slope_is_the_derivative_of_the_matern_kernel() {
        for &r2 in &[1e-4, 0.1, 1.0, 3.0] {
            let h = 1e-7;
            let fd = (matern52(r2 + h) - matern52(r2 - h)) / (2.0 * h);
            let (value, slope) = matern52_and_slope(r2);
            assert!((fd - slope).abs() < 1e-6, "r2 {r2}");
            assert_eq!(value, matern52(r2));
        }
        assert_eq!(matern52(0.0), 1.0);
    }

    #[test]
    fn categories_are_at_distance_one_whatever_their_codes() {
        let k = Kernel::new(&Hyper::initial(2), &[false, true]);
        assert_eq!(k.r2(&[0.5, 0.1], &[0.5, 0.9]), 1.0);
        assert_eq!(k.r2(&[0.5, 0.1], &[0.5, 0.3]), 1.0);
        assert_eq!(k.r2(&[0.2, 0.1], &[0.5, 0.1]), 0.09 + 0.0 * 1.0);
    }

    #[test]
    fn hyperparameters_survive_the_flat_round_trip_and_nan_is_clamped() {
        let h = Hyper { log_inv_sq_ls: vec![0.5, -1.0], log_scale: 0.3, log_noise: -8.0 };
        assert_eq!(Hyper::from_flat(&h.flat()), h);
        assert_eq!(Hyper::from_flat(&[f64::NAN, 0.0, 0.0]).log_inv_sq_ls, [LOG_BOUNDS.0]);
    }
}
