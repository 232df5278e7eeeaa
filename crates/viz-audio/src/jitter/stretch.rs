//! Time-scale modification of one decoded frame, so the jitter buffer can change its
//! delay while someone talks without a hold or a dropped frame (what WebRTC's NetEq
//! calls accelerate and preemptive expand).
//!
//! Voiced speech repeats itself every pitch period. Removing one period, or repeating
//! one, with a cross-fade over a period changes the frame's length by that period and
//! leaves pitch and timbre alone; both ends of the frame stay sample-continuous with its
//! neighbours. A frame that is not periodic enough (a consonant, noise) is only changed
//! when it is quiet, where any cut is inaudible; otherwise the caller waits for a
//! better frame. Nothing allocates: the caller owns the scratch space.

/// Shortest pitch period searched: 2.5 ms (400 Hz).
const MIN_PERIOD: usize = 120;
/// Longest: 10 ms (100 Hz); a 20 ms frame must hold two periods.
const MAX_PERIOD: usize = 480;
/// Normalised correlation of one period with the next above which the frame counts as
/// periodic (NetEq uses a similar bar before it accelerates).
const PERIODIC: f32 = 0.7;
/// Below this mean square (-50 dBFS), a frame may be cut anywhere.
const QUIET_POWER: f32 = 1e-5;
/// Period used for quiet, non-periodic frames: 5 ms.
const QUIET_PERIOD: usize = 240;

/// True for a frame quiet enough (below -50 dBFS) that cutting or holding it is inaudible.
pub(super) fn is_quiet(frame: &[f32]) -> bool {
    !frame.is_empty() && frame.iter().map(|s| s * s).sum::<f32>() / (frame.len() as f32) < QUIET_POWER
}

/// The period to remove or repeat in `frame`, or `None` when changing it would be heard.
fn period(frame: &[f32]) -> Option<usize> {
    let n = frame.len();
    let max = MAX_PERIOD.min(n / 2);
    if max < MIN_PERIOD {
        return None;
    }
    // Coarse search on every 4th lag, then refine around the best.
    let best_of = |lags: &mut dyn Iterator<Item = usize>| {
        lags.map(|lag| (correlation(frame, lag), lag)).fold((0.0f32, 0usize), |a, b| if b.0 > a.0 { b } else { a })
    };
    let coarse = best_of(&mut (MIN_PERIOD..=max).step_by(4));
    let best = best_of(&mut (coarse.1.saturating_sub(3).max(MIN_PERIOD)..=(coarse.1 + 3).min(max)));
    if best.0 >= PERIODIC {
        Some(best.1)
    } else if is_quiet(frame) {
        Some(QUIET_PERIOD.min(n / 2))
    } else {
        None
    }
}

/// Normalised correlation of `frame[..lag]` with `frame[lag..2 lag]`.
fn correlation(frame: &[f32], lag: usize) -> f32 {
    let (a, b) = (&frame[..lag], &frame[lag..2 * lag]);
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa > 0.0 && bb > 0.0 { ab / (aa * bb).sqrt() } else { 0.0 }
}

/// Shortens the `len` samples at the start of `buf` by one period; returns the new
/// length, or `None` (nothing changed) when that would be audible.
pub(super) fn accelerate(buf: &mut [f32], len: usize) -> Option<usize> {
    let p = period(&buf[..len])?;
    // out = fade(x[0..p] -> x[p..2p]) ++ x[2p..len]
    for i in 0..p {
        let w = (i as f32 + 0.5) / p as f32;
        buf[i] = buf[i] * (1.0 - w) + buf[p + i] * w;
    }
    buf.copy_within(2 * p..len, p);
    Some(len - p)
}

/// Lengthens the `len` samples at the start of `buf` by one period; returns the new
/// length, or `None` (nothing changed) when that would be audible or `buf` (or
/// `scratch`, one period) has no room for it.
pub(super) fn expand(buf: &mut [f32], len: usize, scratch: &mut [f32]) -> Option<usize> {
    let p = period(&buf[..len])?;
    if len + p > buf.len() || p > scratch.len() {
        // A frame as long as the whole output buffer (a 120 ms packet): leave it be.
        return None;
    }
    // out = x[0..p] ++ fade(x[p..2p] -> x[0..p]) ++ x[p..len]
    let faded = &mut scratch[..p];
    for i in 0..p {
        let w = (i as f32 + 0.5) / p as f32;
        faded[i] = buf[p + i] * (1.0 - w) + buf[i] * w;
    }
    buf.copy_within(p..len, 2 * p);
    buf[p..2 * p].copy_from_slice(faded);
    Some(len + p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals;

    #[test]
    fn a_voiced_frame_loses_or_gains_one_period_and_stays_continuous() {
        // 200 Hz: a period of 240 samples.
        let tone = signals::tone(200.0, 0.5, 960 * 3);
        let mut buf = vec![0.0; 2000];
        buf[..960].copy_from_slice(&tone[960..1920]);
        let len = accelerate(&mut buf, 960).expect("a steady tone is periodic");
        assert_eq!(len, 720);
        // The shortened frame is the tone from the same phase on: it ends where the
        // original frame ended, so the next frame follows without a click.
        for (i, (got, want)) in buf[..len].iter().zip(&tone[960 + 240..1920]).enumerate() {
            assert!((got - want).abs() < 0.02, "sample {i}: {got} vs {want}");
        }

        let mut scratch = vec![0.0; 960];
        buf[..960].copy_from_slice(&tone[960..1920]);
        let len = expand(&mut buf, 960, &mut scratch).expect("a steady tone is periodic");
        assert_eq!(len, 1200);
        // Starts where the frame started and ends where it ended.
        assert!((buf[0] - tone[960]).abs() < 1e-6);
        for (got, want) in buf[len - 10..len].iter().zip(&tone[1910..1920]) {
            assert!((got - want).abs() < 0.02);
        }
    }

    #[test]
    fn loud_noise_is_left_alone_and_quiet_noise_is_cut() {
        // White noise from a 32-bit LCG (Numerical Recipes constants).
        let mut state = 1u32;
        let noise: Vec<f32> = (0..960)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        let mut buf = vec![0.0; 1500];
        buf[..960].copy_from_slice(&noise);
        assert_eq!(accelerate(&mut buf, 960), None);
        let quiet: Vec<f32> = noise.iter().map(|s| s * 0.001).collect();
        buf[..960].copy_from_slice(&quiet);
        assert_eq!(accelerate(&mut buf, 960), Some(960 - QUIET_PERIOD));
        // Too short to hold two periods: untouched.
        assert_eq!(accelerate(&mut buf, 200), None);
        // No room to grow (the frame fills the buffer): untouched, no panic.
        let tone = signals::tone(200.0, 0.5, 960);
        let mut full = tone.clone();
        assert_eq!(expand(&mut full, 960, &mut [0.0; 480]), None);
        assert_eq!(full, tone);
    }
}
