//! Generated test signals at 48 kHz mono: tone, silence, a speech-like signal, music,
//! and noise (white, and a PC fan with typing).
//!
//! The speech-like signal is a small source-filter synthesiser (Fant's model: a glottal
//! pulse train or noise through three formant resonators) with syllable envelopes and
//! pauses between phrases. It is not intelligible, but it has what matters to a voice
//! pipeline: pitch that moves, formants, unvoiced bursts, talk spurts and silences (so
//! DTX and the jitter buffer see a realistic on/off pattern), and no periodicity longer
//! than a syllable, so cross-correlation finds one unambiguous delay.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::f32::consts::PI;

use crate::params::SAMPLE_RATE;

const FS: f32 = SAMPLE_RATE as f32;

/// A sine tone of `freq` Hz at peak `amplitude` (0..=1).
pub fn tone(freq: f32, amplitude: f32, samples: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(samples);
    let mut osc = ToneOscillator::new(freq, amplitude);
    out.resize(samples, 0.0);
    osc.fill(&mut out);
    out
}

pub fn silence(samples: usize) -> Vec<f32> {
    vec![0.0; samples]
}

/// A phase-continuous sine oscillator for endless tone inputs.
#[derive(Debug, Clone)]
pub struct ToneOscillator {
    phase: f64,
    step: f64,
    amplitude: f32,
}

impl ToneOscillator {
    pub fn new(freq: f32, amplitude: f32) -> Self {
        Self { phase: 0.0, step: f64::from(freq) / f64::from(SAMPLE_RATE), amplitude }
    }

    pub fn fill(&mut self, out: &mut [f32]) {
        for s in out {
            *s = self.amplitude * (2.0 * std::f64::consts::PI * self.phase).sin() as f32;
            self.phase = (self.phase + self.step).fract();
        }
    }
}

/// Two-pole resonator (a digital formant filter, Klatt 1980 eq. 2 simplified) with
/// unity gain at its centre frequency.
#[derive(Debug, Clone, Copy, Default)]
struct Resonator {
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn process(&mut self, x: f32, freq: f32, bandwidth: f32) -> f32 {
        let r = (-PI * bandwidth / FS).exp();
        let theta = 2.0 * PI * freq / FS;
        let a1 = 2.0 * r * theta.cos();
        let a2 = -r * r;
        // Unity gain at the centre frequency whatever the bandwidth.
        let gain = (1.0 - r) * (1.0 - 2.0 * r * (2.0 * theta).cos() + r * r).sqrt();
        let y = gain * x + a1 * self.y1 + a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Formant frequencies (F1, F2, F3) of a few vowels, adult average (Peterson & Barney 1952).
const VOWELS: [[f32; 3]; 6] = [
    [730.0, 1090.0, 2440.0], // a
    [530.0, 1840.0, 2480.0], // e
    [270.0, 2290.0, 3010.0], // i
    [570.0, 840.0, 2410.0],  // o
    [300.0, 870.0, 2240.0],  // u
    [660.0, 1720.0, 2410.0], // ae
];

/// `samples` of a deterministic speech-like signal; `seed` picks the "speaker".
pub fn speech_like(seed: u64, samples: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(samples);
    let base_pitch = rng.random_range(95.0f32..210.0);
    // Begin with a short pause so that a receiver's first frames are silence, like a
    // person who starts talking a moment after the call connects.
    push_silence(&mut out, (FS * 0.15) as usize);
    while out.len() < samples {
        let syllables = rng.random_range(3..9);
        let phrase_pitch = base_pitch * rng.random_range(0.85f32..1.2);
        for i in 0..syllables {
            let len = (FS * rng.random_range(0.12f32..0.28)) as usize;
            let declination = 1.0 - 0.15 * i as f32 / syllables as f32;
            if rng.random_bool(0.2) {
                fricative(&mut rng, &mut out, len);
            } else {
                vowel(&mut rng, &mut out, len, phrase_pitch * declination);
            }
        }
        push_silence(&mut out, (FS * rng.random_range(0.25f32..0.8)) as usize);
    }
    out.truncate(samples);
    normalize_peak(&mut out, 0.6);
    out
}

/// `samples` of a deterministic music-like loop for the room's test source: a
/// four-chord progression (I–V–vi–IV in C) played as plucked arpeggios with a bass
/// line, 120 beats a minute. Broadband and never silent, unlike a tone, so it
/// exercises the codec the way music does; and it loops cleanly every 8 s.
pub fn music_like(samples: usize) -> Vec<f32> {
    const CHORDS: [[f32; 3]; 4] = [
        [261.63, 329.63, 392.00], // C
        [196.00, 246.94, 293.66], // G
        [220.00, 261.63, 329.63], // Am
        [174.61, 220.00, 261.63], // F
    ];
    let beat = FS as usize / 2; // 120 bpm
    let note = beat / 2; // eighth notes
    let mut out = vec![0.0f32; samples];
    for (i, s) in out.iter_mut().enumerate() {
        let bar = (i / (4 * beat)) % CHORDS.len();
        let chord = CHORDS[bar];
        let n = i / note;
        let t_note = (i % note) as f32 / FS;
        let pitch = chord[n % 3] * if n % 8 >= 4 { 2.0 } else { 1.0 };
        // Plucked: fast attack, exponential decay, three harmonics.
        let env = (1.0 - (-t_note * 400.0).exp()) * (-t_note * 6.0).exp();
        let t = i as f32 / FS;
        let pluck: f32 = [1.0f32, 0.5, 0.25]
            .iter()
            .enumerate()
            .map(|(h, a)| a * (2.0 * PI * pitch * (h + 1) as f32 * t).sin())
            .sum();
        let t_beat = (i % beat) as f32 / FS;
        let bass = 0.6 * (-t_beat * 3.0).exp() * (2.0 * PI * chord[0] / 2.0 * t).sin();
        *s = 0.35 * env * pluck + 0.35 * bass;
    }
    normalize_peak(&mut out, 0.5);
    out
}

fn push_silence(out: &mut Vec<f32>, len: usize) {
    out.extend(std::iter::repeat_n(0.0, len));
}

/// Raised-cosine syllable envelope: 25 % attack, 35 % release.
fn envelope(i: usize, len: usize) -> f32 {
    let t = i as f32 / len as f32;
    if t < 0.25 {
        0.5 - 0.5 * (PI * t / 0.25).cos()
    } else if t > 0.65 {
        0.5 + 0.5 * (PI * (t - 0.65) / 0.35).cos()
    } else {
        1.0
    }
}

fn vowel(rng: &mut StdRng, out: &mut Vec<f32>, len: usize, pitch: f32) {
    let from = VOWELS[rng.random_range(0..VOWELS.len())];
    let to = VOWELS[rng.random_range(0..VOWELS.len())];
    let glide = rng.random_range(-0.2f32..0.2);
    let vibrato_rate = rng.random_range(4.0f32..7.0);
    let amplitude = rng.random_range(0.5f32..1.0);
    let mut filters = [Resonator::default(); 3];
    let mut phase = 0f32;
    for i in 0..len {
        let t = i as f32 / len as f32;
        let f0 = pitch * (1.0 + glide * t) * (1.0 + 0.02 * (2.0 * PI * vibrato_rate * i as f32 / FS).sin());
        phase += f0 / FS;
        if phase >= 1.0 {
            phase -= 1.0;
        }
        // Band-limited glottal source: harmonics up to 4 kHz with a -6 dB/octave tilt.
        let harmonics = ((4000.0 / f0) as usize).max(1);
        let mut src = 0f32;
        for k in 1..=harmonics {
            src += (2.0 * PI * k as f32 * phase).sin() / k as f32;
        }
        let mut y = 0f32;
        for (j, f) in filters.iter_mut().enumerate() {
            let formant = from[j] + (to[j] - from[j]) * t;
            y += f.process(src, formant, 60.0 + 40.0 * j as f32) / (j + 1) as f32;
        }
        out.push(y * envelope(i, len) * amplitude);
    }
}

fn fricative(rng: &mut StdRng, out: &mut Vec<f32>, len: usize) {
    let centre = rng.random_range(2500.0f32..6000.0);
    let mut filter = Resonator::default();
    for i in 0..len {
        let noise = rng.random_range(-1.0f32..1.0);
        out.push(filter.process(noise, centre, 1500.0) * envelope(i, len) * 0.25);
    }
}

fn normalize_peak(samples: &mut [f32], peak: f32) {
    let max = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
    if max > 0.0 {
        let g = peak / max;
        samples.iter_mut().for_each(|s| *s *= g);
    }
}

/// `samples` of white noise, uniform in ±`amplitude`, the same for each `seed`.
pub fn white_noise(amplitude: f32, samples: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..samples).map(|_| rng.random_range(-amplitude..=amplitude)).collect()
}

/// `samples` of what a gamer's microphone hears besides them, at RMS `level_dbfs`:
/// a PC fan (broadband rumble falling with frequency, and a 120 Hz hum with its
/// harmonics) and typing (a click every 80-250 ms, each a few milliseconds of
/// decaying noise), the same for each `seed`.
pub fn fan_and_keyboard(level_dbfs: f32, samples: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(samples);
    // Fan: white noise through two one-pole low-passes (about 6 + 6 dB per octave
    // above 300 Hz), plus the motor's hum.
    let a = (-2.0 * PI * 300.0 / FS).exp();
    let (mut lp1, mut lp2) = (0.0f32, 0.0f32);
    for i in 0..samples {
        let w: f32 = rng.random_range(-1.0..=1.0);
        lp1 = a * lp1 + (1.0 - a) * w;
        lp2 = a * lp2 + (1.0 - a) * lp1;
        let t = i as f32 / FS;
        let hum = (0.5 * (2.0 * PI * 120.0 * t).sin() + 0.25 * (2.0 * PI * 240.0 * t).sin())
            + 0.12 * (2.0 * PI * 360.0 * t).sin();
        out.push(8.0 * lp2 + 0.05 * hum);
    }
    // Keys: bursts of decaying noise, louder than the fan, at typing pace.
    let mut at = 0usize;
    loop {
        at += (FS * rng.random_range(0.08f32..0.25)) as usize;
        if at >= samples {
            break;
        }
        let strength: f32 = rng.random_range(0.6..1.0);
        for k in 0..(FS * 0.006) as usize {
            let Some(s) = out.get_mut(at + k) else { break };
            let decay = (-(k as f32) / (FS * 0.0015)).exp();
            *s += strength * decay * rng.random_range(-1.0f32..=1.0);
        }
    }
    let rms = (out.iter().map(|s| s * s).sum::<f32>() / samples.max(1) as f32).sqrt().max(1e-9);
    let gain = 10f32.powf(level_dbfs / 20.0) / rms;
    for s in &mut out {
        *s *= gain;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis;

    #[test]
    fn music_is_never_silent_and_spans_the_band() {
        let m = music_like(8 * 48_000);
        let peak = m.iter().fold(0f32, |a, s| a.max(s.abs()));
        assert!((peak - 0.5).abs() < 1e-3);
        for w in m.chunks(4800) {
            assert!(analysis::rms(w) > 0.02, "a 100 ms window is nearly silent");
        }
        assert!(analysis::band_energy_fraction(&m, 48_000, 98.0, 40.0) > 0.02, "bass");
        assert!(analysis::band_energy_fraction(&m, 48_000, 1050.0, 300.0) > 0.02, "harmonics");
    }

    #[test]
    fn tone_has_its_frequency_and_amplitude() {
        let t = tone(1000.0, 0.25, 48_000);
        let peak = t.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.25).abs() < 1e-3);
        assert!((analysis::dominant_frequency(&t, 48_000) - 1000.0).abs() < 2.0);
    }

    #[test]
    fn oscillator_is_phase_continuous_across_calls() {
        let mut osc = ToneOscillator::new(440.0, 0.5);
        let mut a = vec![0.0; 480];
        let mut b = vec![0.0; 480];
        osc.fill(&mut a);
        osc.fill(&mut b);
        let whole = tone(440.0, 0.5, 960);
        a.extend(b);
        assert!(a.iter().zip(&whole).all(|(x, y)| (x - y).abs() < 1e-5));
    }

    #[test]
    fn speech_like_is_deterministic_bounded_and_has_pauses() {
        let a = speech_like(1, 48_000 * 5);
        assert_eq!(a, speech_like(1, 48_000 * 5));
        assert_ne!(a, speech_like(2, 48_000 * 5));
        assert_eq!(a.len(), 240_000);
        assert!(a.iter().all(|s| s.is_finite() && s.abs() <= 0.6 + 1e-6));
        // Talk spurts and pauses: some 20 ms windows are silent, most are not.
        let windows: Vec<f32> = a.chunks(960).map(analysis::rms).collect();
        let silent = windows.iter().filter(|&&r| r < 1e-4).count();
        assert!(silent > windows.len() / 10, "{silent} of {} windows silent", windows.len());
        assert!(silent < windows.len() / 2, "{silent} of {} windows silent", windows.len());
    }

    #[test]
    fn speech_like_has_one_clear_autocorrelation_peak() {
        let a = speech_like(3, 48_000 * 4);
        // Correlating the signal with itself shifted by 37 ms finds exactly 37 ms.
        let shift = 37 * 48;
        let mut shifted = vec![0.0; shift];
        shifted.extend_from_slice(&a[..a.len() - shift]);
        let found = analysis::find_delay(&a, &shifted, 48_000).unwrap();
        assert_eq!(found.lag_samples, shift as i64);
        assert!(found.correlation > 0.95);
    }
}
