#!/usr/bin/env python3
"""Writes tests/data/kimi/: a tokenizer in Moonshot AI's tiktoken layout (Moonlight-16B-A3B-Instruct's and
Kimi K2's: tiktoken.model beside a tokenizer_config.json naming the special tokens after the ranks), its
ranks learned here by byte-level BPE over this script's texts cut by Kimi's expression, and the ids of its
references:
  cases.json       texts -> the ids tiktoken gives under Kimi's pat_str with every special token allowed,
                   each text first cut as tokenization_moonshot.py / tokenization_kimi.py cut it (chunks of
                   400,000 code points, runs of whitespace or non-whitespace of at most 25,000), the pieces of
                   the expression (Python's `regex` in its V1 mode, which reads the class intersections
                   `&&` as tiktoken's fancy-regex does) and the decoded text (without the special tokens);
  chat_cases.json  Moonlight-16B-A3B-Instruct's chat template (below) rendered by Jinja as transformers
                   renders it, encoded so: the prompt (with the generation prompt) and the response's ids;
  chat_cases_k2.json  the same under a template written after Kimi K2's (its tool branches left out): its
                   own default system message, the role from message.name or message.role.
The real vocabularies (163,584 ranks) are not needed: the rules are the same at any size.

    python3 -m venv --system-site-packages /tmp/fixture && /tmp/fixture/bin/pip install tiktoken regex
        # fixture tools only (tiktoken 0.14.0, regex 2026.5.9 made it)
    /tmp/fixture/bin/python tests/data/make_kimi_fixture.py tests/data/kimi
"""
import base64
import collections
import json
import os
import random
import sys

import jinja2
import regex
import tiktoken

from make_hf_bpe_fixtures import CONVERSATIONS, O200K_POOL, texts

# tokenization_kimi.py's pat_str (tokenization_moonshot.py's is the same).
KIMI_PAT = "|".join([
    r"""[\p{Han}]+""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+"""
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*"""
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
RESERVED = 256
# Moonlight's named special tokens, at their offsets after the ranks (163584 + k).
NAMED = {0: "[BOS]", 1: "[EOS]", 2: "<|im_end|>", 3: "<|im_user|>", 4: "<|im_assistant|>", 6: "<|start_header_id|>",
         7: "<|end_header_id|>", 9: "[EOT]", 10: "<|im_system|>", 17: "<|im_middle|>"}
MERGES = 1200
# A token only the whole-piece rule reaches (no split of it into two tokens is two tokens).
WHOLE_ONLY = b"zqxjv"

# Moonlight-16B-A3B-Instruct's chat template (tokenizer_config.json).
MOONLIGHT_CHAT = (
    "{%- for message in messages -%}{%- if loop.first and messages[0]['role'] != 'system' -%}"
    "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|>{%- endif -%}"
    "{%- if message['role'] == 'system' -%}<|im_system|>{%- endif -%}"
    "{%- if message['role'] == 'user' -%}<|im_user|>{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}<|im_assistant|>{%- endif -%}"
    "{{ message['role'] }}<|im_middle|>{{message['content']}}<|im_end|>{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_assistant|>assistant<|im_middle|>{%- endif -%}")
# After Kimi K2-Instruct's (its tool declarations and tool calls left out).
K2_CHAT = (
    "{%- if tools -%}<|im_system|>tool_declare<|im_middle|>{{ tools | tojson }}<|im_end|>{%- endif -%}"
    "{%- for message in messages -%}{%- if loop.first and messages[0]['role'] != 'system' -%}"
    "<|im_system|>system<|im_middle|>You are Kimi, an AI assistant created by Moonshot AI.<|im_end|>{%- endif -%}"
    "{%- set role_name = message.get('name') or message['role'] -%}"
    "{%- if message['role'] == 'user' -%}<|im_user|>{{role_name}}<|im_middle|>"
    "{%- elif message['role'] == 'assistant' -%}<|im_assistant|>{{role_name}}<|im_middle|>"
    "{%- else -%}<|im_system|>{{role_name}}<|im_middle|>{%- endif -%}"
    "{{ message['content'] }}<|im_end|>{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_assistant|>assistant<|im_middle|>{%- endif -%}")

# Kimi's own cases: Han runs next to other scripts (kana and hangul are letters, not Han), Han that is not
# a letter (radicals, 〇), cased words with contractions, "/" after punctuation (o200k takes it, Kimi not),
# special tokens' text, and runs the wrappers cut (25,000 code points).
KIMI_POOL = O200K_POOL + ["中文", "漢字", "北京市", "々", "〆", "〇", "⺀", "⼀", "ひらがな", "カタカナ", "한국어", "中文English",
                          "Pascal", "<|im_end|>", "<|im_user|>", "[BOS]", "a/b", ".\n/", "zqxjv", " zqxjv"] * 2
KIMI_TEXTS = ["中文English混合", "汉字abc", "北京市 Pascal", "你好世界，欢迎使用Kimi！", "ひらがなと漢字とカタカナ", "〇一二三 ⺀⼀x",
              "々〆〇", "I'm 中文's", "a/b//c .\n/x", "<|im_user|>user<|im_middle|>hi<|im_end|>", "[BOS]x[EOS]",
              "<|reserved_token_%d|>", "zqxjv", "HTTPServer's 中文DON'T", "  \n\n  x", "\u001c\u001c x"]


def byte_pair_ranks(corpus):
    """Bytes 0-255 (ranks 0-255), then MERGES merges learned over the expression's pieces of `corpus`, most
    frequent pair first (ties by the pair's bytes), each rank the next; WHOLE_ONLY last."""
    pieces = collections.Counter()
    pattern = regex.compile(KIMI_PAT, flags=regex.V1)
    for text in corpus:
        for piece in pattern.findall(text.replace(WHOLE_ONLY.decode(), "")):
            pieces[tuple(bytes([b]) for b in piece.encode())] += 1
    ranks = {bytes([b]): b for b in range(256)}
    words = dict(pieces)
    for _ in range(MERGES):
        pairs = collections.Counter()
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        ranks[a + b] = len(ranks)
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    assert WHOLE_ONLY not in ranks and not any(WHOLE_ONLY[:k] in ranks and WHOLE_ONLY[k:] in ranks
                                                for k in range(1, len(WHOLE_ONLY)))
    ranks[WHOLE_ONLY] = len(ranks)
    return ranks


def moonshot_parts(text):
    """tokenization_moonshot.py's cut before tiktoken: 400,000-code-point chunks, then runs of whitespace or
    of non-whitespace (str.isspace) of at most 25,000 code points."""
    for start in range(0, len(text), 400_000):
        s = text[start:start + 400_000]
        length, space, begin = 0, s[0].isspace() if s else False, 0
        for i, c in enumerate(s):
            if space ^ c.isspace():
                length, space = 1, c.isspace()
            else:
                length += 1
                if length > 25_000:
                    yield s[begin:i]
                    begin, length = i, 1
        yield s[begin:]


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = random.Random(17)
    corpus = texts(rng, KIMI_POOL) + KIMI_TEXTS * 3 + [m["content"] for c in CONVERSATIONS for m in c] * 5
    ranks = byte_pair_ranks(corpus)
    n = len(ranks)
    specials = {NAMED.get(k, "<|reserved_token_%d|>" % (n + k)): n + k for k in range(RESERVED)}
    enc = tiktoken.Encoding(name="kimi-fixture", pat_str=KIMI_PAT, mergeable_ranks=ranks, special_tokens=specials)
    with open(os.path.join(out, "tiktoken.model"), "w") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write("%s %d\n" % (base64.b64encode(token).decode(), rank))
    added = {str(n + k): {"content": name, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                          "special": True} for k, name in NAMED.items()}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"added_tokens_decoder": added, "bos_token": "[BOS]", "eos_token": "[EOS]", "pad_token": "[EOS]",
                   "chat_template": MOONLIGHT_CHAT, "tokenizer_class": "TikTokenTokenizer"}, f, ensure_ascii=False,
                  indent=1)

    def encode(text):
        return [i for part in moonshot_parts(text) for i in enc.encode(part, allowed_special="all")]

    pattern = regex.compile(KIMI_PAT, flags=regex.V1)
    cases = []
    fixed = [t.replace("%d", str(n + 200)) for t in KIMI_TEXTS]
    # Pieces longer than 32 bytes, which spin merges through a heap rather than by scanning (words of
    # letters and syllables the ranks know, Han runs, a long number's chunks are short: not here).
    syllables = ["he", "llo", "the", "ing", "an", "er", "a", "b", "x", "q", "中", "文", "字"]
    long_pieces = ["".join(rng.choice(syllables[:10]) for _ in range(rng.randint(17, 90))) for _ in range(20)]
    long_pieces += ["".join(rng.choice(syllables[10:]) for _ in range(rng.randint(12, 60))) for _ in range(6)]
    for text in texts(rng, KIMI_POOL) + fixed + long_pieces:
        ids = encode(text)
        decoded = enc.decode([i for i in ids if i < n])  # spin's decode leaves the special tokens out
        cases.append({"text": text, "ids": ids, "decoded": decoded, "pieces": pattern.findall(text)})
    # Runs the wrappers cut, written as head + unit * count + tail, their ids as [id, repeats] runs.
    for head, unit, count, tail in [("x", "hello", 5_002, ""), ("", " ", 25_003, "x"), ("", "中文", 12_501, " b"),
                                    ("x", "\u001c", 25_001, "y")]:
        text = head + unit * count + tail
        runs = []
        for i in encode(text):
            if runs and runs[-1][0] == i:
                runs[-1][1] += 1
            else:
                runs.append([i, 1])
        cases.append({"repeat": [head, unit, count, tail], "id_runs": runs})
        if unit == "hello":
            assert encode(text) != enc.encode(text), "the long run is not cut where it matters"
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as transformers' apply_chat_template
    more = [[{"role": "system", "content": "Be brief. "}, {"role": "user", "content": "中文?"},
             {"role": "system", "content": "Later."}, {"role": "user", "content": "x"},
             {"role": "assistant", "content": " 中文 answer\n"}],
            [{"role": "user", "content": "<|im_end|> in text"}, {"role": "assistant", "content": "ok<|im_end|>"}]]
    for name, template in (("chat_cases.json", MOONLIGHT_CHAT), ("chat_cases_k2.json", K2_CHAT)):
        render = env.from_string(template).render
        chat = []
        for conv in CONVERSATIONS + more:
            prompt = encode(render(messages=conv[:-1], add_generation_prompt=True))
            whole = encode(render(messages=conv, add_generation_prompt=False))
            response = encode(conv[-1]["content"]) + [specials["<|im_end|>"]]
            assert whole == prompt + response  # the generation prompt opens the last turn
            chat.append({"messages": conv, "prompt_ids": prompt, "response_ids": response})
        with open(os.path.join(out, name), "w") as f:
            json.dump(chat, f, ensure_ascii=False, indent=0)
    print("%d ranks, %d cases" % (n, len(cases)))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1])
