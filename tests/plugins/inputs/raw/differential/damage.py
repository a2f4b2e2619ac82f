#!/usr/bin/env python3
"""Damages a pcap (classic libpcap format, as tcpdump -w writes it) with a seeded RNG.

usage: damage.py IN OUT KIND SEED
  loss:P        delete each frame with probability P percent (e.g. loss:1 = 1%)
  dup:P         duplicate P percent of the frames (the copy follows 1-3 frames later,
                as a retransmission would)
  reorder:P     swap P percent of the frames with a neighbour up to 3 frames away
  midstream:F   cut the first F percent of the frames (keep-alive connections already running)
  truncate:F    cut the last F percent of the frames (the capture stops mid-exchange)
  mix:P         loss:P, then reorder:P, then dup:P
Prints one line: what was done, with the seed and frame counts.
"""
import random
import struct
import sys


def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        sys.exit("not a classic pcap file: %s" % path)
    header, frames, off = data[:24], [], 24
    rec = struct.Struct(endian + "IIII")
    while off + 16 <= len(data):
        incl = rec.unpack_from(data, off)[2]
        end = off + 16 + incl
        if end > len(data):
            break
        frames.append(data[off:end])
        off = end
    return header, frames


def damage(frames, kind, arg, rng):
    n = len(frames)
    if kind == "loss":
        return [f for f in frames if rng.random() * 100 >= arg]
    if kind == "dup":
        out, pending = [], []
        for f in frames:
            out.append(f)
            pending = [(k - 1, g) for k, g in pending]
            for k, g in [p for p in pending if p[0] <= 0]:
                out.append(g)
            pending = [p for p in pending if p[0] > 0]
            if rng.random() * 100 < arg:
                pending.append((rng.randint(0, 2), f))
        out.extend(g for _, g in pending)
        return out
    if kind == "reorder":
        out = list(frames)
        for i in range(n):
            if rng.random() * 100 < arg:
                j = min(n - 1, i + rng.randint(1, 3))
                out[i], out[j] = out[j], out[i]
        return out
    if kind == "midstream":
        return frames[int(n * arg / 100):]
    if kind == "truncate":
        return frames[:n - int(n * arg / 100)]
    if kind == "mix":
        for k in ("loss", "reorder", "dup"):
            frames = damage(frames, k, arg, rng)
        return frames
    sys.exit("unknown damage %s" % kind)


def main():
    src, dst, spec, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    kind, _, arg = spec.partition(":")
    header, frames = read_pcap(src)
    out = damage(frames, kind, float(arg or 0), random.Random(seed))
    with open(dst, "wb") as f:
        f.write(header)
        f.writelines(out)
    print("damage %s seed=%d frames %d -> %d" % (spec, seed, len(frames), len(out)))


if __name__ == "__main__":
    main()
