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
        match analysis::find_delay_within(&reference, &recorded, 0, MAX_RTT_SAMPLES) {
            Some(d) if d.correlation >= 0.5 => {
                let line = format!(
                    "Echo round trip: {:.1} ms (you -> server -> you, one clock; correlation {:.2}, level {:+.1} dB)",
                    d.lag_ms(48_000),
                    d.correlation,
                    d.gain_db
                );
                // The measurement is the point of the command: print it even with --quiet.
                println!("{line}");
                Ok(())
            }
            Some(d) => anyhow::bail!(
                "echo test: what came back does not match what was sent (correlation {:.2}); heavy loss?",
                d.correlation
            ),
            None => anyhow::bail!("echo test: nothing came back from the server"),
        }
    }
}
