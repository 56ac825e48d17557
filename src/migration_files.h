// Migration files (docs/reference.md, "Migration files"): scan a directory, parse native and
// pairs files, checksum them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sql_split.h"
#include "status.h"
#include "version.h"

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
  std::string checksum;  // SHA-256 hex of the up section (docs/reference.md, "Migration files")
  Section up;
  // Absent when there is nothing to roll back with: no down marker or .down.sql, or one
  // without statements (so rollback refuses rather than forgetting a migration it did not undo).
  std::optional<Section> down;
};

// Reads every migration in `dir` (not recursive; hidden files and files not ending in
// .sql ignored), sorted by version. Every problem in every file is reported at once:
// an InvalidFiles status (exit 8) with one `path:line: message` per line.
Result<std::vector<Migration>> LoadMigrations(const std::string& dir);

}  // namespace pgboot
