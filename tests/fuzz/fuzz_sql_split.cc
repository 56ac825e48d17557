// libFuzzer target: the statement lexer (src/sql_split.h) on arbitrary bytes.
//
// Properties beyond "no crash, no leak, no UB": every statement's text is the
// slice of the section its line and column (UTF-8 code points) point at, the
// statements come in order without overlapping, trimmed, server positions map
// inside the statement, and an error names a line of the section.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "sql_split.h"

namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Returns the statement's byte offset in `s`.
size_t CheckStatement(std::string_view s, int first_line, const pgboot::SqlStatement& st) {
  FUZZ_CHECK(!st.text.empty(), "empty statement");
  FUZZ_CHECK(!IsSpace(st.text.back()), "trailing whitespace kept");
  FUZZ_CHECK(!IsSpace(st.text.front()), "leading whitespace kept");
  const size_t at = pgboot::fuzz::FindAt(s, first_line, st.line, st.column, st.text);
  FUZZ_CHECK(at != std::string_view::npos, "line " + std::to_string(st.line) + " column " +
                                               std::to_string(st.column) +
                                               " does not point at the statement's text");
  FUZZ_CHECK(pgboot::IsTransactionControl(st.text) == st.is_transaction_control,
             "is_transaction_control disagrees with IsTransactionControl");
  // The server's position 1 is the statement's first character.
  auto [l1, c1] = pgboot::PositionToLineColumn(st, 1);
  FUZZ_CHECK(l1 == st.line && c1 == st.column, "position 1 is not the first token");
  for (int pos : {0, -1, 2, 7, static_cast<int>(st.text.size()), 1 << 30}) {
    auto [l, c] = pgboot::PositionToLineColumn(st, pos);
    FUZZ_CHECK(l >= st.line && c >= 1, "position " + std::to_string(pos) + " maps before it");
  }
  return at;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the section's first line, as a down section starts mid-file.
  const int first_line = 1 + data[0] % 50;
  std::string_view s(reinterpret_cast<const char*>(data) + 1, size - 1);
  int error_line = -1;
  auto r = pgboot::SplitSql(s, first_line, &error_line);
  if (!r.ok()) {
    int lines = first_line;
    for (char c : s) lines += c == '\n';
    FUZZ_CHECK(r.status().kind() == pgboot::StatusKind::kInvalidFiles,
               "a lexer error is not InvalidFiles");
    FUZZ_CHECK(error_line >= first_line && error_line <= lines,
               "error line " + std::to_string(error_line) + " outside the section");
    FUZZ_CHECK(!r.status().message().empty(), "error without a message");
    return 0;
  }
  size_t end = 0;
  for (const auto& st : *r) {
    const size_t at = CheckStatement(s, first_line, st);
    FUZZ_CHECK(at >= end, "statements overlap or go backwards");
    end = at + st.text.size();
  }
  return 0;
}
