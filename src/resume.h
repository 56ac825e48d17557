// Resume: where an interrupted transaction:false migration goes on, decided from its file and its
// `running` row (docs/reference.md, "Resume").
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "database.h"
#include "migration_files.h"
#include "plan.h"
#include "status.h"

namespace pgboot {

// Where a resumed section goes on: the statements re-run first to restore the
// session (its earlier SET, RESET, SET ROLE and SET SESSION AUTHORIZATION
// statements, in order), then statement `next` (0-based) and the rest.
struct ResumePoint {
  std::vector<size_t> prelude;
  size_t next = 0;
};

// The resume decision for the `running` row `row` of migration `m`, under the
// lock: drift (another checksum), a row of pgboot 0.1 (NULL statements_done)
// or a count beyond the section are Precondition errors (exit 6) naming
// `pgboot repair`. A count inside a transaction block the section opened goes
// back to that block's BEGIN (the block's writes rolled back with it); a count
// at the COMMIT that closed a block goes past it (the block committed).
Result<ResumePoint> DecideResume(const Migration& m, const HistoryRow& row);

// Whether `statement` changes session state that a new session must get back
// on resume: SET (not SET LOCAL, SET TRANSACTION, SET CONSTRAINTS, which only
// last a transaction), RESET, SET ROLE, SET SESSION AUTHORIZATION.
bool IsSessionSetting(std::string_view statement);

// Whether `statement` is RESET or DISCARD, after which pgboot sends its own
// settings again.
bool ResetsSettings(std::string_view statement);

// The index and table of a `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS]
// name ON [ONLY] table` statement: the index name as the server stores it
// (unquoted, or folded to lower case) and the table as written (for
// to_regclass). nullopt for any other statement, and for an unnamed index.
struct ConcurrentIndex {
  std::string index;
  std::string table;
};
std::optional<ConcurrentIndex> ParseCreateIndexConcurrently(std::string_view statement);

// A `running` row to resume, with where it goes on.
struct Resumable {
  const Migration* migration = nullptr;
  const HistoryRow* row = nullptr;
  ResumePoint point;
};

// The running rows of `plan` with a file, up to `target` (all when empty),
// each decided by DecideResume; the first that cannot be resumed is its
// error. Removes the findings of the resumable ones from `plan`, so what is
// left there (failed rows, running rows without a file) still blocks.
Result<std::vector<Resumable>> FindResumables(Plan& plan, const std::string& target);

// When `statement` is CREATE INDEX CONCURRENTLY of a named index that exists,
// invalid, on its table (the leftover of an interrupted build), drops it with
// DROP INDEX CONCURRENTLY IF EXISTS, schema-qualified in the table's
// namespace, and returns that name; "" when there was nothing to drop.
Result<std::string> DropInvalidIndex(Database& db, std::string_view statement);

}  // namespace pgboot
