"""The JSON response pairs the comparator benchmarks judge: robot-API style bodies of 2-20 KB, a
third of them with a few changed, missing or reordered values, meta.trace_id random in every
body (the benchmarks ignore it). Seeded: the same pairs on every run.
  python3 bench/lib/json_pairs.py OUT_FILE PAIRS
OUT_FILE: per pair "LEN_A LEN_B\\n" followed by the two bodies. Prints their sizes on stderr.
Other benchmarks import pairs() to wrap the same bodies in their own format.
"""
import json
import random
import sys

WORDS = "robot hint query intention weather music alarm timer news map call light door".split()


def pairs(n):
    """n (original, replay) pairs of JSON bodies, as bytes."""
    rng = random.Random(16888)

    def item(i):
        return {"id": i, "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))),
                "score": round(rng.random(), 6), "tags": rng.sample(WORDS, rng.randint(0, 4)),
                "source": {"name": rng.choice(WORDS), "rank": rng.randint(1, 100), "cached": rng.random() < .5}}

    def response():
        return {"code": 0, "msg": "ok",
                "meta": {"trace_id": "%032x" % rng.getrandbits(128), "elapsed_ms": rng.randint(1, 90)},
                "results": {"robot_id": str(rng.randint(600, 700)),
                            "hint_list": [item(i) for i in range(rng.randint(8, 80))],
                            "intention_list": [{"name": rng.choice(WORDS), "confidence": round(rng.random(), 4)}
                                               for _ in range(rng.randint(1, 6))]}}

    def mutate(doc):
        doc = json.loads(json.dumps(doc))
        hints = doc["results"]["hint_list"]
        for _ in range(rng.randint(1, 3)):
            k = rng.randint(0, 3)
            h = rng.choice(hints)
            if k == 0:
                h["score"] = round(h["score"] + 0.01, 6)
            elif k == 1:
                h.pop("tags", None)
            elif k == 2:
                h["text"] += " changed"
            else:
                hints.reverse()
        return doc

    for _ in range(n):
        a = response()
        while len(json.dumps(a)) > 20000:
            a["results"]["hint_list"].pop()
        b = mutate(a) if rng.random() < 1 / 3 else json.loads(json.dumps(a))
        b["meta"]["trace_id"] = "%032x" % rng.getrandbits(128)  # differs everywhere, ignored by both sides
        yield json.dumps(a).encode(), json.dumps(b).encode()


if __name__ == "__main__":
    path, n = sys.argv[1], int(sys.argv[2])
    sizes = []
    with open(path, "wb") as out:
        for a, b in pairs(n):
            sizes.append(len(a))
            out.write(b"%d %d\n" % (len(a), len(b)) + a + b)
    sizes.sort()
    print("pairs: %d, original body size min/median/max: %d/%d/%d bytes" % (n, sizes[0], sizes[n // 2], sizes[-1]),
          file=sys.stderr)
