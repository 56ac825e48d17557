#include "metrics_file.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace pgboot {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("FormatMetrics: every family with HELP and TYPE, values in seconds") {
  MetricsReport r;
  r.version = "0.2.0";
  r.exit_code = 5;
  r.finished_unix_ms = 1764590000123;
  r.stats.wait_ms = 1500;
  r.stats.lock_wait_ms = 7;
  r.stats.unapplied = std::vector<std::string>{"2", "3"};
  r.stats.applied = {{"1", 41}, {"12", 2000}};
  const std::string text = FormatMetrics(r);
  for (const char* family :
       {"pgboot_info", "pgboot_last_run_success", "pgboot_last_run_timestamp_seconds",
        "pgboot_last_run_exit_code", "pgboot_wait_seconds", "pgboot_lock_wait_seconds",
        "pgboot_migrations_applied", "pgboot_migrations_pending",
        "pgboot_migration_duration_seconds"}) {
    CHECK(text.find(std::string("# HELP ") + family + " ") != std::string::npos);
    CHECK(text.find(std::string("# TYPE ") + family + " gauge\n") != std::string::npos);
  }
  CHECK(text.find("\npgboot_info{version=\"0.2.0\"} 1\n") != std::string::npos);
  CHECK(text.find("\npgboot_last_run_success 0\n") != std::string::npos);
  CHECK(text.find("\npgboot_last_run_exit_code 5\n") != std::string::npos);
  CHECK(text.find("\npgboot_last_run_timestamp_seconds 1764590000.123\n") != std::string::npos);
  CHECK(text.find("\npgboot_wait_seconds 1.500\n") != std::string::npos);
  CHECK(text.find("\npgboot_lock_wait_seconds 0.007\n") != std::string::npos);
  CHECK(text.find("\npgboot_migrations_applied 2\n") != std::string::npos);
  CHECK(text.find("\npgboot_migrations_pending 2\n") != std::string::npos);
  CHECK(text.find("\npgboot_migration_duration_seconds{migration=\"1\"} 0.041\n") !=
        std::string::npos);
  CHECK(text.find("\npgboot_migration_duration_seconds{migration=\"12\"} 2.000\n") !=
        std::string::npos);
  CHECK(text.back() == '\n');
}

TEST_CASE("FormatMetrics: an unknown pending count has no sample; labels are escaped") {
  MetricsReport r;
  r.version = "1.0 \"x\"\\y";
  const std::string text = FormatMetrics(r);
  CHECK(text.find("\npgboot_migrations_pending ") == std::string::npos);
  CHECK(text.find("# TYPE pgboot_migrations_pending gauge\n") != std::string::npos);
  CHECK(text.find("pgboot_info{version=\"1.0 \\\"x\\\"\\\\y\"} 1\n") != std::string::npos);
  CHECK(text.find("\npgboot_last_run_success 1\n") != std::string::npos);
}

TEST_CASE("WriteMetricsFile replaces the file through PATH.tmp; a missing directory fails") {
  char tmpl[] = "/tmp/pgboot-metrics-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  const std::string path = dir + "/m.prom";
  REQUIRE(WriteMetricsFile(path, "a 1\n").ok());
  REQUIRE(WriteMetricsFile(path, "b 2\n").ok());
  CHECK(Slurp(path) == "b 2\n");
  CHECK(access((path + ".tmp").c_str(), F_OK) != 0);
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);  // readable by a collector running as another user

  Status s = WriteMetricsFile(dir + "/none/m.prom", "a 1\n");
  CHECK_FALSE(s.ok());
  CHECK(s.message().find(dir + "/none/m.prom.tmp") != std::string::npos);
  unlink(path.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace pgboot
