// HfLayout: where a model's tensors sit in its Hugging Face files -- names and row blocks, no
// layers (model::hf_layout builds it; checkpoint/ reads and writes through it).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace spin {

// Where that is not one file tensor under each ShardedTensor name: a prefix before every name
// (the language model of Gemma 3's and Mistral Small 3.1's multimodal checkpoints sits under
// "language_model."), and tensors the files hold as consecutive row blocks of one (Phi-3's
// qkv_proj = [q_proj; k_proj; v_proj], gate_up_proj = [gate_proj; up_proj]).
struct HfLayout {
  std::string prefix;
  // The files are a multimodal model's (ModelConfig::multimodal): an export writes its other
  // tensors back as they are (checkpoint/hf_writer.h's write_multimodal_model).
  bool multimodal = false;
  struct Fusion {
    std::string fused;  // the file tensor's name suffix, e.g. "self_attn.qkv_proj.weight"
    // Suffixes of the names of the tensors it holds, with their rows, first rows first.
    std::vector<std::pair<std::string, std::int64_t>> parts;
  };
  std::vector<Fusion> fusions;

  // Where tensor `name` (a ShardedTensor's) sits in the files: the file tensor (prefix included),
  // the first of its rows that belongs to `name`, and the file tensor's rows (0: not fused, the
  // whole file tensor is `name`'s).
  struct Place {
    std::string name;
    std::int64_t row = 0;
    std::int64_t rows = 0;
  };
  Place place(const std::string& name) const {
    for (const Fusion& f : fusions) {
      std::int64_t row = 0, rows = 0;
      for (const auto& [suffix, n] : f.parts) rows += n;
      for (const auto& [suffix, n] : f.parts) {
        if (name.size() > suffix.size() && name.ends_with(suffix) && name[name.size() - suffix.size() - 1] == '.') {
          return {prefix + name.substr(0, name.size() - suffix.size()) + f.fused, row, rows};
        }
        row += n;
      }
    }
    return {prefix + name, 0, 0};
  }
};

}  // namespace spin
