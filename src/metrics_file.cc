#include "metrics_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace pgboot {
namespace {

// A label value as the text format wants it: \, " and newline escaped.
std::string LabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Milliseconds as seconds with three decimals: 41 -> "0.041".
std::string Seconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ms / 1000),
                static_cast<long long>(ms % 1000));
  return buf;
}

void Family(std::string* out, const char* name, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
}

void Sample(std::string* out, const char* name, const std::string& value) {
  *out += std::string(name) + " " + value + "\n";
}

Status WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Internal(std::strerror(errno));
    text.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

std::string FormatMetrics(const MetricsReport& r) {
  const RunStats& s = r.stats;
  std::string out;
  Family(&out, "pgboot_info", "pgboot's version (always 1).");
  out += "pgboot_info{version=\"" + LabelValue(r.version) + "\"} 1\n";
  Family(&out, "pgboot_last_run_success", "1 when the last pgboot command succeeded, else 0.");
  Sample(&out, "pgboot_last_run_success", r.exit_code == 0 ? "1" : "0");
  Family(&out, "pgboot_last_run_timestamp_seconds",
         "When the last pgboot command ended (run mode: when it started APP), Unix time.");
  Sample(&out, "pgboot_last_run_timestamp_seconds", Seconds(r.finished_unix_ms));
  Family(&out, "pgboot_last_run_exit_code",
         "The exit code of the last pgboot command (0 in run mode before APP).");
  Sample(&out, "pgboot_last_run_exit_code", std::to_string(r.exit_code));
  Family(&out, "pgboot_wait_seconds", "Time the last run waited for the database to be ready.");
  Sample(&out, "pgboot_wait_seconds", Seconds(s.wait_ms));
  Family(&out, "pgboot_lock_wait_seconds", "Time the last run waited for the migration lock.");
  Sample(&out, "pgboot_lock_wait_seconds", Seconds(s.lock_wait_ms));
  Family(&out, "pgboot_migrations_applied", "Migrations the last run applied.");
  Sample(&out, "pgboot_migrations_applied", std::to_string(s.applied.size()));
  Family(&out, "pgboot_migrations_pending",
         "Migrations with a file that were not applied when the last run ended.");
  if (s.unapplied) Sample(&out, "pgboot_migrations_pending", std::to_string(s.unapplied->size()));
  Family(&out, "pgboot_migration_duration_seconds",
         "How long each migration the last run applied took, by canonical version.");
  for (const auto& [version, ms] : s.applied) {
    out += "pgboot_migration_duration_seconds{migration=\"" + LabelValue(version) + "\"} " +
           Seconds(ms) + "\n";
  }
  return out;
}

Status WriteMetricsFile(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::Internal("cannot write " + tmp + ": " + std::strerror(errno));
  // 0644 whatever the umask: the collector that reads it runs as another user.
  Status s = fchmod(fd, 0644) == 0 ? WriteAll(fd, text) : Status::Internal(std::strerror(errno));
  if (s.ok() && fsync(fd) != 0) s = Status::Internal(std::strerror(errno));
  if (close(fd) != 0 && s.ok()) s = Status::Internal(std::strerror(errno));
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::Internal(std::string("renaming it over ") + path + ": " + std::strerror(errno));
  }
  if (s.ok()) return s;
  (void)unlink(tmp.c_str());
  return Status::Internal("cannot write " + tmp + ": " + s.message());
}

Status WriteRunMetrics(const std::string& path, int exit_code) {
  if (path.empty() || !CurrentRunStats().tried_database) return Status::Ok();
  MetricsReport report;
  report.version = PGBOOT_VERSION;
  report.exit_code = exit_code;
  report.finished_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  report.stats = CurrentRunStats();
  return WriteMetricsFile(path, FormatMetrics(report));
}

}  // namespace pgboot
