// Helpers shared by the libFuzzer targets of tests/fuzz (see tests/fuzz/README.md).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

namespace pgboot::fuzz {

// A property violation is a crash: libFuzzer saves the input that caused it.
#define FUZZ_CHECK(cond, what)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "fuzz property violated at %s:%d: %s\n  %s\n", __FILE__, __LINE__, \
                   #cond, std::string(what).c_str());                                         \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

// Inputs that hit a bug already filed (issue 18) are skipped so that CI stays
// green until it is fixed; PGBOOT_FUZZ_KNOWN_BUGS=1 turns the guards off, which
// is how tests/fuzz/run.sh --known replays tests/fuzz/known/ (the fixer of the
// bug deletes its guard and moves the reproducer into the corpus).
inline bool SkipKnownBugs() {
  static const bool skip = [] {
    const char* v = std::getenv("PGBOOT_FUZZ_KNOWN_BUGS");
    return v == nullptr || std::string_view(v) != "1";
  }();
  return skip;
}

// A private directory for targets that must go through files (removed at exit
// only by the OS's tmp cleaning: libFuzzer leaves via _exit on a crash anyway).
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/pgboot-fuzz-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    return tmpl;
  }();
  return dir;
}

// Where `text` starts in `s` (whose first line is `first_line`) at 1-based
// `line`/`column`, the column counting the bytes that do not continue a UTF-8
// sequence (as the lexer does, stray continuation bytes included); npos when
// `text` is not there.
inline size_t FindAt(std::string_view s, int first_line, int line, int column,
                     std::string_view text) {
  size_t i = 0;
  for (int l = first_line; l < line; ++l) {
    i = s.find('\n', i);
    if (i == std::string_view::npos) return i;
    ++i;
  }
  for (int count = 0; i < s.size() && count <= column - 1; ++i) {
    if (count == column - 1 && s.substr(i, text.size()) == text) return i;
    if (s[i] == '\n') break;
    count += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  }
  return std::string_view::npos;
}

inline void WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) std::abort();
}

}  // namespace pgboot::fuzz
