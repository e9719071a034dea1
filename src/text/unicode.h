// The few Unicode facts the tokenizers need, from ICU (Debian's libicu): general
// categories, White_Space, full lower-case mapping and canonical decomposition.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tq {

// Decodes the UTF-8 character at s[i] and advances i. An ill-formed byte is read
// alone as U+FFFD, so that byte-level tokenizers still see every byte once.
char32_t next_char(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t c);

bool is_letter(char32_t c);       // L*
bool is_number(char32_t c);       // N*
bool is_white_space(char32_t c);  // the White_Space property (what \s matches)
bool is_punctuation(char32_t c);  // P*
bool is_other(char32_t c);        // C*: control, format, unassigned, private use, surrogate
bool is_space_separator(char32_t c);  // Zs
bool is_nonspacing_mark(char32_t c);  // Mn

// Full lower-case mapping of one character (may give more than one: İ → i̇), and its
// canonical decomposition (NFD; the character itself when it has none).
std::u32string to_lower(char32_t c);
std::u32string nfd(char32_t c);
// NFC of UTF-8 text (Qwen2's normaliser). Text that is not well-formed UTF-8 is returned unchanged,
// so that a byte-level tokenizer still sees every byte.
std::string nfc(std::string_view utf8);

}  // namespace tq
