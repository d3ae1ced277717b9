// What prompt_template.cpp (rendering) and prompt_template_choice.cpp (auto's choice) both read:
// the default system messages by which auto tells templates apart and which rendering writes.
#pragma once

namespace spin::data::detail {

// Qwen2.5-Instruct's default system message.
inline constexpr const char* kQwen25System = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
// Granite 4.0's default system message.
inline constexpr const char* kGranite4System =
    "You are a helpful assistant. Please ensure responses are professional, accurate, and safe.";

}  // namespace spin::data::detail
