//! `viz bench codec`: what each of libopus's loss tools costs on this machine, per
//! 20 ms frame of speech-like audio, on one core: the encoder with and without deep
//! redundancy (DRED) and the bitrate each produces, the decoder at the complexities
//! that switch on deep PLC (5), LACE (6) and NoLACE (7+), and the price of rebuilding
//! one lost frame by FEC, by DRED and by concealment.

use std::time::Instant;

use anyhow::Result;
use viz_audio::codec::{Decoder, Encoded, Encoder, MAX_PACKET, MAX_PACKET_SAMPLES};
use viz_audio::{AudioParams, signals};

const SECONDS: usize = 20;

struct Stream {
    packets: Vec<Vec<u8>>,
    encode_us: f64,
}

fn encode(params: AudioParams, loss_hint: u8, pcm: &[f32]) -> Result<Stream> {
    let mut enc = Encoder::new(AudioParams { dtx: false, ..params })?;
    enc.set_loss_hint(loss_hint)?;
    let mut buf = vec![0u8; MAX_PACKET];
    let start = Instant::now();
    let mut packets = Vec::new();
    for frame in pcm.chunks_exact(params.frame.samples()) {
        if let Encoded::Packet(len) = enc.encode(frame, &mut buf)? {
            packets.push(buf[..len].to_vec());
        }
    }
    let encode_us = start.elapsed().as_secs_f64() * 1e6 / packets.len().max(1) as f64;
    Ok(Stream { packets, encode_us })
}

fn kbps(stream: &Stream) -> f64 {
    let bytes: usize = stream.packets.iter().map(Vec::len).sum();
    bytes as f64 * 8.0 / 1000.0 / SECONDS as f64
}

/// Microseconds per frame to decode every packet at `complexity`.
fn decode_us(stream: &Stream, complexity: u8) -> Result<f64> {
    let mut dec = Decoder::with_complexity(complexity)?;
    let mut out = vec![0f32; MAX_PACKET_SAMPLES];
    let start = Instant::now();
    for p in &stream.packets {
        dec.decode(p, &mut out)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / stream.packets.len() as f64)
}

#[derive(Clone, Copy)]
enum Rebuild {
    Conceal,
    Fec,
    Dred,
}

/// Microseconds per *lost* frame when every 5th frame is lost and rebuilt by `how`.
fn rebuild_us(stream: &Stream, complexity: u8, how: Rebuild) -> Result<(f64, usize)> {
    let mut dec = Decoder::with_complexity(complexity)?;
    let frame = 960;
    let mut out = vec![0f32; MAX_PACKET_SAMPLES];
    let (mut spent, mut lost, mut rebuilt) = (0.0, 0, 0);
    for (i, p) in stream.packets.iter().enumerate() {
        let next = stream.packets.get(i + 1);
        if i % 5 == 2 && next.is_some() {
            let next = next.map(Vec::as_slice).unwrap_or_default();
            let start = Instant::now();
            let ok = match how {
                Rebuild::Fec => {
                    viz_audio::codec::packet_has_fec(next) && dec.decode_fec(next, &mut out[..frame]).is_ok()
                }
                Rebuild::Dred => {
                    dec.parse_dred(next, 2 * 1920) >= frame && dec.decode_dred(frame, &mut out[..frame]).is_ok()
                }
                Rebuild::Conceal => dec.conceal(&mut out[..frame]).is_ok(),
            };
            if !ok {
                dec.conceal(&mut out[..frame])?;
            }
            spent += start.elapsed().as_secs_f64();
            lost += 1;
            rebuilt += usize::from(ok);
        } else {
            dec.decode(p, &mut out)?;
        }
    }
    Ok((spent * 1e6 / lost.max(1) as f64, rebuilt * 100 / lost.max(1)))
}

pub fn run(complexity: u8) -> Result<()> {
    let pcm = signals::speech_like(11, SECONDS * 48_000);
    let params = AudioParams { complexity, ..AudioParams::default() };
    println!(
        "Opus at 32 kb/s, 20 ms frames, encoder complexity {complexity}, {SECONDS} s of speech-like audio, one core"
    );
    println!("\nencoder                          | us/frame | kb/s (Opus payload)");
    let clean = encode(params, 0, &pcm)?;
    let cases = [
        ("FEC + DRED, no loss reported", clean),
        ("FEC + DRED, 10 % loss reported", encode(params, 10, &pcm)?),
        ("FEC + DRED, 20 % loss reported", encode(params, 20, &pcm)?),
        ("FEC only, 10 % loss reported", encode(AudioParams { dred: false, ..params }, 10, &pcm)?),
        ("DRED only, 10 % loss reported", encode(AudioParams { fec: false, ..params }, 10, &pcm)?),
    ];
    for (name, s) in &cases {
        println!("{name:32} | {:8.1} | {:6.1}", s.encode_us, kbps(s));
    }
    println!("\ndecoder complexity               | us/frame");
    for (c, what) in [(0, "classic"), (5, "+ deep PLC"), (6, "+ LACE"), (7, "+ NoLACE"), (9, "(Viz's default)")] {
        println!("{:32} | {:8.1}", format!("{c} {what}"), decode_us(&cases[0].1, c)?);
    }
    println!("\none lost frame in five, rebuilt by | us/lost frame | rebuilt");
    for (name, stream, c, how) in [
        ("concealment, complexity 0", &cases[0].1, 0, Rebuild::Conceal),
        ("deep PLC, complexity 5", &cases[0].1, 5, Rebuild::Conceal),
        ("FEC (10 % reported)", &cases[1].1, 5, Rebuild::Fec),
        ("DRED (DRED only, 10 %)", &cases[4].1, 5, Rebuild::Dred),
        ("DRED (FEC + DRED, 20 %)", &cases[2].1, 5, Rebuild::Dred),
    ] {
        let (us, pct) = rebuild_us(stream, c, how)?;
        println!("{name:32} | {us:13.1} | {pct:6} %");
    }
    Ok(())
}
