//! Small numeric helpers for the benchmarks: quantiles and means of timed samples, this
//! process's CPU time (user + system, from `getrusage(RUSAGE_SELF)`), a least-squares line for
//! the stated extrapolations, and how durations, sizes and ratios are printed.

use std::time::Duration;

/// The `q` quantile (0 ≤ q ≤ 1) of `samples`, interpolating linearly between the two nearest
/// ranks (so the median of an even count is the mean of the two middle values).
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    assert!(!samples.is_empty(), "a quantile of no samples");
    let mut sorted = samples.to_vec();
    sorted.sort();
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    let low = sorted[below].as_secs_f64();
    let high = sorted[above].as_secs_f64();
    Duration::from_secs_f64(low + (high - low) * fraction)
}

pub fn median(samples: &[Duration]) -> Duration {
    quantile(samples, 0.5)
}

pub fn mean(samples: &[Duration]) -> Duration {
    assert!(!samples.is_empty(), "a mean of no samples");
    samples.iter().sum::<Duration>() / samples.len() as u32
}

/// CPU time this process has used so far, every thread, user plus system.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct it is given, which is zero-initialised
    // plain data of the right type.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        assert_eq!(rc, 0, "getrusage(RUSAGE_SELF) failed");
        usage
    };
    let of = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    of(usage.ru_utime) + of(usage.ru_stime)
}

/// The least-squares line through `points`: `(intercept, slope)`. With a single point, the
/// line through the origin and that point.
pub fn line_fit(points: &[(f64, f64)]) -> (f64, f64) {
    assert!(!points.is_empty(), "a line through no points");
    if points.len() == 1 {
        let (x, y) = points[0];
        return (0.0, if x == 0.0 { 0.0 } else { y / x });
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let slope = if variance == 0.0 { 0.0 } else { covariance / variance };
    (mean_y - slope * mean_x, slope)
}

/// A duration in milliseconds with a precision that suits its size.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 1.0 {
        format!("{v:.3} ms")
    } else if v < 100.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// `a ÷ b` as a factor, e.g. `1.23×`.
pub fn ratio(a: Duration, b: Duration) -> String {
    let b = b.as_secs_f64();
    if b == 0.0 { "—".to_owned() } else { format!("{:.2}×", a.as_secs_f64() / b) }
}

/// Kibibytes as mebibytes, e.g. `12.3 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let s = ms_list(&[4, 1, 3, 2]);
        assert_eq!(median(&s), Duration::from_micros(2500));
        assert_eq!(quantile(&s, 0.0), Duration::from_millis(1));
        assert_eq!(quantile(&s, 1.0), Duration::from_millis(4));
        assert_eq!(median(&ms_list(&[7])), Duration::from_millis(7));
    }

    #[test]
    fn a_line_fits_exact_points() {
        let (a, b) = line_fit(&[(25.0, 3.0), (50.0, 5.0), (100.0, 9.0)]);
        assert!((a - 1.0).abs() < 1e-9 && (b - 0.08).abs() < 1e-9, "{a} {b}");
        assert_eq!(line_fit(&[(10.0, 5.0)]), (0.0, 0.5));
    }

    #[test]
    fn cpu_time_advances_with_work() {
        let before = cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time() > before);
    }
}
