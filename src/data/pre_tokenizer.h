// The pre-tokenizers of byte-level BPE tokenizers: the regular expressions of GPT-2, Llama-3,
// Qwen2, Mistral's Tekken, OpenAI's o200k (Phi-4-mini, Llama 4) and Moonshot AI's (Moonlight, Kimi K2:
// o200k's with Han runs apart), DeepSeek-V3's three in sequence, DeepSeek LLM's five and DeepSeek Coder's four (then
// every digit apart), written out as code over Unicode classes (unicode_classes.h). Each matches as the engine that
// runs it does -- Oniguruma in Hugging Face `tokenizers`, fancy-regex in tiktoken: leftmost-first alternation, greedy
// with backtracking -- so the pieces are theirs (tested through HfBpeTokenizer against both libraries).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace spin::data {

enum class PreTokenizer { None, Gpt2, Llama3, Qwen2, Tekken, O200k, Kimi, DeepSeekV3, DeepSeekLlm, DeepSeekCoder };

// The expression `pattern`, spelled as tokenizer.json's Split, tekken.json's config.pattern or
// tiktoken's pat_str spell it, as one of these; None for any other.
PreTokenizer pre_tokenizer_of(std::string_view pattern);
// DeepSeek-V3's (V3, R1, V3.1): not one expression but three Isolated Splits in sequence, each over the
// pieces of the one before -- numbers of up to three digits, runs of CJK ideographs and kana, then words,
// punctuation and whitespace (a stretch none of these matches stays one piece). Whether `patterns`, as
// tokenizer.json spells them (its line breaks in brackets as the characters or as \r \n), are those.
bool is_deepseek_v3_sequence(const std::vector<std::string>& patterns);
// DeepSeek LLM's (DeepSeek LLM 7B / 67B, DeepSeek-V2, V2.5, V2-Lite, Coder-V2): five Isolated Splits -- each line
// break, words of an explicit list of cased letters with a whitespace code point before them, runs of ASCII and
// fullwidth punctuation (ASCII letters among them) likewise, a piece's trailing whitespace, runs of the blocks
// from U+0800 to the CJK ideographs and of Hangul syllables -- then Digits with individual_digits, each a piece
// of the one before. Whether `patterns`, as tokenizer.json spells them, are those five.
bool is_deepseek_llm_sequence(const std::vector<std::string>& patterns);
// DeepSeek Coder's (deepseek-coder 1.3B / 6.7B / 33B, base and instruct): four Isolated Splits -- each line break,
// words (\p{L}) and runs of punctuation (\p{P}) each after an optional whitespace code point, DeepSeek LLM's
// U+0800-U+9FA5 and Hangul runs -- then Digits with individual_digits. Whether `patterns` are those four.
bool is_deepseek_coder_sequence(const std::vector<std::string>& patterns);

// The pieces `text` splits into (the whole text for None), in order, covering it.
std::vector<std::string_view> pre_tokenize(PreTokenizer p, std::string_view text);

}  // namespace spin::data
