#!/usr/bin/env python3
"""PESQ-WB of a recording of looped speech: every full copy of SAID.wav found in
HEARD.wav (after the first 5 s) is aligned on its own and scored; prints each score
and the median. For the minute-long browser tests, which leave their recordings in
target/test-artifacts/.

Usage: scripts/score-looped-speech.py SAID.wav HEARD.wav
Needs numpy, scipy and pesq (pip install numpy scipy pesq).
"""
import sys

import numpy as np
import scipy.io.wavfile as wavfile
import scipy.signal as sps
from pesq import pesq


def read(path):
    rate, x = wavfile.read(path)
    x = x.astype(np.float64)
    x = x.mean(axis=1) if x.ndim > 1 else x
    x /= 32768.0 if np.abs(x).max() > 1.5 else 1.0
    return x if rate == 48_000 else sps.resample_poly(x, 48_000, rate)


said, heard = read(sys.argv[1]), read(sys.argv[2])
n = len(said)
scores = []
at = 5 * 48_000
while at + 2 * n <= len(heard):
    window = heard[at : at + 2 * n]
    lag = int(np.argmax(np.abs(sps.correlate(window, said, mode="valid", method="fft"))))
    seg = window[lag : lag + n]
    scores.append(pesq(16_000, sps.resample_poly(said, 1, 3), sps.resample_poly(seg, 1, 3), "wb"))
    at += lag + n
print(" ".join(f"{s:.2f}" for s in scores))
print(f"median PESQ-WB {np.median(scores):.2f} over {len(scores)} copies")
