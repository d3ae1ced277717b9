"""What the spin train end-to-end scripts share: a tiny byte-level model with a small text task and
its configuration, the metrics a run writes, and those metrics without the process's own timings."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def setup(tmp, layers=2, hidden=32, heads=4, kv_heads=2, positions=48):
    """A tiny byte-level model (of `layers` layers, an MLP twice `hidden` wide) and a small text task."""
    subprocess.run([sys.executable, os.path.join(ROOT, "jobs", "demo", "make_task.py"), os.path.join(tmp, "data"),
                    "--train", "48", "--validation", "8", "--test", "4"], check=True, capture_output=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "data", "make_tiny_model.py"), os.path.join(tmp, "model"),
                    "--vocab", "259", "--hidden", str(hidden), "--intermediate", str(2 * hidden),
                    "--layers", str(layers), "--heads", str(heads), "--kv-heads", str(kv_heads),
                    "--max-positions", str(positions), "--byte-tokenizer"], check=True, capture_output=True)
    config = os.path.join(tmp, "spin.ini")
    with open(config, "w") as f:
        f.write("""[model]
path = %(tmp)s/model
[data]
train = %(tmp)s/data/train.jsonl
validation = %(tmp)s/data/validation.jsonl
template = plain
[spin]
kl_penalty = 1.0, 2.0
max_iterations = 2
global_batch_size = 8
micro_batch_size = 2
rollout_batch_size = 3
[optim]
lr = 3e-3
[sampling]
max_new_tokens = 10
top_p = 0.95
[checkpoint]
save_dir = %(tmp)s/out
""" % {"tmp": tmp})
    return config


def metrics(path):
    return [json.loads(l) for l in open(path)]


# Fields of the process's own work, not of the run: times and rates, and generated_tokens (a
# process resumed past the first epoch of spin.reuse_generations without the cache replays it).
TIMINGS = {"tokens_per_second", "tflops_per_rank", "mfu", "generation_tokens_per_second", "seconds_generation",
           "seconds_reference", "seconds_training", "generated_tokens"}


def untimed(path):
    return [{k: v for k, v in m.items() if k not in TIMINGS} for m in metrics(path)]
