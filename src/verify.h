// Verify checks (docs/reference.md, "Verify sections"): run a migration's verify section and judge
// each statement by the boolean rule; `pgboot verify` and doctor's `verify` findings.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "database.h"
#include "migration_files.h"

namespace pgboot {

// The outcome of one verify statement.
struct CheckOutcome {
  std::string version;
  std::string file;
  int line = 0;
  bool ok = true;
  std::string message;  // why it failed; empty when ok
};

// `path:line` of a check, as messages and migration.verify_failed name it.
std::string CheckLocation(const CheckOutcome& c);

// Runs the statements of `checks` (from `path`) in the transaction `db` is in.
// A check fails when it raises an error, or when it returns rows whose first
// column is not boolean true (false, NULL, or another type, named). With
// `keep_going`, an erroring check is rolled back to the savepoint
// `pgboot_verify` (which the caller set) so later checks still run; without
// it the first failure ends the run. A signal or a lost session is returned
// as the error, not as a failed check.
Result<std::vector<CheckOutcome>> RunChecks(Database& db, const std::string& version,
                                            const std::string& path, const Section& checks,
                                            bool keep_going);

// Every applied migration's checks (`pgboot verify`, doctor): each migration's
// in its own BEGIN READ ONLY ... ROLLBACK, so one failing check hides no other.
// Nothing when the history table does not exist.
Result<std::vector<CheckOutcome>> VerifyApplied(Database& db, const Config& cfg,
                                                const std::vector<Migration>& files);

// Pure formatting (docs/reference.md's JSON shape; one line a check for people).
std::string FormatVerifyText(const std::vector<CheckOutcome>& checks);
std::string FormatVerifyJson(const std::vector<CheckOutcome>& checks);

// `pgboot verify`: prints the report; exit 6 naming each failing check.
Status Verify(Database& db, const Config& cfg, const std::vector<Migration>& files, bool json);

}  // namespace pgboot
