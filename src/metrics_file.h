// --metrics-file (docs/reference.md, "Metrics"): a run's RunStats in Prometheus text
// format 0.0.4, written atomically.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "run_stats.h"
#include "status.h"

namespace pgboot {

struct MetricsReport {
  std::string version;  // pgboot's
  int exit_code = 0;
  int64_t finished_unix_ms = 0;  // wall clock when the run ended
  RunStats stats;
};

// Every family with # HELP and # TYPE, each sample on its line. A family whose
// value the run did not learn (pending, when no plan was made) has no sample.
std::string FormatMetrics(const MetricsReport& report);

// Writes `text` to PATH.tmp (mode 0644, whatever the umask), flushes it and renames it over `path`,
// so a reader (node-exporter's textfile collector) never sees half a file.
// PATH.tmp is removed on failure.
Status WriteMetricsFile(const std::string& path, std::string_view text);

// What main calls: this process's CurrentRunStats() with `exit_code`, pgboot's
// version and the wall clock now, written to `path`. Does nothing (Ok) when
// `path` is empty or the run never tried the database.
Status WriteRunMetrics(const std::string& path, int exit_code);

}  // namespace pgboot
