//! `viz bench mixer`: the room mixer's tick time beside the codec work it cannot avoid.
//!
//! For each case, S speakers send continuous music-like audio (pre-encoded, so only
//! the mixer's own work is timed) to a room with L listeners. One measured tick is
//! what the mixer thread does per frame: take each speaker's packet (jitter buffer),
//! decode the active sources, build the distinct mixes, encode each once and hand
//! every listener its packet header. The floor is the same number of Opus decodes and
//! encodes done alone; `overhead = total / floor` is what mixing, routing and the
//! per-listener bookkeeping add. Time is simulated (20 ms per tick, no sleeping), so
//! the figures are CPU time on one core.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use viz_audio::codec::{Decoder, Encoded, Encoder, MAX_PACKET, MAX_PACKET_SAMPLES};
use viz_audio::mixer::{Delivery, Mixer, MixerConfig, Role};
use viz_audio::{AudioParams, PacketRef, signals};
use viz_proto::OwnedMedia;

use crate::cli::{BenchArgs, BenchWhat};

const SPEAKERS: [usize; 3] = [1, 10, 50];
const LISTENERS: [usize; 3] = [10, 100, 1000];
const WARMUP: usize = 50;

#[derive(Debug, Serialize)]
struct Case {
    speakers: usize,
    listeners: usize,
    ticks: usize,
    mean_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    encodes_per_tick: f64,
    floor_mean_ms: f64,
    floor_p99_ms: f64,
    overhead: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Pre-encodes `n` frames of speaker `i`'s signal.
fn speaker_packets(i: usize, n: usize, params: AudioParams) -> Result<Vec<Vec<u8>>> {
    let music = signals::music_like(8 * 48_000);
    let mut enc = Encoder::new(AudioParams { dtx: false, ..params })?;
    let frame = params.frame.samples();
    let offset = i * 7919;
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; MAX_PACKET];
    for k in 0..n {
        let pcm: Vec<f32> = (0..frame).map(|j| music[(offset + k * frame + j) % music.len()]).collect();
        if let Encoded::Packet(len) = enc.encode(&pcm, &mut buf)? {
            out.push(buf[..len].to_vec());
        }
    }
    Ok(out)
}

fn run_case(
    speakers: usize,
    listeners: usize,
    ticks: usize,
    packets: &[Vec<Vec<u8>>],
    params: AudioParams,
) -> Result<Case> {
    let frame_samples = params.frame.samples() as u32;
    let mut mixer = Mixer::new(MixerConfig::new(params))?;
    for s in 0..speakers {
        mixer.add(s as u32 + 1, Role::SPEAKER, 1.0, false)?;
    }
    for l in 0..listeners {
        mixer.add(10_000 + l as u32, Role::LISTENER, 1.0, false)?;
    }
    let t0 = Instant::now();
    let mut times = Vec::with_capacity(ticks);
    let mut encodes = 0u64;
    let mut deliveries = 0usize;
    // What the mixer thread hands the network task: frames once, headers per listener.
    let mut emit = |o: viz_audio::mixer::Outgoing<'_>| {
        let mut frames = OwnedMedia::new(0, 0, 0, false);
        for f in o.frames {
            frames.push_frame(f);
        }
        let headers: Vec<Delivery> = o.deliveries.to_vec();
        deliveries += headers.len();
        std::hint::black_box((frames, headers));
    };
    for k in 0..WARMUP + ticks {
        let now = t0 + Duration::from_millis(20 * k as u64);
        let began = Instant::now();
        for (s, stream) in packets.iter().take(speakers).enumerate() {
            let p = &stream[k % stream.len()];
            let frames: [&[u8]; 1] = [p];
            let packet = PacketRef { stream: 0, seq: k as u16, timestamp: k as u32 * frame_samples, frames: &frames };
            mixer.push(now, s as u32 + 1, packet, false, &mut emit);
        }
        let stats = mixer.tick(now + Duration::from_millis(1), &mut emit);
        let took = began.elapsed().as_secs_f64() * 1000.0;
        if k >= WARMUP {
            times.push(took);
            encodes += u64::from(stats.encodes);
        }
    }
    std::hint::black_box(deliveries);
    let encodes_per_tick = encodes as f64 / ticks as f64;
    let (floor, floor_p99) = codec_floor(speakers, encodes_per_tick.round() as usize, ticks, packets, params)?;
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    Ok(Case {
        speakers,
        listeners,
        ticks,
        mean_ms: mean,
        p99_ms: percentile(&times, 0.99),
        max_ms: *times.last().unwrap_or(&0.0),
        encodes_per_tick,
        floor_mean_ms: floor,
        floor_p99_ms: floor_p99,
        overhead: if floor > 0.0 { mean / floor } else { f64::NAN },
    })
}

/// Mean and p99 time per tick of `decodes` Opus decodes and `encodes` encodes, nothing else.
fn codec_floor(
    decodes: usize,
    encodes: usize,
    ticks: usize,
    packets: &[Vec<Vec<u8>>],
    params: AudioParams,
) -> Result<(f64, f64)> {
    let mut decoders: Vec<Decoder> = (0..decodes).map(|_| Decoder::new()).collect::<Result<_, _>>()?;
    let mut encoders: Vec<Encoder> = (0..encodes).map(|_| Encoder::new(params)).collect::<Result<_, _>>()?;
    let mut pcm = vec![0.0f32; MAX_PACKET_SAMPLES];
    let mut out = vec![0u8; MAX_PACKET];
    let frame = params.frame.samples();
    let mut times = Vec::with_capacity(ticks);
    for k in 0..WARMUP + ticks {
        let began = Instant::now();
        for (s, d) in decoders.iter_mut().enumerate() {
            let stream = &packets[s];
            d.decode(&stream[k % stream.len()], &mut pcm)?;
        }
        for e in encoders.iter_mut() {
            std::hint::black_box(e.encode(&pcm[..frame], &mut out)?);
        }
        if k >= WARMUP {
            times.push(began.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    Ok((mean, percentile(&times, 0.99)))
}

pub fn run(args: BenchArgs) -> Result<()> {
    let (ticks, json, complexity) = match args.what {
        BenchWhat::Mixer { ticks, json, complexity } => (ticks, json, complexity),
        BenchWhat::Codec { complexity } => return crate::bench_codec::run(complexity),
        BenchWhat::Seal { datagrams } => return crate::bench_seal::run(datagrams),
    };
    let ticks = ticks.max(10);
    let params = AudioParams { complexity, ..AudioParams::default() };
    let max_speakers = *SPEAKERS.iter().max().unwrap_or(&1);
    let packets: Vec<Vec<Vec<u8>>> =
        (0..max_speakers).map(|i| speaker_packets(i, 400, params)).collect::<Result<_>>()?;
    let mut cases = Vec::new();
    if !json {
        println!(
            "Mixer tick at 20 ms frames, Opus complexity {complexity}, one core ({ticks} ticks per case; floor = the same Opus decodes and encodes alone)"
        );
        println!(
            "{:>8} {:>9} | {:>8} {:>8} {:>8} | {:>7} | {:>10} {:>9} | {:>8}",
            "speakers", "listeners", "mean ms", "p99 ms", "max ms", "encodes", "floor mean", "floor p99", "overhead"
        );
    }
    for &s in &SPEAKERS {
        for &l in &LISTENERS {
            let c = run_case(s, l, ticks, &packets, params)?;
            if !json {
                println!(
                    "{:>8} {:>9} | {:>8.3} {:>8.3} {:>8.3} | {:>7.1} | {:>10.3} {:>9.3} | {:>7.2}x",
                    c.speakers,
                    c.listeners,
                    c.mean_ms,
                    c.p99_ms,
                    c.max_ms,
                    c.encodes_per_tick,
                    c.floor_mean_ms,
                    c.floor_p99_ms,
                    c.overhead
                );
            }
            cases.push(c);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&cases)?);
    }
    Ok(())
}
