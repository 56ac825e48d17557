// `pgboot new`: create a timestamped migration file that never overwrites another
// (docs/reference.md, "Commands").
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>

#include "status.h"

namespace pgboot {

// Seconds since the Unix epoch (UTC). Injected so a test can make two calls
// land in the same second.
using WallClock = std::function<int64_t()>;
WallClock SystemWallClock();

// NAME must match [a-z0-9_]+ (docs/reference.md, "Commands").
bool ValidMigrationName(std::string_view name);

// `unix_seconds` as UTC yyyymmddHHMMSS.
std::string TimestampVersion(int64_t unix_seconds);

// The version of `now`, or of the first later second that no version in
// `taken` (canonical versions) uses.
std::string NextFreeVersion(int64_t now, const std::set<std::string>& taken);

// The file `new` writes: an up section whose placeholder fails when run (so a
// forgotten template is never recorded as applied) and an empty down section
// (so `rollback` refuses it until it is written).
std::string MigrationTemplate(const std::string& version, const std::string& name);

// Creates `<dir>/<version>_<name>.sql` (creating `dir` if missing) and returns
// its path. The version is the next free second of `now` among the versions of
// the directory's .sql files; the file is created with O_CREAT|O_EXCL under an
// flock of the directory, so concurrent calls never take the same version and
// nothing is ever overwritten. Usage (exit 2) for a bad name; InvalidFiles
// (exit 8) when the directory cannot be created, read or written.
Result<std::string> CreateMigration(const std::string& dir, const std::string& name,
                                    const WallClock& now);

}  // namespace pgboot
