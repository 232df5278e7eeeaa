//! Audio parameters shared by the encoder, the packetizer and the jitter buffer.

use std::fmt;
use std::time::Duration;

/// Viz always runs its codec at 48 kHz, the native Opus rate (RFC 6716 §2).
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples per millisecond at [`SAMPLE_RATE`].
pub const SAMPLES_PER_MS: u32 = SAMPLE_RATE / 1000;

/// Opus frame durations Viz accepts. Opus also has 2.5 and 5 ms frames, but they cannot
/// use SILK (speech) mode and only cost header overhead for a voice call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameDuration {
    Ms10,
    Ms20,
    Ms40,
    Ms60,
}

impl FrameDuration {
    pub const ALL: [FrameDuration; 4] = [Self::Ms10, Self::Ms20, Self::Ms40, Self::Ms60];

    pub fn from_millis(ms: u32) -> Option<Self> {
        match ms {
            10 => Some(Self::Ms10),
            20 => Some(Self::Ms20),
            40 => Some(Self::Ms40),
            60 => Some(Self::Ms60),
            _ => None,
        }
    }

    pub fn from_samples(samples: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.samples() == samples)
    }

    pub fn millis(self) -> u32 {
        match self {
            Self::Ms10 => 10,
            Self::Ms20 => 20,
            Self::Ms40 => 40,
            Self::Ms60 => 60,
        }
    }

    /// Samples per channel in one frame at 48 kHz.
    pub fn samples(self) -> usize {
        (self.millis() * SAMPLES_PER_MS) as usize
    }

    pub fn duration(self) -> Duration {
        Duration::from_millis(u64::from(self.millis()))
    }
}

impl fmt::Display for FrameDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.millis())
    }
}

/// Opus bitrate bounds for one mono channel (libopus accepts 500..=512000 b/s, below
/// 6 kb/s it only produces narrowband noise).
pub const MIN_BITRATE: u32 = 6_000;
pub const MAX_BITRATE: u32 = 510_000;

/// Everything a sender needs to configure its encoder and packetizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioParams {
    pub frame: FrameDuration,
    /// Target bitrate in bits per second (Opus payload only, no headers).
    pub bitrate: u32,
    /// libopus complexity 0..=10; higher is better quality for more CPU.
    pub complexity: u8,
    /// In-band forward error correction (LBRR, RFC 6716 §2.1.7).
    pub fec: bool,
    /// Discontinuous transmission: near-silent frames are not sent.
    pub dtx: bool,
    /// Deep redundancy (DRED): while receivers report loss, every packet also carries a
    /// neural-coded summary of the audio before it, from which the receiver rebuilds
    /// lost frames. Nothing is spent on it while the link is clean.
    pub dred: bool,
}

impl Default for AudioParams {
    fn default() -> Self {
        Self { frame: FrameDuration::Ms20, bitrate: 32_000, complexity: 9, fec: true, dtx: true, dred: true }
    }
}

impl AudioParams {
    /// Checks ranges that the type system does not.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_BITRATE..=MAX_BITRATE).contains(&self.bitrate) {
            return Err(format!("bitrate {} b/s is out of range ({MIN_BITRATE}..={MAX_BITRATE})", self.bitrate));
        }
        if self.complexity > 10 {
            return Err(format!("complexity {} is out of range (0..=10)", self.complexity));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_durations_round_trip() {
        for f in FrameDuration::ALL {
            assert_eq!(FrameDuration::from_millis(f.millis()), Some(f));
            assert_eq!(FrameDuration::from_samples(f.samples()), Some(f));
            assert_eq!(f.duration().as_millis() as u32, f.millis());
        }
        assert_eq!(FrameDuration::from_millis(25), None);
        assert_eq!(FrameDuration::from_samples(961), None);
    }

    #[test]
    fn defaults_match_design() {
        let p = AudioParams::default();
        assert_eq!(p.frame.samples(), 960);
        assert_eq!(p.bitrate, 32_000);
        assert!(p.fec && p.dtx && p.dred);
        assert!(p.validate().is_ok());
        assert!(AudioParams { bitrate: 1000, ..p }.validate().is_err());
        assert!(AudioParams { complexity: 11, ..p }.validate().is_err());
    }
}
