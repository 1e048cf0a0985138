//! The summaries the benches print: a median, and a median with the range around it.

/// The median of `values` (sorted in place); the mean of the middle two for an even count.
/// `NaN` when empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// `median (min–max)` of `values`, with `digits` decimals; `n/a` when empty.
pub fn spread(mut values: Vec<f64>, digits: usize) -> String {
    if values.is_empty() {
        return "n/a".to_owned();
    }
    let mid = median(&mut values);
    let (lo, hi) = (values[0], values[values.len() - 1]);
    format!("{mid:.digits$} ({lo:.digits$}–{hi:.digits$})")
}

/// The 25th, 50th and 75th percentiles of `values` (nearest rank; `values` need not be
/// sorted).
///
/// # Panics
/// When `values` is empty.
pub fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}
