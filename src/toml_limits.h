// A pre-parse check that keeps toml++ away from documents nested deep enough to overflow its stack.
#pragma once

#include <string>
#include <string_view>

#include "status.h"

namespace pgboot {

// toml++ builds (and destroys) nested tables recursively: a 100 000-part
// dotted key or a 20 000-deep table header overflows the stack. pgboot's own
// keys have at most two parts, so a line with more than this many dots outside
// strings and comments, or brackets nested deeper than this, cannot be a
// pgboot configuration and is refused before toml++ sees it.
inline constexpr int kMaxTomlDotsPerLine = 64;
inline constexpr int kMaxTomlNesting = 64;

// Scans `text` (TOML) for nesting beyond the limits above, skipping strings
// (basic, literal, multi-line) and comments. A Usage error "PATH:LINE: ..."
// when it is too deep; Ok otherwise (the text may still be invalid TOML).
Status CheckTomlNesting(std::string_view text, const std::string& path);

}  // namespace pgboot
