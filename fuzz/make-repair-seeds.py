#!/usr/bin/env python3
"""Regenerate the seed-* files of fuzz/corpus/fuzz-repair/.

fuzz-repair reads its input as a stream of choices (see fuzz-repair.c and
tests/harness/repair-prop.h); any bytes are valid.  The seeds are fixed
pseudo-random byte strings of a few lengths, with the first byte (the
cluster size choice) and the damage choices spread over their ranges.
Needs nothing but python3: python3 fuzz/make-repair-seeds.py
"""
import os
import random

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                   "fuzz-repair")
os.makedirs(out, exist_ok=True)
rng = random.Random(20261129)
for i in range(24):
    length = (16, 64, 256, 1024)[i % 4]
    data = bytearray(rng.randrange(256) for _ in range(length))
    data[0] = i % 4  # cluster_bits 9 + i % 4
    with open(os.path.join(out, "seed-%02d" % i), "wb") as f:
        f.write(data)
