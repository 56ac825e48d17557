// Setting values: durations, booleans, [schema.]table names, parsed and printed (no toml++).
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "config.h"

namespace pgboot {
namespace {

bool IsPlainIdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsPlainIdentChar(char c) {
  return IsPlainIdentStart(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// Parses one identifier at `*pos`; advances past it.
Result<std::string> ParseIdent(std::string_view s, size_t* pos) {
  size_t i = *pos;
  if (i < s.size() && s[i] == '"') {
    std::string out;
    ++i;
    for (;;) {
      if (i >= s.size()) return Status::Usage("unterminated quoted identifier");
      if (s[i] == '"') {
        if (i + 1 < s.size() && s[i + 1] == '"') {
          out += '"';
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      out += s[i++];
    }
    if (out.empty()) return Status::Usage("empty quoted identifier");
    *pos = i;
    return out;
  }
  if (i >= s.size() || !IsPlainIdentStart(s[i])) {
    return Status::Usage("expected an identifier");
  }
  size_t start = i;
  while (i < s.size() && IsPlainIdentChar(s[i])) ++i;
  *pos = i;
  return AsciiLower(s.substr(start, i - start));
}

}  // namespace

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string QuoteIdent(const std::string& id) {
  std::string out = "\"";
  for (char c : id) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QualifiedName::Quoted() const { return QuoteIdent(schema) + "." + QuoteIdent(table); }

Result<QualifiedName> ParseQualifiedName(std::string_view text) {
  size_t pos = 0;
  auto first = ParseIdent(text, &pos);
  if (!first.ok()) return first.status();
  QualifiedName name;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    auto second = ParseIdent(text, &pos);
    if (!second.ok()) return second.status();
    name.schema = *first;
    name.table = *second;
  } else {
    name.table = *first;
  }
  if (pos != text.size()) return Status::Usage("expected [schema.]table");
  // The server truncates identifiers to 63 bytes: a longer name would collide
  // with its own `<table>_log` audit table.
  if (name.table.size() > 59 || name.schema.size() > 63) {
    return Status::Usage(
        "the table name may have at most 59 bytes (its audit table adds _log "
        "and PostgreSQL names have at most 63)");
  }
  return name;
}

Result<int64_t> ParseDuration(std::string_view text) {
  if (text == "0") return int64_t{0};
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  std::string number(text.substr(0, i));
  std::string unit(text.substr(i));
  const char* why = "expected a number with a unit: 250ms, 30s, 5m, 1h, or 0";
  if (number.empty() || number.front() == '.' || number.back() == '.' ||
      number.find('.') != number.rfind('.')) {
    return Status::Usage(why);
  }
  double factor;
  if (unit == "ms")
    factor = 1;
  else if (unit == "s")
    factor = 1000;
  else if (unit == "m")
    factor = 60 * 1000;
  else if (unit == "h")
    factor = 3600 * 1000;
  else
    return Status::Usage(why);
  double ms = std::strtod(number.c_str(), nullptr) * factor;
  if (ms > 1e15) return Status::Usage("duration too large");
  return static_cast<int64_t>(std::llround(ms));
}

Result<bool> ParseBool(std::string_view text) {
  std::string v = AsciiLower(text);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return Status::Usage("expected true/false, 1/0, yes/no or on/off");
}

std::string FormatDuration(int64_t ms) {
  if (ms == 0) return "0";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace pgboot
