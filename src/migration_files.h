// Migration files (SPEC §4): scan a directory, parse native and pairs files, checksum them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sql_split.h"
#include "status.h"

namespace pgboot {

// The up or down part of a migration.
struct Section {
  // The section's bytes after BOM removal and CRLF -> LF; the up section's are checksummed.
  std::string sql;
  // File line of the section's first line (the line after its marker, or 1).
  int first_line = 1;
  // False for `-- migrate:up transaction:false` / `-- pgboot:transaction:false`.
  bool transactional = true;
  std::vector<SqlStatement> statements;
};

struct Migration {
  std::string version;  // Canonical: no leading zeros ("0" stays "0").
  std::string name;
  std::string up_path;
  // The .down.sql of a pairs migration (empty when there is none); up_path for a native file.
  std::string down_path;
  std::string checksum;  // SPEC §4: SHA-256 hex of up.sql.
  Section up;
  // Absent when there is nothing to roll back with: no down marker or .down.sql, or one
  // without statements (so rollback refuses rather than forgetting a migration it did not undo).
  std::optional<Section> down;
};

// Whether `text` is a version as a user may type it: one or more ASCII digits.
bool IsVersionText(std::string_view text);

// Drops leading zeros of a version made of ASCII digits ("007" -> "7", "000" -> "0").
std::string CanonicalVersion(std::string_view digits);

// Orders canonical versions numerically, however long: <0, 0 or >0 like strcmp.
int CompareVersions(std::string_view a, std::string_view b);

// Reads every migration in `dir` (not recursive; hidden files and files not ending in
// .sql ignored), sorted by version. Every problem in every file is reported at once:
// an InvalidFiles status (exit 8) with one `path:line: message` per line.
Result<std::vector<Migration>> LoadMigrations(const std::string& dir);

}  // namespace pgboot
