#!/usr/bin/env python3
"""spin's LoRA against PEFT (0.10, the test oracle beside transformers 4.40): `spin sft --lora-rank 4
--lora-alpha 8` trains adapters on every projection of tiny-llama; the adapters of its step-4 checkpoint,
exported as a PEFT adapter directory (`spin ckpt export-hf --which lora`) and loaded by
PeftModel.from_pretrained over the checkpoint's frozen model (`--which base`), give the logits of the
merged model spin writes for that checkpoint (`--which policy`) to 1e-4, and PEFT's merge_and_unload
gives its weights to 1e-5: PEFT's module names, A / B orientation and alpha / rank scale are spin's --
and with --lora-rslora (PEFT's use_rslora) the alpha / sqrt(rank) scale.
The adapters are not trivial: trained away from B = 0, the merged model's logits differ from the
base's by more than 1e-2.
The other way: an adapter PEFT makes (random A and B on q_proj, v_proj and down_proj of tiny-llama,
with and without rsLoRA), merged by `spin ckpt import-hf --adapter` into a TP 2 checkpoint and
exported, equals PEFT's merge_and_unload to 1e-6; adapters spin cannot merge faithfully (DoRA, a
target regex, modules to save) and a rank that disagrees with the tensors are refused, naming the
file. Phi-3's fused modules (transformers 4.40 has no Phi3ForCausalLM, so the adapter is written
here under PEFT's names): one pair on qkv_proj, gate_up_proj, o_proj and down_proj, merged at TP 2,
exports the fused tensors of W + (alpha / r) B A. Phi-2 (tiny-phi2, PhiForCausalLM: its modules
named dense, fc1, fc2; no gate): both ways as tiny-llama's -- spin sft's all-linear adapters (six
modules) exported for PEFT over the frozen model, and PEFT's adapter on q_proj, dense and fc2 merged
by spin. GPT-NeoX (tiny-gpt-neox, GPTNeoXForCausalLM: q, k and v fused per head in query_key_value):
both ways -- spin's all-linear adapters (q, k, v each its own pair, exported as one query_key_value
pair of rank 3r as Phi-3's; four modules) over the frozen model, and PEFT's adapter of query_key_value
and dense_4h_to_h merged by spin at TP 2 (its B's rows split per head); gate_proj in --lora-targets
refused by name. Mixtures of experts, both ways
as tiny-llama's: Mixtral (tiny-mixtral, its experts' w1 / w3 / w2) and Qwen2-MoE (tiny-qwen2-moe, its
experts' and shared expert's gate_proj / up_proj / down_proj) -- spin sft's all-linear adapters (every
expert's projections, the router not adapted: seven target modules) exported for PEFT over the frozen
model, and PEFT's adapters of the experts and of the gates (the router, the shared expert's gate: what
PEFT's all-linear wraps besides) merged by spin. GLM-4.5 (tiny-glm4-moe: transformers 4.40 lacks it) both
ways by hand: PEFT's names of its dense layer's MLP, its experts and shared experts (check_glm4_moe).
Needs torch, transformers and peft (a test oracle only).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaForCausalLM


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.exit("FAIL: %s\nstdout:\n%s\nstderr:\n%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r


def refused(cmd, pattern):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    errors = [l for l in r.stderr.splitlines() if l.startswith("spin: error:")]
    if r.returncode == 0 or len(errors) != 1 or pattern not in errors[0]:
        sys.exit("FAIL: %s should fail with one error naming %r\nstderr:\n%s" % (" ".join(cmd), pattern, r.stderr))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spin", required=True)
    parser.add_argument("--models", required=True)
    args = parser.parse_args()
    model = os.path.join(args.models, "tiny-llama")
    vocab = json.load(open(os.path.join(model, "config.json")))["vocab_size"]
    for rslora in (False, True):
        check(args, model, vocab, rslora)
        check_import(args, model, rslora)
    # Per-module ranks and alphas: v_proj at rank 2, layer 1's q_proj at rank 6 (its own key before
    # q_proj's), q_proj elsewhere at alpha 5, down_proj at alpha 3 -- PEFT's resolution of the keys.
    check_import(args, model, False, {"v_proj": 2, "layers.1.self_attn.q_proj": 6},
                 {"q_proj": 5.0, "down_proj": 3.0})
    check_import_fused(args, os.path.join(args.models, "tiny-phi3"))
    phi2 = os.path.join(args.models, "tiny-phi2")
    check(args, phi2, json.load(open(os.path.join(phi2, "config.json")))["vocab_size"], False, modules=6)
    check_import(args, phi2, False, targets=("q_proj", "dense", "fc2"))
    neox = os.path.join(args.models, "tiny-gpt-neox")
    check(args, neox, json.load(open(os.path.join(neox, "config.json")))["vocab_size"], False, modules=4)
    check_import(args, neox, False, targets=("query_key_value", "dense_4h_to_h"))
    check_gpt_neox_gate_refused(args, neox)
    # The mixtures: PEFT's all-linear wraps the gates too (the router, Qwen2-MoE's shared expert's gate), which
    # spin merges at import though it never trains them.
    for name, targets in (("tiny-mixtral", ("q_proj", "w1", "w2", "w3", "gate")),
                          ("tiny-qwen2-moe", ("v_proj", "gate_proj", "up_proj", "down_proj", "gate",
                                              "shared_expert_gate"))):
        moe = os.path.join(args.models, name)
        check(args, moe, json.load(open(os.path.join(moe, "config.json")))["vocab_size"], False)
        check_import(args, moe, False, targets=targets)
    check_granitemoe_experts_refused(args, os.path.join(args.models, "tiny-granitemoe"))
    check_granite4_round_trip(args, os.path.join(args.models, "tiny-granite4"))
    check_glm4_moe(args, os.path.join(args.models, "tiny-glm4-moe"))
    check_deepseek_v3(args, os.path.join(args.models, "tiny-deepseek-v3"))


def lora_sft_command(args, model, tmp, seed):
    """spin sft with rank-4 LoRA adapters on `model` for one epoch over 8 copy-task records (4 random
    prompt tokens, the response repeating them and EOS) written into `tmp`, `seed` drawing them; the
    caller adds --output and its own options."""
    vocab = json.load(open(os.path.join(model, "config.json")))["vocab_size"]
    data = os.path.join(tmp, "copy.jsonl")
    rng = random.Random(seed)
    with open(data, "w") as f:
        for _ in range(8):
            prompt = [rng.randrange(3, vocab) for _ in range(4)]
            f.write(json.dumps({"prompt": prompt, "response": prompt + [2]}) + "\n")
    return [args.spin, "sft", "--model", model, "--train", data, "--lora-rank", "4", "--global-batch-size", "4",
            "--micro-batch-size", "4", "--epochs", "1"]


def check_gpt_neox_gate_refused(args, model):
    """GPT-NeoX: LoRA on a gate its plain MLP lacks is refused naming the setting, before any output."""
    with tempfile.TemporaryDirectory(prefix="spin_peft_neox_") as tmp:
        out = os.path.join(tmp, "gated")
        refused(lora_sft_command(args, model, tmp, 4) + ["--output", out, "--lora-targets", "q_proj,gate_proj"],
                "--lora-targets")
        assert not os.path.exists(out)
    print("GPT-NeoX: gate_proj in --lora-targets refused by name, nothing written")


def check_granitemoe_experts_refused(args, model):
    """GraniteMoE: spin trains adapters of its experts, but PEFT cannot wrap them (each layer's experts are
    one 3-D parameter): their PEFT export is refused by name, nothing written, while the merged model
    exports (the experts stacked back into input_linear / output_linear, moved by the training) and so do
    adapters of the attention alone, as PEFT's q_proj and v_proj."""
    with tempfile.TemporaryDirectory(prefix="spin_peft_granitemoe_") as tmp:
        for targets in ("all-linear", "q_proj,v_proj"):
            save = os.path.join(tmp, "save-" + targets)
            run(lora_sft_command(args, model, tmp, 9) + ["--output", os.path.join(tmp, "out-" + targets),
                                                         "--lora-targets", targets, "--lr", "3e-2",
                                                         "--save-dir", save, "--save-interval", "1"])
            step = os.path.join(save, "step_00000001")  # after one step of two (the last is the output)
            lora, policy = os.path.join(tmp, "lora-" + targets), os.path.join(tmp, "policy-" + targets)
            run([args.spin, "ckpt", "export-hf", step, policy, "--which", "policy"])
            base = load_file(os.path.join(model, "model.safetensors"))
            merged = load_file(os.path.join(policy, "model.safetensors"))
            experts = "model.layers.1.block_sparse_moe.input_linear.weight"
            assert merged[experts].shape == base[experts].shape, (merged[experts].shape, base[experts].shape)
            moved = (merged[experts] - base[experts]).abs().max().item()
            if targets == "all-linear":
                assert moved > 0, "the experts' adapters trained and merged"
                refused([args.spin, "ckpt", "export-hf", step, lora, "--which", "lora"],
                        "include GraniteMoE's experts, which PEFT cannot adapt")
                assert not os.path.exists(lora)
            else:
                assert moved == 0, moved
                run([args.spin, "ckpt", "export-hf", step, lora, "--which", "lora"])
                config = json.load(open(os.path.join(lora, "adapter_config.json")))
                assert sorted(config["target_modules"]) == ["q_proj", "v_proj"], config
    print("GraniteMoE: adapters of its experts trained and merged into its 3-D expert tensors, their PEFT export "
          "refused by name (nothing written); the attention's adapters exported for PEFT")


def check_granite4_round_trip(args, model):
    """Granite 4.0's shared MLP (gate and up fused in input_linear): spin's PEFT export of all-linear adapters
    adapts input_linear with one pair of rank 2 x 4 (rank_pattern, as Phi-3's gate_up_proj) and output_linear;
    importing it over the base (spin ckpt import-hf --adapter) gives the merged model spin exports."""
    with tempfile.TemporaryDirectory(prefix="spin_peft_granite4_") as tmp:
        save = os.path.join(tmp, "save")
        run(lora_sft_command(args, model, tmp, 11) + ["--output", os.path.join(tmp, "out"), "--lr", "3e-2",
                                                      "--save-dir", save, "--save-interval", "1"])
        step = os.path.join(save, "step_00000001")
        lora, policy = os.path.join(tmp, "lora"), os.path.join(tmp, "policy")
        for which, where in (("lora", lora), ("policy", policy)):
            run([args.spin, "ckpt", "export-hf", step, where, "--which", which])
        config = json.load(open(os.path.join(lora, "adapter_config.json")))
        assert sorted(config["target_modules"]) == ["input_linear", "k_proj", "o_proj", "output_linear", "q_proj",
                                                    "v_proj"], config
        assert config["rank_pattern"] == {"input_linear": 8}, config
        imported, hf = os.path.join(tmp, "imported"), os.path.join(tmp, "imported-hf")
        run([args.spin, "ckpt", "import-hf", model, imported, "--adapter", lora])
        run([args.spin, "ckpt", "export-hf", imported, hf])
        base = load_file(os.path.join(model, "model.safetensors"))
        want = load_file(os.path.join(policy, "model.safetensors"))
        got = load_file(os.path.join(hf, "model.safetensors"))
        worst = max((got[n] - want[n]).abs().max().item() for n in want)
        moved = (want["model.layers.1.shared_mlp.input_linear.weight"] -
                 base["model.layers.1.shared_mlp.input_linear.weight"]).abs().max().item()
        assert worst < 1e-6 and moved > 1e-3, (worst, moved)
    print("Granite 4.0: spin's PEFT export (input_linear fused, rank_pattern 8) imported over the base equals the "
          "merged model to %.1e (the adapters move input_linear by %.3f)" % (worst, moved))


def check_import_written(args, model, targets, skip=lambda name: False):
    """A PEFT adapter written here under PEFT's names (for models transformers 4.40 lacks): random A and B
    on every module whose last name is in `targets` (but the tensors `skip` names), merged by import-hf
    at TP 2 and exported: W + (alpha / r) B A, every other tensor as read. Returns the worst difference
    and the smallest move."""
    with tempfile.TemporaryDirectory(prefix="spin_peft_written_") as tmp:
        torch.manual_seed(7)
        base = {n: t for n, t in load_file(os.path.join(model, "model.safetensors")).items() if not skip(n)}
        r, alpha = 4, 8
        adapter = os.path.join(tmp, "adapter")
        os.makedirs(adapter)
        tensors, want = {}, dict(base)
        adapted = [n for n, w in base.items() if w.dim() == 2 and n.endswith(".weight") and n.split(".")[-2] in targets]
        for name in adapted:
            w = base[name]
            a, b = torch.randn(r, w.shape[1]) * 0.3, torch.randn(w.shape[0], r) * 0.3
            stem = "base_model.model." + name[:-len("weight")]
            tensors[stem + "lora_A.weight"], tensors[stem + "lora_B.weight"] = a, b
            want[name] = w + (b @ a) * (alpha / r)  # PEFT's merge: W + B A scaling
        save_file(tensors, os.path.join(adapter, "adapter_model.safetensors"), metadata={"format": "pt"})
        json.dump({"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": list(targets),
                   "bias": "none", "fan_in_fan_out": False, "modules_to_save": None, "use_rslora": False},
                  open(os.path.join(adapter, "adapter_config.json"), "w"))
        out, hf = os.path.join(tmp, "ckpt"), os.path.join(tmp, "hf")
        run([args.spin, "ckpt", "import-hf", model, out, "--tp", "2", "--adapter", adapter])
        run([args.spin, "ckpt", "export-hf", out, hf])
        got = load_file(os.path.join(hf, "model.safetensors"))
        assert sorted(got) == sorted(want), (sorted(got), sorted(want))
        worst = max((got[n] - want[n]).abs().max().item() for n in got)
        moved = min((want[n] - base[n]).abs().max().item() for n in adapted)
        assert worst < 1e-5 and moved > 1e-2, (worst, moved)
        assert all(torch.equal(got[n], base[n]) for n in got if n not in adapted)
        return adapted, worst, moved


def check_import_fused(args, model):
    adapted, worst, moved = check_import_written(args, model, ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"))
    assert len(adapted) == 2 * 4, adapted
    print("Phi-3: a PEFT adapter of the fused qkv_proj and gate_up_proj (and o_proj, down_proj) merged by "
          "import-hf at TP 2: W + (alpha / r) B A to %.1e (the adapter moves each by > %.2f)" % (worst, moved))


def sft_adapters_merge(args, model, seed, tmp):
    """spin sft's all-linear LoRA adapters on `model` (one step, --lora-alpha 8), exported under PEFT's names:
    (the adapter's tensors and config, the base's and the merged policy's, the largest difference between the
    policy and base + (alpha / r) B A, the largest move of the policy from the base)."""
    save = os.path.join(tmp, "save")
    run(lora_sft_command(args, model, tmp, seed) + ["--output", os.path.join(tmp, "out"), "--lora-alpha", "8",
                                                      "--lr", "3e-2", "--save-dir", save, "--save-interval", "1"])
    step = os.path.join(save, "step_00000001")
    for which in ("lora", "base", "policy"):
        run([args.spin, "ckpt", "export-hf", step, os.path.join(tmp, which), "--which", which])
    config = json.load(open(os.path.join(tmp, "lora", "adapter_config.json")))
    lora = load_file(os.path.join(tmp, "lora", "adapter_model.safetensors"))
    base = load_file(os.path.join(tmp, "base", "model.safetensors"))
    policy = load_file(os.path.join(tmp, "policy", "model.safetensors"))
    scale = config["lora_alpha"] / config["r"]
    want = dict(base)
    for name in lora:
        if name.endswith("lora_A.weight"):
            module = name[len("base_model.model."):-len("lora_A.weight")]
            want[module + "weight"] = base[module + "weight"] + (
                lora[name[:-len("lora_A.weight")] + "lora_B.weight"] @ lora[name]) * scale
    assert sorted(want) == sorted(policy), (sorted(want), sorted(policy))
    diff = max((policy[n] - want[n]).abs().max().item() for n in policy)
    trained = max((policy[n] - base[n]).abs().max().item() for n in policy)
    return lora, config, base, policy, diff, trained


def check_glm4_moe(args, model):
    """GLM-4.5 (transformers 4.40 has no Glm4MoeForCausalLM: both ways by hand). A PEFT adapter of q_proj,
    gate_proj, up_proj and down_proj -- in layer 0 the dense MLP's, in layer 1 every expert's and the
    shared experts' (mlp.shared_experts) -- merged by import-hf at TP 2 as W + (alpha / r) B A, the MTP
    layer's tensors (model.layers.2) neither adapted nor exported. And spin sft's all-linear adapters,
    exported under PEFT's names, are what spin's merged model adds to its base: (alpha / r) B A for each,
    the router and its correction bias untouched."""
    mtp = lambda name: name.startswith("model.layers.2.")
    adapted, worst, moved = check_import_written(args, model, ("q_proj", "gate_proj", "up_proj", "down_proj"), mtp)
    experts = json.load(open(os.path.join(model, "config.json")))["n_routed_experts"]
    assert len(adapted) == 2 + 3 + 3 * (experts + 1), adapted  # q_proj twice, the dense MLP, experts and shared
    assert "model.layers.1.mlp.shared_experts.down_proj.weight" in adapted, adapted
    with tempfile.TemporaryDirectory(prefix="spin_peft_glm4_moe_") as tmp:
        lora, _, base, policy, diff, trained = sft_adapters_merge(args, model, 11, tmp)
        assert "base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight" in lora, sorted(lora)
        assert "base_model.model.model.layers.1.mlp.experts.3.down_proj.lora_B.weight" in lora, sorted(lora)
        assert "base_model.model.model.layers.1.mlp.shared_experts.up_proj.lora_A.weight" in lora, sorted(lora)
        assert not any(".mlp.gate." in name for name in lora), sorted(lora)
        assert trained > 1e-3 and diff < 1e-5, (trained, diff)
        assert torch.equal(policy["model.layers.1.mlp.gate.e_score_correction_bias"],
                           base["model.layers.1.mlp.gate.e_score_correction_bias"])
    print("GLM-4.5: a PEFT adapter of the dense MLP, the experts and the shared experts merged by import-hf at TP 2 "
          "to %.1e (moving each by > %.2f); spin's adapters exported under PEFT's names merge to its policy to %.1e"
          % (worst, moved, diff))


def check_deepseek_v3(args, model):
    """DeepSeek-V3 (transformers 4.40 has no DeepseekV3ForCausalLM: both ways by hand). A PEFT adapter of every
    projection -- the latent attention's q_a_proj, q_b_proj, kv_a_proj_with_mqa and kv_b_proj, o_proj, layer 0's
    dense MLP, layer 1's every expert and shared experts -- merged by import-hf at TP 2 (the MTP layer not read);
    spin sft's all-linear adapters (the same projections) exported under PEFT's names, target_modules naming
    q_b_proj and the latent projections, merge to spin's policy."""
    mtp = lambda name: name.startswith("model.layers.2.")
    latent = ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj")
    adapted, worst, moved = check_import_written(args, model, latent + ("o_proj", "gate_proj", "up_proj", "down_proj"),
                                                 mtp)
    experts = json.load(open(os.path.join(model, "config.json")))["n_routed_experts"]
    assert len(adapted) == 2 * 5 + 3 + 3 * (experts + 1), adapted
    with tempfile.TemporaryDirectory(prefix="spin_peft_deepseek_v3_") as tmp:
        lora, config, _, _, diff, trained = sft_adapters_merge(args, model, 12, tmp)
        for module in ("self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.kv_a_proj_with_mqa",
                       "self_attn.kv_b_proj", "self_attn.o_proj", "mlp.experts.3.down_proj"):
            assert "base_model.model.model.layers.1.%s.lora_A.weight" % module in lora, (module, sorted(lora))
        assert sorted(config["target_modules"]) == sorted(latent + ("o_proj", "gate_proj", "up_proj", "down_proj")), \
            config
        assert trained > 1e-3 and diff < 1e-5, (trained, diff)
    print("DeepSeek-V3: a PEFT adapter of every projection -- the latent attention's four, o_proj, the dense MLP, the "
          "experts and the shared experts -- merged by import-hf at TP 2 to %.1e (moving each by > %.2f); spin's "
          "all-linear adapters exported under PEFT's names merge to its policy to %.1e" % (worst, moved, diff))


def check_import(args, model, rslora, rank_pattern=None, alpha_pattern=None, targets=("q_proj", "v_proj", "down_proj")):
    with tempfile.TemporaryDirectory(prefix="spin_peft_import_") as tmp:
        torch.manual_seed(5)
        base = AutoModelForCausalLM.from_pretrained(model, torch_dtype=torch.float32)
        before = {n: t.clone() for n, t in base.state_dict().items()}
        config = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), lora_dropout=0.1,
                            use_rslora=rslora, rank_pattern=rank_pattern or {}, alpha_pattern=alpha_pattern or {})
        adapted = get_peft_model(base, config)
        if rank_pattern:  # PEFT gave the modules those ranks
            ranks = {n: p.shape[0] for n, p in adapted.named_parameters() if n.endswith("lora_A.default.weight")}
            assert ranks["base_model.model.model.layers.1.self_attn.q_proj.lora_A.default.weight"] == 6, ranks
            assert ranks["base_model.model.model.layers.0.self_attn.v_proj.lora_A.default.weight"] == 2, ranks
        with torch.no_grad():
            for name, p in adapted.named_parameters():
                if "lora_" in name:
                    p.copy_(torch.randn_like(p) * 0.3)
        # What save_pretrained writes (without its model card, which needs Jinja2).
        adapter = os.path.join(tmp, "adapter")
        adapted.peft_config["default"].save_pretrained(adapter)
        save_file(get_peft_model_state_dict(adapted), os.path.join(adapter, "adapter_model.safetensors"),
                  metadata={"format": "pt"})
        want = adapted.merge_and_unload().state_dict()
        out, hf = os.path.join(tmp, "ckpt"), os.path.join(tmp, "hf")
        run([args.spin, "ckpt", "import-hf", model, out, "--tp", "2", "--adapter", adapter])
        run([args.spin, "ckpt", "export-hf", out, hf])
        got = load_file(os.path.join(hf, "model.safetensors"))
        worst = max((got[name] - want[name]).abs().max().item() for name in got)
        changed = sorted(n for n in got if not torch.equal(got[n], before[n]))
        # Every target's modules in every layer (a mixture's: each expert's, and a shared expert's), as PEFT's merge
        # changed them.
        expected = sorted(n for n in want if not torch.equal(want[n], before[n]))
        layers = base.config.num_hidden_layers
        assert all(sum(n.endswith(".%s.weight" % m) for n in expected) >= layers for m in targets), expected
        assert changed == expected, changed
        assert worst < 1e-6, "spin's merge of PEFT's adapter and PEFT's differ by %g" % worst
        # What spin does not merge as PEFT would, refused before any work.
        settings = json.load(open(os.path.join(adapter, "adapter_config.json")))
        refusals = [("use_dora", True, "use_dora"), ("target_modules", ".*proj", "target_modules"),
                    ("modules_to_save", ["lm_head"], "modules_to_save"), ("r", 8, "lora_A.weight")]
        if not any(k in base.config.to_dict() for k in ("num_local_experts", "num_experts")):
            refusals.append(("target_modules", list(targets) + ["gate"], "gate"))  # a router the model lacks
        for i, (key, value, named) in enumerate(refusals):
            key_dir = "%s_%d" % (key, i)
            bad = os.path.join(tmp, "bad_" + key_dir)
            os.makedirs(bad)
            os.symlink(os.path.join(adapter, "adapter_model.safetensors"), os.path.join(bad, "adapter_model.safetensors"))
            json.dump(dict(settings, **{key: value}), open(os.path.join(bad, "adapter_config.json"), "w"))
            refused([args.spin, "ckpt", "import-hf", model, os.path.join(tmp, "x_" + key_dir), "--adapter", bad], named)
            assert not os.path.exists(os.path.join(tmp, "x_" + key_dir)), key
        print("a PEFT adapter (rank 4, alpha 8, %s%s%s) merged by spin ckpt import-hf at TP 2: PEFT's "
              "merge_and_unload to %.1e, the other weights untouched; DoRA, a target regex,%s modules to save and a "
              "wrong rank refused" % ("/".join(targets) + " of " + os.path.basename(model), ", rsLoRA" if rslora else "",
                                      ", rank_pattern %s, alpha_pattern %s" % (rank_pattern, alpha_pattern)
                                      if rank_pattern else "", worst,
                                      " a router the model lacks," if len(refusals) > 4 else ""))


def check(args, model, vocab, rslora, modules=7):
    with tempfile.TemporaryDirectory(prefix="spin_peft_") as tmp:
        data = os.path.join(tmp, "copy.jsonl")
        rng = random.Random(3)
        with open(data, "w") as f:
            for _ in range(32):
                prompt = [rng.randrange(3, vocab) for _ in range(rng.randint(3, 8))]
                f.write(json.dumps({"prompt": prompt, "response": prompt + [2]}) + "\n")
        save = os.path.join(tmp, "save")
        run([args.spin, "sft", "--model", model, "--train", data, "--output", os.path.join(tmp, "out"),
             "--lora-rank", "4", "--lora-alpha", "8", "--lr", "3e-2", "--global-batch-size", "8",
             "--micro-batch-size", "4", "--epochs", "2", "--save-dir", save, "--save-interval", "4"] +
            (["--lora-rslora"] if rslora else []))
        checkpoint = os.path.join(save, "step_00000004")
        for which in ("lora", "base", "policy"):
            run([args.spin, "ckpt", "export-hf", checkpoint, os.path.join(tmp, which), "--which", which])
        config = json.load(open(os.path.join(tmp, "lora", "adapter_config.json")))
        assert config["r"] == 4 and config["lora_alpha"] == 8 and len(config["target_modules"]) == modules, config
        assert config["use_rslora"] == rslora, config

        ids = torch.tensor([[rng.randrange(3, vocab) for _ in range(12)] for _ in range(3)])
        base = AutoModelForCausalLM.from_pretrained(os.path.join(tmp, "base"), torch_dtype=torch.float32).eval()
        merged = AutoModelForCausalLM.from_pretrained(os.path.join(tmp, "policy"), torch_dtype=torch.float32).eval()
        with torch.no_grad():
            base_logits = base(input_ids=ids).logits
            spin_logits = merged(input_ids=ids).logits
            adapted = PeftModel.from_pretrained(base, os.path.join(tmp, "lora")).eval()
            peft_logits = adapted(input_ids=ids).logits
        moved = (spin_logits - base_logits).abs().max().item()
        diff = (peft_logits - spin_logits).abs().max().item()
        assert moved > 1e-2, "the adapters did not train (logits moved by %g)" % moved
        assert diff < 1e-4, "PEFT's adapted model and spin's merged model differ by %g" % diff
        peft_weights = adapted.merge_and_unload().state_dict()
        spin_weights = load_file(os.path.join(tmp, "policy", "model.safetensors"))
        worst = max((peft_weights[name] - tensor).abs().max().item() for name, tensor in spin_weights.items())
        assert worst < 1e-5, "PEFT's merge and spin's differ by %g" % worst
        print("%s, LoRA rank 4, alpha 8, every projection%s: PEFT over the base vs spin's merged model: logits %.1e "
              "apart (the adapters move them by %.2f); merged weights %.1e apart" % (os.path.basename(model),
                                                                                   ", rsLoRA" if rslora else "", diff,
                                                                                   moved, worst))


if __name__ == "__main__":
    main()
