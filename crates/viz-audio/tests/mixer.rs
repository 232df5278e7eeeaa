//! Deterministic mixer tests: real Opus in and out, simulated time, no network.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use viz_audio::analysis::{band_energy_fraction, rms};
use viz_audio::codec::{Decoder, Encoded, Encoder, MAX_PACKET, MAX_PACKET_SAMPLES};
use viz_audio::mixer::{MixKey, Mixer, MixerConfig, Outgoing, ParticipantId, Role, Route, StreamKey};
use viz_audio::signals::ToneOscillator;
use viz_audio::{AudioParams, PacketRef};

const FRAME: usize = 960;

/// A participant that sends a tone, as a client would: 20 ms Opus packets.
struct ToneSender {
    id: ParticipantId,
    osc: ToneOscillator,
    encoder: Encoder,
    seq: u16,
    ts: u32,
}

impl ToneSender {
    fn new(id: ParticipantId, freq: f32, amplitude: f32) -> Self {
        Self {
            id,
            osc: ToneOscillator::new(freq, amplitude),
            encoder: Encoder::new(AudioParams::default()).unwrap(),
            seq: 1000 * id as u16,
            ts: 77_777 * id,
        }
    }

    /// Encodes the next frame; returns (seq, ts, packet).
    fn next(&mut self) -> (u16, u32, Vec<u8>) {
        let mut pcm = vec![0.0; FRAME];
        self.osc.fill(&mut pcm);
        let mut out = vec![0u8; MAX_PACKET];
        let Encoded::Packet(n) = self.encoder.encode(&pcm, &mut out).unwrap() else { panic!("tone is not silence") };
        out.truncate(n);
        let r = (self.seq, self.ts, out);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME as u32);
        r
    }
}

/// One delivered packet: (seq, ts, opus bytes, came from).
type Got = (u16, u32, Vec<u8>, StreamKey);

#[derive(Default)]
struct Received {
    /// Per listener, in delivery order.
    packets: HashMap<ParticipantId, Vec<Got>>,
}

impl Received {
    fn take(&mut self, out: Outgoing<'_>) {
        assert_eq!(out.frames.len(), 1);
        for d in out.deliveries {
            self.packets.entry(d.listener).or_default().push((d.seq, d.timestamp, out.frames[0].to_vec(), out.from));
        }
    }

    /// Decodes everything listener `id` got (skipping the first `skip` packets).
    fn decode(&self, id: ParticipantId, skip: usize) -> Vec<f32> {
        let mut dec = Decoder::new().unwrap();
        let mut pcm = Vec::new();
        let mut buf = vec![0.0; MAX_PACKET_SAMPLES];
        for (i, (_, _, p, _)) in self.packets.get(&id).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
            let n = dec.decode(p, &mut buf).unwrap();
            if i >= skip {
                pcm.extend_from_slice(&buf[..n]);
            }
        }
        pcm
    }
}

/// Runs `frames` frames: every sender sends, then the mixer ticks 1 ms later.
fn run(mixer: &mut Mixer, senders: &mut [ToneSender], t0: Instant, frames: u32, got: &mut Received) {
    for i in 0..frames {
        let now = t0 + Duration::from_millis(20 * u64::from(i));
        for s in senders.iter_mut() {
            let (seq, ts, p) = s.next();
            let frames: [&[u8]; 1] = [&p];
            let packet = PacketRef { stream: 0, seq, timestamp: ts, frames: &frames };
            mixer.push(now, s.id, packet, false, &mut |o| got.take(o));
        }
        mixer.tick(now + Duration::from_millis(1), &mut |o| got.take(o));
    }
}

fn mixer() -> Mixer {
    Mixer::new(MixerConfig::new(AudioParams::default())).unwrap()
}

fn energy_at(pcm: &[f32], hz: f32) -> f32 {
    band_energy_fraction(pcm, 48_000, hz, 40.0)
}

#[test]
fn every_speaker_hears_the_others_and_not_themselves() {
    let mut m = mixer();
    let tones = [(1, 400.0), (2, 700.0), (3, 1100.0)];
    let mut senders: Vec<ToneSender> = tones.iter().map(|&(id, f)| ToneSender::new(id, f, 0.3)).collect();
    for &(id, _) in &tones {
        m.add(id, Role::SPEAKER, 1.0, false).unwrap();
    }
    m.add(10, Role::LISTENER, 1.0, false).unwrap();
    let mut got = Received::default();
    let t0 = Instant::now();
    run(&mut m, &mut senders, t0, 100, &mut got);

    for &(id, own) in &tones {
        assert_eq!(m.route(id), Some(Route::Mix(MixKey::Own(id))));
        let pcm = got.decode(id, 20);
        assert!(pcm.len() >= 60 * FRAME, "speaker {id} got {} samples", pcm.len());
        assert!(energy_at(&pcm, own) < 0.002, "speaker {id} hears its own {own} Hz: {}", energy_at(&pcm, own));
        for &(other, f) in &tones {
            if other != id {
                assert!(energy_at(&pcm, f) > 0.2, "speaker {id} misses {other}'s {f} Hz: {}", energy_at(&pcm, f));
            }
        }
    }
    assert_eq!(m.route(10), Some(Route::Mix(MixKey::Everyone)));
    let pcm = got.decode(10, 20);
    for &(_, f) in &tones {
        assert!(energy_at(&pcm, f) > 0.2, "the listener misses {f} Hz");
    }
}

#[test]
fn one_encode_per_distinct_mix_however_many_listen() {
    let mut m = mixer();
    let mut senders = vec![ToneSender::new(1, 300.0, 0.2), ToneSender::new(2, 500.0, 0.2)];
    m.add(1, Role::SPEAKER, 1.0, false).unwrap();
    m.add(2, Role::SPEAKER, 1.0, false).unwrap();
    for l in 100..300 {
        m.add(l, Role::LISTENER, 1.0, false).unwrap();
    }
    let mut got = Received::default();
    let t0 = Instant::now();
    run(&mut m, &mut senders, t0, 20, &mut got);
    // Two speakers: each hears only the other (forwarded, no encode); the 200
    // listeners share one mix.
    assert_eq!(m.route(1), Some(Route::Forward(2)));
    assert_eq!(m.route(2), Some(Route::Forward(1)));
    let now = t0 + Duration::from_millis(20 * 20);
    for s in senders.iter_mut() {
        let (seq, ts, p) = s.next();
        let frames: [&[u8]; 1] = [&p];
        m.push(now, s.id, PacketRef { stream: 0, seq, timestamp: ts, frames: &frames }, false, &mut |_| {});
    }
    let stats = m.tick(now + Duration::from_millis(1), &mut |_| {});
    assert_eq!(stats.encodes, 1, "{stats:?}");
    assert_eq!(stats.mixed_deliveries, 200);

    // A third speaker: now every speaker needs a mix-minus, plus the shared mix.
    m.add(3, Role::SPEAKER, 1.0, false).unwrap();
    senders.push(ToneSender::new(3, 900.0, 0.2));
    let t1 = now + Duration::from_millis(20);
    run(&mut m, &mut senders, t1, 20, &mut got);
    let now = t1 + Duration::from_millis(20 * 20);
    for s in senders.iter_mut() {
        let (seq, ts, p) = s.next();
        let frames: [&[u8]; 1] = [&p];
        m.push(now, s.id, PacketRef { stream: 0, seq, timestamp: ts, frames: &frames }, false, &mut |_| {});
    }
    let stats = m.tick(now + Duration::from_millis(1), &mut |_| {});
    assert_eq!(stats.encodes, 4, "{stats:?}");
    assert_eq!(stats.mixed_deliveries, 203);
}

#[test]
fn pass_through_packets_are_bit_identical_and_immediate() {
    let mut m = mixer();
    m.add(1, Role::SPEAKER, 1.0, false).unwrap();
    m.add(2, Role::SPEAKER, 1.0, false).unwrap();
    let mut alice = ToneSender::new(1, 440.0, 0.3);
    let t0 = Instant::now();
    let mut sent = Vec::new();
    let mut got = Received::default();
    for i in 0..50u64 {
        let now = t0 + Duration::from_millis(20 * i);
        let (seq, ts, p) = alice.next();
        let frames: [&[u8]; 1] = [&p];
        let before = got.packets.get(&2).map_or(0, Vec::len);
        m.push(now, 1, PacketRef { stream: 0, seq, timestamp: ts, frames: &frames }, false, &mut |o| got.take(o));
        // Forwarded during push, not at the next tick.
        assert_eq!(got.packets.get(&2).map_or(0, Vec::len), before + 1, "packet {i} not forwarded at once");
        sent.push(p);
        let stats = m.tick(now + Duration::from_millis(1), &mut |o| got.take(o));
        assert_eq!(stats.encodes, 0);
    }
    let bob = &got.packets[&2];
    assert_eq!(bob.len(), sent.len());
    for (i, ((seq, ts, bytes, from), original)) in bob.iter().zip(&sent).enumerate() {
        assert_eq!(bytes, original, "packet {i} changed");
        assert_eq!(*from, StreamKey::Forward(1));
        assert_eq!(*seq, bob[0].0.wrapping_add(i as u16));
        assert_eq!(*ts, bob[0].1.wrapping_add(960 * i as u32));
    }
    // Alice hears nothing of her own.
    assert!(!got.packets.contains_key(&1));
}

#[test]
fn gain_and_mute_apply_and_gain_other_than_unity_disables_forwarding() {
    let mut m = mixer();
    m.add(1, Role::SEND_ONLY, 2.0, false).unwrap();
    m.add(2, Role::SEND_ONLY, 0.5, false).unwrap();
    m.add(9, Role::LISTENER, 1.0, false).unwrap();
    let mut senders = vec![ToneSender::new(1, 500.0, 0.1), ToneSender::new(2, 1300.0, 0.1)];
    let mut got = Received::default();
    let t0 = Instant::now();
    run(&mut m, &mut senders, t0, 60, &mut got);
    let pcm = got.decode(9, 20);
    let loud = energy_at(&pcm, 500.0);
    let quiet = energy_at(&pcm, 1300.0);
    // Energy ratio of gains 2.0 and 0.5 is 16 (12 dB).
    let ratio = loud / quiet;
    assert!((10.0..25.0).contains(&ratio), "energy ratio {ratio}");

    // Mute the loud one: only the quiet one remains, and at gain 0.5 it is mixed, not
    // forwarded.
    m.set_muted(1, true);
    let mut got = Received::default();
    // Wall time and the senders' timestamps advance together, as on a real network.
    let t1 = t0 + Duration::from_millis(60 * 20);
    run(&mut m, &mut senders, t1, 60, &mut got);
    assert_eq!(m.route(9), Some(Route::Mix(MixKey::Everyone)));
    let pcm = got.decode(9, 20);
    assert!(energy_at(&pcm, 500.0) < 0.002, "muted source still heard");
    assert!(energy_at(&pcm, 1300.0) > 0.5);
    let level = rms(&pcm);
    assert!((0.02..0.05).contains(&level), "0.1 amplitude at half gain: rms {level}");

    // Back to unity: forwarded unchanged.
    m.set_gain(2, 1.0);
    run(&mut m, &mut senders, t1 + Duration::from_millis(60 * 20), 5, &mut got);
    assert_eq!(m.route(9), Some(Route::Forward(2)));
}

#[test]
fn loud_speakers_are_limited_not_clipped() {
    let mut m = mixer();
    let freqs = [200.0, 310.0, 420.0, 530.0, 640.0, 750.0];
    let mut senders: Vec<ToneSender> =
        freqs.iter().enumerate().map(|(i, &f)| ToneSender::new(i as u32 + 1, f, 0.9)).collect();
    for s in &senders {
        m.add(s.id, Role::SEND_ONLY, 2.0, false).unwrap();
    }
    m.add(50, Role::LISTENER, 1.0, false).unwrap();
    let mut got = Received::default();
    run(&mut m, &mut senders, Instant::now(), 80, &mut got);
    let pcm = got.decode(50, 20);
    let peak = pcm.iter().fold(0.0f32, |a, s| a.max(s.abs()));
    // Six speakers at 0.9 × gain 2 would sum to ~10; the limiter keeps the mix under
    // -1 dBFS (Opus may overshoot a little).
    assert!(peak < 1.1, "peak {peak}");
    assert!(rms(&pcm) > 0.2, "still loud: {}", rms(&pcm));
    assert!(m.totals().limited_samples > 0);
    // Not a hard clipper: few samples sit at the ceiling. (How many come near it
    // depends on the six tones' phases against each other, which move whenever the
    // sources' playout shifts, so the count is of samples within 0.5 % of the peak:
    // a clipper's flat tops, not a loud mix.)
    let near = pcm.iter().filter(|s| s.abs() > 0.88).count();
    let flat = pcm.iter().filter(|s| s.abs() > peak * 0.995).count();
    eprintln!("{near} of {} samples above 0.88, {flat} within 0.5 % of the peak {peak}", pcm.len());
    assert!(flat < pcm.len() / 100, "{flat} of {} samples at the ceiling", pcm.len());
}

#[test]
fn silent_sources_cost_nothing_and_switching_keeps_one_stream() {
    let mut m = mixer();
    m.add(1, Role::SPEAKER, 1.0, false).unwrap();
    m.add(2, Role::SPEAKER, 1.0, false).unwrap();
    m.add(3, Role::LISTENER, 1.0, false).unwrap();
    let mut both = vec![ToneSender::new(1, 440.0, 0.2), ToneSender::new(2, 880.0, 0.2)];
    let mut got = Received::default();
    let t0 = Instant::now();
    // Only 1 talks: 3 gets 1's packets forwarded. Then both talk: 3 gets the mix.
    run(&mut m, &mut both[..1], t0, 25, &mut got);
    assert_eq!(m.route(3), Some(Route::Forward(1)));
    run(&mut m, &mut both, t0 + Duration::from_millis(500), 25, &mut got);
    assert_eq!(m.route(3), Some(Route::Mix(MixKey::Everyone)));
    // Nobody talks: after the hangover nothing is decoded or encoded.
    let mut stats = Default::default();
    for i in 0..40u64 {
        stats = m.tick(t0 + Duration::from_millis(1000 + 20 * i), &mut |o| got.take(o));
    }
    assert_eq!(stats, viz_audio::mixer::TickStats::default());
    assert_eq!(m.route(3), Some(Route::Silent));

    let p = &got.packets[&3];
    assert!(
        p.iter().any(|x| x.3 == StreamKey::Forward(1)) && p.iter().any(|x| x.3 == StreamKey::Mix(MixKey::Everyone))
    );
    for w in p.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1), "sequence continuous across the switch");
        let step = w[1].1.wrapping_sub(w[0].1);
        assert!((960..=960 * 3).contains(&step), "timestamp step {step} across the switch");
    }
}

#[test]
fn echo_participants_hear_only_themselves_and_nobody_hears_them() {
    let mut m = mixer();
    m.add(1, Role::ECHO, 1.0, false).unwrap();
    m.add(2, Role::SPEAKER, 1.0, false).unwrap();
    let mut senders = vec![ToneSender::new(1, 600.0, 0.2)];
    let mut got = Received::default();
    run(&mut m, &mut senders, Instant::now(), 10, &mut got);
    assert_eq!(m.route(1), Some(Route::Forward(1)));
    assert_eq!(got.packets[&1].len(), 10);
    assert!(!got.packets.contains_key(&2));
    assert!(m.audible().is_empty());
}

#[test]
fn a_tap_gets_its_source_unchanged_even_when_muted_for_the_room() {
    let mut m = mixer();
    m.add(1, Role::SEND_ONLY, 0.5, false).unwrap();
    m.add(2, Role::SEND_ONLY, 1.0, false).unwrap();
    m.add(9, Role::LISTENER, 1.0, false).unwrap();
    m.add_tap(50, 1).unwrap();
    m.set_muted(1, true);
    let mut senders = [ToneSender::new(1, 500.0, 0.2), ToneSender::new(2, 1300.0, 0.2)];
    let mut sent_by_1 = Vec::new();
    let mut got = Received::default();
    let t0 = Instant::now();
    for i in 0..30u64 {
        let now = t0 + Duration::from_millis(20 * i);
        for s in senders.iter_mut() {
            let (seq, ts, p) = s.next();
            if s.id == 1 {
                sent_by_1.push(p.clone());
            }
            let frames: [&[u8]; 1] = [&p];
            m.push(now, s.id, PacketRef { stream: 0, seq, timestamp: ts, frames: &frames }, false, &mut |o| {
                got.take(o)
            });
        }
        m.tick(now + Duration::from_millis(1), &mut |o| got.take(o));
    }
    assert_eq!(m.route(50), Some(Route::Forward(1)));
    let tapped: Vec<&Vec<u8>> = got.packets[&50].iter().map(|g| &g.2).collect();
    assert_eq!(tapped.len(), sent_by_1.len());
    assert!(tapped.iter().zip(&sent_by_1).all(|(a, b)| *a == b), "the tap's packets are the source's");
    // The room does not hear the muted source, and nobody hears the tap.
    assert_eq!(m.route(9), Some(Route::Forward(2)));
    assert_eq!(m.audible(), &[2]);
    assert!(got.packets[&9].iter().all(|g| g.3 == StreamKey::Forward(2)));
}

#[test]
fn a_personal_volume_changes_only_that_listeners_mix() {
    let mut m = mixer();
    let tones = [(1, 400.0), (2, 1100.0)];
    let mut senders: Vec<ToneSender> = tones.iter().map(|&(id, f)| ToneSender::new(id, f, 0.2)).collect();
    for &(id, _) in &tones {
        m.add(id, Role::SPEAKER, 1.0, false).unwrap();
    }
    m.add(10, Role::LISTENER, 1.0, false).unwrap();
    m.add(11, Role::LISTENER, 1.0, false).unwrap();
    assert!(m.set_personal_gain(10, 1, 0.25), "listener 10 turns speaker 1 down");
    assert!(!m.set_personal_gain(10, 10, 0.5), "nobody sets a volume for themselves");
    assert!(!m.set_personal_gain(10, 99, 0.5), "nor for somebody who is not there");
    assert_eq!(m.personal_gain(10, 1), 0.25);
    let mut got = Received::default();
    let t0 = Instant::now();
    run(&mut m, &mut senders, t0, 100, &mut got);
    assert_eq!(m.route(10), Some(Route::Mix(MixKey::Own(10))));
    assert_eq!(m.route(11), Some(Route::Mix(MixKey::Everyone)), "the other listener still shares the room's mix");

    let band_rms = |pcm: &[f32], hz: f32| (energy_at(pcm, hz) * rms(pcm).powi(2)).sqrt();
    let mine = got.decode(10, 20);
    let theirs = got.decode(11, 20);
    let ratio_db = |pcm: &[f32]| 20.0 * (band_rms(pcm, 400.0) / band_rms(pcm, 1100.0)).log10();
    // A quarter of the amplitude is -12 dB; the codec keeps it within a decibel or two.
    let (mine_db, theirs_db) = (ratio_db(&mine), ratio_db(&theirs));
    assert!((theirs_db).abs() < 2.0, "the room hears both alike: {theirs_db:.1} dB");
    assert!((mine_db + 12.0).abs() < 2.5, "listener 10 hears speaker 1 12 dB down: {mine_db:.1} dB");

    // Zero: speaker 2 alone is left, at unity, so it is forwarded again.
    m.set_personal_gain(10, 1, 0.0);
    let mut got = Received::default();
    run(&mut m, &mut senders, t0 + Duration::from_secs(2), 50, &mut got);
    assert_eq!(m.route(10), Some(Route::Forward(2)));
    let pcm = got.decode(10, 10);
    assert!(energy_at(&pcm, 400.0) < 0.002, "speaker 1 is silent for listener 10: {}", energy_at(&pcm, 400.0));
    assert!(energy_at(&pcm, 1100.0) > 0.5);

    // Back to 100 %: the personal entry goes and the shared mix serves listener 10 again.
    m.set_personal_gain(10, 1, 1.0);
    run(&mut m, &mut senders, t0 + Duration::from_secs(4), 5, &mut Received::default());
    assert_eq!(m.route(10), Some(Route::Mix(MixKey::Everyone)));
    // Removing a source forgets the volumes set for it.
    m.set_personal_gain(11, 2, 0.5);
    m.remove(2);
    assert_eq!(m.personal_gain(11, 2), 1.0);
}
