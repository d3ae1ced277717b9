#!/usr/bin/env python3
"""Writes tests/data/tekken/: Mistral's Tekken tokenizer (Mistral NeMo's tekken_240718.json, as
mistral-common ships it) cut to its first 4000 ranks behind its 1000 special tokens, as Mistral's
tekken.json and as the Hugging Face tokenizer.json converted from it, with the ids of its
references:
  cases.json           texts -> ids of mistral-common's Tekkenizer (tiktoken), the pieces of
                       Tekken's expression (Python's `regex`, which runs it as tiktoken's
                       fancy-regex does) and the decoded text; the converted tokenizer.json gives
                       the same ids under Hugging Face `tokenizers` (checked here) except where a
                       text holds a special token's text, which `tokenizers` matches and tiktoken
                       does not;
  chat_cases.json      mistral-common's v3 instruct ids (Mistral NeMo's format) for the
                       conversations of make_llama_spm_fixture.py's Mistral fixtures;
  chat_cases_v7.json   its v7 ids (Mistral Small 3), checked equal under v11, v13 and v15 here.
The tokenizer.json's merges are every split of a token into two tokens, at the token's rank
(transformers' TikTokenConverter), with ignore_merges (tiktoken takes a piece in the vocabulary
whole).

    python3 -m venv /tmp/fixture && /tmp/fixture/bin/pip install mistral-common tiktoken regex \\
        tokenizers sentencepiece transformers==4.40.2   # fixture tools only (mistral-common 1.13.1,
        # tiktoken 0.14, tokenizers 0.19 made it)
    /tmp/fixture/bin/python tests/data/make_tekken_fixture.py tests/data/tekken [--ranks N]

--ranks 130072 writes the whole vocabulary (Mistral NeMo's own tokenizer, 15 MB: for a check by
hand, SPIN_TEKKEN_FIXTURE=<dir> build/tests/data_test --gtest_filter='Tekken*').
"""
import base64
import json
import os
import random
import sys

import regex
from mistral_common.protocol.instruct.validator import ValidationMode
from mistral_common.tokens.tokenizers.base import SpecialTokens
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from mistral_common.tokens.tokenizers.tekken import Tekkenizer
import mistral_common
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, AddedToken

from make_hf_bpe_fixtures import POOL, byte_chars, texts
from make_llama_spm_fixture import CONVERSATIONS, mistral_ids, split_cases

NUM_SPECIAL = 1000

# Characters Tekken's expression tells apart beyond the other expressions' pool: title-case
# (Lt), modifier (Lm) and caseless (Lo) letters, combining marks (M), upper and lower case runs.
TEKKEN_POOL = POOL + ["ǅ", "ǈ", "ʰ", "ー", "ـ", "\u0301", "\u0308", "\u0900", "\u093f", "\u20dd", "A", "B", "Z", "É", "Ω",
                      "İ", "ß", "/", "//", "ǲ", "ᾈ", "々"] * 2
TEKKEN_TEXTS = ["HelloWorld", "HTTPServer", "camelCaseWord", "ǅemal ǅ", "ʰello ʰ", "e\u0301 \u0301abc \u0301",
                "日本語Text テキスト", "a/b//c", ".\n/", "x.\n\n//y", "12345 3.14", "ΑΒΓαβγ ΑβΓ", "İstanbul STRASSE ß",
                "ǄǅǆǇ", "नमस्ते दुनिया", "x\u20dd", "[INST]hello[/INST]", "<s>a</s>", "don't I'M", "'s 'S",
                "URLs like https://example.com/a/b?c=d", "  \n\n  x", "\t\tTab", "ᾈᾈ ᾀ"]


def tekken_path():
    return os.path.join(os.path.dirname(mistral_common.__file__), "data", "tekken_240718.json")


def write_tekken(out, ranks):
    with open(tekken_path()) as f:
        full = json.load(f)
    cut = dict(full)
    cut["vocab"] = full["vocab"][:ranks]
    cut["config"] = dict(full["config"], num_vocab_tokens=ranks, default_vocab_size=NUM_SPECIAL + ranks)
    path = os.path.join(out, "tekken.json")
    with open(path, "w") as f:
        json.dump(cut, f, ensure_ascii=False, separators=(",", ":"))
    return cut, path


def hf_tokenizer(tekken, specials):
    """The tokenizer.json of `tekken` (transformers' TikTokenConverter's conversion)."""
    chars = {b: c for c, b in byte_chars().items()}
    as_text = lambda bs: "".join(chars[b] for b in bs)  # noqa: E731
    ranks = {base64.b64decode(v["token_bytes"]): v["rank"] for v in tekken["vocab"]}
    vocab = {as_text(t): r + NUM_SPECIAL for t, r in ranks.items()}
    vocab.update({s: i for i, s in enumerate(specials)})  # as Mistral's converted files hold them
    merges = []
    for token, rank in ranks.items():
        local = [(token[:k], token[k:], rank) for k in range(1, len(token)) if token[:k] in ranks and token[k:] in ranks]
        merges += sorted(local, key=lambda m: (ranks[m[0]], ranks[m[1]]))
    merges.sort(key=lambda m: m[2])
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(as_text(l), as_text(r)) for l, r, _ in merges],
                               ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(tekken["config"]["pattern"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


# v3 puts the system message before the last user message, v7 first in its own tokens.
SYSTEM_LATE = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"},
               {"role": "assistant", "content": "one  "}, {"role": "user", "content": "second"},
               {"role": "assistant", "content": "two"}]


def chat_cases(tekken, specials, out, version, name):
    """mistral-common's ids for CONVERSATIONS under instruct `version` (the cut file with its
    config.version changed; versions after v7 need the special tokens listed in the file)."""
    data = dict(tekken, config=dict(tekken["config"], version=version))
    if version not in ("v3", "v7"):  # the files list them, with the tokens later versions add (ids made up here)
        named = specials[:20] + [s.value for s in SpecialTokens if s.value not in specials[:20]]
        named += specials[len(named):]
        data["special_tokens"] = [{"rank": i, "token_str": s, "is_control": True} for i, s in enumerate(named)]
    if version == "v15":
        data["model_settings_builder"] = {}
    path = os.path.join(out, "tekken_%s.json" % version)
    with open(path, "w") as f:
        json.dump(data, f)
    try:
        serving = MistralTokenizer.from_file(path)
        finetuning = MistralTokenizer.from_file(path, mode=ValidationMode.finetuning)
    finally:
        os.remove(path)
    cases = split_cases(lambda c: mistral_ids(serving, c), lambda c: mistral_ids(finetuning, c),
                        CONVERSATIONS + [SYSTEM_LATE])
    if name:
        with open(os.path.join(out, name), "w") as f:
            json.dump(cases, f, ensure_ascii=False, indent=0)
    return cases


def main():
    out = sys.argv[1]
    ranks = int(sys.argv[sys.argv.index("--ranks") + 1]) if "--ranks" in sys.argv else 4000
    os.makedirs(out, exist_ok=True)
    tekken, path = write_tekken(out, ranks)
    ref = Tekkenizer.from_file(path)
    specials = [ref.id_to_piece(i) for i in range(NUM_SPECIAL)]
    hf = hf_tokenizer(tekken, specials)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:  # compact: tokenizers' own save indents
        json.dump(json.loads(hf.to_str()), f, ensure_ascii=False, separators=(",", ":"))
    pattern = regex.compile(tekken["config"]["pattern"])
    cases, same_as_hf = [], 0
    rng = random.Random(11)
    extra = ["".join(rng.choice(TEKKEN_POOL) for _ in range(rng.randint(1, 40))) for _ in range(200)]
    for text in texts(random.Random(7)) + TEKKEN_TEXTS + extra:
        ids = ref.encode(text, bos=False, eos=False)
        assert ref.decode(ids) == text, text
        hf_ids = hf.encode(text, add_special_tokens=False).ids
        if not any(s in text for s in specials):
            assert hf_ids == ids, (text, hf_ids, ids)
            same_as_hf += 1
        pieces = pattern.findall(text)
        assert [p for p, _ in hf.pre_tokenizer.pre_tokenize_str(text)] == [as_byte_chars(p) for p in pieces], text
        cases.append({"text": text, "ids": ids, "pieces": pieces, "decoded": ref.decode(ids)})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    v3 = chat_cases(tekken, specials, out, "v3", "chat_cases.json")
    v7 = chat_cases(tekken, specials, out, "v7", "chat_cases_v7.json")
    for later in ("v11", "v13", "v15"):
        try:
            assert chat_cases(tekken, specials, out, later, None) == v7, later
            print("%s: the v7 ids" % later)
        except Exception as e:  # noqa: BLE001 (a version this mistral-common cannot build from the cut file)
            print("%s: not checked (%s)" % (later, e))
    assert v3 != v7
    print("%s: %d ranks, %d texts (%d also through tokenizers), %d + %d chat cases" %
          (out, ranks, len(cases), same_as_hf, len(v3), len(v7)))


def as_byte_chars(piece):
    chars = {b: c for c, b in byte_chars().items()}
    return "".join(chars[b] for b in piece.encode("utf-8"))


if __name__ == "__main__":
    main()
