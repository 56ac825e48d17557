// migrate --dry-run: the SQL a run would send, printed to stdout, with nothing changed.
#pragma once

#include <vector>

#include "migration_files.h"
#include "resume.h"
#include "status.h"

namespace pgboot {

// Prints the statements of `resumables` (from where each resume goes on,
// after the earlier settings it re-runs) and then of `todo`, each under a
// `-- file:line` comment and terminated as Terminated() does.
Status DryRun(const std::vector<Resumable>& resumables, const std::vector<const Migration*>& todo);

}  // namespace pgboot
