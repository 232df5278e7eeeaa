//! Entry points shared by the cargo-fuzz targets and the property tests (see
//! viz-proto's `fuzzing` module for the idea).

use std::time::{Duration, Instant};

use crate::codec::{self, Decoder, MAX_PACKET_SAMPLES};
use crate::jitter::{JitterBuffer, JitterConfig, MAX_FRAMES_PER_PACKET, PacketRef, Playout};

/// Arbitrary bytes as Opus packets: duration, FEC flag, and decoding.
pub fn opus_packet(data: &[u8]) {
    let _ = codec::packet_samples(data);
    let _ = codec::packet_has_fec(data);
    let _ = codec::packet_frame_duration(data);
    if let Ok(mut d) = Decoder::new() {
        let mut out = vec![0f32; MAX_PACKET_SAMPLES];
        if let Ok(n) = d.decode(data, &mut out) {
            assert!(n <= MAX_PACKET_SAMPLES);
            assert!(out[..n].iter().all(|s| s.is_finite()));
        }
    }
}

/// A script of pushes, pops and clock steps driving a jitter buffer. Whatever the
/// packets (wrapping, duplicated, garbage), the buffer stays bounded and every pop
/// yields finite audio of a sane length.
pub fn jitter_script(data: &[u8]) {
    let Ok(mut jb) = JitterBuffer::new(JitterConfig::default()) else { return };
    let t0 = Instant::now();
    let mut now = t0;
    let mut out = vec![0f32; MAX_PACKET_SAMPLES];
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 3 {
            0 => {
                if rest.len() < 8 {
                    return;
                }
                let stream = rest[0];
                let seq = u16::from_be_bytes([rest[1], rest[2]]);
                let timestamp = u32::from_be_bytes([rest[3], rest[4], rest[5], rest[6]]);
                let count = usize::from(rest[7]) % (MAX_FRAMES_PER_PACKET + 1);
                rest = &rest[8..];
                let mut frames: Vec<&[u8]> = Vec::new();
                for _ in 0..count {
                    let Some((&len, tail)) = rest.split_first() else { break };
                    let len = usize::from(len).min(tail.len());
                    frames.push(&tail[..len]);
                    rest = &tail[len..];
                }
                jb.push(now, PacketRef { stream, seq, timestamp, frames: &frames });
            }
            1 => match jb.pop(now, 0, &mut out) {
                Playout::Idle => {}
                Playout::Audio { samples, .. } => {
                    assert!((1..=MAX_PACKET_SAMPLES).contains(&samples));
                    assert!(out[..samples].iter().all(|s| s.is_finite()));
                }
            },
            _ => {
                let step = rest.first().copied().unwrap_or(0);
                rest = rest.get(1..).unwrap_or(&[]);
                now += Duration::from_micros(u64::from(step) * 500);
            }
        }
        assert!(jb.buffered_frames() <= 64);
        assert!(jb.target_delay() <= Duration::from_millis(300) + Duration::from_millis(120));
    }
}

/// WAV bytes through the reader (format conversion, channel mixing, resampling).
pub fn wav_bytes(data: &[u8]) {
    if let Ok(samples) = crate::wav::decode_mono_48k(std::io::Cursor::new(data), "fuzz input") {
        assert!(samples.iter().all(|s| s.is_finite()));
    }
}
