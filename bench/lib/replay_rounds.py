#!/usr/bin/env python3
"""The rounds of a replay benchmark, doppel beside a load generator on the same target.
  replay_rounds.py N ROUNDS_FILE REFERENCE REFERENCE_NOTE DOPPEL_NOTE TARGET_PERCENT
ROUNDS_FILE has one line per round: the reference's req/s, then doppel's start and end (s),
doppel having replayed N requests. Prints each round, the medians and their ratio.
"""
import statistics
import sys

n, rounds_file, reference, reference_note, doppel_note, target = sys.argv[1:7]
n = int(n)
refs, dops = [], []
for i, line in enumerate(open(rounds_file), 1):
    ref, start, end = map(float, line.split())
    rps = n / (end - start)
    refs.append(ref)
    dops.append(rps)
    print(f"round {i}: {reference} {ref:9.0f} req/s   doppel {rps:9.0f} req/s ({end - start:.2f}s)   "
          f"{rps / ref * 100:4.0f}%")
ref, rps = statistics.median(refs), statistics.median(dops)
width = max(len(reference), len("doppel"))
print(f"{reference:<{width}} : {ref:10.0f} req/s median ({reference_note})")
print(f"{'doppel':<{width}} : {rps:10.0f} req/s median ({doppel_note})")
print(f"{'ratio':<{width}} : {rps / ref * 100:.0f}% of {reference} (target >= {target}%)")
