#include "toml_limits.h"

namespace pgboot {
namespace {

// Skips a string starting at text[*i] (a quote); counts its newlines into *line.
void SkipString(std::string_view text, size_t* i, int* line) {
  const char quote = text[*i];
  const std::string_view triple = quote == '"' ? "\"\"\"" : "'''";
  const bool multi = text.substr(*i, 3) == triple;
  *i += multi ? 3 : 1;
  while (*i < text.size()) {
    const char c = text[*i];
    if (c == '\\' && quote == '"') {  // literal strings have no escapes
      if (*i + 1 < text.size() && text[*i + 1] == '\n') ++*line;
      *i += 2;
      continue;
    }
    if (c == '\n') {
      if (!multi) return;  // unterminated: toml++ reports it
      ++*line;
    } else if (c == quote && !multi) {
      ++*i;
      return;
    } else if (c == quote && text.substr(*i, 3) == triple) {
      *i += 3;
      return;
    }
    ++*i;
  }
}

}  // namespace

Status CheckTomlNesting(std::string_view text, const std::string& path) {
  int line = 1, dots = 0, depth = 0;
  auto too_deep = [&](const std::string& what, int limit) {
    return Status::Usage(path + ":" + std::to_string(line) + ": " + what +
                         " nested too deeply for a pgboot configuration (at most " +
                         std::to_string(limit) + ")");
  };
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '"' || c == '\'') {
      SkipString(text, &i, &line);
      continue;
    }
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if (c == '\n') {
      ++line;
      dots = 0;
    } else if (c == '.' && ++dots > kMaxTomlDotsPerLine) {
      return too_deep("dotted keys", kMaxTomlDotsPerLine);
    } else if ((c == '[' || c == '{') && ++depth > kMaxTomlNesting) {
      return too_deep("arrays or tables", kMaxTomlNesting);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
    ++i;
  }
  return Status::Ok();
}

}  // namespace pgboot
