// HfLayout: where a model's tensors sit in its Hugging Face files -- names and row blocks, no
// layers (model::hf_layout builds it; checkpoint/ reads and writes through it).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace spin {

// Where that is not one file tensor under each ShardedTensor name: a prefix before every name
// (the language model of Gemma 3's and Mistral Small 3.1's multimodal checkpoints sits under
// "language_model."), module names of another family (GPT-NeoX's "attention.dense" for
// "self_attn.o_proj"), and tensors the files hold as row blocks of one -- consecutive (Phi-3's
// qkv_proj = [q_proj; k_proj; v_proj], gate_up_proj = [gate_proj; up_proj]) or per head
// (GPT-NeoX's query_key_value = [q_0; k_0; v_0; q_1; k_1; v_1; ...], `groups` the heads), the
// file tensor maybe of one more dimension (GraniteMoE's experts: input_linear [experts, 2 x
// intermediate, hidden] = [gate_0; up_0; gate_1; up_1; ...] read as [experts x 2 x intermediate,
// hidden], `blocks` the experts); and tensors the files hold a row each (StableLM 2 12B's per-head
// norms: q_norm [heads, head_dim] as self_attn.q_layernorm.norms.<h>.weight).
struct HfLayout {
  std::string prefix;
  // The files are a multimodal model's (ModelConfig::multimodal): an export writes its other
  // tensors back as they are (checkpoint/hf_writer.h's write_multimodal_model).
  bool multimodal = false;
  struct Fusion {
    std::string fused;  // the file tensor's name suffix, e.g. "self_attn.qkv_proj.weight"
    // Suffixes of the names of the tensors it holds, with their rows in each group, first rows first.
    std::vector<std::pair<std::string, std::int64_t>> parts;
    // The parts' row blocks repeat this many times (a part's tensor has `groups` x its rows).
    std::int64_t groups = 1;
    // The file tensor's shape is [blocks, rows / blocks, ...] (1: [rows, ...]); its rows are read
    // and written as one dimension.
    std::int64_t blocks = 1;
  };
  std::vector<Fusion> fusions;
  // Name pieces the files spell otherwise, (spin's, the files'): each replaced where it starts a
  // name or follows a '.', after the fusions' suffixes are placed.
  std::vector<std::pair<std::string, std::string>> renames;
  struct RowSplit {
    std::string name;    // the name suffix of the tensor split, e.g. "self_attn.q_norm.weight"
    std::string before;  // the files' suffix before the row's index, e.g. "self_attn.q_layernorm.norms."
    std::string after;   // and after it, e.g. ".weight"
  };
  std::vector<RowSplit> row_splits;
  // Name suffixes of tensors the files keep in float32 whatever dtype an export writes the rest in
  // (transformers' _keep_in_fp32_modules_strict: GLM-4.5's router correction bias, which picks the
  // experts by differences bf16 would round away).
  std::vector<std::string> float32;
  // Block-scaled FP8 files (config.json's quantization_config, quant_method "fp8": DeepSeek-V3's, Kimi K2's,
  // Qwen3's FP8 releases): each F8_E4M3 weight W [rows, cols] beside W_scale_inv [ceil(rows / block[0]),
  // ceil(cols / block[1])] float32, W = its values times its block's scale -- read dequantized to float32.
  // {0, 0}: not quantized.
  std::array<std::int64_t, 2> fp8_block{};

  bool keeps_float32(const std::string& name) const {
    for (const std::string& suffix : float32) {
      if (name.ends_with(suffix)) return true;
    }
    return false;
  }

  // Where tensor `name` (a ShardedTensor's) sits in the files: the file tensor (prefix and
  // renames applied), the first of its rows in each group that belongs to `name`, the file
  // tensor's rows (0: not fused, the whole file tensor is `name`'s) and, for a fusion in groups,
  // their count and `name`'s rows in each.
  struct Place {
    std::string name;
    std::int64_t row = 0;
    std::int64_t rows = 0;
    std::int64_t groups = 1;
    std::int64_t group_rows = 0;  // name's rows in each group (groups > 1)
    std::int64_t blocks = 1;      // the Fusion's
  };
  Place place(const std::string& name) const {
    for (const Fusion& f : fusions) {
      std::int64_t row = 0, rows = 0;
      for (const auto& [suffix, n] : f.parts) rows += n;
      for (const auto& [suffix, n] : f.parts) {
        if (name.size() > suffix.size() && name.ends_with(suffix) && name[name.size() - suffix.size() - 1] == '.') {
          return {renamed(prefix + name.substr(0, name.size() - suffix.size()) + f.fused), row, rows * f.groups,
                  f.groups, f.groups > 1 ? n : 0, f.blocks};
        }
        row += n;
      }
    }
    return {renamed(prefix + name), 0, 0};
  }
  // The file tensor that holds row `row` of tensor `name` where the files hold it a row each (a
  // RowSplit's), prefix and renames applied; empty where they hold it whole.
  std::string row_name(const std::string& name, std::int64_t row) const {
    for (const RowSplit& s : row_splits) {
      if (name.size() > s.name.size() && name.ends_with(s.name) && name[name.size() - s.name.size() - 1] == '.') {
        return renamed(prefix + name.substr(0, name.size() - s.name.size()) + s.before + std::to_string(row) + s.after);
      }
    }
    return {};
  }
  std::string renamed(std::string name) const {
    for (const auto& [from, to] : renames) {
      for (std::size_t at = name.find(from); at != std::string::npos; at = name.find(from, at + 1)) {
        if (at == 0 || name[at - 1] == '.') {
          name.replace(at, from.size(), to);
          break;
        }
      }
    }
    return name;
  }
};

}  // namespace spin
