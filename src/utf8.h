// UTF-8 validation as PostgreSQL applies it to the text pgboot sends.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pgboot {

// Returns the length of the valid UTF-8 sequence at s[i], or 0. Rejects what PostgreSQL
// rejects: overlong forms, surrogates, code points above U+10FFFF, and NUL (which libpq
// would silently treat as the end of the statement).
size_t Utf8SequenceLength(std::string_view s, size_t i);

// Returns the 1-based line of the first byte that is not valid UTF-8 text, or 0.
int FindInvalidUtf8(std::string_view s);

// `s` with each byte that is not valid UTF-8 written as \xNN, so a message can name it.
std::string EscapeInvalidUtf8(std::string_view s);

}  // namespace pgboot
