#!/usr/bin/env python3
"""Writes tests/data/gemma_spm/: a tiny SentencePiece BPE model in Gemma's layout and the ids
transformers' apply_chat_template gives with Gemma's chat template (chat_cases.json); with
--gemma3, tests/data/gemma3_spm/: the same with Gemma 3's <start_of_image> piece beside the turn
markers (what spin's auto template recognises Gemma 3's tokenizer by) and google/gemma-3-1b-it's
chat template, which takes a system message (written before the first user message's text,
followed by a blank line).

Gemma's tokenizer.model: <pad> 0, <eos> 1, <bos> 2, <unk> 3, <start_of_turn> and <end_of_turn>
as user-defined pieces, byte fallback, digits split, no dummy prefix, the identity normalizer
(newlines and runs of spaces kept). The tiny model is trained the same way on a synthetic corpus;
the oracle is transformers' GemmaTokenizer on it with the two turn markers as special tokens (as
Gemma's tokenizer_config.json has them) and google/gemma-7b-it's chat template.

    build/oracle-venv/bin/pip install sentencepiece   # a fixture tool only
    build/oracle-venv/bin/python tests/data/make_gemma_spm_fixture.py tests/data/gemma_spm
    build/oracle-venv/bin/python tests/data/make_gemma_spm_fixture.py --gemma3 tests/data/gemma3_spm
"""
import io
import json
import os
import random
import sys

import sentencepiece as spm
from transformers import GemmaTokenizer

GEMMA_CHAT = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
              "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
              "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
              "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set "
              "role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role "
              "+ '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt "
              "%}{{'<start_of_turn>model\\n'}}{% endif %}")

# google/gemma-3-1b-it's tokenizer_config.json chat_template (its image branch unused here).
GEMMA3_CHAT = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n")

WORDS = ("the quick brown fox jumps over a lazy dog what is user model hello there first one two lines "
         "answer question please explain why how many numbers add sum naive").split()


def corpus(rng, vocabulary=WORDS, openers=()):
    """3,000 synthetic lines of `vocabulary`'s words, some ending in a number, some (with
    `openers`) opened by one of them (make_llama_spm_fixture.py's [INST] and kin)."""
    for _ in range(3000):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(3, 12))]
        if rng.random() < 0.3:
            words.append(str(rng.randint(0, 99999)))
        if openers and rng.random() < 0.3:
            words.insert(0, rng.choice(openers))
        sep = rng.choice([" ", " ", " ", "\n", "  "])
        yield sep.join(words) + rng.choice(["", ".", "?", "!\n"])


def main():
    gemma3 = sys.argv[1] == "--gemma3"
    out = sys.argv[-1]
    specials = ["<start_of_turn>", "<end_of_turn>"] + (["<start_of_image>"] if gemma3 else [])
    os.makedirs(out, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=corpus(random.Random(5)), model_writer=model, vocab_size=400, model_type="bpe",
        character_coverage=1.0, byte_fallback=True, split_digits=True, add_dummy_prefix=False,
        normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=specials, minloglevel=2)
    path = os.path.join(out, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(model.getvalue())
    tok = GemmaTokenizer(vocab_file=path, additional_special_tokens=specials)
    tok.chat_template = GEMMA3_CHAT if gemma3 else GEMMA_CHAT
    conversations = [
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "  Hello there!  \n"}, {"role": "assistant", "content": " Hi.\n\n"}],
        [{"role": "user", "content": "first"}, {"role": "assistant", "content": "one"},
         {"role": "user", "content": "naïve 日本 🙂 12345"}, {"role": "assistant", "content": "two\nlines"}],
    ]
    if gemma3:  # its system message, before the first user text (itself not trimmed), over two turns
        conversations.append([{"role": "system", "content": " Be brief. "}, {"role": "user", "content": " why?"},
                              {"role": "assistant", "content": "because"}, {"role": "user", "content": "how"},
                              {"role": "assistant", "content": "so"}])
    cases = []
    for conv in conversations:
        prompt = tok.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=True)
        whole = tok.apply_chat_template(conv, add_generation_prompt=False, tokenize=True)
        assert whole[:len(prompt)] == prompt, (prompt, whole)
        cases.append({"messages": conv, "prompt_ids": prompt, "response_ids": whole[len(prompt):]})
    with open(os.path.join(out, "chat_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    print("%s: vocabulary %d, special ids %s, %d chat cases" % (
        os.path.basename(out), tok.vocab_size, tok.convert_tokens_to_ids(specials), len(cases)))
    for c in cases:
        print(tok.convert_ids_to_tokens(c["prompt_ids"]), tok.convert_ids_to_tokens(c["response_ids"]))


if __name__ == "__main__":
    main()
