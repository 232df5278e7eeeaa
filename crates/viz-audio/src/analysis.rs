//! Signal measurements used by `viz demo`, the benchmarks and the end-to-end tests:
//! delay by cross-correlation, level, energy ratio and dominant frequency.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

/// Root mean square of a block (0 for an empty block).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// Level in dBFS of the RMS of a block, floored at -120 dB.
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    20.0 * rms(samples).max(1e-6).log10()
}

/// Where a delayed copy of a reference sits in a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayEstimate {
    /// `recorded[n + lag] ≈ reference[n]`; positive when the recording lags.
    pub lag_samples: i64,
    /// Normalised correlation (-1..=1) of the overlapping parts at that lag.
    pub correlation: f32,
    /// Energy of the recording relative to the reference over the overlap, in dB.
    pub gain_db: f32,
}

impl DelayEstimate {
    pub fn lag_ms(&self, sample_rate: u32) -> f64 {
        self.lag_samples as f64 * 1000.0 / f64::from(sample_rate)
    }
}

/// Finds the delay of `recorded` relative to `reference` by FFT cross-correlation over
/// all lags. Returns `None` when either input is empty or silent.
pub fn find_delay(reference: &[f32], recorded: &[f32], _sample_rate: u32) -> Option<DelayEstimate> {
    find_delay_within(reference, recorded, i64::MIN, i64::MAX)
}

/// As [`find_delay`], considering only lags in `min_lag..=max_lag` samples.
pub fn find_delay_within(reference: &[f32], recorded: &[f32], min_lag: i64, max_lag: i64) -> Option<DelayEstimate> {
    if reference.is_empty() || recorded.is_empty() || rms(reference) == 0.0 || rms(recorded) == 0.0 {
        return None;
    }
    let n = (reference.len() + recorded.len()).next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(n);
    let inverse = planner.plan_fft_inverse(n);

    let spectrum = |x: &[f32]| {
        let mut buf = forward.make_input_vec();
        for (d, &s) in buf.iter_mut().zip(x) {
            *d = f64::from(s);
        }
        let mut out = forward.make_output_vec();
        forward.process(&mut buf, &mut out).ok()?;
        Some(out)
    };
    let a = spectrum(reference)?;
    let b = spectrum(recorded)?;
    let mut product: Vec<Complex<f64>> = a.iter().zip(&b).map(|(x, y)| x.conj() * y).collect();
    // realfft requires the imaginary parts of the DC and Nyquist bins to be zero.
    product[0].im = 0.0;
    if let Some(last) = product.last_mut() {
        last.im = 0.0;
    }
    let mut corr = inverse.make_output_vec();
    inverse.process(&mut product, &mut corr).ok()?;

    // corr[k] = Σ reference[i] · recorded[i + k] (circularly); k ≥ n/2 are negative lags.
    let lo = min_lag.max(-(reference.len() as i64 - 1));
    let hi = max_lag.min(recorded.len() as i64 - 1);
    if lo > hi {
        return None;
    }
    let at = |lag: i64| if lag >= 0 { corr[lag as usize] } else { corr[(n as i64 + lag) as usize] };
    let best = (lo..=hi).max_by(|&x, &y| at(x).total_cmp(&at(y)))?;
    let (correlation, gain_db) = overlap_stats(reference, recorded, best);
    Some(DelayEstimate { lag_samples: best, correlation, gain_db })
}

/// Delay of one window of the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowDelay {
    /// First reference sample of the window.
    pub start: usize,
    pub estimate: DelayEstimate,
}

/// Finds the delay separately for consecutive windows of `window` samples, so that a
/// delay that changes during a recording (an adaptive jitter buffer growing or
/// shrinking) is seen as it is, not smeared into one lag. Windows quieter than
/// `min_rms` (pauses) are skipped. Lags are searched in `min_lag..=max_lag`.
pub fn windowed_delays(
    reference: &[f32],
    recorded: &[f32],
    window: usize,
    min_lag: i64,
    max_lag: i64,
    min_rms: f32,
) -> Vec<WindowDelay> {
    let mut out = Vec::new();
    if window == 0 || min_lag > max_lag {
        return out;
    }
    let mut start = 0;
    while start + window <= reference.len() {
        let r = &reference[start..start + window];
        if rms(r) >= min_rms {
            let lo = (start as i64 + min_lag).clamp(0, recorded.len() as i64) as usize;
            let hi = (start as i64 + window as i64 + max_lag).clamp(0, recorded.len() as i64) as usize;
            if hi > lo {
                let shift = lo as i64 - start as i64;
                if let Some(mut d) = find_delay_within(r, &recorded[lo..hi], min_lag - shift, max_lag - shift) {
                    d.lag_samples += shift;
                    out.push(WindowDelay { start, estimate: d });
                }
            }
        }
        start += window;
    }
    out
}

/// Normalised correlation and energy ratio of `reference[i]` against `recorded[i + lag]`.
pub fn overlap_stats(reference: &[f32], recorded: &[f32], lag: i64) -> (f32, f32) {
    let (mut xy, mut xx, mut yy) = (0f64, 0f64, 0f64);
    for (i, &x) in reference.iter().enumerate() {
        let j = i as i64 + lag;
        if j < 0 {
            continue;
        }
        let Some(&y) = recorded.get(j as usize) else { break };
        let (x, y) = (f64::from(x), f64::from(y));
        xy += x * y;
        xx += x * x;
        yy += y * y;
    }
    if xx == 0.0 || yy == 0.0 {
        return (0.0, f32::NEG_INFINITY);
    }
    ((xy / (xx * yy).sqrt()) as f32, (10.0 * (yy / xx).log10()) as f32)
}

/// Frequency in Hz of the strongest spectral peak (Hann window, parabolic interpolation).
pub fn dominant_frequency(samples: &[f32], sample_rate: u32) -> f32 {
    let spectrum = magnitude_spectrum(samples);
    if spectrum.len() < 3 {
        return 0.0;
    }
    let n = (spectrum.len() - 1) * 2;
    let (k, _) =
        spectrum.iter().enumerate().skip(1).fold((1, 0f64), |best, (i, &m)| if m > best.1 { (i, m) } else { best });
    let k = k.clamp(1, spectrum.len() - 2);
    let (a, b, c) = (spectrum[k - 1].ln(), spectrum[k].ln(), spectrum[k + 1].ln());
    let denom = a - 2.0 * b + c;
    let offset = if denom.abs() > 1e-12 { 0.5 * (a - c) / denom } else { 0.0 };
    ((k as f64 + offset) * f64::from(sample_rate) / n as f64) as f32
}

/// Fraction (0..=1) of the signal's energy within `±width_hz` of `freq_hz`.
pub fn band_energy_fraction(samples: &[f32], sample_rate: u32, freq_hz: f32, width_hz: f32) -> f32 {
    let spectrum = magnitude_spectrum(samples);
    if spectrum.len() < 2 {
        return 0.0;
    }
    let n = (spectrum.len() - 1) * 2;
    let hz_per_bin = f64::from(sample_rate) / n as f64;
    let (mut band, mut total) = (0f64, 0f64);
    for (i, m) in spectrum.iter().enumerate().skip(1) {
        let e = m * m;
        total += e;
        if ((i as f64 * hz_per_bin) - f64::from(freq_hz)).abs() <= f64::from(width_hz) {
            band += e;
        }
    }
    if total == 0.0 { 0.0 } else { (band / total) as f32 }
}

fn magnitude_spectrum(samples: &[f32]) -> Vec<f64> {
    let n = samples.len() & !1;
    if n < 4 {
        return Vec::new();
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let mut buf = fft.make_input_vec();
    for (i, (d, &s)) in buf.iter_mut().zip(samples).enumerate() {
        let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
        *d = f64::from(s) * w;
    }
    let mut out = fft.make_output_vec();
    if fft.process(&mut buf, &mut out).is_err() {
        return Vec::new();
    }
    out.iter().map(|c| c.norm()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals;

    #[test]
    fn finds_positive_and_negative_delays_exactly() {
        let reference = signals::speech_like(11, 48_000);
        for lag in [0i64, 1, 480, 12_345] {
            let mut rec = vec![0.0; lag as usize];
            rec.extend_from_slice(&reference);
            let d = find_delay(&reference, &rec, 48_000).unwrap();
            assert_eq!(d.lag_samples, lag);
            assert!(d.correlation > 0.999);
            assert!(d.gain_db.abs() < 0.01);
        }
        // The recording starts 100 samples into the reference: negative lag.
        let d = find_delay(&reference, &reference[100..], 48_000).unwrap();
        assert_eq!(d.lag_samples, -100);
    }

    #[test]
    fn gain_and_polarity_are_reported() {
        let reference = signals::speech_like(12, 24_000);
        let half: Vec<f32> = reference.iter().map(|s| s * 0.5).collect();
        let d = find_delay(&reference, &half, 48_000).unwrap();
        assert!((d.gain_db + 6.02).abs() < 0.05, "{}", d.gain_db);
        let inverted: Vec<f32> = reference.iter().map(|s| -s).collect();
        let (c, _) = overlap_stats(&reference, &inverted, 0);
        assert!(c < -0.999);
    }

    #[test]
    fn lag_window_is_respected_and_silence_gives_none() {
        let reference = signals::speech_like(13, 24_000);
        let mut rec = vec![0.0; 500];
        rec.extend_from_slice(&reference);
        let d = find_delay_within(&reference, &rec, 0, 400).unwrap();
        assert!(d.lag_samples <= 400);
        assert!(find_delay(&reference, &[0.0; 100], 48_000).is_none());
        assert!(find_delay(&[], &rec, 48_000).is_none());
    }

    #[test]
    fn windowed_delays_follow_a_changing_delay() {
        let reference = signals::speech_like(14, 48_000 * 6);
        // First half delayed by 30 ms, second half by 50 ms (a buffer that grew).
        let mut rec = vec![0.0; 1440];
        rec.extend_from_slice(&reference[..48_000 * 3]);
        rec.extend(std::iter::repeat_n(0.0, 960));
        rec.extend_from_slice(&reference[48_000 * 3..]);
        let w = windowed_delays(&reference, &rec, 48_000, 0, 4800, 0.01);
        assert!(w.len() >= 4, "{}", w.len());
        for d in &w {
            let expected = if d.start < 48_000 * 3 { 1440 } else { 2400 };
            assert_eq!(d.estimate.lag_samples, expected, "window at {}", d.start);
            assert!(d.estimate.correlation > 0.99);
        }
        assert!(windowed_delays(&reference, &rec, 0, 0, 10, 0.0).is_empty());
    }

    #[test]
    fn spectrum_measures() {
        let t = signals::tone(523.25, 0.5, 9600);
        assert!((dominant_frequency(&t, 48_000) - 523.25).abs() < 1.0);
        assert!(band_energy_fraction(&t, 48_000, 523.25, 30.0) > 0.99);
        assert!(band_energy_fraction(&t, 48_000, 1500.0, 30.0) < 0.001);
        assert_eq!(rms(&[]), 0.0);
        assert!((rms_dbfs(&signals::tone(100.0, 1.0, 48_000)) + 3.01).abs() < 0.01);
    }
}
