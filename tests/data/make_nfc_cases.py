#!/usr/bin/env python3
"""Writes tests/data/unicode/nfc_cases.json for the NFC unit test, with Python's
unicodedata.normalize("NFC") as the oracle (the same Unicode version as gen_unicode_classes.py's
tables): every code point with a canonical decomposition, alone and in its NFD form, in runs; each
primary composite's pair; Hangul jamo sequences (L V, L V T, LV + T, T alone); and random strings of
starters and combining marks of many classes (reordering, blocking, non-starter decompositions).

    python3 tests/data/make_nfc_cases.py tests/data/unicode/nfc_cases.json
"""
import json
import random
import sys
import unicodedata


def main():
    rng = random.Random(11)
    decomposable = [chr(c) for c in range(0x110000)
                    if unicodedata.decomposition(chr(c)) and not unicodedata.decomposition(chr(c)).startswith("<")]
    marks = [chr(c) for c in range(0x300, 0x20000) if unicodedata.combining(chr(c))]
    starters = list("aeiouAEIOUnNcCsSzZ><=") + ["\u03b1", "\u03c9", "\u0415", "\u0438", "\u0915", "\u0B47", "\u0DD9",
                                               "\u1100", "\u1161", "\u11A8", "\uAC00", "\uAC01", "\u3046", "\u304B"]
    inputs = []
    for k in range(0, len(decomposable), 40):
        run = decomposable[k:k + 40]
        inputs.append("".join(run))
        inputs.append(unicodedata.normalize("NFD", "".join(run)))
        inputs.append(" ".join(unicodedata.normalize("NFD", c) for c in run))
    for _ in range(300):
        s = "".join(rng.choice(starters) if rng.random() < 0.4 else rng.choice(marks) for _ in range(rng.randint(1, 12)))
        inputs.append(s)
    for _ in range(100):
        inputs.append("".join(chr(rng.choice([0x1100 + rng.randrange(19), 0x1161 + rng.randrange(21),
                                               0x11A7 + rng.randrange(28), 0xAC00 + 28 * rng.randrange(399)]))
                              for _ in range(rng.randint(1, 8))))
    inputs += ["", "plain ASCII", "caf\u00e9 cafe\u0301", "\u212b \u2126 \u0344 \u0F73", "a\u0323\u0307 a\u0307\u0323"]
    cases = [[s, unicodedata.normalize("NFC", s)] for s in inputs]
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump({"unicode": unicodedata.unidata_version, "cases": cases}, f, ensure_ascii=False, indent=0)
    print("%d cases, %d changed by NFC" % (len(cases), sum(a != b for a, b in cases)))


if __name__ == "__main__":
    main()
