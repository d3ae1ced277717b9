#!/usr/bin/env python3
"""Builds the byte-level BPE fixtures of tests/unit/data/hf_bpe_tokenizer_test.cpp (and of the
templates in prompt_template_test.cpp) with Hugging Face `tokenizers` as the oracle: a small BPE
trained with Llama-3's pre-tokenizer (Split by its expression, then ByteLevel; ignore_merges), one with GPT-2's (ByteLevel with its own
expression, add_prefix_space) and one as Qwen2's (the NFC normalizer, Split by Qwen2's
expression, then ByteLevel) and one as Phi-4-mini's (o200k's expression, chat tokens with
rstrip / lstrip), each written as tokenizer.json + tokenizer_config.json, and cases.json: texts
with the ids, pre-tokenizer pieces and decoded text `tokenizers` gives; for llama3, qwen2 and
o200k also chat_cases.json, from transformers' apply_chat_template; llama31, qwen3, phi4 (Phi-4's
specials on llama3's tokenization), cohere (Aya 23's / Command-R's) and smollm3 (ChatML's and the
think tokens on llama3's tokenization, SmolLM3's template) only that. granite: as
Granite 3's (StarCoder's) tokenizer -- Digits with individual_digits, then ByteLevel with GPT-2's
expression -- with its role tokens: cases.json and the chat cases of Granite 3.0's, 3.1-3.3's and
4.0's templates. olmo3: ChatML's and the think tokens on llama3's tokenization (OLMo 3's Dolma 2
tokenizer is cl100k's), <|endoftext|> its EOS: the chat cases of Olmo 3.1 Instruct's template and of the same
template with Olmo 3 Instruct's default system message. gpt_neox: as GPT-NeoX-20B's and Pythia's -- NFC, ByteLevel with GPT-2's expression,
runs of 2-24 spaces as normalized added tokens (matched after the normalizer) --: cases.json.

    build/oracle-venv/bin/python tests/data/make_hf_bpe_fixtures.py tests/data/hf_bpe [KIND...]   # (needs jinja2 too)
"""
import datetime
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
LLAMA31_SPECIALS = SPECIALS + ["<|eom_id|>", "<|python_tag|>"]
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# GPT-NeoX-20B's / Pythia's: two specials, then runs of 2-24 spaces as normalized added tokens that
# are not special (its tokenizer.json: ids 50254-50276, "normalized": true, under NFC).
NEOX_SPECIALS = ["<|endoftext|>", "<|padding|>"]
NEOX_SPACES = [" " * n for n in range(24, 1, -1)]
QWEN3_SPECIALS = QWEN2_SPECIALS + ["<think>", "</think>"]
PHI4_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>"]
SMOLLM3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
OLMO3_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>", "<think>", "</think>"]
# GLM-4.5's / GLM-4.6's: its special tokens, then its think tokens and /nothink as added tokens that are not
# special (as its tokenizer.json has them).
GLM45_SPECIALS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
                  "<|assistant|>", "<|observation|>"]
GLM45_ADDED = ["<think>", "</think>", "/nothink"]
GRANITE_SPECIALS = ["<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", "<|tool_call|>"]
# DeepSeek-R1-Distill-Qwen's: Qwen2's tokenization with DeepSeek's BOS and EOS (special) and its chat markers
# and think tokens as added tokens that are not special (as its tokenizer.json has them).
DEEPSEEK_SPECIALS = ["<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>"]
# DeepSeek-V3's pre-tokenizer (its tokenizer.json): three Isolated Splits, then ByteLevel; the third
# expression's line breaks in brackets are the characters themselves, as in the published file.
DEEPSEEK_V3_SPLITS = [
    r"\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^""" + "\r\n" + r"""\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[""" +
    "\r\n" + r"]*|\s*[" + "\r\n" + r"]+|\s+(?!\S)|\s+"]
DEEPSEEK_ADDED = ["<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"]
# DeepSeek LLM's pre-tokenizer (DeepSeek LLM 7B / 67B, DeepSeek-V2 / V2.5 / V2-Lite, Coder-V2; their
# tokenizer.json): five Isolated Splits, Digits with individual_digits, ByteLevel. Its bracketed classes by code
# point -- the letters are Unicode's cased letters of the scripts it lists; ranges and single code points as the
# file writes them (adjacent single ones apart) --, so that no copy of the file's characters is normalised on the way
# (six of its letters, U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A, change under NFC).
DEEPSEEK_LLM_LETTERS = [
    (0x41, 0x5A), (0x61, 0x7A), (0xB5, 0xB5), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x1BA), (0x1BC, 0x1BF),
    (0x1C4, 0x293), (0x295, 0x2AF), (0x370, 0x373), (0x376, 0x376), (0x377, 0x377), (0x37B, 0x37D), (0x37F, 0x37F),
    (0x386, 0x386), (0x388, 0x38A), (0x38C, 0x38C), (0x38E, 0x3A1), (0x3A3, 0x3F5), (0x3F7, 0x481), (0x48A, 0x52F),
    (0x531, 0x556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA), (0x1CBD, 0x1CBF),
    (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15), (0x1F18, 0x1F1D), (0x1F20, 0x1F45),
    (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59), (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D),
    (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3),
    (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102), (0x2107, 0x2107),
    (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126), (0x2128, 0x2128),
    (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F), (0x2145, 0x2149), (0x214E, 0x214E),
    (0x2183, 0x2183), (0x2184, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4), (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF2),
    (0x2CF3, 0x2CF3), (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F), (0xA771, 0xA787), (0xA78B, 0xA78E),
    (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10400, 0x1044F),
    (0x104B0, 0x104D3), (0x104D8, 0x104FB), (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF),
    (0x1E900, 0x1E943)]
DEEPSEEK_LLM_PUNCTUATION = [(0x21, 0x2F), (0x3A, 0x7E), (0xFF01, 0xFF0F), (0xFF1A, 0xFF5E), (0x2018, 0x201F),
                            (0x3000, 0x3002)]
DEEPSEEK_LLM_CJK = [(0x4E00, 0x9FA5), (0x800, 0x4E00), (0xAC00, 0xD7FF)]


def bracketed(ranges):
    return "[" + "".join(chr(a) if a == b else chr(a) + "-" + chr(b) for a, b in ranges) + "]"


DEEPSEEK_LLM_SPLITS = ["[\r\n]", r"\s?" + bracketed(DEEPSEEK_LLM_LETTERS) + "+",
                       r"\s?" + bracketed(DEEPSEEK_LLM_PUNCTUATION) + "+", r"\s+$", bracketed(DEEPSEEK_LLM_CJK) + "+"]
# DeepSeek Coder's (deepseek-coder 1.3B / 6.7B / 33B): four Isolated Splits, Digits with individual_digits, ByteLevel.
DEEPSEEK_CODER_SPLITS = ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", bracketed(DEEPSEEK_LLM_CJK) + "+"]
COHERE_SPECIALS = ["<BOS_TOKEN>", "<EOS_TOKEN>", "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>",
                   "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>"]
# Phi-4-mini's chat tokens; the markers take the whitespace after them (rstrip, as Phi-3's
# tokenizers mark them) and <|end|> the whitespace before it too (lstrip), so that both of
# `tokenizers`' strips are exercised.
O200K_SPECIALS = [("<|endoftext|>", False, False), ("<|system|>", False, True), ("<|user|>", False, True),
                  ("<|assistant|>", False, True), ("<|end|>", True, True)]
O200K = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Characters of every class the expressions tell apart: letters of several scripts, numbers
# (digits, Roman, fractions), whitespace of several kinds, punctuation, symbols, emoji.
POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") + list("0123456789") * 2 +
        [" "] * 12 + ["\n", "\n", "\r\n", "\t", "\u00a0", "\u3000", "\u2003"] + list(".,;:!?-'\"()[]{}/\\@#$%^&*_=+<>|~`") +
        ["'s", "'S", "'ll", "'RE", "'ve", "'d", "'t", "'m"] + list("éàüößçñøłž") + list("ΑβγΔЖждשלוםمرحبا") +
        list("日本語中文한국어") + ["Ⅻ", "½", "²", "٣", "🙂", "🚀", "👍🏽", "€", "™", "\u200b", "\u0301"])


def byte_chars():
    """GPT-2's bytes_to_unicode."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


UNBYTE = byte_chars()


def corpus(rng, n):
    words = ["the", "The", "cat", "don't", "I'm", "we'll", "THEY'RE", "hello", "world", "2024", "3.14159",
             "naïve", "café", "日本", "über", "  indented", "\n\nnew paragraph", "tab\tseparated", "x=1;", "--",
             "...", "!!!", "#include", "<div>", "emoji 🙂", "12345678", "Ⅻ½"]
    lines = []
    for _ in range(n):
        k = rng.randint(3, 14)
        lines.append(" ".join(rng.choice(words) for _ in range(k)) + rng.choice(["", ".", "!", "?\n", "\n\n"]))
        lines.append("".join(rng.choice(POOL) for _ in range(rng.randint(5, 30))))
    return lines


# What NFC changes: combining marks (out of canonical order too), decomposed letters, Hangul
# jamo, singletons (Angstrom, Ohm), a non-starter decomposition.
NFC_POOL = POOL + ["e\u0301", "A\u030a", "a\u0323\u0307", "a\u0307\u0323", "\u1100\u1161", "\u1100\u1161\u11a8",
                   "\u212b", "\u2126", "\u0344", "o\u0308\u0304", "\u0301", "\u0323", "\u0327", "\u0308"] * 2


# o200k's: POOL with cased words and their contractions, and the chat tokens with whitespace.
O200K_POOL = POOL + ["CamelCase", "XMLHttp", "'S", "'Ll", "ÉTÉ", "<|end|>", "<|user|>", " <|end|> "] * 2


# DeepSeek-V3's: POOL with kana, CJK next to Latin, Unicode punctuation and symbols (its \\p{P} and \\p{S}), marks
# that open a word, digits in long runs, a control character (no alternative of its matches it).
DEEPSEEK_POOL = POOL + ["ひらがな", "カタカナー", "中文abc", "々", "«»", "—", "…", "！", "¿", "§", "°", "±", "\u0301", " \u0301",
                        "\u0007", "1234567", "::", ".com", "_x", "(", ")"] * 2


# DeepSeek LLM's: POOL with its classes' edges -- Greek, Cyrillic and Armenian words, the letters NFC would change,
# cased letters outside its list, scripts it leaves out (Arabic, Hebrew, Han beyond U+9FA5), fullwidth forms, curly
# quotes, the ideographic space and stop, Hangul, kana and Devanagari (its U+0800-U+4E00 range), numbers of several
# scripts, whitespace before and at the end of pieces.
DEEPSEEK_LLM_POOL = POOL + ["Ἀθῆναι", "ὦ", "\u1f7d", "\u1fbe", "\u1fd3", "\u1fdb", "\u2126", "\u212a", "Ωmega", "Кирилл",
                            "Հայ", "ǅ", "ʔ", "ƻ", "ﬀ", "ＡＢｃ", "！？", "“quoted”", "‘x’", "\u3000", "。", "、", "한국어",
                            "カタカナ", "ひらがな", "हिन्दी", "中文", "\u9fa6", "\u9fff", "مرحبا", "שלום", "٣٤", "Ⅻ", "½",
                            "  ", " \t", "\u00a0", "a  ", "1 ", "𐐀𐐨", "𞤀"] * 2


NEOX_POOL = NFC_POOL + ["  ", "   ", "    ", "        ", "\n    ", "\t", " \u0301"] * 3


def texts(rng, pool=POOL):
    fixed = ["", " ", "  ", "hello", " hello", "  hello", "hello world", "Hello, World!", "don't I'm we'll THEY'RE",
             "'s 'S 'Re 'LL x's", "12345678 9 10 3.14159", "a\nb", "a\n\nb", "a \n b", "a  \n\n  b", "line\r\nbreak",
             "trailing   ", "   leading", "tab\tand\ttabs", "naïve café über", "日本語のテキスト", "emoji 🙂🚀👍🏽!",
             "x=1;y=2", "--flag=--value", "<|eot_id|>", "before<|begin_of_text|>after", "<|start_header_id|>user"
             "<|end_header_id|>\n\nHi<|eot_id|>", "Ⅻ½²٣", "\u00a0nbsp\u3000ideographic", "'", "''", "'x", "a'",
             "?!\n\n", "  \n", "\n  ", "word\u200bjoiner", "e\u0301", "...\n", "a\r\rb"]
    if pool is O200K_POOL:  # o200k's own cases: words cut by case with contractions, specials' whitespace
        fixed += ["HelloWorld's DON'T CamelCase'S XMLHttpRequest", "ÉCOLE's naïveTé'LL", "a'sb 'dX x'Re'm",
                  "1234567 12 3", "<|user|>  hi<|end|>\n", "x \t<|end|> y", "<|assistant|>\n\n", " \u3000<|end|>",
                  "<|system|>\u00a0a <|end|><|user|>", "a<|end|><|end|>  b", "path/to/file\n/x"]
    if pool is DEEPSEEK_POOL:  # DeepSeek-V3's own cases: each Split's pieces and the stretches none matches
        fixed += ["中文abc日本語", "ひらがなカタカナ漢字", "ー々〆", "«quote» ¿qué? — 1,234,567.89", ".Hello,world",
                  "_private __init__", "a\u0301b \u0301c", "x\u0007y\u0007", " \u200b\u200bz", "$100 €20 ±3°",
                  "line.\r\n\r\nnext", "!!\n\nx", "  \u0301", "<｜User｜>hi<｜Assistant｜>", "1日2本"]
    if pool is DEEPSEEK_LLM_POOL:  # DeepSeek LLM's (and Coder's) own cases: each Split's pieces and what falls between them
        fixed += ["Hello Ἀθῆναι Кирилл 한국어 text", "a\u3000b\u3000\u3000c", "x“y”z ‘q’", "ＡＢ！ｃ", "end   ", "tab\t\t",
                  "١٢٣ 456 Ⅻ½", "\u2126\u212a\u1fbe \u1f7d\u1fd3\u1fdb", "مرحبا بالعالم", "  \n  x  \r\n", "日本語のテキスト!",
                  "\u0301abc", "word\u200b word", "$100.00, (x)", "<｜User｜>hi<｜Assistant｜>"]
    if pool is NEOX_POOL:  # GPT-NeoX's own cases: runs of spaces cut by its added tokens, after NFC
        fixed += ["def f(x):\n    return x\n", "a" + " " * 30 + "b", "  e\u0301  cafe\u0301", " " * 25, "x \t  y",
                  "\n\n   \n", "e\u0301" + " " * 3 + "\u0301", "<|endoftext|>  <|padding|>", "if a:\n\tb   # c  "]
    if pool is NFC_POOL:
        fixed += ["cafe\u0301 vs caf\u00e9", "\u212bngstr\u00f6m \u2126", "a\u0307\u0323b", "\u1100\u1161\u11a8\uac00",
                  "<|im_start|>e\u0301<|im_end|>", "<|im_end|>\u0338", "1234 5678", "x\u0344y"]
    rand = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(300)]
    return fixed + rand


def build(kind, out, rng):
    specials, pool = SPECIALS, POOL
    if kind in ("llama3", "llama31", "phi4", "cohere", "smollm3", "glm45", "olmo3"):  # Phi-4's, GLM's, OLMo 3's: cl100k's
        tok = Tokenizer(models.BPE(ignore_merges=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif kind == "o200k":  # Phi-4-mini's, Llama 4's: GPT-4o's expression
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(O200K), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = [AddedToken(s, lstrip=left, rstrip=right, normalized=False, special=True)
                    for s, left, right in O200K_SPECIALS]
        pool = O200K_POOL
    elif kind in ("deepseek_v3", "deepseek_v31"):  # V3.1's tokenization is V3's
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.Sequence([])
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in DEEPSEEK_V3_SPLITS] +
            [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials, pool = DEEPSEEK_SPECIALS, DEEPSEEK_POOL
    elif kind in ("deepseek_llm", "deepseek_coder"):
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.Sequence([])
        splits = DEEPSEEK_LLM_SPLITS if kind == "deepseek_llm" else DEEPSEEK_CODER_SPLITS
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in splits] +
            [pre_tokenizers.Digits(individual_digits=True),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials, pool = DEEPSEEK_SPECIALS, DEEPSEEK_LLM_POOL
    elif kind in ("qwen2", "qwen3", "deepseek_r1"):
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = {"qwen2": QWEN2_SPECIALS, "qwen3": QWEN3_SPECIALS, "deepseek_r1": DEEPSEEK_SPECIALS}[kind]
        pool = NFC_POOL
    elif kind == "granite":  # StarCoder's, Granite 3's: every digit a piece, then GPT-2's expression
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        specials = GRANITE_SPECIALS
    elif kind == "gpt_neox":  # GPT-NeoX-20B's, Pythia's: NFC, then ByteLevel with GPT-2's expression
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        specials, pool = NEOX_SPECIALS, NEOX_POOL
    else:  # gpt2
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    if kind == "llama31":
        specials = LLAMA31_SPECIALS
    elif kind == "phi4":
        specials = PHI4_SPECIALS
    elif kind == "cohere":
        specials = COHERE_SPECIALS
    elif kind == "smollm3":
        specials = SMOLLM3_SPECIALS
    elif kind == "glm45":
        specials = GLM45_SPECIALS
    elif kind == "olmo3":
        specials = OLMO3_SPECIALS
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(rng, 3000), trainer)
    if kind in ("deepseek_v3", "deepseek_v31", "deepseek_r1"):  # (V2's and Coder's files have no such markers)
        tok.add_tokens([AddedToken(a, normalized=False, special=False) for a in DEEPSEEK_ADDED])
    if kind == "gpt_neox":
        tok.add_tokens([AddedToken(a, normalized=True, special=False) for a in NEOX_SPACES])
    if kind == "glm45":
        tok.add_tokens([AddedToken(a, normalized=False, special=False) for a in GLM45_ADDED])
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        if kind in ("qwen2", "qwen3"):  # as Qwen2.5-Instruct's and Qwen3's: no BOS
            json.dump({"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, f)
        elif kind == "o200k":  # as Phi-4-mini's (its template writes no BOS)
            json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                       "chat_template": PHI4_MINI_CHAT}, f)
        elif kind == "cohere":  # as Aya 23's and Command-R's
            json.dump({"bos_token": "<BOS_TOKEN>", "eos_token": "<|END_OF_TURN_TOKEN|>", "pad_token": "<PAD>",
                       "chat_template": COHERE_CHAT}, f)
        elif kind == "smollm3":  # as SmolLM3's (its template writes no BOS)
            json.dump({"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
                       "chat_template": SMOLLM3_CHAT}, f)
        elif kind == "granite":  # as Granite 3.3's (its template writes no BOS)
            json.dump({"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>", "pad_token": "<|end_of_text|>",
                       "chat_template": GRANITE31_CHAT}, f)
        elif kind == "deepseek_llm":  # as DeepSeek-V2-Lite-Chat's
            json.dump({"bos_token": DEEPSEEK_SPECIALS[1], "eos_token": DEEPSEEK_SPECIALS[0],
                       "pad_token": DEEPSEEK_SPECIALS[0], "chat_template": DEEPSEEK_V2_CHAT}, f, ensure_ascii=False)
        elif kind == "deepseek_coder":  # as deepseek-coder-6.7b-base's (no chat template)
            json.dump({"bos_token": DEEPSEEK_SPECIALS[1], "eos_token": DEEPSEEK_SPECIALS[0],
                       "pad_token": DEEPSEEK_SPECIALS[0]}, f, ensure_ascii=False)
        elif kind in ("deepseek_v3", "deepseek_v31", "deepseek_r1"):  # as DeepSeek-V3's, V3.1's, R1-Distill-Qwen's
            chat = {"deepseek_v3": DEEPSEEK_V3_CHAT, "deepseek_v31": DEEPSEEK_V31_CHAT, "deepseek_r1": DEEPSEEK_R1_CHAT}
            json.dump({"bos_token": DEEPSEEK_SPECIALS[1], "eos_token": DEEPSEEK_SPECIALS[0],
                       "pad_token": DEEPSEEK_SPECIALS[0], "chat_template": chat[kind]}, f, ensure_ascii=False)
        elif kind == "gpt_neox":  # as Pythia's
            json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, f)
        elif kind == "glm45":  # as GLM-4.5's (its template writes [gMASK]<sop>)
            json.dump({"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                       "chat_template": GLM45_CHAT}, f)
        elif kind == "olmo3":  # as Olmo 3.1 Instruct's (its template writes no BOS)
            json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>",
                       "chat_template": OLMO31_CHAT}, f)
        elif kind == "phi4":  # as Phi-4's (its template writes no BOS)
            json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                       "chat_template": PHI4_CHAT}, f)
        else:
            json.dump({"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"}}, f)
    if kind == "llama3":
        chat_cases(tok, out, LLAMA3_CHAT, "<|begin_of_text|>", "<|eot_id|>")
        chat_cases(tok, out, ALPACA_CHAT, "<|begin_of_text|>", "<|eot_id|>", "chat_cases_alpaca.json",
                   more=ALPACA_CONVERSATIONS)
    if kind == "o200k":
        chat_cases(tok, out, PHI4_MINI_CHAT, "<|endoftext|>", "<|endoftext|>")
    if kind == "granite":  # 3.1-3.3's dated default system message on the day spin writes
        chat_cases(tok, out, GRANITE30_CHAT, "<|end_of_text|>", "<|end_of_text|>")
        chat_cases(tok, out, GRANITE31_CHAT, "<|end_of_text|>", "<|end_of_text|>", "chat_cases_granite3.1.json",
                   {"strftime_now": lambda fmt: datetime.date(2025, 4, 16).strftime(fmt)})
        chat_cases(tok, out, GRANITE4_CHAT, "<|end_of_text|>", "<|end_of_text|>", "chat_cases_granite4.json")
    if kind == "qwen2":
        chat_cases(tok, out, CHATML, None, "<|im_end|>")
        chat_cases(tok, out, QWEN25_CHAT, None, "<|im_end|>", "chat_cases_qwen2.5.json")
    if kind == "llama31":  # its tokenization is llama3's: only the chat format is tested
        chat_cases(tok, out, LLAMA31_CHAT, "<|begin_of_text|>", "<|eot_id|>")
        print("llama31: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    if kind == "smollm3":  # its tokenization is llama3's: only the chat format is tested (thinking off)
        chat_cases(tok, out, SMOLLM3_CHAT, None, "<|im_end|>",
                   template_kwargs={"enable_thinking": False,
                                    "strftime_now": lambda fmt: datetime.date(2025, 7, 8).strftime(fmt)},
                   more=SMOLLM3_CONVERSATIONS)
        print("smollm3: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    if kind == "cohere":  # its tokenization is llama3's: only the chat format is tested
        chat_cases(tok, out, COHERE_CHAT, "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>")
        print("cohere: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    if kind == "glm45":  # its tokenization is llama3's: only the chat format is tested (thinking off)
        glm45_chat_cases(tok, out)
        print("glm45: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    if kind == "olmo3":  # its tokenization is llama3's: only the chat formats are tested (tools=None, as transformers
        # 4.42 and later pass it: 4.40's would leave `tools` undefined, which the template's system branch reads as given)
        for template, name in ((OLMO3_CHAT, "chat_cases_olmo3.json"), (OLMO31_CHAT, "chat_cases_olmo3.1.json")):
            chat_cases(tok, out, template, "<|endoftext|>", "<|endoftext|>", name, {"tools": None},
                       more=OLMO3_CONVERSATIONS)
        print("olmo3: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    if kind == "phi4":  # its tokenization is llama3's: only the chat format is tested
        chat_cases(tok, out, PHI4_CHAT, "<|endoftext|>", "<|endoftext|>")
        print("phi4: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    if kind == "deepseek_v3":
        chat_cases(tok, out, DEEPSEEK_V3_CHAT, DEEPSEEK_SPECIALS[1], DEEPSEEK_SPECIALS[0], more=DEEPSEEK_CONVERSATIONS)
    if kind == "deepseek_v31":  # its tokenization is V3's: only the chat format is tested (thinking off)
        chat_cases(tok, out, DEEPSEEK_V31_CHAT, DEEPSEEK_SPECIALS[1], DEEPSEEK_SPECIALS[0],
                   more=DEEPSEEK_CONVERSATIONS + DEEPSEEK_V31_CONVERSATIONS)
        print("deepseek_v31: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    if kind == "deepseek_llm":
        chat_cases(tok, out, DEEPSEEK_V2_CHAT, DEEPSEEK_SPECIALS[1], DEEPSEEK_SPECIALS[0],
                   more=DEEPSEEK_V2_CONVERSATIONS)
    if kind == "deepseek_r1":  # its tokenization is qwen2's: only R1's chat format is tested
        r1_chat_cases(tok, out, DEEPSEEK_SPECIALS[1], DEEPSEEK_SPECIALS[0])
        print("deepseek_r1: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    if kind == "qwen3":  # its tokenization is qwen2's: only the chat format is tested
        chat_cases(tok, out, QWEN3_CHAT, None, "<|im_end|>", template_kwargs={"enable_thinking": False})
        print("qwen3: vocabulary %d, chat cases" % tok.get_vocab_size())
        return
    cases = []
    for text in texts(rng, pool):
        enc = tok.encode(text, add_special_tokens=False)
        # The pieces as text (ByteLevel maps their bytes to characters: mapped back).
        pieces = None
        if "<|" not in text:
            normalized = tok.normalizer.normalize_str(text) if tok.normalizer else text
            pieces = [bytes(UNBYTE[c] for c in p).decode("utf-8")
                      for p, _ in tok.pre_tokenizer.pre_tokenize_str(normalized)]
        cases.append({"text": text, "ids": enc.ids, "decoded": tok.decode(enc.ids), "pieces": pieces})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    print("%s: vocabulary %d, %d cases" % (kind, tok.get_vocab_size(), len(cases)))


# Meta-Llama-3-8B-Instruct's chat template (tokenizer_config.json).
LLAMA3_CHAT = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
               "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
               "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
               "{{ content }}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


# Llama 3.1 / 3.2 Instruct's chat template without its tools branches: a system block always,
# with the knowledge cutoff and the date (its default, "26 Jul 2024", where no strftime_now is
# given), the conversation's own system message after them.
LLAMA31_CHAT = (
    "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = \"\" %}{%- endif %}"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}{{- system_message }}{{- \"<|eot_id|>\" }}"
    "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
    "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")

# ChatML as Qwen2.5-Instruct's template writes it when the conversation has a system message (it
# adds a default one otherwise; spin's chatml does not: docs/spin.md).
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


# Qwen2.5-Instruct's chat template without its tools branches: a default system message when the
# conversation has none (spin's qwen2.5 template).
QWEN25_CHAT = ("{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + "
               "'<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
               "helpful assistant.<|im_end|>\n' }}{%- endif %}{%- for message in messages %}{%- if (message.role == "
               "\"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not "
               "message.tool_calls) %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}"
               "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}")


# Qwen3's chat template without its tools branches: an assistant turn after the last user message
# gets the think block (reasoning_content, or what its content holds between <think> and
# </think>: empty here), and with enable_thinking false the generation prompt an empty one --
# non-thinking mode, spin's qwen3 template.
QWEN3_CHAT = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}"
    "{%- endif %}{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if ns.multi_step_tool and message.role == 'user' %}{%- set ns.multi_step_tool = false %}"
    "{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}"
    "{%- for message in messages %}{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}"
    "{%- elif message.role == 'assistant' %}{%- set content = message.content %}{%- set reasoning_content = '' %}"
    "{%- if '</think>' in message.content %}{%- set content = message.content.split('</think>')[-1].lstrip('\n') %}"
    "{%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}"
    "{%- endif %}{%- if loop.index0 > ns.last_query_index %}{%- if loop.last or (not loop.last and reasoning_content) %}"
    "{{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + "
    "content.lstrip('\n') }}{%- else %}{{- '<|im_start|>' + message.role + '\n' + content }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\n' + content }}{%- endif %}{{- '<|im_end|>\n' }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}"
    "{%- endif %}")


# Phi-4's chat template (tokenizer_config.json): every user turn ends with the assistant's header,
# whatever add_generation_prompt says.
PHI4_CHAT = ("{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
             "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + "
             "message['content'] + '<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (message['role'] == "
             "'assistant') %}{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}")


# Phi-4-mini's chat template (tokenizer_config.json), its tools branch left out: no newlines, no BOS.
PHI4_MINI_CHAT = ("{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
                  "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}")


# Aya 23's and Command-R's default chat template (tokenizer_config.json; Command-R's tool-use and RAG
# templates beside it are other entries): BOS, a first system message as a turn of its own
# (untrimmed), the roles alternating from the user's, contents stripped.
COHERE_CHAT = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% elif false == true %}{% set loop_messages = messages %}"
    "{% set system_message = 'You are Aya, a brilliant, sophisticated, multilingual AI-assistant trained to assist "
    "human users by providing thorough responses. You are able to interact and respond to questions in 23 languages "
    "and you are powered by a multilingual model built by Cohere For AI.' %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% if system_message != false %}"
    "{{ '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>' + system_message + '<|END_OF_TURN_TOKEN|>' }}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% set content = message['content'] %}{% if message['role'] == 'user' %}"
    "{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>'  + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}")


# Olmo 3.1 Instruct's chat template (Olmo-3.1-32B-Instruct's, as its MLX conversion lmstudio-community/Olmo-3.1-32B-
# Instruct-MLX-8bit carries it; its string literals' line breaks
# written as line breaks, the last one as the \n escape, both the same to Jinja): where no message is a system
# one, a default system turn naming Ai2 and saying that no functions are available; every system message a turn
# where it stands; an assistant turn ended by <|im_end|> and a line break, the last message's by eos_token.
OLMO31_CHAT = (
    "{%- set has_system = messages|selectattr('role', 'equalto', 'system')|list|length > 0 -%}{%- if not has_system -%}"
    "{{- '<|im_start|>system\nYou are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December 2024, "
    "and your model weights are available at https://huggingface.co/allenai. ' -}}"
    "{%- if tools is none or (tools | length) == 0 -%}"
    "{{- 'You do not currently have access to any functions. <functions></functions><|im_end|>\n' -}}{%- else -%}"
    "{{- 'You are provided with function signatures within <functions></functions> XML tags. You may call one or "
    "more functions to assist with the user query. Output any function calls within <function_calls></function_calls> "
    "XML tags. Do not make assumptions about what values to plug into functions.' -}}{{- '<functions>' -}}"
    "{{- tools | tojson -}}{{- '</functions><|im_end|>\n' -}}{%- endif -%}{%- endif -%}"
    "{%- for message in messages -%}{%- if message['role'] == 'system' -%}"
    "{{- '<|im_start|>system\n' + message['content'] -}}{%- if tools is not none -%}{{- '<functions>' -}}"
    "{{- tools | tojson -}}{{- '</functions>' -}}{%- elif message.get('functions', none) is not none -%}"
    "{{- ' <functions>' + message['functions'] + '</functions>' -}}{%- endif -%}{{- '<|im_end|>\n' -}}"
    "{%- elif message['role'] == 'user' -%}{{- '<|im_start|>user\n' + message['content'] + '<|im_end|>\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- '<|im_start|>assistant\n' -}}"
    "{%- if message.get('content', none) is not none -%}{{- message['content'] -}}{%- endif -%}"
    "{%- if message.get('function_calls', none) is not none -%}"
    "{{- '<function_calls>' + message['function_calls'] + '</function_calls>' -}}"
    "{% elif message.get('tool_calls', none) is not none %}{{- '<function_calls>' -}}"
    "{%- for tool_call in message['tool_calls'] %}{%- if tool_call is mapping and tool_call.get('function', none) is "
    "not none %}{%- set args = tool_call['function']['arguments'] -%}{%- set ns = namespace(arguments_list=[]) -%}"
    "{%- for key, value in args.items() -%}{%- set ns.arguments_list = ns.arguments_list + [key ~ '=' ~ "
    "(value | tojson)] -%}{%- endfor -%}{%- set arguments = ns.arguments_list | join(', ') -%}"
    "{{- tool_call['function']['name'] + '(' + arguments + ')' -}}{%- if not loop.last -%}{{ '\n' }}{%- endif -%}"
    "{% else %}{{- tool_call -}}{%- endif %}{%- endfor %}{{- '</function_calls>' -}}{%- endif -%}"
    "{%- if not loop.last -%}{{- '<|im_end|>' + '\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}"
    "{%- elif message['role'] == 'environment' -%}{{- '<|im_start|>environment\n' + message['content'] + "
    "'<|im_end|>\n' -}}{%- elif message['role'] == 'tool' -%}{{- '<|im_start|>environment\n' + message['content'] + "
    "'<|im_end|>\n' -}}{%- endif -%}{%- if loop.last and add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}{%- endif -%}{%- endfor -%}")

# Olmo 3 Instruct's (Olmo-3-7B-Instruct's): the same turns, its default system message the undated one its model
# card and Ollama's renderer tests give ("You are a helpful function-calling AI assistant. You do not currently have
# access to any functions. <functions></functions>").
OLMO3_CHAT = OLMO31_CHAT.replace(
    "You are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December 2024, and your model weights are "
    "available at https://huggingface.co/allenai. ", "You are a helpful function-calling AI assistant. ")
assert OLMO3_CHAT != OLMO31_CHAT

# A system message that is not the first (no default then, the message a turn where it stands), and a reply
# holding what the markers look like as text.
OLMO3_CONVERSATIONS = [
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "system", "content": "late"},
     {"role": "user", "content": "c"}, {"role": "assistant", "content": "d\n"}],
    [{"role": "user", "content": "  spaced  "}, {"role": "assistant", "content": "<functions></functions> ok"}],
]


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "system", "content": "  You are terse.\n"}, {"role": "user", "content": "Hello there!  "},
     {"role": "assistant", "content": " Hi.\n\n"}],
    [{"role": "user", "content": "first"}, {"role": "assistant", "content": "one"},
     {"role": "user", "content": "naïve 日本 🙂 12345"}, {"role": "assistant", "content": "two\nlines"}],
]


def chat_cases(tok, out, template, bos, eos, name="chat_cases.json", template_kwargs=None, more=(), conversations=None,
               response=None):
    """chat_cases.json: conversations (CONVERSATIONS' three, and `more`) with the ids transformers'
    apply_chat_template gives for the prompt (with the generation prompt) and, for the whole
    conversation, the response's ids -- or with `response` what it gives for the last message."""
    from transformers import PreTrainedTokenizerFast
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos)
    fast.chat_template = template
    cases = []
    for conv in (conversations or CONVERSATIONS) + list(more):
        kwargs = template_kwargs or {}
        prompt = fast.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=True, **kwargs)
        if response is not None:
            cases.append({"messages": conv, "prompt_ids": prompt, "response_ids": response(conv[-1])})
            continue
        whole = fast.apply_chat_template(conv, add_generation_prompt=False, tokenize=True, **kwargs)
        assert whole[:len(prompt)] == prompt
        cases.append({"messages": conv, "prompt_ids": prompt, "response_ids": whole[len(prompt):]})
    with open(os.path.join(out, name), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)


# Granite 3.0 Instruct's chat template (tokenizer_config.json): every role's turn, no default system message.
GRANITE30_CHAT = (
    "{%- if tools %}\n    {{- '<|start_of_role|>available_tools<|end_of_role|>\n' }}\n    {%- for tool in tools %}\n"
    "    {{- tool | tojson(indent=4) }}\n    {%- if not loop.last %}\n        {{- '\n\n' }}\n    {%- endif %}\n"
    "    {%- endfor %}\n    {{- '<|end_of_text|>\n' }}\n{%- endif %}\n{%- for message in messages %}\n"
    "    {%- if message['role'] == 'system' %}\n"
    "    {{- '<|start_of_role|>system<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- elif message['role'] == 'user' %}\n"
    "    {{- '<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "    {{- '<|start_of_role|>assistant<|end_of_role|>'  + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- elif message['role'] == 'assistant_tool_call' %}\n"
    "    {{- '<|start_of_role|>assistant<|end_of_role|><|tool_call|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- elif message['role'] == 'tool_response' %}\n"
    "    {{- '<|start_of_role|>tool_response<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n"
    "    {%- endif %}\n    {%- if loop.last and add_generation_prompt %}\n"
    "    {{- '<|start_of_role|>assistant<|end_of_role|>' }}\n    {%- endif %}\n{%- endfor %}")


# Granite 3.1 / 3.2 / 3.3 Instruct's chat template without its tools, documents, thinking and controls
# branches: a first system message, or the default one dated the day it runs (strftime_now).
GRANITE31_CHAT = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}"
    "{%- set system_message = \"Knowledge Cutoff Date: April 2024.\\nToday's Date: \" + strftime_now('%B %d, %Y') + "
    "\".\\nYou are Granite, developed by IBM.\" %}"
    "{%- set system_message = system_message + \" You are a helpful AI assistant.\" %}"
    "{%- set loop_messages = messages %}{%- endif %}"
    "{{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\\n' }}"
    "{%- for message in loop_messages %}"
    "{{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\\n' }}"
    "{%- if loop.last and add_generation_prompt %}{{- '<|start_of_role|>assistant' }}{{- '<|end_of_role|>' }}"
    "{%- endif %}{%- endfor %}")


# Granite 4.0's chat template without its tools and documents branches: a first system message or
# the undated default; later system messages as turns.
GRANITE4_CHAT = (
    "{%- set g4_default_system_message = 'You are a helpful assistant. Please ensure responses are professional, "
    "accurate, and safe.' %}{%- set ns = namespace(default_system_message=g4_default_system_message, "
    "system_message='') %}{%- if messages[0].role == 'system' %}{%- set ns.system_message = messages[0].content %}"
    "{%- endif %}{%- if ns.system_message %}"
    "{{- '<|start_of_role|>system<|end_of_role|>' + ns.system_message + '<|end_of_text|>\\n' }}{%- else %}"
    "{{- '<|start_of_role|>system<|end_of_role|>' + ns.default_system_message + '<|end_of_text|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) %}"
    "{{- '<|start_of_role|>' + message.role + '<|end_of_role|>' + message.content + '<|end_of_text|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|start_of_role|>' + message.role + '<|end_of_role|>' + "
    "message.content }}{{- '<|end_of_text|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_of_role|>assistant<|end_of_role|>' }}{%- endif %}")


# SmolLM3's chat template (tokenizer_config.json), its thinking-mode default instructions elided (never rendered
# here), without its {% generation %} markers (which only mark
# the assistant's tokens for training masks; transformers 4.40 has no such tag): a metadata system block
# with the day it runs and the reasoning mode, ChatML turns, thinking off by enable_thinking=False or
# /no_think in the system message.
SMOLLM3_CHAT = (
    "{%- if enable_thinking is not defined -%}{%- set enable_thinking = true -%}{%- endif -%}"
    "{%- if enable_thinking -%}{%- set reasoning_mode = \"/think\" -%}{%- else -%}"
    "{%- set reasoning_mode = \"/no_think\" -%}{%- endif -%}{{- \"<|im_start|>system\\n\" -}}"
    "{%- if messages[0].role == \"system\" -%}{%- set system_message = messages[0].content -%}"
    "{%- if \"/no_think\" in system_message -%}{%- set reasoning_mode = \"/no_think\" -%}"
    "{%- elif \"/think\" in system_message -%}{%- set reasoning_mode = \"/think\" -%}{%- endif -%}"
    "{%- set custom_instructions = system_message.replace(\"/no_think\", \"\").replace(\"/think\", \"\").rstrip() -%}"
    "{%- endif -%}{%- if \"/system_override\" in system_message -%}"
    "{{- custom_instructions.replace(\"/system_override\", \"\").rstrip() -}}{{- \"<|im_end|>\\n\" -}}{%- else -%}"
    "{{- \"## Metadata\\n\\n\" -}}{{- \"Knowledge Cutoff Date: June 2025\\n\" -}}"
    "{%- set today = strftime_now(\"%d %B %Y\") -%}{{- \"Today Date: \" ~ today ~ \"\\n\" -}}"
    "{{- \"Reasoning Mode: \" + reasoning_mode + \"\\n\\n\" -}}{{- \"## Custom Instructions\\n\\n\" -}}"
    "{%- if custom_instructions -%}{{- custom_instructions + \"\\n\\n\" -}}"
    "{%- elif reasoning_mode == \"/think\" -%}{{- \"(thinking instructions)\\n\\n\" -}}"
    "{%- else -%}{{- \"You are a helpful AI assistant named SmolLM, trained by Hugging Face.\\n\\n\" -}}{%- endif -%}"
    "{{- \"## Tools\\n\\n\" -}}{{- \"### XML Tools\\n\\n\" -}}{%- if xml_tools -%}{{- xml_tools -}}{%- else -%}"
    "{{- \"None\" -}}{%- endif -%}{{- \"\\n\\n\" -}}{{- \"### Python Tools\\n\\n\" -}}{%- if python_tools -%}"
    "{{- python_tools -}}{%- else -%}{{- \"None\" -}}{%- endif -%}{{- \"\\n\\n\" -}}{{- \"<|im_end|>\\n\" -}}"
    "{%- endif -%}{%- for message in messages -%}"
    "{%- set content = message.content if message.content is string else \"\" -%}"
    "{%- if message.role == \"user\" -%}{{ \"<|im_start|>\" + message.role + \"\\n\"  + content + \"<|im_end|>\\n\" }}"
    "{%- elif message.role == \"assistant\" -%}{%- if reasoning_mode == \"/think\" -%}"
    "{{ \"<|im_start|>assistant\\n\" + content.lstrip(\"\\n\") + \"<|im_end|>\\n\" }}{%- else -%}"
    "{{ \"<|im_start|>assistant\\n\" + \"<think>\\n\\n</think>\\n\" + content.lstrip(\"\\n\") + \"<|im_end|>\\n\" }}"
    "{%- endif -%}{%- elif message.role == \"tool\" -%}{{ \"<|im_start|>\" + \"user\\n\"  + content + \"<|im_end|>\\n\" }}"
    "{%- endif -%}{%- endfor -%}{%- if add_generation_prompt -%}{%- if reasoning_mode == \"/think\" -%}"
    "{{ \"<|im_start|>assistant\\n\" }}{%- else -%}{{ \"<|im_start|>assistant\\n\" + \"<think>\\n\\n</think>\\n\"  }}"
    "{%- endif -%}{%- endif -%}")
# SmolLM3's own cases: /no_think and whitespace in the system message, a response opening with
# newlines, a later system message (dropped), /system_override.
SMOLLM3_CONVERSATIONS = [
    [{"role": "system", "content": "Answer briefly. /no_think  \n"}, {"role": "user", "content": "Why?"},
     {"role": "assistant", "content": "\n\nBecause."}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "system", "content": "late"},
     {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}],
    [{"role": "system", "content": "Raw system text. /system_override"}, {"role": "user", "content": "x"},
     {"role": "assistant", "content": "y"}],
]


# DeepSeek-V3's chat template (tokenizer_config.json, V3-0324's): BOS, every system message joined by a blank
# line, <｜User｜> and <｜Assistant｜> turns; its tool branches never taken here.
DEEPSEEK_V3_CHAT = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}"
    "{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}"
    "{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}"
    "{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}")

# DeepSeek-R1's chat template (R1-0528's, and its distilled Qwen and Llama models'), its tool branches left
# out: the last system message, earlier answers after their </think>, the generation prompt opening the
# think block.
DEEPSEEK_R1_CHAT = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- endfor -%}"
    "{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}")

# DeepSeek-V3.1's chat template (tokenizer_config.json), its tool branches left out: V3's system messages, an
# assistant turn opened (<｜Assistant｜>, then </think> unless thinking) only after a user message, each answer's
# text after its first </think>, the generation prompt only after a user message -- </think> by default
# (thinking off), <think> with thinking=True.
DEEPSEEK_V31_CHAT = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% if not thinking is defined %}{% set thinking = false %}{% endif %}"
    "{% set ns = namespace(system_prompt='', is_first_sp=true, is_last_user=false) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}"
    "{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}"
    "{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}"
    "{%- set ns.is_last_user = true -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' %}{%- if ns.is_last_user %}{{'<｜Assistant｜>'}}"
    "{%- if message['prefix'] is defined and message['prefix'] and thinking %}{{'<think>'}}{%- else %}{{'</think>'}}"
    "{%- endif %}{%- endif %}{%- set ns.is_last_user = false -%}{%- set content = message['content'] %}"
    "{%- if '</think>' in content %}{%- set content = content.split('</think>', 1)[1] %}{%- endif %}"
    "{{content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor -%}"
    "{% if add_generation_prompt and ns.is_last_user %}{{'<｜Assistant｜>'}}"
    "{%- if not thinking %}{{'</think>'}}{%- else %}{{'<think>'}}{%- endif %}{% endif %}")
# V3.1's own cases: answers holding </think> twice (the text after the first kept), an assistant message after
# another (no turn opened for it, no generation prompt before it).
DEEPSEEK_V31_CONVERSATIONS = [
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x</think>y</think>z"},
     {"role": "user", "content": "again"}, {"role": "assistant", "content": "one</think>two</think>three"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"},
     {"role": "assistant", "content": "b"}],
]

# DeepSeek-V2-Chat's, V2-Lite-Chat's and DeepSeek LLM 7B Chat's chat template (tokenizer_config.json): BOS, the
# turns in text, each assistant turn ended by EOS, the generation prompt "Assistant:" without its space.
DEEPSEEK_V2_CHAT = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}"
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
# V2's own cases: a system message between turns (written where it stands), responses opening with punctuation, a
# digit, a line break or CJK, an empty one.
DEEPSEEK_V2_CONVERSATIONS = [
    [{"role": "user", "content": "a"}, {"role": "system", "content": "Be brief."}, {"role": "user", "content": "b"},
     {"role": "assistant", "content": "...ok"}],
    [{"role": "user", "content": "n?"}, {"role": "assistant", "content": "42 is it"}],
    [{"role": "user", "content": "x"}, {"role": "assistant", "content": "\nline"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "中文?"}, {"role": "assistant", "content": "中文。"}],
    [{"role": "user", "content": "say nothing"}, {"role": "assistant", "content": ""}],
]

# DeepSeek's own cases: system messages after the first (V3 joins them all, R1 keeps the last), an earlier
# answer with its reasoning (R1 keeps what follows </think>), a response that reasons.
DEEPSEEK_CONVERSATIONS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"}, {"role": "system", "content": "Be kind.\n"},
     {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}],
    [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "<think>\nadd them</think>\n\n5"},
     {"role": "user", "content": "and 2+4?"}, {"role": "assistant", "content": "Adding.\n</think>\n\n6"}],
]


def r1_chat_cases(tok, out, bos, eos):
    """chat_cases_deepseek_r1.json: R1's prompt ids from transformers' apply_chat_template with the
    generation prompt (its think block opened); the response is what the model writes after it -- the
    reasoning, </think> and the answer as `tokenizers` encodes the text (</think> the added token), then
    EOS. (The template's whole conversation is no oracle for it: R1's template writes an answer without its
    reasoning and without the generation prompt's <think>.)"""
    reasoning = [{"role": "user", "content": "What is 2+2?"},
                 {"role": "assistant", "content": "Two and two.\n</think>\n\n4"}]
    chat_cases(tok, out, DEEPSEEK_R1_CHAT, bos, eos, "chat_cases_deepseek_r1.json", more=DEEPSEEK_CONVERSATIONS,
               conversations=[reasoning, CONVERSATIONS[1]],
               response=lambda m: tok.encode(m["content"], add_special_tokens=False).ids + [tok.token_to_id(eos)])


# LLaMA-Factory's alpaca template as its Template._get_jinja_template writes it (the tokenizer's chat template after
# training with template=alpaca), here with <|eot_id|> as the tokenizer's EOS: Stanford Alpaca's preamble as the
# default system message -- a conversation's own system message instead of it, as it is --, "### Instruction:\n"
# before a user's text and "\n\n### Response:\n" after it, EOS and "\n\n" after an assistant's.
ALPACA_CHAT = (
    "{% set system_message = 'Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\\n\\n' %}"
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% endif %}"
    "{% if system_message is defined %}{{ system_message }}{% endif %}"
    "{% for message in loop_messages %}{% set content = message['content'] %}"
    "{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + content + '\\n\\n### Response:\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ content + '<|eot_id|>' + '\\n\\n' }}{% endif %}{% endfor %}")
# Alpaca's own cases: an instruction with its input on the next line (spin's Alpaca records, as LLaMA-Factory joins
# them), a response that opens with a space.
ALPACA_CONVERSATIONS = [
    [{"role": "user", "content": "Translate to French.\nGood morning"}, {"role": "assistant", "content": "Bonjour"}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": " Blue, or red."}],
]

# GLM-4.5's and GLM-4.6's chat template (GLM-4.6's chat_template.jinja) without its tools, tool-call and tool-response
# branches: [gMASK]<sop>, then <|system|>, <|user|> and <|assistant|> turns, a user's text followed by /nothink and
# an assistant's by an empty think block when thinking is off (enable_thinking=False), an earlier answer's reasoning
# dropped.
GLM45_CHAT = (
    "[gMASK]<sop>\n"
    "{%- macro visible_text(content) -%}\n"
    "    {%- if content is string -%}\n        {{- content }}\n"
    "    {%- elif content is iterable and content is not mapping -%}\n"
    "        {%- for item in content -%}\n"
    "            {%- if item is mapping and item.type == 'text' -%}\n                {{- item.text }}\n"
    "            {%- elif item is string -%}\n                {{- item }}\n            {%- endif -%}\n"
    "        {%- endfor -%}\n    {%- else -%}\n        {{- content }}\n    {%- endif -%}\n{%- endmacro -%}\n"
    "{%- set ns = namespace(last_user_index=-1) %}\n"
    "{%- for m in messages %}\n    {%- if m.role == 'user' %}\n        {% set ns.last_user_index = loop.index0 -%}\n"
    "    {%- endif %}\n{%- endfor %}\n"
    "{% for m in messages %}\n"
    "{%- if m.role == 'user' -%}<|user|>\n"
    "{{ visible_text(m.content) }}\n"
    "{{- '/nothink' if (enable_thinking is defined and not enable_thinking and not visible_text(m.content).endswith("
    "\"/nothink\")) else '' -}}\n"
    "{%- elif m.role == 'assistant' -%}\n<|assistant|>\n"
    "{%- set reasoning_content = '' %}\n"
    "{%- set content = visible_text(m.content) %}\n"
    "{%- if m.reasoning_content is string %}\n    {%- set reasoning_content = m.reasoning_content %}\n"
    "{%- else %}\n    {%- if '</think>' in content %}\n"
    "        {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1]"
    ".lstrip('\\n') %}\n"
    "        {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n"
    "    {%- endif %}\n{%- endif %}\n"
    "{%- if loop.index0 > ns.last_user_index and reasoning_content -%}\n"
    "{{ '\\n<think>' + reasoning_content.strip() +  '</think>'}}\n"
    "{%- else -%}\n{{ '\\n<think></think>' }}\n{%- endif -%}\n"
    "{%- if content.strip() -%}\n{{ '\\n' + content.strip() }}\n{%- endif -%}\n"
    "{%- elif m.role == 'system' -%}\n<|system|>\n{{ visible_text(m.content) }}\n"
    "{%- endif -%}\n{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    <|assistant|>{{- '\\n<think></think>' if (enable_thinking is defined and not enable_thinking) else '' -}}\n"
    "{%- endif -%}")

# GLM's own cases: a user text already ending with /nothink (not doubled), an earlier answer with its reasoning (dropped:
# its think block empty) and text around it, a response with whitespace around it and one that is whitespace alone.
GLM45_CONVERSATIONS = [
    [{"role": "user", "content": "2+3? /nothink"}, {"role": "assistant", "content": "<think>\nadd them</think>\n\n5"},
     {"role": "user", "content": "and 2+4?"}, {"role": "assistant", "content": "\n  6  \n"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say nothing."},
     {"role": "assistant", "content": " \n "}],
]


def glm45_chat_cases(tok, out):
    """chat_cases.json for GLM-4.5 with thinking off: the prompt's ids from transformers' apply_chat_template with the
    generation prompt; the response's, what the template writes after that prompt up to and including the next
    user turn's <|user|> (the token that ends an answer: GLM's turns have no end marker of their own, and its
    generation config stops at <|user|>)."""
    from transformers import PreTrainedTokenizerFast
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    fast.chat_template = GLM45_CHAT
    user = tok.token_to_id("<|user|>")
    cases = []
    for conv in CONVERSATIONS + GLM45_CONVERSATIONS:
        prompt = fast.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=True, enable_thinking=False)
        whole = fast.apply_chat_template(conv + [{"role": "user", "content": "next"}], add_generation_prompt=False,
                                         tokenize=True, enable_thinking=False)
        assert whole[:len(prompt)] == prompt
        end = whole.index(user, len(prompt)) + 1
        cases.append({"messages": conv, "prompt_ids": prompt, "response_ids": whole[len(prompt):end]})
    with open(os.path.join(out, "chat_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)


def main():
    root = sys.argv[1]
    for kind in sys.argv[2:] or ("llama3", "gpt2", "qwen2", "qwen3", "llama31", "phi4", "o200k", "cohere", "granite", "smollm3",
                                      "deepseek_v3", "deepseek_v31", "deepseek_r1", "deepseek_llm", "deepseek_coder",
                                      "gpt_neox", "glm45"):
        build(kind, os.path.join(root, kind), random.Random(7))


if __name__ == "__main__":
    main()
