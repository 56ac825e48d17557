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
  // The marker's options as written (`transaction:false`), or those of a pairs file's
  // `-- pgboot:` line without the prefix; empty when none. Stored as `down_options`.
  std::string options;
  // Empty for a no-op section (empty or only comments). Slices of `sql`
  // (SqlStatement::offset): copies and moves point them into the new section's sql.
  std::vector<SqlStatement> statements;

  Section() = default;
  Section(const Section& other) { *this = other; }
  Section(Section&& other) noexcept { *this = std::move(other); }
  Section& operator=(const Section& other);
  Section& operator=(Section&& other) noexcept;

 private:
  void Rebase();
};

struct Migration {
  std::string version;  // Canonical: no leading zeros ("0" stays "0").
  std::string name;
  std::string up_path;
  // Where the down section is or would be: the .down.sql of a pairs migration (looked for,
  // present or not), up_path for a native file.
  std::string down_path;
  std::string checksum;  // SHA-256 hex of the up section (docs/reference.md, "Migration files")
  // No statements: a no-op migration, applied like any other (`migration.empty`).
  Section up;
  // Absent when the file has no down at all (no down marker, no .down.sql), so rollback
  // refuses rather than forgetting a migration it did not undo. Present without statements:
  // an explicit no-op rollback (docs/reference.md, "Migration files").
  std::optional<Section> down;
  // The checks run right after the up statements (docs/reference.md, "Verify sections"): the
  // `-- migrate:verify` section of a native file, or the pairs' .verify.sql. Not checksummed.
  std::optional<Section> verify;
  std::string verify_path;  // the file `verify` comes from (up_path for a native file)
};

// Something in the directory that is not an error but that the user should hear about; the
// caller logs it as `event` with `path`.
struct FileWarning {
  std::string event;  // files.orphan
  std::string path;
  std::string message;
};

// Reads every migration in `dir` (not recursive; hidden files and files not ending in
// .sql ignored), sorted by version. Every problem in every file is reported at once:
// an InvalidFiles status (exit 8) with one `path:line: message` per line. Warnings (a
// .down.sql without its .up.sql) go to `warnings` when given.
Result<std::vector<Migration>> LoadMigrations(const std::string& dir,
                                              std::vector<FileWarning>* warnings = nullptr);

// A down section kept in the history table (`down_sql`, `down_options`), split and checked as
// a file's would be; errors name "stored down" and the line inside it.
Result<Section> ParseStoredDown(const std::string& sql, const std::string& options);

}  // namespace pgboot
