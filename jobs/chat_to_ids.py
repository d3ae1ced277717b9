#!/usr/bin/env python3
"""Conversations rendered by a model's own chat template into spin's token-id records.

spin renders prompts with its own implementations of the common chat formats (docs/spin.md) and
refuses the formats it does not implement -- OLMo 3's, Phi-3's -- rather than
approximate them. For those (or to train on exactly what a tokenizer's template writes), this
tool runs the template once, at data-preparation time, with Hugging Face transformers (a tool's
dependency; spin itself never runs Python), and writes the token-id shape spin reads as it is:

    {"prompt": [ids], "response": [ids]}

Each record's conversation is every message; the last must be the assistant's, the ground truth.
prompt = apply_chat_template(all but the last, add_generation_prompt=True); the response is what
the whole conversation's rendering adds to that prompt, cut after its first stop token -- the
tokenizer's EOS and config.json's / generation_config.json's eos_token_id, the ids spin's
generation stops at -- so that the real responses end as the generated ones do (what a template
writes after the turn's end, a newline say, is dropped). A template whose rendering of the
conversation does not begin with its rendering of the prompt is refused for that record.

Input shapes (as spin reads them, docs/spin.md "Data"): {"messages": [...]}, SPIN data sets'
{"real": [...]}, {"chosen": [...]} (with an explicit "prompt", TRL's: "chosen" and "rejected" its
completions), NeMo's {"system", "conversations": [{"from", "value"}]} with NeMo's or ShareGPT's
speakers, TRL's {"prompt", "completion"} (text or messages: the conversation is prompt + completion),
Alpaca's {"instruction", "input", "output"} (Dolly's "context" and "response", LLaMA-Factory's
"system" and "history"; one user message, the instruction and, after a newline, a non-blank input),
and text pairs {"prompt": str, "response": str} (one user turn). A SPIN data set's "generated"
conversation (a preference set's "rejected") becomes "generated" ids, rendered and cut alike, for
spin.generations = data; its messages before the last must be the real conversation's. --system TEXT gives conversations without a
system message that one -- for templates that otherwise write a default dated the day they run
(Granite 3.1's, SmolLM3's), so that every run of the tool writes the same tokens.

    python3 jobs/chat_to_ids.py --model MODEL_DIR --input chat.jsonl --output ids.jsonl \\
        [--system "You are a helpful assistant."] [--chat-template FILE]

--input may also be one JSON array of records (its first character "["), JSONL or an array
gzip- or Zstandard-compressed (told by its magic bytes, as spin tells it; Zstandard read with the
zstandard package), or Parquet as the Hugging Face Hub serves data sets (told by its "PAR1" magic;
read with pyarrow, then a dependency of the tool too), each row a record, a null column left out. Errors name the input file
and line (an array's element, a Parquet file's row, from 1) and exit 1.
"""
import argparse
import gzip
import io
import json
import os
import sys


def fail(message):
    sys.exit("chat_to_ids: error: " + message)


def checked(messages, where, system):
    """`messages` as a conversation ending with the assistant's response, `system` first where it
    has no system message."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in messages):
        fail("%s: messages must be a list of {\"role\", \"content\"} objects" % where)
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        fail("%s: the last message must be the assistant's (the response), after at least one other" % where)
    if system is not None and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}] + messages
    return messages


def as_messages(value, role):
    """Text as one message of `role`, or a list of messages as it is."""
    return [{"role": role, "content": value}] if isinstance(value, str) else value


def explicit_prompt(record):
    """Whether a chosen/rejected record gives its prompt apart (TRL's explicit prompt): its "chosen"
    text or starting with the assistant's message, not a whole conversation."""
    chosen = record.get("chosen")
    return "prompt" in record and (isinstance(chosen, str) or (
        isinstance(chosen, list) and chosen and isinstance(chosen[0], dict) and chosen[0].get("role") == "assistant"))


def alpaca_messages(record, where):
    """An Alpaca (Dolly, LLaMA-Factory) record's conversation: system, history, then the instruction and
    its non-blank input joined by a newline as one user message, the output the assistant's."""
    messages = [{"role": "system", "content": record["system"]}] if (record.get("system") or "").strip() else []
    for turn in record.get("history") or []:
        if not (isinstance(turn, list) and len(turn) == 2):
            fail("%s: every \"history\" entry must be an [instruction, response] pair" % where)
        messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    user = record["instruction"]
    extra = record.get("input", record.get("context")) or ""
    if extra.strip():
        user += "\n" + extra
    answer = record.get("output", record.get("response"))
    if answer is None:
        fail("%s: an instruction record needs its answer, \"output\" (Alpaca) or \"response\" (Dolly)" % where)
    return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


# NeMo's and ShareGPT's speakers as message roles.
SPEAKERS = {"User": "user", "human": "user", "Assistant": "assistant", "gpt": "assistant", "system": "system"}


def conversation(record, where, system):
    """The record's messages, [{"role", "content"}, ...], with `system` first where it has none."""
    if not isinstance(record, dict):
        fail("%s: expected a JSON object" % where)
    if "messages" in record or "real" in record:
        messages = record.get("messages", record.get("real"))
    elif "chosen" in record:
        messages = as_messages(record["prompt"], "user") + as_messages(record["chosen"], "assistant") \
            if explicit_prompt(record) else record["chosen"]
    elif "conversations" in record:  # NeMo's chat shape, ShareGPT's speakers too
        messages = [{"role": "system", "content": record["system"]}] if record.get("system") else []
        for turn in record["conversations"]:
            if turn.get("from") not in SPEAKERS:
                fail("%s: unknown speaker %r (NeMo's User or Assistant, ShareGPT's human, gpt or system)"
                     % (where, turn.get("from")))
            messages.append({"role": SPEAKERS[turn["from"]], "content": turn.get("value", "")})
    elif "completion" in record and "prompt" in record:  # TRL's prompt-completion
        messages = as_messages(record["prompt"], "user") + as_messages(record["completion"], "assistant")
    elif "instruction" in record:
        messages = alpaca_messages(record, where)
    elif isinstance(record.get("prompt"), str) and isinstance(record.get("response"), str):
        messages = [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["response"]}]
    else:
        fail("%s: no conversation (messages, real, chosen, conversations, a prompt and completion, an instruction "
             "and output, or a text prompt and response)" % where)
    return checked(messages, where, system)


def generated_conversation(record, real, where, system):
    """A SPIN data set's "generated" (a preference set's "rejected") conversation, or None; its
    prompt must be the real conversation's."""
    key = "generated" if "generated" in record else "rejected" if "rejected" in record else None
    if key is None:
        return None
    given = record[key]
    if key == "rejected" and explicit_prompt(record):
        given = as_messages(record["prompt"], "user") + as_messages(given, "assistant")
    messages = checked(given, where, system)
    if messages[:-1] != real[:-1]:
        fail("%s: the %s conversation's messages before its last are not the real one's" % (where, key))
    return messages


def response_ids(tokenizer, messages, prompt, stops, where):
    """What the conversation's rendering adds to the prompt's ids, cut after its first stop id; and
    whether anything was cut."""
    whole = list(tokenizer.apply_chat_template(messages, tokenize=True))
    if whole[:len(prompt)] != prompt:
        fail("%s: the template's rendering of the conversation does not begin with its rendering of the prompt "
             "(with the generation prompt), so the response is not what follows it" % where)
    ids = whole[len(prompt):]
    end = next((i + 1 for i, t in enumerate(ids) if t in stops), len(ids))
    if end == 0:
        fail("%s: the response renders to no tokens" % where)
    return ids[:end], end < len(ids)


def stop_ids(model_dir, tokenizer):
    """The ids spin's generation stops at: the tokenizer's EOS, config.json's and
    generation_config.json's eos_token_id (an id or a list)."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    for name in ("config.json", "generation_config.json"):
        path = os.path.join(model_dir, name)
        if not os.path.exists(path):
            continue
        value = json.load(open(path)).get("eos_token_id")
        ids.update(value if isinstance(value, list) else [] if value is None else [value])
    return ids


def open_binary(path):
    """The file's bytes, decompressed where it is gzip- or Zstandard-compressed (told by its magic bytes,
    as spin tells it)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard  # a dependency of the tool for Zstandard input only
        except ImportError:
            fail("%s: reading Zstandard-compressed input needs zstandard (pip install zstandard)" % path)
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True)
    return open(path, "rb")


def open_text(path):
    return io.TextIOWrapper(open_binary(path), encoding="utf-8")


def records(path):
    """(where, record) for each record of a JSONL file or JSON array (either compressed or not) or a Parquet file."""
    with open_binary(path) as f:
        head = f.read(4096)
    if head.lstrip()[:1] == b"[":  # one JSON array of records (ShareGPT's dumps), as spin reads it
        try:
            array = json.load(open_text(path))
        except json.JSONDecodeError as e:
            fail("%s: not valid JSON: %s" % (path, e))
        for number, record in enumerate(array, 1):
            if not isinstance(record, dict):
                fail("%s:%d: expected a JSON object" % (path, number))
            yield "%s:%d" % (path, number), record
        return
    parquet = head[:4] == b"PAR1"
    if not parquet:
        with open_text(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = "%s:%d" % (path, number)
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as e:
                    fail("%s: not valid JSON: %s" % (where, e))
        return
    try:
        import pyarrow.parquet as pq  # a dependency of the tool for Parquet input only
    except ImportError:
        fail("%s: reading Parquet needs pyarrow (pip install pyarrow)" % path)
    number = 0
    for batch in pq.ParquetFile(path).iter_batches():
        for row in batch.to_pylist():
            number += 1
            yield "%s:%d" % (path, number), {k: v for k, v in row.items() if v is not None}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face model directory (its tokenizer and chat template)")
    p.add_argument("--input", required=True, help="JSONL, a JSON array or Parquet of conversations")
    p.add_argument("--output", required=True, help="JSONL of {\"prompt\": [ids], \"response\": [ids]}")
    p.add_argument("--system", help="system message for conversations without one")
    p.add_argument("--chat-template", help="a Jinja chat template file instead of the tokenizer's")
    args = p.parse_args()

    from transformers import AutoTokenizer  # a tool's dependency, imported once the arguments are read
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    except (OSError, ValueError, TypeError) as e:
        fail("%s: no tokenizer transformers can load (%s)" % (args.model, e))
    if args.chat_template:
        tokenizer.chat_template = open(args.chat_template).read()
    if not tokenizer.chat_template:
        fail("%s: the tokenizer has no chat template (give --chat-template FILE)" % args.model)
    stops = stop_ids(args.model, tokenizer)
    cut = 0
    rendered = []
    for where, record in records(args.input):
        messages = conversation(record, where, args.system)
        prompt = list(tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True))
        out = {"prompt": prompt}
        generated = generated_conversation(record, messages, where, args.system)
        for key, conv in (("response", messages), ("generated", generated)):
            if conv is not None:
                out[key], dropped = response_ids(tokenizer, conv, prompt, stops, where)
                cut += dropped
        rendered.append(out)
    with open(args.output, "w") as out:
        for r in rendered:
            out.write(json.dumps(r) + "\n")
    print("chat_to_ids: %d records -> %s (%d responses cut after their stop token; stop ids %s)"
          % (len(rendered), args.output, cut, sorted(stops)))


if __name__ == "__main__":
    main()
