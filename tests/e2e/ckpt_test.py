#!/usr/bin/env python3
"""End-to-end checks of HDF5 checkpoints through `spin train` and `spin ckpt`, one case per
CTest test:

  resume    k steps + resume + the rest == one uninterrupted run, bitwise (metrics without
            timings, policy, reference and AdamW state), stopped mid-iteration and at an
            iteration's end, with a pipeline layout and with the distributed optimizer
  reshard   a checkpoint saved at TP 2 x PP 2 resumes at PP 2 x DP 2 (distributed optimizer)
            and at TP 2 x DP 2 to the uninterrupted run's results (1e-5); resharded offline
            by `spin ckpt reshard` it gives bitwise what resharding at load gives
  convert   export-hf / import-hf round trips byte for byte (f32), per model family; Gemma 3's
            and Mistral Small 3.1's multimodal checkpoints read for their language model (scored
            as the text model, exported as one, or with --multimodal-from as the multimodal
            model again); bf16 and
            sharded exports
            read back by an independent numpy parser; index.h5 and `merge` read by h5py as
            whole tensors; inspect and verify; training from an imported checkpoint
  fp8       block-scaled FP8 files (DeepSeek-V3's form) read as their codes x scales, bitwise; export-hf
            --dtype fp8 writes what numpy's quantization of the same model writes, bitwise, and FP8
            files back as they were (scales within an ulp), fused tensors (Phi-3's, GPT-NeoX's) too
  faults    SIGKILL in the middle of a save leaves the previous checkpoint, which resumes to
            the uninterrupted result; a flipped byte, a missing shard, a truncated file, a
            newer format version, a changed batch size: one clear error, every rank exits
            non-zero, nothing written
The h5py parts run when the interpreter has h5py (CI installs python3-h5py); otherwise they
say SKIP.
"""
import json
import os
import re
import shutil
import sys

from e2e_common import (ROOT, expect_error, multimodal_checkpoint, read_hf_dir, read_safetensors, run, run_case,
                        run_ok, safetensors_tensors, tree_state, write_safetensors)
from train_test import setup

try:
    import h5py
    import numpy as np
except ImportError:  # reported where used
    h5py = None
    np = None

# Fields of the process's own work, not of the run: times and rates, and generated_tokens (a
# process resumed past the first epoch of spin.reuse_generations without the cache replays it).
TIMINGS = {"tokens_per_second", "tflops_per_rank", "mfu", "generation_tokens_per_second", "seconds_generation",
           "seconds_reference", "seconds_training", "generated_tokens"}


def metrics(path):
    return [{k: v for k, v in json.loads(l).items() if k not in TIMINGS} for l in open(path)]


def train(args, config, out, ranks, *extra, fault=None):
    """spin train; with a SPIN_FAULT hook, run() (the run may fail), else run_ok()."""
    cmd = [args.spin, "train", "--config", config, "--checkpoint.save_dir", out] + list(extra)
    return run_ok(args.mpiexec, cmd, ranks) if fault is None else run(args.mpiexec, cmd, ranks, fault)


def ckpt(args, ranks, *rest):
    return run_ok(args.mpiexec, [args.spin, "ckpt"] + list(rest), ranks)


def tensors(checkpoint):
    """{group/name: array} of every whole tensor in index.h5 (virtual datasets) or a merged file."""
    path = checkpoint if os.path.isfile(checkpoint) else os.path.join(checkpoint, "index.h5")
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[...]
        f.visititems(visit)
    return out


def same_weights(a, b, what):
    """Bitwise equality of two checkpoints: every tensor with h5py, else the exported policy."""
    if h5py is not None:
        ta, tb = tensors(a), tensors(b)
        assert sorted(ta) == sorted(tb), (what, sorted(ta), sorted(tb))
        for k in ta:
            assert ta[k].tobytes() == tb[k].tobytes(), (what, k)
        return len(ta)
    return -1


def step_dir(out, step):
    return os.path.join(out, "step_%08d" % step)


def case_resume(args, tmp):
    config = setup(tmp)
    for name, ranks, layout in [("pp2", 2, ["--parallel.pp", "2"]),
                                ("dp2-distributed", 2, ["--optim.distributed_optimizer", "true"])]:
        whole = os.path.join(tmp, name + "-whole")
        train(args, config, whole, ranks, *layout, "--checkpoint.save_interval", "2")
        want = metrics(os.path.join(whole, "metrics.jsonl"))
        assert len(want) == 14, len(want)
        for stop in (4, 6):  # inside iteration 1; at its end (after the reference sync)
            out = os.path.join(tmp, "%s-%d" % (name, stop))
            train(args, config, out, ranks, *layout, "--spin.max_steps", str(stop))
            assert os.path.basename(open(os.path.join(out, "latest")).read().strip()) == "step_%08d" % stop
            r = train(args, config, out, ranks, *layout, "--checkpoint.resume", "true")
            assert "loaded %s" % step_dir(out, stop) in r.stdout, r.stdout
            got = metrics(os.path.join(out, "metrics.jsonl"))
            assert got == want, (name, stop, [(x, y) for x, y in zip(got, want) if x != y][:2])
            n = same_weights(step_dir(out, 12), step_dir(whole, 12), (name, stop))
            # Mid-iteration 1 the saved reference is the starting model, not the policy.
            if h5py is not None and stop == 4:
                t = tensors(step_dir(out, 4))
                start = read_safetensors(os.path.join(tmp, "model", "model.safetensors"))
                key = "model.layers.0.mlp.up_proj.weight"
                assert list(t["reference/" + key].ravel()) == list(start[key])
                assert t["reference/" + key].tobytes() != t["policy/" + key].tobytes()
            for iteration in (1, 2):
                a = open(os.path.join(out, "iteration_%d" % iteration, "model.safetensors"), "rb").read()
                b = open(os.path.join(whole, "iteration_%d" % iteration, "model.safetensors"), "rb").read()
                assert a == b, (name, stop, iteration)
            print("%-16s stopped at %d, resumed: %d metric lines and %s tensors bitwise equal" %
                  (name, stop, len(got), n if n >= 0 else "(no h5py: exported policies)"))


def close(a, b, tol=1e-5):
    for x, y in zip(a, b):
        assert x["step"] == y["step"] and x["kind"] == y["kind"], (x, y)
        for key in ["loss", "rewards_actual", "rewards_generated", "accuracy", "generated_length_mean"]:
            assert abs(x[key] - y[key]) <= tol * max(1.0, abs(y[key])), (key, x, y)


def relative_l2(a, b):
    num = sum((p - q) ** 2 for p, q in zip(a, b))
    den = sum(q * q for q in b)
    return (num / den) ** 0.5 if den else num ** 0.5


def case_reshard(args, tmp):
    config = setup(tmp)
    tp2pp2 = ["--parallel.tp", "2", "--parallel.pp", "2"]
    whole = os.path.join(tmp, "whole")
    train(args, config, whole, 4, *tp2pp2)
    want = metrics(os.path.join(whole, "metrics.jsonl"))
    saved = os.path.join(tmp, "saved")
    train(args, config, saved, 4, *tp2pp2, "--spin.max_steps", "4")
    for name, layout in [("pp2-dp2-distributed", ["--parallel.pp", "2", "--optim.distributed_optimizer", "true"]),
                         ("tp2-dp2", ["--parallel.tp", "2"])]:
        at_load = os.path.join(tmp, name + "-at-load")
        shutil.copytree(saved, at_load)
        train(args, config, at_load, 4, *layout, "--checkpoint.resume", "true")
        got = metrics(os.path.join(at_load, "metrics.jsonl"))
        assert len(got) == len(want)
        close(got, want)
        wa = read_safetensors(os.path.join(at_load, "iteration_2", "model.safetensors"))
        wb = read_safetensors(os.path.join(whole, "iteration_2", "model.safetensors"))
        worst = max(relative_l2(wa[k], wb[k]) for k in wb)
        assert worst < 1e-5, worst
        # Offline: the same checkpoint rewritten for the new layout loads to the same bits.
        tp, pp = (1, 2) if name.startswith("pp2") else (2, 1)
        offline = os.path.join(tmp, name + "-offline")
        resharded = os.path.join(tmp, name + "-resharded")
        ckpt(args, 3, "reshard", step_dir(saved, 4), resharded, "--tp", str(tp), "--pp", str(pp))
        shard_files = sorted(f for f in os.listdir(resharded) if f.startswith("shard_"))
        assert len(shard_files) == tp * pp, shard_files
        ckpt(args, 1, "verify", resharded)
        train(args, config, offline, 4, *layout, "--checkpoint.load", resharded)
        off = metrics(os.path.join(offline, "metrics.jsonl"))
        assert off == got[-len(off):], name
        n = same_weights(step_dir(offline, 12), step_dir(at_load, 12), name)
        print("%-20s resumed from TP 2 x PP 2 within %.1e of the original; offline reshard (%d files) "
              "identical (%s tensors)" % (name, worst, len(shard_files), n if n >= 0 else "exported"))


def read_safetensors_numpy(path):
    """An independent parser: {name: float32 array} (bf16 widened by a 16-bit shift)."""
    blob = open(path, "rb").read()
    n = int(np.frombuffer(blob[:8], dtype="<u8")[0])
    header = json.loads(blob[8:8 + n].decode())
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        raw = blob[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise AssertionError(e["dtype"])
        out[name] = a.reshape(e["shape"])
    return out


def score_text(args, model, tmp):
    """spin score's output for tests/data/tiny_score.jsonl on `model`, as text."""
    out_file = os.path.join(tmp, "scores.jsonl")
    run_ok(args.mpiexec, [args.spin, "score", "--model", model, "--input",
                          os.path.join(ROOT, "tests", "data", "tiny_score.jsonl"), "--output", out_file], 1)
    return open(out_file).read()


def e4m3_values():
    """The 256 OCP FP8 E4M3 (e4m3fn) codes' values by the format's definition (NaN for S.1111.111)."""
    codes = np.arange(256)
    exponent, mantissa = (codes >> 3) & 15, codes & 7
    magnitude = np.where(exponent == 0, mantissa / 8.0 * 2.0 ** -6, (1 + mantissa / 8.0) * 2.0 ** (exponent - 7))
    values = np.where(codes & 0x80, -magnitude, magnitude).astype(np.float32)
    values[(codes & 0x7F) == 0x7F] = np.nan
    return values


def projection(name):
    """A projection's weight as most families' files name it (DeepSeek-V3's kv_a_proj_with_mqa too)."""
    return "proj" in name


def fp8_checkpoint(src, dst, block=16, quantized=projection):
    """src (a one-file model) as a block-scaled FP8 checkpoint in dst, as DeepSeek-V3's files are: every
    `quantized` matrix F8_E4M3 -- each block of block x block its values over s = amax / 448, to the nearest
    code, ties to the even one as PyTorch's and Triton's conversions round (bf16-valued weights meet ties) --
    beside its weight_scale_inv s [float32]; the rest as read; quantization_config in config.json.
    Returns {name: the values spin should read} (code value x s in float32)."""
    values = e4m3_values()
    positive = values[:0x7F]
    tensors, want = {}, {}
    for name, w in read_safetensors_numpy(os.path.join(src, "model.safetensors")).items():
        if w.ndim != 2 or not quantized(name):
            tensors[name] = ("F32", list(w.shape), w.astype("<f4").tobytes())
            want[name] = w
            continue
        rows, cols = w.shape
        grid = ((rows + block - 1) // block, (cols + block - 1) // block)
        scales = np.zeros(grid, dtype=np.float32)
        codes = np.zeros(w.shape, dtype=np.uint8)
        for i in range(grid[0]):
            for j in range(grid[1]):
                b = w[i * block:(i + 1) * block, j * block:(j + 1) * block]
                s = np.float32(np.abs(b).max() / np.float32(448.0))
                scales[i, j] = s
                distance = np.abs(positive[None, :] - np.abs(b / s).reshape(-1, 1))
                code = distance.argmin(axis=1)  # the lower of two codes as near: the even one instead
                up = np.minimum(code + 1, 0x7E)
                tie = distance[np.arange(code.size), up] == distance[np.arange(code.size), code]
                code = np.where(tie & (code % 2 == 1), up, code).reshape(b.shape)
                codes[i * block:(i + 1) * block, j * block:(j + 1) * block] = code | np.where(b < 0, 0x80, 0)
        tensors[name] = ("F8_E4M3", [rows, cols], codes.tobytes())
        tensors[name + "_scale_inv"] = ("F32", list(grid), scales.astype("<f4").tobytes())
        want[name] = values[codes] * np.repeat(np.repeat(scales, block, 0), block, 1)[:rows, :cols]
    os.makedirs(dst, exist_ok=True)
    header, offset = {}, 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    head = json.dumps(header).encode()
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head + b"".join(raw for _, _, raw in tensors.values()))
    config = json.load(open(os.path.join(src, "config.json")))
    config["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                     "weight_block_size": [block, block]}
    json.dump(config, open(os.path.join(dst, "config.json"), "w"), indent=2)
    return want


def to_bf16(a):
    """float32 -> bfloat16 (round to nearest even), widened back to float32."""
    bits = a.astype(np.float32).view(np.uint32)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.view(np.float32)


def read_safetensors_raw(path):
    """{name: (dtype, shape, bytes as stored)} of a safetensors file."""
    blob = open(path, "rb").read()
    n = int(np.frombuffer(blob[:8], dtype="<u8")[0])
    header = json.loads(blob[8:8 + n].decode())
    return {name: (e["dtype"], e["shape"], blob[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]])
            for name, e in header.items() if name != "__metadata__"}


def same_export(args, checkpoint, out, *options):
    """export-hf of `checkpoint` into `out` by 1 rank and into out-2ranks by 2 (which share the files): the same
    files, byte for byte. Returns their names."""
    ckpt(args, 1, "export-hf", checkpoint, out, *options)
    ckpt(args, 2, "export-hf", checkpoint, out + "-2ranks", *options)
    names = sorted(os.listdir(out))
    assert names == sorted(os.listdir(out + "-2ranks")), (names, os.listdir(out + "-2ranks"))
    for name in names:
        assert open(os.path.join(out, name), "rb").read() == open(os.path.join(out + "-2ranks", name), "rb").read(), name
    return names


def check_fp8_export(exported, fixture, scales_ulps):
    """The FP8 export `exported` against the FP8 files `fixture` (fp8_checkpoint's): the same FP8 tensors, their codes
    bitwise and their scales bitwise (scales_ulps 0) or within that many ulps; every other tensor the fixture's
    float32 values in bf16 (float32 where the export keeps it so); quantization_config as the fixture's."""
    got = read_safetensors_raw(os.path.join(exported, "model.safetensors"))
    want = read_safetensors_raw(os.path.join(fixture, "model.safetensors"))
    assert set(got) <= set(want), sorted(set(got) - set(want))
    fp8 = [k for k, (dtype, _, _) in got.items() if dtype == "F8_E4M3"]
    assert fp8 and fp8 == [k for k in got if k in want and want[k][0] == "F8_E4M3"], fp8
    for k, (dtype, shape, raw) in got.items():
        assert shape == want[k][1], (k, shape, want[k][1])
        if k in fp8:
            assert raw == want[k][2], k
        elif k.endswith("_scale_inv"):
            a, b = np.frombuffer(raw, "<f4"), np.frombuffer(want[k][2], "<f4")
            assert np.all(np.abs(a - b) <= scales_ulps * np.spacing(np.abs(b))), (k, np.abs(a - b).max())
        else:
            value = np.frombuffer(want[k][2], "<f4")
            assert dtype in ("BF16", "F32"), (k, dtype)
            if dtype == "F32":
                assert np.array_equal(np.frombuffer(raw, "<f4"), value), k
            else:
                widened = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
                assert np.array_equal(widened, to_bf16(value)), k
    config = json.load(open(os.path.join(exported, "config.json")))
    assert config["quantization_config"] == json.load(open(os.path.join(fixture, "config.json")))[
        "quantization_config"], config["quantization_config"]
    return len(fp8)


def case_fp8(args, tmp):
    # A block-scaled FP8 checkpoint (DeepSeek-V3's published form): imported at TP 2 dequantized -- each
    # weight its codes' values times its blocks' scales, bitwise as numpy computes them --, exported without
    # its quantization_config; it scores as the dequantized model written out in float32 does, exactly.
    fp8 = os.path.join(tmp, "released-deepseek-v3-fp8")  # not the loop's tiny-deepseek-v3-fp8 below
    want = fp8_checkpoint(os.path.join(args.models, "tiny-deepseek-v3"), fp8)
    ckpt(args, 2, "import-hf", fp8, fp8 + "-ckpt", "--tp", "2")
    ckpt(args, 1, "export-hf", fp8 + "-ckpt", fp8 + "-hf")
    got = read_safetensors_numpy(os.path.join(fp8 + "-hf", "model.safetensors"))
    assert sorted(got) == sorted(k for k in want if not k.startswith("model.layers.2.")), sorted(got)
    assert all(np.array_equal(got[k], want[k]) for k in got), [k for k in got if not np.array_equal(got[k], want[k])]
    assert "quantization_config" not in json.load(open(os.path.join(fp8 + "-hf", "config.json")))
    dequantized = os.path.join(tmp, "tiny-deepseek-v3-dequantized")
    os.makedirs(dequantized)
    shutil.copy(os.path.join(fp8 + "-hf", "config.json"), dequantized)
    write_safetensors(os.path.join(dequantized, "model.safetensors"),
                      [(k, list(v.shape), v.reshape(-1).tolist()) for k, v in got.items()])
    assert score_text(args, fp8, tmp) == score_text(args, dequantized, tmp)
    moved = max(float(np.abs(want[k] - v).max()) for k, v in read_safetensors_numpy(
        os.path.join(args.models, "tiny-deepseek-v3", "model.safetensors")).items() if k in want and "proj" in k)
    print("tiny-deepseek-v3 as block-scaled FP8: imported at TP 2 as its codes x scales bitwise (%.1e from the "
          "float32 weights), exported unquantized, scoring as the dequantized model exactly" % moved)
    # FP8 export (export-hf --dtype fp8): a float32 model block-scaled by spin as numpy does it above -- every
    # projection's codes and scales bitwise --, the rest in bf16, quantization_config written. And FP8 files imported at
    # TP 2 and exported as FP8 again: their codes bitwise, their scales within an ulp (each read back as 448 s rounded,
    # then divided by 448 again). DeepSeek-V3's (latent attention's projections, experts), Phi-3's (q/k/v and gate/up
    # fused in its files: each TP rank reads its rows of the fused FP8 tensor, the export quantizes the fused tensor)
    # and GPT-NeoX's (q/k/v fused per head).
    for name, quantized in [("tiny-deepseek-v3", projection), ("tiny-phi3", projection),
                            ("tiny-gpt-neox", lambda n: ".layers." in n)]:
        src, base = os.path.join(args.models, name), os.path.join(tmp, name)
        fp8_checkpoint(src, base + "-fixture", quantized=quantized)
        ckpt(args, 1, "import-hf", src, base + "-f32")
        ckpt(args, 1, "export-hf", base + "-f32", base + "-fp8", "--dtype", "fp8", "--fp8-block", "16")
        count = check_fp8_export(base + "-fp8", base + "-fixture", 0)
        ckpt(args, 2, "import-hf", base + "-fixture", base + "-fixture-ckpt", "--tp", "2")
        ckpt(args, 1, "export-hf", base + "-fixture-ckpt", base + "-again", "--dtype", "fp8", "--fp8-block", "16,16")
        check_fp8_export(base + "-again", base + "-fixture", 1)
        print("%s: %d matrices exported as block-scaled FP8 bitwise as numpy quantizes them; its FP8 files imported "
              "at TP 2 and exported again, codes bitwise, scales within an ulp" % (name, count))
    # Written by 2 ranks, a file a tensor (--max-shard-size 1), the same as by one: fused tensors (Phi-3's), FP8 and
    # tensors the files hold a row each (StableLM's per-head norms, whose rows then fall to both ranks).
    stablelm = os.path.join(tmp, "stablelm")
    ckpt(args, 1, "import-hf", os.path.join(args.models, "tiny-stablelm-qk-norm"), stablelm)
    for checkpoint in [os.path.join(tmp, "tiny-phi3-f32"), stablelm]:
        names = same_export(args, checkpoint, checkpoint + "-shared", "--dtype", "fp8", "--fp8-block", "16",
                            "--max-shard-size", "1")
        assert len(names) > 4, names
    print("export-hf by 2 ranks, each writing its files: the same bytes as by one")
    # A NaN weight in a file that rank 1 writes (file k by rank k mod 2, a file a tensor): one error line naming the
    # tensor, every rank stopped, no output directory.
    weight_map = json.load(open(os.path.join(tmp, "tiny-phi3-f32-shared", "model.safetensors.index.json")))["weight_map"]
    ranked = [(n, int(f.split("-")[1]) - 1) for n, f in weight_map.items() if n.endswith("proj.weight")]
    poisoned, _ = next((n, k) for n, k in ranked if k % 2 == 1)
    nan_model = os.path.join(tmp, "tiny-phi3-nan")
    shutil.copytree(os.path.join(args.models, "tiny-phi3"), nan_model)
    tensors = [(n, shape, v[:5] + [float("nan")] + v[6:] if n == poisoned else v)
               for n, shape, v in safetensors_tensors(os.path.join(nan_model, "model.safetensors"))]
    write_safetensors(os.path.join(nan_model, "model.safetensors"), tensors)
    ckpt(args, 1, "import-hf", nan_model, nan_model + "-ckpt")
    expect_error(args.mpiexec, "fp8 nan on rank 1",
                 [args.spin, "ckpt", "export-hf", nan_model + "-ckpt", nan_model + "-fp8", "--dtype", "fp8",
                  "--max-shard-size", "1"],
                 r"rank 1: tensor \"%s\" holds nan at \[\d+, \d+\], which FP8 cannot hold" % re.escape(poisoned), 2,
                 nan_model + "-fp8")
    print("a NaN weight met by rank 1 of an FP8 export: one error line naming it, no output")
    # What FP8 cannot hold, refused: GraniteMoE's experts (one 3-D tensor a layer), a LoRA adapter export, no block.
    granite = os.path.join(tmp, "granitemoe")
    ckpt(args, 1, "import-hf", os.path.join(args.models, "tiny-granitemoe"), granite)
    export = [args.spin, "ckpt", "export-hf", granite, granite + "-fp8", "--dtype", "fp8"]
    expect_error(args.mpiexec, "fp8 granitemoe", export, "block-scaled FP8 does not", 1, granite + "-fp8")
    expect_error(args.mpiexec, "fp8 lora", export + ["--which", "lora"], "--dtype fp8 is export-hf's", 1,
                 granite + "-fp8")
    expect_error(args.mpiexec, "fp8 block 0", export + ["--fp8-block", "0"], "is not ROWS or ROWS,COLS", 1,
                 granite + "-fp8")
    print("FP8 exports spin cannot write refused by name")
    # checkpoint.save_dtype fp8: spin train's model of iteration 1, at TP 2 (each tensor pulled whole from both ranks
    # and block-scaled), is export-hf --dtype fp8 of the checkpoint at that iteration's end, byte for byte.
    config = setup(tmp)
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", os.path.join(tmp, "run"),
                          "--checkpoint.save_dtype", "fp8", "--parallel.tp", "2", "--spin.max_iterations", "1"], 2)
    trained = os.path.join(tmp, "run", "iteration_1")
    ckpt(args, 1, "export-hf", step_dir(os.path.join(tmp, "run"), 6), trained + "-export", "--dtype", "fp8")
    for name in ("config.json", "model.safetensors"):
        assert open(os.path.join(trained, name), "rb").read() == open(os.path.join(trained + "-export", name), "rb").read()
    header = read_safetensors_raw(os.path.join(trained, "model.safetensors"))
    assert sum(dtype == "F8_E4M3" for dtype, _, _ in header.values()) == 2 * 7, header.keys()
    expect_error(args.mpiexec, "train fp8 granitemoe",
                 [args.spin, "train", "--config", config, "--checkpoint.save_dir", os.path.join(tmp, "granite-run"),
                  "--model.path", os.path.join(args.models, "tiny-granitemoe"), "--checkpoint.save_dtype", "fp8"],
                 "checkpoint.save_dtype fp8: the model's files hold", 1, os.path.join(tmp, "granite-run"))
    expect_error(args.mpiexec, "train zero shard size",
                 [args.spin, "train", "--config", config, "--checkpoint.save_dir", os.path.join(tmp, "zero-run"),
                  "--parallel.tp", "2", "--checkpoint.save_max_shard_size", "0"],
                 r"checkpoint.save_max_shard_size must be positive, got 0", 2, os.path.join(tmp, "zero-run"))
    expect_error(args.mpiexec, "ckpt negative shard size",
                 [args.spin, "ckpt", "export-hf", step_dir(os.path.join(tmp, "run"), 6), os.path.join(tmp, "no-export"),
                  "--max-shard-size", "-1"],
                 r"spin ckpt: --max-shard-size must be positive, got -1", 2, os.path.join(tmp, "no-export"))
    expect_error(args.mpiexec, "ckpt negative timeout",
                 [args.spin, "ckpt", "export-hf", step_dir(os.path.join(tmp, "run"), 6), os.path.join(tmp, "no-export"),
                  "--distributed-timeout-minutes", "-1"],
                 r"spin ckpt: --distributed-timeout-minutes must be >= 0 \(0: no timeout\), got -1", 2,
                 os.path.join(tmp, "no-export"))
    print("checkpoint.save_dtype fp8 at TP 2: iteration_1 is the FP8 export of its checkpoint, byte for byte")


def case_convert(args, tmp):
    config = setup(tmp)
    out = os.path.join(tmp, "run")
    train(args, config, out, 2, "--parallel.pp", "2", "--spin.max_steps", "3")
    saved = step_dir(out, 3)
    r = ckpt(args, 1, "inspect", out)  # a save directory means its latest checkpoint
    assert "model.layers.1.mlp.down_proj.weight" in r.stdout and "[32, 64]" in r.stdout, r.stdout
    assert '"step":3' in r.stdout, r.stdout
    assert "verify: %s: 84 tensors" % saved in ckpt(args, 2, "verify", saved).stdout

    hf1, hf2 = os.path.join(tmp, "hf1"), os.path.join(tmp, "hf2")
    ckpt(args, 1, "export-hf", saved, hf1)
    assert os.path.exists(os.path.join(hf1, "byte_tokenizer.json"))
    imported = os.path.join(tmp, "imported")
    ckpt(args, 2, "import-hf", hf1, imported, "--tp", "2", "--pp", "2")
    ckpt(args, 1, "export-hf", imported, hf2)
    a = open(os.path.join(hf1, "model.safetensors"), "rb").read()
    assert a == open(os.path.join(hf2, "model.safetensors"), "rb").read()
    assert open(os.path.join(hf1, "config.json")).read() == open(os.path.join(hf2, "config.json")).read()
    print("export-hf -> import-hf (TP 2 x PP 2) -> export-hf: %d bytes identical" % len(a))
    # A model from outside (written by Python): the same tensors back.
    model = os.path.join(tmp, "model")
    ckpt(args, 1, "import-hf", model, os.path.join(tmp, "outside"))
    ckpt(args, 1, "export-hf", os.path.join(tmp, "outside"), os.path.join(tmp, "outside-hf"))
    x = read_safetensors(os.path.join(model, "model.safetensors"))
    y = read_safetensors(os.path.join(tmp, "outside-hf", "model.safetensors"))
    assert x == y
    print("a Python-written model: %d tensors back unchanged" % len(x))
    # Qwen2 (its q/k/v biases split over TP 2 with their matrices' rows), Qwen3 (its head norms
    # replicated), Gemma (tied without the key, its 1 + w norm weights stored as they are) and
    # Gemma 2 (four norms a layer) and Gemma 3 (besides, head norms), and Phi-3 (q/k/v and gate/up
    # fused in its files: each TP rank reads its heads' rows of qkv_proj, the export fuses again),
    # and Granite (its multipliers in config.json alone), and OLMo (no norm weights at all), and OLMo 2
    # (no input norms; q_norm and k_norm split over TP 2 with the heads), and StableLM (its LayerNorms'
    # biases replicated beside their weights), and GraniteMoE (its experts' 3-D tensors: each TP rank
    # reads its rows of every expert's gate and up, its columns of every down; the export stacks them
    # again), and GLM / GLM-4 (gate_up_proj fused; GLM-4's norms under their own names), and back.
    for name, extra in [("tiny-qwen2", "model.layers.1.self_attn.v_proj.bias"),
                        ("tiny-qwen3", "model.layers.1.self_attn.k_norm.weight"),
                        ("tiny-gemma", "model.layers.1.post_attention_layernorm.weight"),
                        ("tiny-gemma2", "model.layers.1.post_feedforward_layernorm.weight"),
                        ("tiny-gemma3", "model.layers.1.self_attn.q_norm.weight"),
                        ("tiny-phi3", "model.layers.1.mlp.gate_up_proj.weight"),
                        ("tiny-granite", "model.layers.1.mlp.down_proj.weight"),
                        ("tiny-olmo", "model.layers.1.self_attn.o_proj.weight"),
                        ("tiny-olmo2", "model.layers.1.self_attn.q_norm.weight"),
                        ("tiny-stablelm", "model.layers.1.post_attention_layernorm.bias"),
                        ("tiny-stablelm-parallel", "model.layers.1.input_layernorm.bias"),
                        ("tiny-cohere", "model.layers.1.input_layernorm.weight"),
                        ("tiny-cohere2", "model.layers.1.input_layernorm.weight"),
                        ("tiny-gpt-neox", "gpt_neox.layers.1.attention.query_key_value.bias"),
                        ("tiny-phi2", "lm_head.bias"),
                        ("tiny-mixtral", "model.layers.1.block_sparse_moe.experts.3.w2.weight"),
                        ("tiny-qwen3-moe", "model.layers.1.mlp.experts.3.up_proj.weight"),
                        ("tiny-olmoe", "model.layers.1.self_attn.k_norm.weight"),
                        ("tiny-qwen2-moe", "model.layers.1.mlp.shared_expert_gate.weight"),
                        ("tiny-cohere-qk-norm", "model.layers.1.self_attn.k_norm.weight"),
                        ("tiny-stablelm-qk-norm", "model.layers.1.self_attn.k_layernorm.norms.1.weight"),
                        ("tiny-llama-bias", "model.layers.1.mlp.gate_proj.bias"),
                        ("tiny-granitemoe", "model.layers.1.block_sparse_moe.input_linear.weight"),
                        ("tiny-granite4", "model.layers.1.shared_mlp.input_linear.weight"),
                        ("tiny-glm", "model.layers.1.mlp.gate_up_proj.weight"),
                        ("tiny-glm4", "model.layers.1.post_self_attn_layernorm.weight"),
                        ("tiny-exaone4", "model.layers.1.self_attn.q_norm.weight"),
                        ("tiny-seed-oss", "model.layers.1.self_attn.v_proj.bias"),
                        ("tiny-glm4-moe", "model.layers.1.mlp.gate.e_score_correction_bias"),
                        ("tiny-dots1", "model.layers.1.mlp.shared_experts.up_proj.weight"),
                        ("tiny-deepseek-v3", "model.layers.1.self_attn.kv_b_proj.weight"),
                        ("tiny-deepseek-v2", "model.layers.1.self_attn.q_proj.weight")]:
        qwen = os.path.join(args.models, name)
        ckpt(args, 2, "import-hf", qwen, os.path.join(tmp, name), "--tp", "2")
        ckpt(args, 1, "export-hf", os.path.join(tmp, name), os.path.join(tmp, name + "-hf"))
        # GLM-4.5's and DeepSeek-V3's multi-token-prediction layer (model.layers.2 after the decoder's two) is
        # not the causal LM's: neither read nor written.
        x = {k: v for k, v in read_safetensors(os.path.join(qwen, "model.safetensors")).items()
             if not (name in ("tiny-glm4-moe", "tiny-deepseek-v3") and k.startswith("model.layers.2."))}
        y = read_safetensors(os.path.join(tmp, name + "-hf", "model.safetensors"))
        assert x == y and extra in y, sorted(y)
        shapes = [{k: v.shape for k, v in read_safetensors_numpy(os.path.join(d, "model.safetensors")).items() if k in x}
                  for d in (qwen, os.path.join(tmp, name + "-hf"))]
        assert shapes[0] == shapes[1], [(k, shapes[0][k], shapes[1].get(k)) for k in shapes[0]]
        assert open(os.path.join(qwen, "config.json")).read() == open(os.path.join(tmp, name + "-hf", "config.json")).read()
        print("%s through TP 2: %d tensors back unchanged" % (name, len(y)))
    # GLM-4.5's router correction bias stays float32 in a bf16 export (transformers keeps it so: it picks the
    # experts by differences bf16 would round away); the rest is bf16.
    glm = os.path.join(tmp, "tiny-glm4-moe")
    ckpt(args, 1, "export-hf", glm, glm + "-bf16", "--dtype", "bf16")
    blob = open(os.path.join(glm + "-bf16", "model.safetensors"), "rb").read()
    header = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])
    bias = "model.layers.1.mlp.gate.e_score_correction_bias"
    assert header[bias]["dtype"] == "F32", header[bias]
    assert all(e["dtype"] == "BF16" for k, e in header.items() if k not in (bias, "__metadata__")), header
    original = read_safetensors_numpy(os.path.join(args.models, "tiny-glm4-moe", "model.safetensors"))[bias]
    assert np.array_equal(read_safetensors_numpy(os.path.join(glm + "-bf16", "model.safetensors"))[bias], original)
    print("tiny-glm4-moe in bf16: its correction bias written in float32, unchanged")
    # Multimodal checkpoints (Gemma 3's, Mistral Small 3.1's, LLaVA's, Qwen2.5-VL's): spin runs their
    # language model -- it scores as the text model does, bitwise (Qwen2.5-VL's M-RoPE being RoPE
    # over text) -- and exports it as that model (gemma3_text, mistral, llama or qwen2, the
    # text config's keys, the tensors without "language_model.", no vision tower).
    for kind, name, text_type, text_architecture in [("gemma3", "tiny-gemma3", "gemma3_text", "Gemma3ForCausalLM"),
                                                     ("mistral3", "tiny-mistral", "mistral", "MistralForCausalLM"),
                                                     ("llava", "tiny-llama", "llama", "LlamaForCausalLM"),
                                                     ("qwen2_5_vl", "tiny-qwen2", "qwen2", "Qwen2ForCausalLM")]:
        text = os.path.join(args.models, name)
        multimodal = multimodal_checkpoint(text, os.path.join(tmp, kind + "-multimodal"), kind)
        assert score_text(args, text, tmp) == score_text(args, multimodal, tmp)
        imported = os.path.join(tmp, kind + "-imported")
        ckpt(args, 2, "import-hf", multimodal, imported, "--tp", "2")
        ckpt(args, 1, "export-hf", imported, os.path.join(tmp, kind + "-text"))
        text_tensors = read_safetensors(os.path.join(text, "model.safetensors"))
        assert read_safetensors(os.path.join(tmp, kind + "-text", "model.safetensors")) == text_tensors
        exported = json.load(open(os.path.join(tmp, kind + "-text", "config.json")))
        original = json.load(open(os.path.join(text, "config.json")))
        assert exported["model_type"] == text_type and exported["architectures"] == [text_architecture], exported
        assert all(exported[k] == v for k, v in original.items() if k != "architectures"), (exported, original)
        print("%s multimodal checkpoint: scored as its text model (bitwise), exported as it (%d tensors)"
              % (kind, len(text_tensors)))
        # --multimodal-from writes the multimodal model back: its config.json and vision tensors
        # from there, the language model's under their prefix -- here the original, byte for byte
        # in values.
        rebuilt = os.path.join(tmp, kind + "-rebuilt")
        ckpt(args, 1, "export-hf", imported, rebuilt, "--multimodal-from", multimodal)
        assert read_safetensors(os.path.join(rebuilt, "model.safetensors")) == \
            read_safetensors(os.path.join(multimodal, "model.safetensors"))
        if kind == "gemma3":  # in files of at most 20 kB, shared by 2 ranks: the 1-rank files
            json.dump({"image_processor_type": "Gemma3ImageProcessor"},
                      open(os.path.join(multimodal, "preprocessor_config.json"), "w"))
            names = same_export(args, imported, rebuilt + "-sharded", "--multimodal-from", multimodal,
                                "--max-shard-size", "20000")
            assert len([n for n in names if n.endswith(".safetensors")]) > 2 and "preprocessor_config.json" in names, names
            assert read_hf_dir(rebuilt + "-sharded") == read_safetensors(os.path.join(multimodal, "model.safetensors"))
        assert open(os.path.join(rebuilt, "config.json")).read() == open(os.path.join(multimodal, "config.json")).read()
        # Another model's checkpoint is refused, naming both.
        r = run(args.mpiexec, [args.spin, "ckpt", "export-hf", os.path.join(tmp, "tiny-gemma2"),
                               os.path.join(tmp, "wrong"), "--multimodal-from", multimodal], 1)
        assert r.returncode != 0 and "is not %s's language model" % multimodal in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(tmp, "wrong"))
        print("export-hf --multimodal-from: the %s checkpoint rebuilt (vision tensors and config as they were)" % kind)

    # Sharded export: several files and an index, read back by spin and by numpy; written by 2 ranks, the same.
    sharded = os.path.join(tmp, "sharded")
    same_export(args, saved, sharded, "--max-shard-size", "40000")
    index = json.load(open(os.path.join(sharded, "model.safetensors.index.json")))
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 2 and files[0].startswith("model-00001-of-"), files
    ckpt(args, 1, "import-hf", sharded, os.path.join(tmp, "from-sharded"))
    ckpt(args, 1, "export-hf", os.path.join(tmp, "from-sharded"), os.path.join(tmp, "unsharded"))
    assert open(os.path.join(tmp, "unsharded", "model.safetensors"), "rb").read() == a
    print("sharded export: %d files, total_size %d, read back identical" % (len(files), index["metadata"]["total_size"]))

    if np is None or h5py is None:
        print("SKIP numpy / h5py checks: this interpreter (%s) has no h5py or numpy" % sys.executable)
        return
    f32 = read_safetensors_numpy(os.path.join(hf1, "model.safetensors"))
    for f in files:
        for name, v in read_safetensors_numpy(os.path.join(sharded, f)).items():
            assert np.array_equal(v, f32[name]) and index["weight_map"][name] == f, name
    bf = os.path.join(tmp, "bf16")
    ckpt(args, 1, "export-hf", saved, bf, "--dtype", "bf16", "--which", "reference")
    assert json.load(open(os.path.join(bf, "config.json")))["torch_dtype"] == "bfloat16"  # as save_pretrained says
    ref = tensors(saved)
    for name, v in read_safetensors_numpy(os.path.join(bf, "model.safetensors")).items():
        assert np.array_equal(v, to_bf16(ref["reference/" + name])), name
    # h5py: whole tensors from index.h5's virtual datasets, and from a merged file.
    whole = tensors(saved)
    assert sorted(k for k in whole if k.startswith("policy/")) == sorted("policy/" + k for k in f32)
    for name, v in f32.items():
        assert np.array_equal(whole["policy/" + name], v), name
    assert any(k.startswith("optimizer/exp_avg_sq/") for k in whole)
    merged = os.path.join(tmp, "merged.h5")
    ckpt(args, 1, "merge", saved, merged)
    assert same_weights(merged, saved, "merge") == len(whole)
    with h5py.File(os.path.join(saved, "index.h5"), "r") as f:
        state = json.loads(f.attrs["training_state"])
        assert state["step"] == 3 and state["iteration"] == 1 and state["consumed_samples"] == 24, state
        assert json.loads(f.attrs["model_config"])["num_hidden_layers"] == 2
    print("h5py: %d whole tensors in index.h5 equal the export; merged file identical; training state %s" %
          (len(whole), {k: state[k] for k in ("iteration", "epoch", "step")}))

    # Training from an imported (weights-only) checkpoint is training from the model.
    fresh, loaded = os.path.join(tmp, "fresh"), os.path.join(tmp, "loaded")
    train(args, config, fresh, 1, "--spin.max_iterations", "1", "--spin.max_steps", "2")
    train(args, config, loaded, 1, "--spin.max_iterations", "1", "--spin.max_steps", "2",
          "--checkpoint.load", os.path.join(tmp, "outside"))
    assert metrics(os.path.join(fresh, "metrics.jsonl")) == metrics(os.path.join(loaded, "metrics.jsonl"))
    print("training from import-hf's checkpoint == training from the model directory")


def first_piece(checkpoint, key):
    """The index's first piece of tensor `key`: {"file": shard file, "dataset": its dataset there, ...}."""
    with h5py.File(os.path.join(checkpoint, "index.h5"), "r") as f:
        catalog = json.loads(f.attrs["catalog"])
    group, name = key.rsplit("/", 1)  # groups may hold a slash (optimizer/exp_avg), names do not
    return catalog[group][name]["pieces"][0]


def flip_byte_in(checkpoint, key):
    """Flips one bit of tensor `key`'s first stored value in its shard file (h5py finds it)."""
    piece = first_piece(checkpoint, key)
    path = os.path.join(checkpoint, piece["file"])
    with h5py.File(path, "r") as f:
        offset = f[piece["dataset"]].id.get_offset()
    with open(path, "r+b") as f:
        f.seek(offset + 2)
        b = f.read(1)
        f.seek(offset + 2)
        f.write(bytes([b[0] ^ 0x10]))
    return piece["file"]


def case_faults(args, tmp):
    config = setup(tmp)
    whole = os.path.join(tmp, "whole")
    train(args, config, whole, 2, "--parallel.pp", "2", "--spin.max_iterations", "1")
    want = metrics(os.path.join(whole, "metrics.jsonl"))

    # SIGKILL on rank 0 while step 4 is being committed (shards written, no index yet).
    out = os.path.join(tmp, "killed")
    r = train(args, config, out, 2, "--parallel.pp", "2", "--spin.max_iterations", "1",
              "--checkpoint.save_interval", "2", fault="checkpoint-commit@step_00000004")
    assert r.returncode != 0, r.stdout
    assert open(os.path.join(out, "latest")).read().strip() == "step_00000002"
    assert os.path.isdir(step_dir(out, 4) + ".tmp") and not os.path.exists(step_dir(out, 4))
    ckpt(args, 1, "verify", out)
    r = train(args, config, out, 2, "--parallel.pp", "2", "--spin.max_iterations", "1",
              "--checkpoint.save_interval", "2", "--checkpoint.resume", "true")
    assert "loaded %s" % step_dir(out, 2) in r.stdout
    assert metrics(os.path.join(out, "metrics.jsonl")) == want
    assert not os.path.exists(step_dir(out, 4) + ".tmp")  # the next save of step 4 replaced it
    same_weights(step_dir(out, 6), step_dir(whole, 6), "killed")
    print("SIGKILL during a save: the previous checkpoint resumed to the uninterrupted result")

    def broken(name):
        d = os.path.join(tmp, name)
        shutil.copytree(step_dir(whole, 6), d)
        return d

    def load_fails(name, checkpoint, pattern, extra=()):
        expect_error(args.mpiexec, name, [args.spin, "train", "--config", config, "--parallel.pp", "2",
                                          "--checkpoint.save_dir", os.path.join(tmp, name + "-out"),
                                          "--checkpoint.load", checkpoint] + list(extra),
                     pattern, 2, os.path.join(tmp, name + "-out", "metrics.jsonl"))

    missing = broken("missing")
    os.remove(os.path.join(missing, "shard_tp0_pp1_dp0.h5"))
    load_fails("missing-shard", missing, r"shard_tp0_pp1_dp0\.h5: missing \(the checkpoint is incomplete\)")
    truncated = broken("truncated")
    path = os.path.join(truncated, "shard_tp0_pp0_dp0.h5")
    os.truncate(path, os.path.getsize(path) // 2)
    load_fails("truncated-shard", truncated, r"shard_tp0_pp0_dp0\.h5: not a readable HDF5 file")
    load_fails("other-batch-size", step_dir(whole, 6), r"saved by a run with 8 prompts per step",
               ["--spin.global_batch_size", "4"])
    load_fails("no-checkpoint", os.path.join(tmp, "nowhere"), r"checkpoint\.load .*nowhere: no such directory")
    bad = lambda name, rest, pattern: expect_error(args.mpiexec, name, [args.spin, "ckpt"] + rest, pattern, 2, None)
    bad("ckpt-action", ["frobnicate", missing], r"spin ckpt: unknown action \"frobnicate\"")
    bad("ckpt-no-output", ["export-hf", step_dir(whole, 6)], r"spin ckpt export-hf: the output path is missing")
    bad("ckpt-dtype", ["export-hf", step_dir(whole, 6), os.path.join(tmp, "x"), "--dtype", "f8"], r"--dtype \"f8\"")
    bad("ckpt-missing", ["verify", os.path.join(tmp, "nowhere")], r"nowhere: no such checkpoint")
    bad("ckpt-not-hf", ["import-hf", whole, os.path.join(tmp, "y")], r"config\.json")
    bad("ckpt-bad-layout", ["reshard", step_dir(whole, 6), os.path.join(tmp, "z"), "--tp", "3"], r"divisible|divide")
    bad("ckpt-adapter-action", ["export-hf", step_dir(whole, 6), os.path.join(tmp, "w"), "--adapter", tmp],
        r"spin ckpt export-hf: --adapter is import-hf's option")
    # Another action's option is refused, not ignored (import-hf wrote float32 under --dtype bf16).
    bad("ckpt-dtype-action", ["import-hf", os.path.join(args.models, "tiny-llama"), os.path.join(tmp, "u"), "--dtype",
                              "bf16"], r"spin ckpt import-hf: --dtype is export-hf's option")
    bad("ckpt-tp-action", ["export-hf", step_dir(whole, 6), os.path.join(tmp, "u"), "--tp", "2"],
        r"spin ckpt export-hf: --tp is reshard and import-hf's option")
    bad("ckpt-overwrite-action", ["verify", step_dir(whole, 6), "--overwrite"],
        r"spin ckpt verify: --overwrite is reshard, merge, export-hf and import-hf's option")
    bad("ckpt-no-adapter", ["import-hf", os.path.join(args.models, "tiny-llama"), os.path.join(tmp, "v"), "--adapter",
                            os.path.join(tmp, "nowhere")], r"nowhere/adapter_config\.json: cannot open")
    # Outputs that would replace something: an existing output only with --overwrite, a save
    # directory or one of its checkpoints never -- refused before any work, nothing there touched.
    exported = os.path.join(tmp, "exported")
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", whole, exported], 1)
    bad("ckpt-existing-output", ["export-hf", whole, exported],
        r"spin ckpt export-hf: \S*exported exists \(a Hugging Face model directory\), which the output would "
        r"replace: pass --overwrite")
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", whole, exported, "--overwrite"], 1)
    # A symbolic link as the output is written through: its target replaced (or, dangling, created), the link
    # kept (the directory had been renamed over the link, its target left as it was).
    link, dangling = os.path.join(tmp, "link"), os.path.join(tmp, "dangling")
    os.symlink("exported", link)
    os.symlink("exported-later", dangling)
    os.remove(os.path.join(exported, "config.json"))
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", whole, link, "--overwrite"], 2)
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", whole, dangling], 2)
    for name in (link, dangling):
        assert os.path.islink(name) and os.path.isfile(os.path.join(name, "config.json")), name
    assert os.path.isdir(os.path.join(tmp, "exported-later")) and not os.path.islink(os.path.join(tmp, "exported"))
    print("a link as the output: its target written, the link kept")
    bad("ckpt-existing-file", ["merge", whole, os.path.join(exported, "config.json")],
        r"spin ckpt merge: \S*config\.json exists \(a file\)")
    before = tree_state(whole)
    bad("ckpt-save-dir-output", ["import-hf", exported, whole, "--overwrite"],
        r"spin ckpt import-hf: \S*whole is a save directory \(latest: step_00000006\), which an output never replaces")
    bad("ckpt-run-checkpoint-output", ["reshard", whole, step_dir(whole, 6) + "/", "--overwrite"],
        r"spin ckpt reshard: \S*step_00000006/ is a checkpoint of save directory \S*whole, which an output never")
    os.symlink("whole", os.path.join(tmp, "whole-link"))
    bad("ckpt-save-dir-link-output", ["reshard", whole, os.path.join(tmp, "whole-link"), "--overwrite"],
        r"spin ckpt reshard: \S*/whole is a save directory \(latest: step_00000006\), which an output never")
    assert tree_state(whole) == before
    if h5py is None:
        print("SKIP flipped byte and format version: this interpreter (%s) has no h5py" % sys.executable)
        return
    flipped = broken("flipped")
    key = "policy/model.layers.1.self_attn.o_proj.weight"
    file = flip_byte_in(flipped, key)
    before = {f: open(os.path.join(flipped, f), "rb").read() for f in os.listdir(flipped)}
    r = run(args.mpiexec, [args.spin, "ckpt", "verify", flipped], 2)
    assert r.returncode != 0 and "%s: checksum mismatch in tensor %s" % (file, key) in r.stderr, r.stderr
    load_fails("flipped-byte", flipped, r"%s: checksum mismatch in tensor %s" % (file.replace(".", r"\."), key))
    assert before == {f: open(os.path.join(flipped, f), "rb").read() for f in os.listdir(flipped)}
    # A shard file that is valid HDF5 but lacks a dataset the index places there (its object header
    # lost): one error naming the file and the dataset.
    unlinked = broken("unlinked")
    piece = first_piece(unlinked, "optimizer/exp_avg/model.norm.weight")
    with h5py.File(os.path.join(unlinked, piece["file"]), "r+") as f:
        del f[piece["dataset"]]
    load_fails("unlinked-dataset", unlinked, r"%s: no readable dataset %s where the checkpoint's index puts it \(the "
               r"file is truncated or corrupt\)" % (piece["file"].replace(".", r"\."), piece["dataset"]))
    newer = broken("newer")
    with h5py.File(os.path.join(newer, "index.h5"), "r+") as f:
        f.attrs["spin_checkpoint_version"] = np.bytes_(b"99")
    load_fails("newer-version", newer, r"checkpoint format version 99 is newer than this spin reads")


def main():
    run_case(__doc__, {"resume": case_resume, "reshard": case_reshard, "convert": case_convert, "fp8": case_fp8,
                       "faults": case_faults}, "spin_ckpt_")


if __name__ == "__main__":
    main()
