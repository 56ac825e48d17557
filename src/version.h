// Migration versions: ASCII digits, canonical without leading zeros, ordered numerically.
#pragma once

#include <string>
#include <string_view>

namespace pgboot {

// Whether `text` is a version as a user may type it: one or more ASCII digits.
bool IsVersionText(std::string_view text);

// Drops leading zeros of a version made of ASCII digits ("007" -> "7", "000" -> "0").
std::string CanonicalVersion(std::string_view digits);

// Orders canonical versions numerically, however long: <0, 0 or >0 like strcmp.
int CompareVersions(std::string_view a, std::string_view b);

}  // namespace pgboot
