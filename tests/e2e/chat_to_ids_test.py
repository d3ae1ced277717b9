#!/usr/bin/env python3
"""jobs/chat_to_ids.py against spin's own templates: conversations rendered by a tokenizer's chat
template (transformers' apply_chat_template: Llama 3 Instruct's on the llama3 test tokenizer,
ChatML on the qwen2 one, the Tulu format -- OLMo 2 Instruct's, Tulu 3's, the first OLMo Instruct's
with its EOS first and with or without a system turn -- on the llama3 one) into
token-id records are what spin trains on when it renders the same conversations with its llama3 /
chatml / tulu templates (OLMo 2's picked by auto) -- every prompt's and response's ids, and a SPIN
data set's generated response's, as `spin data` shows them; ChatML's responses cut after
<|im_end|> (its newline dropped), as spin's end. A --system message is given to conversations
without one. A conversation ending with a user turn, a malformed line, a generated response to
another prompt and a template whose conversation does not begin with its prompt are refused
naming the file and line. Parquet and JSON-array input (plain or gzip-compressed) give the ids of
the same records as JSONL; ShareGPT's, TRL's prompt-completion, explicit-prompt preference and
Alpaca records of the same conversations give the chat records' ids, from the tool and from spin. Needs transformers and pyarrow (the tool's dependencies)."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from e2e_common import ROOT, TULU, hf_tokenizer_model  # noqa: E402
from make_hf_bpe_fixtures import CHATML, LLAMA3_CHAT  # noqa: E402

TOOL = os.path.join(ROOT, "jobs", "chat_to_ids.py")
# The first OLMo Instruct's chat template (OLMo-7B-Instruct's: no system turn; the same with one, as
# later OLMo 1 recipes write it), as its tokenizer_config.json has it: EOS first, real newlines between the tags (Jinja's
# trim_blocks drops those after a block tag, keeps those after an expression), "\\n" in the strings.
OLMO_SYSTEM = "{% if message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] }}\n{% el"
OLMO = ("{{ eos_token }}{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + "
        "message['content'] }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + "
        "message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n"
        "{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
# The template fixtures' conversations (tests/data/make_hf_bpe_fixtures.py): no system message, one
# with surrounding whitespace, two turns with non-ASCII text.
CONVERSATIONS = [c["messages"] for c in json.load(open(os.path.join(ROOT, "tests", "data", "hf_bpe", "llama3",
                                                                     "chat_cases.json"), encoding="utf-8"))]


def tool(*args, ok=True):
    r = subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True, timeout=120)
    if ok and r.returncode != 0:
        sys.exit("FAIL: chat_to_ids %s\n%s%s" % (" ".join(args), r.stdout, r.stderr))
    return r


def shown_ids(spin, model, data, template, generations=False):
    """Every example's prompt and response as spin data prints them: the count of ids, the first 48
    ids and the decoded text, every special token written out."""
    cmd = [spin, "data", "--model", model, "--data", data, "--show", "10"] + (["--template", template] if template else [])
    cmd += ["--generations"] if generations else []
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        sys.exit("FAIL: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    shown = re.findall(r"^  (prompt|response|generated) +(\d+) tokens \[([\d .]*)\]\n(.*)$", r.stdout, re.M)
    assert shown, r.stdout
    return shown


def check(args, tmp, kind, template, chat_template, name=None):
    """`name` (default `kind`): the model's folder and the files' prefix."""
    model = hf_tokenizer_model(os.path.join(tmp, name or kind), kind=kind)
    kind = name or kind
    config = json.load(open(os.path.join(model, "tokenizer_config.json")))
    # As Llama 3's and Qwen2's own tokenizer_config.json have them: the fast tokenizer's class, the
    # special tokens as strings, the template.
    config.update({"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": chat_template})
    for key in ("bos_token", "eos_token"):
        if isinstance(config.get(key), dict):
            config[key] = config[key]["content"]
    json.dump(config, open(os.path.join(model, "tokenizer_config.json"), "w"))
    chat, ids = os.path.join(tmp, kind + "-chat.jsonl"), os.path.join(tmp, kind + "-ids.jsonl")
    with open(chat, "w") as f:
        for c in CONVERSATIONS:
            f.write(json.dumps({"messages": c}, ensure_ascii=False) + "\n")
    tool("--model", model, "--input", chat, "--output", ids)
    want, got = shown_ids(args.spin, model, chat, template), shown_ids(args.spin, model, ids, None)
    assert len(want) == 2 * len(CONVERSATIONS) and got == want, (got, want)
    # --system: the first conversation (no system message) gets one, the second keeps its own.
    system, with_system = os.path.join(tmp, kind + "-system.jsonl"), os.path.join(tmp, kind + "-system-ids.jsonl")
    with open(system, "w") as f:
        f.write(json.dumps({"messages": [{"role": "system", "content": "Be brief."}] + CONVERSATIONS[0]}) + "\n")
        f.write(json.dumps({"messages": CONVERSATIONS[1]}, ensure_ascii=False) + "\n")
    tool("--model", model, "--input", chat, "--output", with_system, "--system", "Be brief.")
    want = shown_ids(args.spin, model, system, template)
    assert shown_ids(args.spin, model, with_system, None)[:4] == want, "--system"
    # SPIN data sets' generated responses (spin.generations = data): rendered and cut as the real ones.
    spin_data, spin_ids = os.path.join(tmp, kind + "-spin.jsonl"), os.path.join(tmp, kind + "-spin-ids.jsonl")
    with open(spin_data, "w") as f:
        for c in CONVERSATIONS:
            generated = c[:-1] + [{"role": "assistant", "content": "not " + c[-1]["content"]}]
            f.write(json.dumps({"real": c, "generated": generated}, ensure_ascii=False) + "\n")
    tool("--model", model, "--input", spin_data, "--output", spin_ids)
    want = shown_ids(args.spin, model, spin_data, template, True)
    assert len(want) == 3 * len(CONVERSATIONS) and shown_ids(args.spin, model, spin_ids, None, True) == want, "generated"
    print("%s: %d conversations rendered by apply_chat_template = spin's %s template, ids for ids (SPIN data's "
          "generated responses too); --system applied where a conversation has none" % (kind, len(CONVERSATIONS),
                                                                                       template))
    return model, chat


def shapes(args, tmp, model, chat):
    """The same conversations as ShareGPT's, TRL's prompt-completion, explicit-prompt preference and
    Alpaca (history, instruction, output) records: the ids the chat records give, byte for byte."""
    want_ids = os.path.join(tmp, "shapes-want.jsonl")
    tool("--model", model, "--input", chat, "--output", want_ids)
    speaker = {"user": "human", "assistant": "gpt", "system": "system"}
    def alpaca(c):
        system = [m["content"] for m in c if m["role"] == "system"]
        c = [m for m in c if m["role"] != "system"]
        assert all(m["role"] == ("user", "assistant")[i % 2] for i, m in enumerate(c))
        return dict({"system": system[0]} if system else {},
                    history=[[c[i]["content"], c[i + 1]["content"]] for i in range(0, len(c) - 2, 2)],
                    instruction=c[-2]["content"], input="", output=c[-1]["content"])
    for name, shape in (("sharegpt", lambda c: {"conversations": [{"from": speaker[m["role"]], "value": m["content"]}
                                                                  for m in c]}),
                        ("trl", lambda c: {"prompt": c[:-1], "completion": c[-1:]}),
                        ("preference", lambda c: {"prompt": c[:-1], "chosen": c[-1:]}),
                        ("alpaca", alpaca)):
        data, ids = os.path.join(tmp, name + ".jsonl"), os.path.join(tmp, name + "-ids.jsonl")
        with open(data, "w") as f:
            f.writelines(json.dumps(shape(c), ensure_ascii=False) + "\n" for c in CONVERSATIONS)
        tool("--model", model, "--input", data, "--output", ids)
        assert open(ids).read() == open(want_ids).read(), name
        # spin reads the shape as the tool does: the ids it renders itself are the chat records' too.
        assert shown_ids(args.spin, model, data, "llama3") == shown_ids(args.spin, model, chat, "llama3"), name
    print("ShareGPT, TRL prompt-completion, explicit-prompt preference and Alpaca records: the chat records' ids, "
          "from the tool and from spin")


def refused(args, pattern):
    r = tool(*args, ok=False)
    errors = [l for l in r.stderr.splitlines() if l.startswith("chat_to_ids: error:")]
    assert r.returncode != 0 and len(errors) == 1 and re.search(pattern, errors[0]), (r.stdout, r.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spin", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="spin_chat_to_ids_") as tmp:
        model, chat = check(args, tmp, "llama3", "llama3", LLAMA3_CHAT)
        shapes(args, tmp, model, chat)
        check(args, tmp, "qwen2", "chatml", CHATML)
        # The Tulu format (open-instruct's template): Tulu 3's over Llama 3's tokens, named; OLMo 2
        # Instruct's (BOS first), which auto picks by its user turn.
        check(args, tmp, "llama3", "tulu", TULU, "tulu3")
        check(args, tmp, "llama3", "auto", "{{ bos_token }}" + TULU, "olmo2")
        # The first OLMo Instruct's (EOS first; without a system turn, then with one), auto.
        check(args, tmp, "llama3", "auto", OLMO, "olmo")
        check(args, tmp, "llama3", "auto", OLMO.replace("{% if message['role'] == 'user'",
                                                          OLMO_SYSTEM + "if message['role'] == 'user'"), "olmo-system")
        # Parquet input (the Hub's layout: SPIN_iter0's real and generated conversations): the records of the
        # same rows as JSONL, and an error naming the row.
        parquet = os.path.join(ROOT, "tests", "data", "parquet")
        array = os.path.join(tmp, "spin_iter.json")  # the same records as one JSON array
        with open(array, "w") as f:
            json.dump([json.loads(l) for l in open(os.path.join(parquet, "spin_iter.jsonl"), encoding="utf-8")], f)
        outputs = []
        gz_array = os.path.join(ROOT, "tests", "data", "codecs", "spin_iter.json.gz")  # the array gzip-compressed
        for name in (os.path.join(parquet, "spin_iter.parquet"), array, gz_array,
                     os.path.join(parquet, "spin_iter.jsonl")):
            outputs.append(os.path.join(tmp, "spin_iter_ids_%d.jsonl" % len(outputs)))
            tool("--model", model, "--input", name, "--output", outputs[-1])
        texts = [open(o).read() for o in outputs]
        assert all(t == texts[-1] for t in texts) and texts[-1].count("\n") == 12
        refused(["--model", model, "--input", os.path.join(parquet, "nested_types.parquet"), "--output",
                 os.path.join(tmp, "x")], r"nested_types\.parquet:1: ")
        print("Parquet and a JSON array, plain or gzip-compressed: SPIN_iter0-shaped records give the ids of the same "
              "records as JSONL; "
              "an error names the row")
        bad = os.path.join(tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps({"messages": CONVERSATIONS[0]}) + "\n")
            f.write(json.dumps({"messages": CONVERSATIONS[0][:1]}) + "\n")
        refused(["--model", model, "--input", bad, "--output", os.path.join(tmp, "x")],
                r"bad\.jsonl:2: the last message must be the assistant's")
        with open(bad, "w") as f:
            f.write("{\"messages\": [\n")
        refused(["--model", model, "--input", bad, "--output", os.path.join(tmp, "x")], r"bad\.jsonl:1: not valid JSON")
        with open(bad, "w") as f:  # a generated response to another prompt
            f.write(json.dumps({"real": CONVERSATIONS[0], "generated": CONVERSATIONS[2][2:]}, ensure_ascii=False) + "\n")
        refused(["--model", model, "--input", bad, "--output", os.path.join(tmp, "x")],
                r"bad\.jsonl:1: the generated conversation's messages before its last are not the real one's")
        # A template that writes the generation prompt differently from a finished turn's start.
        odd = os.path.join(tmp, "odd.jinja")
        with open(odd, "w") as f:
            f.write("{% for m in messages %}<|start_header_id|>{{ m['content'] }}<|eot_id|>{% endfor %}"
                    "{% if add_generation_prompt %}X{% endif %}")
        refused(["--model", model, "--input", chat, "--output", os.path.join(tmp, "x"), "--chat-template", odd],
                r"chat\.jsonl:1: the template's rendering of the conversation does not begin with")
        print("refused: a conversation ending with a user turn, a malformed line, a generated response to another "
              "prompt, a template whose conversation does not begin with its prompt (each naming file and line)")
    print("PASS")


if __name__ == "__main__":
    main()
