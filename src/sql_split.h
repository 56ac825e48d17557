// The statement lexer every migration section goes through: splits SQL where psql would
// (docs/migrations.md, "Statements").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "status.h"

namespace pgboot {

// One statement of a section, exactly as it is to be sent to the server.
struct SqlStatement {
  // From the first token up to the terminating ';' (excluded), trailing whitespace
  // trimmed: a slice of the text SplitSql split, which must outlive it (a Section
  // keeps its statements pointing into its own sql), so that a file is held once.
  std::string_view text;
  // 1-based file line and column of the first token, after leading blanks and comments.
  // The column counts characters (UTF-8 code points), not bytes, as server positions do.
  int line = 0;
  int column = 0;
  // BEGIN, START TRANSACTION, COMMIT, END, ABORT, ROLLBACK (not ROLLBACK TO),
  // PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED.
  bool is_transaction_control = false;
  // Byte offset of `text` in the text SplitSql split.
  size_t offset = 0;
};

// Splits `section` (UTF-8, whose first line is line `first_line` of its file) into
// statements. It honours '' strings (standard_conforming_strings on), E'' strings,
// dollar quoting, "quoted identifiers", -- and nested /* */ comments, parentheses
// (CREATE RULE ... DO (a; b)) and BEGIN ATOMIC ... END bodies, as psql does; a statement
// may end at the end of the section without ';'; empty statements are skipped.
// An unterminated string, identifier or comment is an InvalidFiles error naming the
// line where it starts; that line is also stored in `*error_line` when given.
Result<std::vector<SqlStatement>> SplitSql(std::string_view section, int first_line,
                                           int* error_line = nullptr);

// True when `statement` (its text starting at its first token) opens or ends a
// transaction at top level, which a section run inside pgboot's transaction must not do.
bool IsTransactionControl(std::string_view statement);

// COPY ... FROM STDIN: the protocol would wait for rows pgboot has none of.
bool IsCopyFromStdin(std::string_view statement);

// The leading keywords of a statement, upper-cased, to name it in a message: "START TRANSACTION".
std::string LeadingKeywords(std::string_view statement);

// Maps a server error position (1-based, in characters of `st.text` as sent) to the
// file's {line, column}. Positions outside the text are clamped to its ends.
std::pair<int, int> PositionToLineColumn(const SqlStatement& st, int char_position);

}  // namespace pgboot
