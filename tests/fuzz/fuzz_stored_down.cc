// libFuzzer target: ParseStoredDown (src/migration_files.h), the parser of the down
// sections kept in the history table (`down_sql`, `down_options`), which rollback
// --future runs when the file is gone.
//
// Input: the first line is `down_options`, the rest `down_sql`.
// Properties: an accepted down keeps the SQL and options as stored, its
// transaction mode is the last transaction:* option, its statements are in order
// where their line and column say (and still so in a copy of the section), and a
// transactional one holds no transaction control; a refusal is InvalidFiles with
// every line naming "stored down". And it is split and checked as the same down
// in a migration file would be (docs/reference.md, "Stored downs"): the same
// verdict and the same statements.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "migration_files.h"

namespace {

bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The transaction mode `options` asks for, or nullopt when an option is unknown.
std::optional<bool> ExpectedTransactional(std::string_view options) {
  bool transactional = true;
  size_t i = 0;
  while (i < options.size()) {
    while (i < options.size() && IsBlank(options[i])) ++i;
    size_t end = i;
    while (end < options.size() && !IsBlank(options[end])) ++end;
    std::string_view option = options.substr(i, end - i);
    if (option == "transaction:false") {
      transactional = false;
    } else if (option == "transaction:true") {
      transactional = true;
    } else if (!option.empty()) {
      return std::nullopt;
    }
    i = end;
  }
  return transactional;
}

void CheckStatements(const pgboot::Section& s, const std::string& what) {
  size_t after = 0;
  for (const pgboot::SqlStatement& st : s.statements) {
    FUZZ_CHECK(!st.text.empty(), what + ": an empty statement");
    FUZZ_CHECK(st.text.data() >= s.sql.data() + after &&
                   st.text.data() + st.text.size() <= s.sql.data() + s.sql.size(),
               what + ": a statement outside its section or out of order");
    after = static_cast<size_t>(st.text.data() - s.sql.data()) + st.text.size();
    FUZZ_CHECK(pgboot::fuzz::FindAt(s.sql, 1, st.line, st.column, st.text) != std::string::npos,
               what + ": line/column do not point at the statement");
    FUZZ_CHECK(!s.transactional || !st.is_transaction_control,
               what + ": transaction control accepted in a transactional down");
  }
}

std::vector<std::string> Texts(const pgboot::Section& s) {
  std::vector<std::string> out;
  for (const pgboot::SqlStatement& st : s.statements) out.emplace_back(st.text);
  return out;
}

// The same down as a native file's section: only where the file format reads the
// bytes alike (no marker or pgboot line inside, no CR, BOM or NUL, which a file's
// reading normalises or refuses; the option line is a marker's).
bool FileReadsAlike(std::string_view options, std::string_view sql) {
  const std::string_view bads[] = {"migrate:", "pgboot:", "\r", std::string_view("\0", 1),
                                   "\xEF\xBB\xBF"};
  for (std::string_view bad : bads) {
    if (sql.find(bad) != std::string_view::npos) return false;
  }
  for (char c : options) {
    if (c == '\n' || c == '\r' || c == '\0' || c == '\v' || c == '\f') return false;
  }
  return ExpectedTransactional(options).has_value();
}

void CompareWithFile(std::string_view options, const std::string& sql,
                     const pgboot::Result<pgboot::Section>& stored) {
  const std::string dir = pgboot::fuzz::ScratchDir() + "/migrations";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);
  // Lines differ by the three before the down (a stored down's count from 1):
  // texts and the transaction mode are compared, positions are checked above.
  pgboot::fuzz::WriteFile(dir + "/1_x.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down " +
                                                std::string(options) + "\n" + sql);
  auto loaded = pgboot::LoadMigrations(dir);
  // A file is refused for more than its down (invalid UTF-8, for one): only its
  // acceptance says something about the stored copy.
  if (!loaded.ok()) return;
  FUZZ_CHECK(stored.ok(),
             "a file accepts a down the stored copy refuses: " + stored.status().message());
  FUZZ_CHECK(loaded->size() == 1 && (*loaded)[0].down, "the file lost its down");
  const pgboot::Section& down = *(*loaded)[0].down;
  FUZZ_CHECK(Texts(down) == Texts(*stored), "the file and the stored copy split differently");
  FUZZ_CHECK(down.transactional == stored->transactional, "the transaction mode differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string options(in.substr(0, std::min<size_t>(nl, 200)));
  const std::string sql(nl == std::string_view::npos ? "" : in.substr(nl + 1));

  auto r = pgboot::ParseStoredDown(sql, options);
  const std::optional<bool> transactional = ExpectedTransactional(options);
  if (r.ok()) {
    FUZZ_CHECK(transactional.has_value(), "an unknown option was accepted: " + options);
    FUZZ_CHECK(r->sql == sql && r->options == options, "the stored text was changed");
    FUZZ_CHECK(r->transactional == *transactional, "the wrong transaction mode: " + options);
    CheckStatements(*r, "stored down");
    const pgboot::Section copy = *r;  // a copy points its statements into its own sql
    FUZZ_CHECK(Texts(copy) == Texts(*r), "a copy's statements differ");
    CheckStatements(copy, "copied stored down");
  } else {
    FUZZ_CHECK(r.status().kind() == pgboot::StatusKind::kInvalidFiles,
               "a refused stored down is not InvalidFiles: " + r.status().message());
    std::string_view msg = r.status().message();
    for (size_t pos = 0; pos <= msg.size();) {
      size_t end = msg.find('\n', pos);
      if (end == std::string_view::npos) end = msg.size();
      FUZZ_CHECK(msg.substr(pos, end - pos).starts_with("stored down"),
                 "a line of the refusal does not name the stored down: " + std::string(msg));
      pos = end + 1;
    }
    FUZZ_CHECK(transactional.has_value() || msg.find("unknown option") != std::string_view::npos,
               "an unknown option is not named: " + std::string(msg));
  }
  if (FileReadsAlike(options, sql)) CompareWithFile(options, sql, r);
  return 0;
}
