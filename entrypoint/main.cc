// pgboot's composition root: parse, configure, run one command, map its Status to an exit code.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "cli.h"
#include "clock.h"
#include "commands.h"
#include "config.h"
#include "database.h"
#include "event_loop.h"
#include "log.h"
#include "migration_files.h"
#include "migrator.h"
#include "pg_database.h"
#include "readiness.h"
#include "supervisor.h"

namespace pgboot {
namespace {

// Logs the failure, writes the termination log and returns the exit code.
int Finish(const Status& s, const std::string& termination_log) {
  if (s.ok()) return 0;
  if (s.is_signal()) {
    LogInfo("exit", {{"code", s.code()}, {"signal", s.signal()}, {"reason", s.message()}});
  } else {
    LogError("exit", {{"code", s.code()}, {"reason", s.message()}});
  }
  WriteTerminationLog(termination_log, s.message());
  return s.code();
}

Result<std::unique_ptr<Database>> Connect(const Config& cfg) {
  WaitOptions w;
  w.conninfo = cfg.database_url;
  w.timeout_ms = cfg.wait_timeout_ms;
  w.max_interval_ms = cfg.wait_max_interval_ms;
  w.summary_interval_ms = cfg.wait_log_interval_ms;
  return WaitForDatabase(w);
}

Result<std::vector<Migration>> LoadFiles(const Config& cfg) {
  auto files = LoadMigrations(cfg.migrations_dir);
  if (files.ok()) {
    LogDebug("files.loaded",
             {{"dir", cfg.migrations_dir}, {"count", static_cast<int64_t>(files->size())}});
  }
  return files;
}

Status MigrateCommand(const Invocation& inv, const Config& cfg) {
  // Files first: a broken file fails at once instead of after the wait.
  auto files = LoadFiles(cfg);
  if (!files.ok()) return files.status();
  auto db = Connect(cfg);
  if (!db.ok()) return db.status();
  MigrateOptions opts;
  opts.target = inv.target;
  opts.dry_run = inv.dry_run;
  return Migrate(**db, cfg, *files, opts, RealClock());
}

Status RunMode(const Invocation& inv, const Config& cfg) {
  {
    std::vector<Migration> files;
    if (cfg.run_migrations) {
      auto loaded = LoadFiles(cfg);
      if (!loaded.ok()) return loaded.status();
      files = std::move(*loaded);
    }
    auto db = Connect(cfg);
    if (!db.ok()) return db.status();
    if (cfg.run_migrations) {
      Status s = Migrate(**db, cfg, files, MigrateOptions{}, RealClock());
      if (!s.ok()) return s;
    }
  }  // the connection closes before APP starts
  if (cfg.init) return SuperviseApp(inv.app, cfg.init_grace_ms);
  return ExecApp(inv.app);
}

// status and validate: read-only, no lock.
Status ReportCommand(const Invocation& inv, const Config& cfg) {
  std::vector<Migration> files;
  if (!(inv.command == "status" && inv.history)) {
    auto loaded = LoadFiles(cfg);
    if (!loaded.ok()) return loaded.status();
    files = std::move(*loaded);
  }
  auto db = Connect(cfg);
  if (!db.ok()) return db.status();
  if (inv.command == "validate") return Validate(**db, cfg, files);
  StatusOptions opts;
  opts.json = inv.output == "json";
  opts.fail_on_pending = inv.fail_on_pending;
  opts.history = inv.history;
  return ShowStatus(**db, cfg, files, opts);
}

Status Dispatch(const Invocation& inv, const Config& cfg) {
  if (inv.command == "run") return RunMode(inv, cfg);
  if (inv.command == "wait") {
    auto db = Connect(cfg);
    return db.ok() ? Status::Ok() : db.status();
  }
  if (inv.command == "migrate") return MigrateCommand(inv, cfg);
  if (inv.command == "status" || inv.command == "validate") return ReportCommand(inv, cfg);
  if (inv.command == "version") {
    PrintResult("pgboot " PGBOOT_VERSION "\n");
    return Status::Ok();
  }
  return Status::Usage("'" + inv.command + "' is not in this build yet");
}

// Before configuration is known, log in the format the environment asks for.
void EarlyLogInit() {
  const char* f = std::getenv("PGBOOT_LOG_FORMAT");
  bool json = f && (std::string(f) == "json" || std::string(f) == "JSON");
  LogInit(json ? LogFormat::kJson : LogFormat::kText, LogLevel::kInfo);
}

}  // namespace
}  // namespace pgboot

int main(int argc, char** argv) {
  using namespace pgboot;  // NOLINT: composition root
  // Signals first: a SIGTERM that arrives while we parse must not kill PID 1's
  // work half-way or be lost.
  Status installed = EventLoop::Install();
  EarlyLogInit();
  if (!installed.ok()) return Finish(installed, "");

  auto inv = ParseCommandLine(argc, argv);
  if (!inv.ok()) return Finish(inv.status(), "/dev/termination-log");
  if (inv->help) {
    PrintResult(HelpText());
    return 0;
  }
  if (inv->version) {
    PrintResult("pgboot " PGBOOT_VERSION "\n");
    return 0;
  }
  auto cfg = LoadConfig(inv->flags, ProcessEnv());
  if (!cfg.ok()) return Finish(cfg.status(), "/dev/termination-log");
  LogInit(cfg->log_format, cfg->log_level);
  return Finish(Dispatch(*inv, *cfg), cfg->termination_log);
}
