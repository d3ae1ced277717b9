#!/usr/bin/env python3
"""Writes tests/data/llama_spm/: a tiny SentencePiece BPE model in Llama 2's (and Mistral 7B
v0.1 / v0.2's) layout and the ids their chat formats give (chat_cases_llama2.json,
chat_cases_mistral.json); with a second folder, tests/data/mistral_v3_spm/: the same in Mistral 7B
v0.3's layout ([INST] and [/INST] control tokens) and mistral-common's v3 instruct ids; with a
third, tests/data/mistral_v7_spm/: in Mistral Large 2411's (tokenizer.model.v7, [SYSTEM_PROMPT]
and [/SYSTEM_PROMPT] too) and mistral-common's v7 instruct ids.

Llama 2's tokenizer.model: <unk> 0, <s> 1, </s> 2, byte fallback, digits split, a dummy prefix
(each encoded text begins with "▁"), the identity normalizer (runs of spaces kept). The tiny model
is trained the same way on a synthetic corpus. Oracles:
  llama2   transformers' LlamaTokenizer (legacy: every text between special tokens encoded with
           the dummy prefix, as Meta's own chat_completion and Llama 2's tokenizer.json do) with
           meta-llama/Llama-2-7b-chat-hf's chat template;
  mistral  mistral-common's InstructTokenizerV1 (Mistral's reference for its v1 models, which
           encodes each message on its own, the assistant's text with the dummy prefix too --
           where transformers' Jinja templates for Mistral v0.1/v0.2 differ from it).

    python3 -m venv /tmp/fixture && /tmp/fixture/bin/pip install sentencepiece transformers==4.40.2 \\
        jinja2 protobuf mistral-common   # fixture tools only (mistral-common 1.13 made the committed one)
    /tmp/fixture/bin/python tests/data/make_llama_spm_fixture.py tests/data/llama_spm tests/data/mistral_v3_spm \
        tests/data/mistral_v7_spm
"""
import io
import json
import os
import random
import sys

import sentencepiece as spm
from transformers import LlamaTokenizer
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.validator import ValidationMode
from mistral_common.tokens.tokenizers.base import TokenizerVersion
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from make_gemma_spm_fixture import corpus

LLAMA2_CHAT = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message "
               "= messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false "
               "%}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 "
               "== 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
               "{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
               "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = "
               "message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
               "content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + "
               "' ' + eos_token }}{% endif %}{% endfor %}")

WORDS = ("the quick brown fox jumps over a lazy dog what is user assistant hello there first one two lines "
         "answer question please explain why how many numbers add sum naive INST SYS you are helpful").split()
OPENERS = ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"]


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "  Hello there!  \n"},
     {"role": "assistant", "content": " Hi.\n\n"}],
    [{"role": "user", "content": "first"}, {"role": "assistant", "content": "one"},
     {"role": "user", "content": "naïve 日本 🙂 12345"}, {"role": "assistant", "content": "two\nlines"}],
]


def split_cases(prompt_of, whole_of, conversations=CONVERSATIONS):
    cases = []
    for conv in conversations:
        prompt, whole = prompt_of(conv[:-1]), whole_of(conv)
        assert whole[:len(prompt)] == prompt, (prompt, whole)
        cases.append({"messages": conv, "prompt_ids": prompt, "response_ids": whole[len(prompt):]})
    return cases


def mistral_ids(tokenizer, conv):
    kinds = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
    request = ChatCompletionRequest(messages=[kinds[m["role"]](content=m["content"]) for m in conv])
    return tokenizer.encode_chat_completion(request).tokens


def train_model(out, **extra):
    """Trains the tiny model in Llama 2's layout into out/tokenizer.model (`extra`: more trainer
    options) and returns its path."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=corpus(random.Random(7), WORDS, OPENERS), model_writer=model, vocab_size=400,
        model_type="bpe", character_coverage=1.0, byte_fallback=True, split_digits=True, add_dummy_prefix=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2, **extra)
    path = os.path.join(out, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(model.getvalue())
    return path


MISTRAL_V3_CONTROL = ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                      "[TOOL_RESULTS]", "[/TOOL_RESULTS]"]
# Mistral Large 2411's (mistral-common's mistral_instruct_tokenizer_241114.model.v7): ids 3-18.
MISTRAL_V7_CONTROL = MISTRAL_V3_CONTROL + ["[IMG]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[IMG_BREAK]", "[IMG_END]",
                                           "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"]


def mistral_spm(out, version="v3"):
    """mistral_v3_spm/: the same corpus trained in Mistral 7B v0.3's layout (its control tokens at
    ids 3-9, as [INST] 3 and [/INST] 4 are there) and mistral-common's v3 instruct tokenizer's ids;
    with `version` v7, mistral_v7_spm/: in Mistral Large 2411's layout (control tokens 3-18,
    [SYSTEM_PROMPT] 16), written as tokenizer.model.v7 -- the name Mistral gives the file, and the
    one spin reads the version from -- with mistral-common's v7 ids."""
    os.makedirs(out, exist_ok=True)
    path = train_model(out, control_symbols=MISTRAL_V7_CONTROL if version == "v7" else MISTRAL_V3_CONTROL)
    versioned = os.path.join(out, "tokenizer.model." + version)  # mistral-common reads the version off the name
    with open(path, "rb") as f, open(versioned, "wb") as g:
        g.write(f.read())
    serving = MistralTokenizer.from_file(versioned)
    finetuning = MistralTokenizer.from_file(versioned, mode=ValidationMode.finetuning)
    assert serving.instruct_tokenizer.tokenizer.version == TokenizerVersion(version)
    os.remove(versioned if version == "v3" else path)
    # v3 puts the system message before the last user message's text: a conversation of two turns
    # with one shows where.
    system_late = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"},
                   {"role": "assistant", "content": "one  "}, {"role": "user", "content": "second"},
                   {"role": "assistant", "content": "two"}]
    cases = split_cases(lambda c: mistral_ids(serving, c), lambda c: mistral_ids(finetuning, c),
                        CONVERSATIONS + [system_late])
    with open(os.path.join(out, "chat_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    sp = spm.SentencePieceProcessor(model_file=path if version == "v3" else versioned)
    print("mistral %s: %d chat cases, control ids %s" % (version, len(cases), [sp.piece_to_id(p) for p in MISTRAL_V7_CONTROL]))
    for c in cases:
        print([sp.id_to_piece(i) for i in c["prompt_ids"]], [sp.id_to_piece(i) for i in c["response_ids"]])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    if len(sys.argv) > 2:
        mistral_spm(sys.argv[2])
    if len(sys.argv) > 3:
        mistral_spm(sys.argv[3], "v7")
    path = train_model(out)

    llama = LlamaTokenizer(vocab_file=path, legacy=True)
    llama.chat_template = LLAMA2_CHAT
    llama2 = split_cases(lambda c: llama.apply_chat_template(c, tokenize=True),
                         lambda c: llama.apply_chat_template(c, tokenize=True))
    # A plain .model: the v1 instruct format; a prompt is served (last message the user's), a
    # whole conversation is fine-tuning data.
    serving = MistralTokenizer.from_file(path)
    finetuning = MistralTokenizer.from_file(path, mode=ValidationMode.finetuning)
    assert serving.instruct_tokenizer.tokenizer.version == TokenizerVersion.v1
    mistral_cases = split_cases(lambda c: mistral_ids(serving, c), lambda c: mistral_ids(finetuning, c))
    for name, cases in (("llama2", llama2), ("mistral", mistral_cases)):
        with open(os.path.join(out, "chat_cases_%s.json" % name), "w") as f:
            json.dump(cases, f, ensure_ascii=False, indent=0)
        print("%s: %d chat cases" % (name, len(cases)))
        for c in cases:
            print(llama.convert_ids_to_tokens(c["prompt_ids"]), llama.convert_ids_to_tokens(c["response_ids"]))


if __name__ == "__main__":
    main()
