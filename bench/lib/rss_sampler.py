"""Samples a process's resident memory until it exits, and prints what it saw as JSON.

    python3 rss_sampler.py PID [--interval 0.1] [--progress FILE --step N]

Every `interval` seconds it reads VmRSS, VmHWM (the kernel's own peak) and RssAnon from
/proc/PID/status. RssAnon is the process's own memory (heap, stacks); VmRSS also counts the pages
of files it maps that happen to be resident (a capture file read through mmap), which the kernel
takes back when it needs them.
With --progress, FILE holds a number that another program raises as it goes (exchanges written,
say); each time it passes a multiple of N, the RSS at that moment is noted as a checkpoint.
Output (stdout, once the process is gone): {"peak_kib", "end_kib", "peak_anon_kib",
"end_anon_kib", "samples", "checkpoints": [[count, rss_kib, peak_so_far_kib, anon_kib], ...]}.
"end_*" are the last sample before the process exited; "peak_anon_kib" is the highest sampled.
"""
import argparse
import json
import time


def read_status(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS"), values.get("VmHWM"), values.get("RssAnon", 0)


def read_progress(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("pid", type=int)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--progress")
    parser.add_argument("--step", type=int, default=1_000_000)
    args = parser.parse_args()
    peak = end = peak_anon = end_anon = samples = 0
    checkpoints = []
    next_mark = args.step
    while True:
        try:
            rss, hwm, anon = read_status(args.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if rss is None:  # a zombie: its memory is gone
            break
        samples += 1
        end, end_anon = rss, anon
        peak = max(peak, rss, hwm or 0)
        peak_anon = max(peak_anon, anon)
        if args.progress:
            count = read_progress(args.progress)
            while count >= next_mark:
                checkpoints.append([next_mark, rss, peak, anon])
                next_mark += args.step
        time.sleep(args.interval)
    print(json.dumps({"peak_kib": peak, "end_kib": end, "peak_anon_kib": peak_anon, "end_anon_kib": end_anon,
                      "samples": samples, "checkpoints": checkpoints}))


if __name__ == "__main__":
    main()
