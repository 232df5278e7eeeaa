//! The jitter buffer against a simulated network: real Opus frames from a speech-like
//! signal go through a seeded `viz-netsim` link (loss, bursts, jitter, reordering,
//! duplication) into the buffer, which an output device model drains in 5 ms chunks.
//! Virtual time, so ten seconds of audio take a fraction of a second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use viz_audio::codec::{Encoded, Encoder, MAX_PACKET, MAX_PACKET_SAMPLES};
use viz_audio::{
    AudioParams, FrameDuration, JitterBuffer, JitterConfig, JitterStats, PacketRef, PlayKind, Playout, analysis,
    signals,
};
use viz_netsim::{Impairment, Link, Payload};

const OUT_CHUNK: usize = 240; // the output device takes 5 ms at a time

#[derive(Clone, Debug)]
struct SimPacket {
    stream: u8,
    seq: u16,
    ts: u32,
    frames: Vec<Vec<u8>>,
}

impl Payload for SimPacket {
    fn wire_len(&self) -> usize {
        self.frames.iter().map(Vec::len).sum()
    }
}

struct Scenario {
    params: AudioParams,
    batch: usize,
    impairment: Impairment,
    seed: u64,
    config: JitterConfig,
    first_seq: u16,
    first_ts: u32,
    /// (time in seconds, new stream id, new timestamp base): the sender restarts.
    restart_at: Option<(f64, u8, u32)>,
    /// Impairment switches to this after the given number of seconds.
    then: Option<(f64, Impairment)>,
    /// And to this after that many seconds.
    and_then: Option<(f64, Impairment)>,
    /// How fast the sender's sound card runs against the receiver's, in parts per
    /// million (real cards differ by ±100 ppm and more).
    sender_clock_ppm: f64,
    /// The loss the sender is told about (default: the first impairment's).
    loss_hint: Option<u8>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            params: AudioParams::default(),
            batch: 1,
            impairment: Impairment::clean(),
            seed: 1,
            config: JitterConfig::default(),
            first_seq: 1000,
            first_ts: 123_456,
            restart_at: None,
            then: None,
            and_then: None,
            sender_clock_ppm: 0.0,
            loss_hint: None,
        }
    }
}

struct Outcome {
    output: Vec<f32>,
    stats: JitterStats,
    frames_sent: u64,
    packets_sent: u64,
    final_target: Duration,
    max_target: Duration,
    jb: JitterBuffer,
    /// What each pop played: (seconds, kind, samples).
    played: Vec<(f64, PlayKind, usize)>,
}

fn run(s: &Scenario, input: &[f32]) -> Outcome {
    let t0 = Instant::now();
    let frame = s.params.frame.samples();
    let frame_dur = s.params.frame.duration();
    let mut enc = Encoder::new(s.params).unwrap();
    enc.set_loss_hint(s.loss_hint.unwrap_or((s.impairment.loss * 100.0) as u8)).unwrap();
    let mut jb = JitterBuffer::new(s.config).unwrap();
    let mut link: Link<SimPacket> = Link::new(s.impairment, s.seed);

    let mut stream = 1u8;
    let mut seq = s.first_seq;
    let mut ts = s.first_ts;
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut pending_ts = ts;
    let (mut frames_sent, mut packets_sent) = (0u64, 0u64);
    let mut restarted = false;
    let mut switched = false;
    let mut switched_again = false;
    let mut played = Vec::new();
    let frame_interval = frame_dur.as_secs_f64() / (1.0 + s.sender_clock_ppm * 1e-6);

    let total_frames = input.len() / frame;
    let mut next_frame = 0usize;
    let mut out_tick = 0u64;
    let out_ticks = (input.len() / OUT_CHUNK) as u64;
    let mut fifo: VecDeque<f32> = VecDeque::new();
    let mut output = Vec::with_capacity(input.len());
    let mut scratch = vec![0f32; MAX_PACKET_SAMPLES];
    let mut buf = [0u8; MAX_PACKET];
    let mut max_target = Duration::ZERO;

    let mut flush = |pending: &mut Vec<Vec<u8>>,
                     pending_ts: u32,
                     seq: &mut u16,
                     stream: u8,
                     now: Instant,
                     link: &mut Link<SimPacket>| {
        if pending.is_empty() {
            return;
        }
        frames_sent += pending.len() as u64;
        link.send(now, SimPacket { stream, seq: *seq, ts: pending_ts, frames: std::mem::take(pending) });
        *seq = seq.wrapping_add(1);
        packets_sent += 1;
    };

    loop {
        // Next event: a frame completes, the output wants a chunk, or a packet lands.
        let send_at =
            (next_frame < total_frames).then(|| t0 + Duration::from_secs_f64(frame_interval * (next_frame + 1) as f64));
        let out_at = (out_tick < out_ticks).then(|| t0 + Duration::from_micros(5000 * out_tick));
        let Some(now) = [send_at, out_at, link.next_due()].into_iter().flatten().min() else { break };
        let secs = (now - t0).as_secs_f64();
        if let Some((at, imp)) = s.then
            && !switched
            && secs >= at
        {
            link.set_impairment(imp);
            switched = true;
        }
        if let Some((at, imp)) = s.and_then
            && !switched_again
            && secs >= at
        {
            link.set_impairment(imp);
            switched_again = true;
        }
        while let Some(p) = link.poll(now) {
            let frames: Vec<&[u8]> = p.frames.iter().map(Vec::as_slice).collect();
            jb.push(now, PacketRef { stream: p.stream, seq: p.seq, timestamp: p.ts, frames: &frames });
        }
        if send_at == Some(now) {
            if let Some((at, new_stream, new_ts)) = s.restart_at
                && !restarted
                && secs >= at
            {
                flush(&mut pending, pending_ts, &mut seq, stream, now, &mut link);
                restarted = true;
                stream = new_stream;
                ts = new_ts;
                seq = seq.wrapping_add(5000);
                enc.reset().unwrap();
            }
            let pcm = &input[next_frame * frame..(next_frame + 1) * frame];
            match enc.encode(pcm, &mut buf).unwrap() {
                Encoded::Packet(len) => {
                    if pending.is_empty() {
                        pending_ts = ts;
                    }
                    pending.push(buf[..len].to_vec());
                    if pending.len() == s.batch {
                        flush(&mut pending, pending_ts, &mut seq, stream, now, &mut link);
                    }
                }
                Encoded::Dtx => flush(&mut pending, pending_ts, &mut seq, stream, now, &mut link),
            }
            ts = ts.wrapping_add(frame as u32);
            next_frame += 1;
        }
        if out_at == Some(now) {
            while fifo.len() < OUT_CHUNK {
                match jb.pop(now, fifo.len(), &mut scratch) {
                    Playout::Idle => fifo.extend(std::iter::repeat_n(0.0, OUT_CHUNK - fifo.len())),
                    Playout::Audio { samples, kind } => {
                        played.push((secs, kind, samples));
                        fifo.extend(&scratch[..samples]);
                    }
                }
            }
            output.extend(fifo.drain(..OUT_CHUNK));
            out_tick += 1;
            let t = jb.target_delay();
            max_target = max_target.max(t);
        }
    }
    let final_target = jb.target_delay();
    Outcome { output, stats: jb.stats(), frames_sent, packets_sent, final_target, max_target, jb, played }
}

fn speech(seconds: usize, seed: u64) -> Vec<f32> {
    signals::speech_like(seed, 48_000 * seconds)
}

/// Mouth-to-ear delay (ms) and waveform correlation of the output against the input.
fn delay_and_correlation(input: &[f32], output: &[f32]) -> (f64, f32) {
    let d = analysis::find_delay_within(input, output, 0, 48_000).expect("output is silent");
    (d.lag_ms(48_000), d.correlation)
}

#[test]
fn clean_network_plays_every_frame_with_one_frame_of_buffer() {
    let input = speech(10, 1);
    let o = run(&Scenario::default(), &input);
    let st = o.stats;
    assert_eq!(st.packets_lost, 0);
    assert_eq!(st.frames_concealed + st.frames_fec + st.frames_late + st.frames_dropped, 0, "{st:?}");
    assert_eq!(st.frames_decoded + o.jb.buffered_frames() as u64, o.frames_sent, "{st:?}");
    assert_eq!(st.packets_received, o.packets_sent);
    // One frame plus the guard: the floor.
    assert!(
        o.final_target >= Duration::from_millis(20) && o.final_target <= Duration::from_millis(23),
        "{:?}",
        o.final_target
    );
    let (delay, corr) = delay_and_correlation(&input, &o.output);
    // 20 ms framing + 6.5 ms codec lookahead + 2 ms guard + up to 5 ms output chunk.
    assert!((26.0..=36.0).contains(&delay), "delay {delay} ms");
    assert!(corr > 0.7, "correlation {corr}");
}

#[test]
fn ten_ms_frames_halve_the_framing_delay() {
    let input = speech(5, 2);
    let params = AudioParams { frame: FrameDuration::Ms10, ..Default::default() };
    let o = run(&Scenario { params, ..Default::default() }, &input);
    let (delay, corr) = delay_and_correlation(&input, &o.output);
    assert!((16.0..=26.0).contains(&delay), "delay {delay} ms");
    assert!(corr > 0.6, "correlation {corr}");
    assert_eq!(o.stats.frames_concealed, 0);
}

#[test]
fn loss_sweep_is_measured_and_concealed() {
    let input = speech(10, 3);
    let mut previous_corr = 1.0f32;
    for loss_pct in [0u32, 5, 10, 20, 30] {
        let impairment = Impairment { loss: f64::from(loss_pct) / 100.0, ..Default::default() };
        let o = run(&Scenario { impairment, seed: u64::from(loss_pct), ..Default::default() }, &input);
        let st = o.stats;
        let measured = st.packets_lost as f64 / o.packets_sent as f64 * 100.0;
        assert!((measured - f64::from(loss_pct)).abs() < 3.5, "{loss_pct}%: measured {measured:.1}%");
        // Every lost voiced frame was rebuilt by FEC or PLC; none arrived late.
        assert_eq!(st.frames_late, 0, "{loss_pct}%: {st:?}");
        let repaired = st.frames_fec + st.frames_dred + st.frames_concealed;
        assert!(repaired + 3 >= st.packets_lost, "{loss_pct}%: {st:?}");
        if loss_pct >= 10 {
            assert!(st.frames_fec > 0, "{loss_pct}%: FEC never used: {st:?}");
        }
        // Measured once the buffer has settled on its delay for this loss (it grows by
        // time-stretching in the first seconds, which a waveform correlation reads as
        // damage).
        let settled = 48_000 * 3;
        let (delay, corr) = delay_and_correlation(&input[settled..], &o.output[settled..]);
        eprintln!(
            "loss {loss_pct:2}%: lost {:3} packets, FEC {:3}, PLC {:3}, late {}, delay {delay:.1} ms, correlation {corr:.3}",
            st.packets_lost, st.frames_fec, st.frames_concealed, st.frames_late
        );
        assert!(corr > 0.2, "{loss_pct}%: correlation {corr}");
        assert!(corr <= previous_corr + 0.05, "{loss_pct}%: quality rose with loss");
        previous_corr = corr;
    }
}

#[test]
fn jitter_raises_the_target_to_cover_it_and_few_frames_are_late() {
    let input = speech(15, 4);
    let impairment = Impairment { loss: 0.05, jitter: Duration::from_millis(20), ..Default::default() };
    let o = run(&Scenario { impairment, seed: 4, ..Default::default() }, &input);
    let st = o.stats;
    let late_pct = st.frames_late as f64 / o.frames_sent as f64 * 100.0;
    assert!(late_pct < 3.0, "late {late_pct:.1}%: {st:?}");
    // One frame + ~20 ms of jitter + one frame to wait for FEC (packets are being
    // lost) + guard.
    assert!(
        o.final_target >= Duration::from_millis(55) && o.final_target <= Duration::from_millis(70),
        "{:?}",
        o.final_target
    );
    // ...and that wait pays: most lost frames come back from FEC.
    assert!(st.frames_fec * 2 > st.packets_lost, "{st:?}");
    let (delay, _) = delay_and_correlation(&input, &o.output);
    assert!(delay <= 80.0, "delay {delay} ms");
}

#[test]
fn reordering_and_duplicates_are_absorbed() {
    let input = speech(10, 5);
    let impairment = Impairment { jitter: Duration::from_millis(60), duplicate: 0.1, ..Default::default() };
    let o = run(&Scenario { impairment, seed: 5, ..Default::default() }, &input);
    let st = o.stats;
    assert!(st.frames_duplicate > 30, "{st:?}");
    assert_eq!(st.packets_lost, 0, "duplicates must not hide or fake loss: {st:?}");
    assert!((st.frames_late as f64) < o.frames_sent as f64 * 0.03, "{st:?}");
    assert!(o.max_target <= Duration::from_millis(90), "{:?}", o.max_target);
}

#[test]
fn sequence_and_timestamp_wrap_is_seamless() {
    let input = speech(6, 6);
    let s = Scenario { first_seq: 65_500, first_ts: u32::MAX - 48_000, ..Default::default() };
    let o = run(&s, &input);
    let st = o.stats;
    assert_eq!(st.stream_restarts, 0);
    assert_eq!(st.packets_lost, 0);
    assert_eq!(st.frames_decoded + o.jb.buffered_frames() as u64, o.frames_sent, "{st:?}");
}

#[test]
fn sender_restart_with_a_new_stream_is_followed() {
    let input = speech(8, 7);
    let s = Scenario { restart_at: Some((3.0, 9, 77)), ..Default::default() };
    let o = run(&s, &input);
    let st = o.stats;
    assert_eq!(st.stream_restarts, 1, "{st:?}");
    assert_eq!(st.packets_lost, 0, "a restart is not loss: {st:?}");
    let tail = &o.output[48_000 * 5..];
    assert!(analysis::rms(tail) > 0.01, "silent after restart");
    let (_, corr) = delay_and_correlation(&input[48_000 * 4..], &o.output[48_000 * 4..]);
    assert!(corr > 0.6, "correlation after restart {corr}");
}

#[test]
fn a_timestamp_jump_on_the_same_stream_is_a_restart() {
    let input = speech(6, 8);
    let s = Scenario { restart_at: Some((2.0, 1, 3_000_000_000)), ..Default::default() };
    let o = run(&s, &input);
    assert_eq!(o.stats.stream_restarts, 1, "{:?}", o.stats);
    assert!(analysis::rms(&o.output[48_000 * 4..]) > 0.01);
}

#[test]
fn target_delay_never_exceeds_the_bound() {
    let input = speech(8, 9);
    let impairment = Impairment { jitter: Duration::from_millis(1000), ..Default::default() };
    let config = JitterConfig { max_delay: Duration::from_millis(300), ..Default::default() };
    let o = run(&Scenario { impairment, config, seed: 9, ..Default::default() }, &input);
    assert!(o.max_target <= Duration::from_millis(300), "{:?}", o.max_target);
    assert!(o.jb.buffered_frames() <= 64);
}

#[test]
fn delay_shrinks_back_after_a_jitter_spike() {
    let input = speech(20, 10);
    let spike = Impairment { jitter: Duration::from_millis(100), ..Default::default() };
    let s = Scenario { impairment: spike, then: Some((5.0, Impairment::clean())), seed: 10, ..Default::default() };
    let o = run(&s, &input);
    assert!(o.max_target >= Duration::from_millis(100), "never grew: {:?}", o.max_target);
    assert!(o.final_target <= Duration::from_millis(25), "never shrank: {:?}", o.final_target);
    // The last seconds are played at close to the clean-network delay.
    let last = 48_000 * 14;
    let (delay, corr) = delay_and_correlation(&input[last..], &o.output[last..]);
    assert!(
        delay <= 45.0,
        "delay after the spike {delay} ms (correlation {corr}, {:?}, final target {:?})",
        o.stats,
        o.final_target
    );
}

#[test]
fn dtx_gaps_are_comfort_noise_not_loss() {
    let input = speech(10, 11);
    let o = run(&Scenario::default(), &input);
    let st = o.stats;
    assert!(o.frames_sent < (input.len() / 960) as u64, "DTX never engaged");
    assert!(st.frames_comfort_noise > 20, "{st:?}");
    assert_eq!(st.frames_concealed, 0, "{st:?}");
}

#[test]
fn batched_packets_play_completely() {
    let input = speech(8, 12);
    let o = run(&Scenario { batch: 4, ..Default::default() }, &input);
    let st = o.stats;
    assert_eq!(st.frames_decoded + o.jb.buffered_frames() as u64, o.frames_sent, "{st:?}");
    assert!(o.packets_sent * 2 < o.frames_sent);
    // A batch spreads one frame's arrival over four frame times.
    assert!(o.final_target >= Duration::from_millis(75), "{:?}", o.final_target);
    let (delay, corr) = delay_and_correlation(&input, &o.output);
    assert!(delay <= 110.0 && corr > 0.6, "delay {delay} corr {corr}");
}

#[test]
fn burst_loss_uses_plc_where_fec_cannot_help() {
    let input = speech(10, 13);
    let impairment = Impairment { loss: 0.1, burst: 4.0, ..Default::default() };
    let o = run(&Scenario { impairment, seed: 13, ..Default::default() }, &input);
    let st = o.stats;
    assert!(st.frames_concealed > st.frames_fec, "{st:?}");
}

/// A sustained vowel: harmonics of a 140 Hz voice with a slow vibrato, never silent, so
/// every change of delay has to happen inside voiced sound.
fn vowel(seconds: usize) -> Vec<f32> {
    let mut phase = 0.0f64;
    (0..48_000 * seconds)
        .map(|i| {
            let t = i as f64 / 48_000.0;
            phase += 2.0 * std::f64::consts::PI * 140.0 * (1.0 + 0.02 * (2.0 * std::f64::consts::PI * 5.0 * t).sin())
                / 48_000.0;
            let v: f64 = (1..=8).map(|h| (f64::from(h) * phase).sin() / f64::from(h)).sum();
            (0.15 * v) as f32
        })
        .collect()
}

#[test]
fn the_delay_grows_and_shrinks_inside_voiced_sound_without_holds_or_drops() {
    // Loss starts after 3 s (the buffer adds a frame to wait for FEC) and stops after
    // 10 s (the wait is given back): the target moves by 20 ms each way while the
    // vowel never pauses.
    let input = vowel(25);
    let lossy = Impairment { loss: 0.03, ..Default::default() };
    let s = Scenario {
        then: Some((3.0, lossy)),
        and_then: Some((10.0, Impairment::clean())),
        loss_hint: Some(3),
        seed: 21,
        ..Default::default()
    };
    let o = run(&s, &input);
    let st = o.stats;
    assert!(o.max_target >= Duration::from_millis(40), "the target never grew: {:?}", o.max_target);
    assert!(o.final_target <= Duration::from_millis(25), "the target never shrank: {:?}", o.final_target);
    assert!(st.frames_expanded > 0 && st.frames_accelerated > 0, "{st:?}");
    // No hold (concealment inserted while waiting) and no dropped frame anywhere.
    let holds: Vec<f64> = o.played.iter().filter(|p| p.1 == PlayKind::Inserted).map(|p| p.0).collect();
    assert!(holds.is_empty(), "holds at {holds:?} s: {st:?}");
    assert_eq!(st.frames_dropped + st.frames_late, 0, "{st:?}");
    // The delay really came back: the last seconds play within the buffer's 10 ms
    // shrink hysteresis of the clean-network delay (31 ms here), as after a spike.
    let last = 48_000 * 20;
    let (delay, corr) = delay_and_correlation(&input[last..], &o.output[last..]);
    assert!(delay <= 45.0 && corr > 0.6, "delay {delay} ms, correlation {corr}");
}

#[test]
fn a_sender_clock_off_by_a_tenth_of_a_percent_is_followed_without_a_reset_or_a_gap() {
    for ppm in [1000.0, -1000.0] {
        // A minute of unbroken voice: 60 ms of drift to absorb, none of it in silence.
        let input = vowel(60);
        let o = run(&Scenario { sender_clock_ppm: ppm, seed: 22, ..Default::default() }, &input);
        let st = o.stats;
        assert_eq!(st.stream_restarts, 0, "{ppm} ppm: {st:?}");
        assert_eq!(
            st.frames_concealed + st.frames_inserted + st.frames_dropped + st.frames_late,
            0,
            "{ppm} ppm: a gap or a reset: {st:?}"
        );
        if ppm > 0.0 {
            assert!(st.frames_accelerated > 0, "{ppm} ppm: {st:?}");
        } else {
            assert!(st.frames_expanded > 0, "{ppm} ppm: {st:?}");
        }
        // Followed, not accumulated: after a minute the delay is what it was at the start.
        let (early, _) = delay_and_correlation(&input[48_000 * 2..48_000 * 6], &o.output[48_000 * 2..48_000 * 6]);
        let n = o.output.len().min(input.len());
        let late_from = n - 48_000 * 4;
        let sender_late_from = (late_from as f64 * (1.0 + ppm * 1e-6)) as usize;
        let (late, corr) = delay_and_correlation(&input[sender_late_from..n.min(input.len())], &o.output[late_from..n]);
        eprintln!(
            "{ppm} ppm: delay {early:.1} ms at the start, {late:.1} ms after a minute (correlation {corr:.2}): {st:?}"
        );
        assert!(
            (late - early).abs() <= 15.0 && corr > 0.5,
            "{ppm} ppm: delay {early:.1} ms at the start, {late:.1} ms after a minute (correlation {corr:.2})"
        );
    }
}

#[test]
fn lost_frames_are_rebuilt_from_deep_redundancy_of_a_later_packet() {
    // With in-band FEC off, libopus spends the redundancy budget its 15 % loss hint
    // allows on DRED; the buffer rebuilds lost frames from the next packet's.
    let input = speech(10, 23);
    let impairment = Impairment { loss: 0.15, ..Default::default() };
    let params = AudioParams { fec: false, ..Default::default() };
    let with_dred = run(&Scenario { params, impairment, seed: 23, ..Default::default() }, &input);
    let without = run(
        &Scenario { params: AudioParams { dred: false, ..params }, impairment, seed: 23, ..Default::default() },
        &input,
    );
    let (st, st0) = (with_dred.stats, without.stats);
    assert!(st.frames_dred * 2 > st.packets_lost, "{st:?}");
    assert_eq!(st0.frames_dred, 0, "{st0:?}");
    // DRED is a vocoder: its speech is not the original waveform (so no correlation
    // test), but it is speech at the original's level where it stands in for a frame.
    let (delay, _) = delay_and_correlation(&input, &with_dred.output);
    let lag = (delay * 48.0) as usize;
    let (mut rebuilt_db, mut original_db, mut n) = (0.0, 0.0, 0.0);
    let mut at = 0usize;
    for &(_, kind, samples) in &with_dred.played {
        if kind == PlayKind::Dred && at >= lag && at + samples <= input.len() + lag {
            let original = &input[at - lag..at - lag + samples];
            if analysis::rms(original) > 0.01 {
                rebuilt_db += analysis::rms_dbfs(&with_dred.output[at..at + samples]);
                original_db += analysis::rms_dbfs(original);
                n += 1.0;
            }
        }
        at += samples;
    }
    assert!(n >= 10.0, "only {n} voiced frames rebuilt");
    let (rebuilt_db, original_db) = (rebuilt_db / n, original_db / n);
    assert!(
        (rebuilt_db - original_db).abs() < 6.0,
        "rebuilt frames at {rebuilt_db:.1} dBFS where the lost ones were {original_db:.1} dBFS"
    );
}

/// A sender that stops mid-sound (muted, push to talk let go, its process gone) is
/// concealed for a moment and then silent: the decoder's concealment alone kept a
/// stopped 440 Hz tone going at -28 dBFS for seconds.
#[test]
fn a_stream_that_stops_mid_sound_fades_to_silence() {
    let mut tone = vec![0.0f32; 48_000 * 4];
    viz_audio::signals::ToneOscillator::new(440.0, 0.3).fill(&mut tone);
    let stopped = Impairment { loss: 1.0, ..Impairment::clean() };
    let o = run(&Scenario { then: Some((2.0, stopped)), ..Default::default() }, &tone);
    let level = |from: f64, to: f64| {
        viz_audio::analysis::rms_dbfs(&o.output[(from * 48_000.0) as usize..(to * 48_000.0) as usize])
    };
    let (playing, after) = (level(1.0, 1.9), level(2.3, 3.9));
    println!("tone {playing:.1} dBFS, from 0.3 s after it stopped {after:.1} dBFS");
    assert!(playing > -15.0, "{playing:.1} dBFS");
    assert!(after < -90.0, "the stopped sender is still heard at {after:.1} dBFS");
}

/// The other side of the test above: a pause with background noise, which the sender
/// sends in DTX (a comfort-noise refresh every 400 ms, nothing between), keeps its
/// comfort noise at the receiver; fading it out would leave a dead line with a blip
/// every 400 ms.
#[test]
fn a_quiet_pause_in_dtx_keeps_its_comfort_noise() {
    let mut input = vec![0.0f32; 48_000 * 4];
    viz_audio::signals::ToneOscillator::new(440.0, 0.3).fill(&mut input[..48_000]);
    let hiss = viz_audio::signals::white_noise(0.0017, input.len(), 5);
    input.iter_mut().zip(&hiss).for_each(|(x, n)| *x += n);
    let o = run(&Scenario::default(), &input);
    let level = |x: &[f32], from: f64, to: f64| {
        viz_audio::analysis::rms_dbfs(&x[(from * 48_000.0) as usize..(to * 48_000.0) as usize])
    };
    let (sent, heard) = (level(&input, 1.5, 3.9), level(&o.output, 1.5, 3.9));
    // 20 ms blocks of the pause played as silence (the dead line).
    let blocks = (75..195).map(|b| f64::from(b) * 0.02);
    let dead = blocks.filter(|&t| level(&o.output, t, t + 0.02) < -90.0).count();
    println!(
        "hiss sent at {sent:.1} dBFS, heard at {heard:.1} dBFS, {dead} of 120 blocks silent; {} of 200 frames sent",
        o.frames_sent
    );
    assert!(o.frames_sent < 150, "DTX never engaged: {} frames sent", o.frames_sent);
    assert!((heard - sent).abs() < 10.0, "the pause's hiss, sent at {sent:.1} dBFS, was heard at {heard:.1} dBFS");
    assert_eq!(dead, 0, "the pause's hiss was cut to silence in {dead} of 120 blocks of 20 ms");
}
