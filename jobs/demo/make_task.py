#!/usr/bin/env python3
"""The demo's synthetic task: short problems with exact answers, as prompt/response text.

  add      "add 47+385="        -> "432"
  reverse  "reverse kqzt="      -> "tzqk"
  sort     "sort 5183="         -> "1358"

Writes OUT_DIR/{train,validation,test}.jsonl ({"prompt": str, "response": str} per line),
disjoint splits from one seeded generator. Standard library only.

    python3 jobs/demo/make_task.py OUT_DIR [--train 4000 --validation 200 --test 500 --seed 7]
"""
import argparse
import json
import os
import random
import string


def problem(rng):
    kind = rng.choice(["add", "reverse", "sort"])
    if kind == "add":
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        return "add %d+%d=" % (a, b), str(a + b)
    if kind == "reverse":
        s = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 6)))
        return "reverse %s=" % s, s[::-1]
    s = "".join(rng.choice(string.digits) for _ in range(rng.randint(3, 6)))
    return "sort %s=" % s, "".join(sorted(s))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--validation", type=int, default=200)
    p.add_argument("--test", type=int, default=500)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    rng = random.Random(a.seed)
    seen, rows = set(), []
    while len(rows) < a.train + a.validation + a.test:
        prompt, response = problem(rng)
        if prompt in seen:
            continue
        seen.add(prompt)
        rows.append({"prompt": prompt, "response": response})
    os.makedirs(a.out_dir, exist_ok=True)
    splits = [("train", rows[:a.train]), ("validation", rows[a.train:a.train + a.validation]),
              ("test", rows[a.train + a.validation:])]
    for name, part in splits:
        with open(os.path.join(a.out_dir, name + ".jsonl"), "w") as f:
            for r in part:
                f.write(json.dumps(r) + "\n")
    print("wrote %s: %s" % (a.out_dir, ", ".join("%d %s" % (len(p), n) for n, p in splits)))


if __name__ == "__main__":
    main()
