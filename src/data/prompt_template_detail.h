// What prompt_template.cpp (rendering) and prompt_template_choice.cpp (auto's choice) both read:
// the default system messages by which auto tells templates apart and which rendering writes.
#pragma once

#include <optional>
#include <string>

namespace spin::data::detail {

// Qwen2.5-Instruct's default system message.
inline constexpr const char* kQwen25System = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
// Granite 4.0's default system message.
inline constexpr const char* kGranite4System =
    "You are a helpful assistant. Please ensure responses are professional, accurate, and safe.";

// The default system messages of Olmo 3 Instruct's and Olmo 3.1 Instruct's chat templates, each followed by
// kOlmo3NoFunctions where no functions are given (spin never gives any).
inline constexpr const char* kOlmo3System = "You are a helpful function-calling AI assistant. ";
inline constexpr const char* kOlmo31System =
    "You are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December 2024, and your model weights are "
    "available at https://huggingface.co/allenai. ";
inline constexpr const char* kOlmo3NoFunctions =
    "You do not currently have access to any functions. <functions></functions>";

// The opening of the default system turn Moonshot's chat templates write before a conversation without a
// system message.
inline constexpr const char* kKimiSystemTurn = "<|im_system|>system<|im_middle|>";

// That default system message: the chat template's literal text from kKimiSystemTurn to the next
// <|im_end|> (Moonlight's "You are a helpful assistant", Kimi K2's "You are Kimi, an AI assistant created
// by Moonshot AI."); nullopt where the template has no such turn or builds its text from expressions.
inline std::optional<std::string> kimi_default_system(const std::string& chat_template) {
  const std::size_t open = chat_template.find(kKimiSystemTurn);
  if (open == std::string::npos) return std::nullopt;
  const std::size_t from = open + std::string(kKimiSystemTurn).size(), to = chat_template.find("<|im_end|>", from);
  if (to == std::string::npos) return std::nullopt;
  std::string text = chat_template.substr(from, to - from);
  if (text.find_first_of("{}'\"\\") != std::string::npos) return std::nullopt;
  return text;
}

}  // namespace spin::data::detail
