#!/usr/bin/env python3
"""mapcmp.py QCOWKIT_MAP_JSON NBDINFO_MAP: do `qcowkit map --output=json`
and `nbdinfo --map` (base:allocation) describe the same extents?

qcowkit's data/zero become NBD flags (hole = not data, zero = zero);
adjacent extents with the same flags are merged on both sides."""
import json
import sys


def merge(extents):
    out = []
    for start, length, flags in extents:
        if out and out[-1][2] == flags and out[-1][0] + out[-1][1] == start:
            out[-1][1] += length
        else:
            out.append([start, length, flags])
    return out


with open(sys.argv[1]) as f:
    qmap = merge((e["start"], e["length"],
                  (0 if e["data"] else 1) | (2 if e["zero"] else 0))
                 for e in json.load(f))
with open(sys.argv[2]) as f:
    nmap = merge((int(w[0]), int(w[1]), int(w[2]))
                 for w in (line.split() for line in f) if w)
if qmap != nmap:
    print("qcowkit map: %s\nnbdinfo --map: %s" % (qmap, nmap), file=sys.stderr)
    sys.exit(1)
