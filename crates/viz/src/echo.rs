//! `viz join --echo-test`: say something, hear it back from the server's echo service,
//! and measure the round trip on one clock.
//!
//! Unless told otherwise, the "voice" is a generated speech-like burst and what comes
//! back is recorded to a temporary WAV file; both sit on the audio engine's clock, so
//! cross-correlating them gives the round trip from microphone to speaker: capture
//! framing, encode, network both ways, the server, the jitter buffer and decode. With
//! a real microphone or speakers the exchange works the same way (you hear yourself),
//! but there is no reference to measure against.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use viz_audio::{analysis, signals, wav};
use viz_client::engine::{EngineConfig, InputSpec, OutputSpec};
use viz_client::status::Console;

use crate::cli::CommonArgs;

/// Seconds of generated speech sent to the echo service.
const BURST_SECONDS: f64 = 3.0;
/// Round trips longer than this are not searched for (1 s).
const MAX_RTT_SAMPLES: i64 = 48_000;
/// The delay is measured per window of this many samples (0.5 s).
const WINDOW: usize = 24_000;
/// Windows of the reference quieter than this (pauses) are not measured.
const MIN_WINDOW_RMS: f32 = 0.01;

pub struct EchoTest {
    reference: Option<Arc<[f32]>>,
    recording: Option<(PathBuf, Option<tempfile::TempDir>)>,
}

/// Picks the echo test's input and output where the user left the defaults.
pub fn prepare(common: &CommonArgs, config: &mut EngineConfig) -> Result<EchoTest> {
    let reference: Option<Arc<[f32]>> = match &config.input {
        InputSpec::Device(None) if common.input == "default" => {
            let mut burst = signals::speech_like(7, (BURST_SECONDS * 48_000.0) as usize);
            burst.extend(std::iter::repeat_n(0.0, 48_000));
            let samples: Arc<[f32]> = burst.into();
            config.input = InputSpec::Samples { label: "generated speech burst".into(), samples: samples.clone() };
            Some(samples)
        }
        InputSpec::Wav(path) => Some(wav::read_mono_48k(path).with_context(|| format!("{}", path.display()))?.into()),
        InputSpec::Samples { samples, .. } => Some(samples.clone()),
        _ => None,
    };
    let recording = match &config.output {
        OutputSpec::Device(None) if common.output == "default" && reference.is_some() => {
            let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
            let path = dir.path().join("echo.wav");
            config.output = OutputSpec::Wav(path.clone());
            Some((path, Some(dir)))
        }
        OutputSpec::Wav(path) => Some((path.clone(), None)),
        _ => None,
    };
    Ok(EchoTest { reference, recording })
}

/// How long an echo test runs when `--duration` is not given.
pub fn default_duration() -> std::time::Duration {
    std::time::Duration::from_secs_f64(BURST_SECONDS + 2.0)
}

impl EchoTest {
    /// Prints the measured round trip (after the engine has stopped and flushed).
    pub fn report(self, console: Console) -> Result<()> {
        let (Some(reference), Some((path, _dir))) = (self.reference, self.recording) else {
            console
                .line("Echo test done. (Latency not measured: it needs a generated or file input and a file output.)");
            return Ok(());
        };
        let recorded = wav::read_mono_48k(&path).with_context(|| format!("{}", path.display()))?;
        // Half-second windows, each with its own delay: the jitter buffer may move by a
        // few milliseconds during the burst, which would blur one lag over the whole.
        let windows = analysis::windowed_delays(&reference, &recorded, WINDOW, 0, MAX_RTT_SAMPLES, MIN_WINDOW_RMS);
        let voiced = windows.len();
        let mut good: Vec<_> = windows.iter().map(|w| w.estimate).filter(|d| d.correlation >= 0.5).collect();
        good.sort_by_key(|d| d.lag_samples);
        match good.get(good.len() / 2) {
            Some(median) if good.len() * 2 >= voiced => {
                let (lo, hi) = (good[0].lag_ms(48_000), good[good.len() - 1].lag_ms(48_000));
                let line = format!(
                    "Echo round trip: {:.1} ms (you -> server -> you, one clock; median of {} half-second windows, \
                     range {lo:.1}-{hi:.1} ms; correlation {:.2}, level {:+.1} dB)",
                    median.lag_ms(48_000),
                    good.len(),
                    median.correlation,
                    median.gain_db
                );
                // The measurement is the point of the command: print it even with --quiet.
                println!("{line}");
                Ok(())
            }
            _ if voiced > 0 => anyhow::bail!(
                "echo test: what came back does not match what was sent ({} of {voiced} half-second windows match); heavy loss?",
                good.len()
            ),
            _ => anyhow::bail!("echo test: nothing came back from the server"),
        }
    }
}
