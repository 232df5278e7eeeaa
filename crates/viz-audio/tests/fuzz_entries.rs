//! The cargo-fuzz targets' entry points, on random input, in the normal suite.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn opus_packet(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
        viz_audio::fuzzing::opus_packet(&data);
    }

    #[test]
    fn jitter_script(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        viz_audio::fuzzing::jitter_script(&data);
    }

    #[test]
    fn wav_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        viz_audio::fuzzing::wav_bytes(&data);
        // A valid header followed by random sample data.
        let mut with_header = b"RIFF\\x00\\x00\\x00\\x00WAVEfmt \\x10\\x00\\x00\\x00\\x01\\x00\\x02\\x00\\x44\\xac\\x00\\x00\\x10\\xb1\\x02\\x00\\x04\\x00\\x10\\x00data".to_vec();
        with_header.extend_from_slice(&(data.len() as u32).to_le_bytes());
        with_header.extend_from_slice(&data);
        viz_audio::fuzzing::wav_bytes(&with_header);
    }
}

#[test]
fn jitter_script_with_real_opus_frames() {
    // A script built from genuine packets (so the decode path runs), with wraps,
    // duplicates and reordering.
    use viz_audio::codec::{Encoded, Encoder, MAX_PACKET};
    let mut enc = Encoder::new(viz_audio::AudioParams::default()).unwrap();
    let pcm = viz_audio::signals::speech_like(1, 48_000);
    let mut script = Vec::new();
    let mut buf = [0u8; MAX_PACKET];
    for (i, frame) in pcm.chunks_exact(960).enumerate() {
        let Encoded::Packet(len) = enc.encode(frame, &mut buf).unwrap() else { continue };
        let seq = (65_530u16).wrapping_add(i as u16);
        let ts = (u32::MAX - 10_000).wrapping_add(960 * i as u32);
        for _ in 0..(1 + i % 2) {
            script.push(0u8);
            script.push(1);
            script.extend_from_slice(&seq.to_be_bytes());
            script.extend_from_slice(&ts.to_be_bytes());
            script.push(1);
            script.push(len.min(255) as u8);
            script.extend_from_slice(&buf[..len.min(255)]);
        }
        script.extend_from_slice(&[2, 40, 1, 1]);
    }
    viz_audio::fuzzing::jitter_script(&script);
}
