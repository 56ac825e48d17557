// pgboot's composition root: parse, configure, run one command, map its Status to an exit code.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "cli.h"
#include "clock.h"
#include "commands.h"
#include "config.h"
#include "database.h"
#include "doctor.h"
#include "event_loop.h"
#include "log.h"
#include "migration_files.h"
#include "migrator.h"
#include "new_migration.h"
#include "operator.h"
#include "pg_connect.h"
#include "readiness.h"
#include "rollback.h"
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

Result<std::unique_ptr<Database>> Connect(const Config& cfg,
                                          std::function<Status()> give_up = nullptr) {
  WaitOptions w;
  w.conninfo = cfg.database_url;
  w.timeout_ms = cfg.wait_timeout_ms;
  w.max_interval_ms = cfg.wait_max_interval_ms;
  w.summary_interval_ms = cfg.wait_log_interval_ms;
  w.give_up = std::move(give_up);
  return WaitForDatabase(w);
}

struct FilesAndDb {
  std::vector<Migration> files;
  std::unique_ptr<Database> db;
};

// Reads the migration files on a second thread while the first connection is
// made: on a no-op start the two cost about the same, so a start pays only for
// the slower. A bad file (or whatever `check` rejects, e.g. a --target naming
// no file) still fails as fast as when the files were read first: the wait
// asks after every failed attempt, and a failed wait reports the files' error
// before its own.
Result<FilesAndDb> LoadFilesAndConnect(
    const Config& cfg, std::function<Status(const std::vector<Migration>&)> check = nullptr) {
  std::future<Result<std::vector<Migration>>> pending;
  const std::string dir = cfg.migrations_dir;
  try {
    pending = std::async(std::launch::async, [dir] { return LoadMigrations(dir); });
  } catch (const std::system_error&) {  // no thread to be had: read them here, first
    pending = std::async(std::launch::deferred, [dir] { return LoadMigrations(dir); });
  }
  std::optional<Result<std::vector<Migration>>> files;
  auto files_status = [&](bool block) -> Status {
    if (!files) {
      if (!block && pending.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        return Status::Ok();
      }
      files.emplace(pending.get());
      if (files->ok()) {
        LogDebug("files.loaded", {{"dir", dir}, {"count", static_cast<int64_t>((*files)->size())}});
      }
    }
    if (!files->ok()) return files->status();
    return check ? check(**files) : Status::Ok();
  };
  auto db = Connect(cfg, [&] { return files_status(false); });
  Status checked = db.ok() || !db.status().is_signal() ? files_status(true) : db.status();
  if (!checked.ok()) return checked;
  if (!db.ok()) return db.status();
  return FilesAndDb{std::move(**files), std::move(*db)};
}

Status MigrateCommand(const Invocation& inv, const Config& cfg) {
  auto loaded = LoadFilesAndConnect(cfg, [&](const std::vector<Migration>& files) {
    return CheckTarget(files, inv.target, cfg.migrations_dir);
  });
  if (!loaded.ok()) return loaded.status();
  MigrateOptions opts;
  opts.target = inv.target;
  opts.dry_run = inv.dry_run;
  return Migrate(*loaded->db, cfg, loaded->files, opts, RealClock());
}

Status RunMode(const Invocation& inv, const Config& cfg) {
  if (cfg.run_migrations) {
    auto loaded = LoadFilesAndConnect(cfg);
    if (!loaded.ok()) return loaded.status();
    Status s = Migrate(*loaded->db, cfg, loaded->files, MigrateOptions{}, RealClock());
    if (!s.ok()) return s;
  } else {
    auto db = Connect(cfg);
    if (!db.ok()) return db.status();
  }  // the connection closes before APP starts
  if (cfg.init) return SuperviseApp(inv.app, cfg.init_grace_ms);
  return ExecApp(inv.app);
}

// status and validate: read-only, no lock.
Status ReportCommand(const Invocation& inv, const Config& cfg) {
  StatusOptions opts;
  opts.json = inv.output == "json";
  opts.fail_on_pending = inv.fail_on_pending;
  opts.history = inv.history;
  if (opts.history) {  // the audit log needs no files
    auto db = Connect(cfg);
    if (!db.ok()) return db.status();
    return ShowStatus(**db, cfg, {}, opts);
  }
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  if (inv.command == "validate") return Validate(*loaded->db, cfg, loaded->files);
  return ShowStatus(*loaded->db, cfg, loaded->files, opts);
}

// rollback, repair, baseline and doctor: one connection, files read meanwhile.
Status OperatorCommand(const Invocation& inv, const Config& cfg) {
  RollbackOptions rollback;
  rollback.steps = inv.steps;
  rollback.to = inv.to;
  rollback.batch = inv.batch;
  rollback.dry_run = inv.dry_run;
  rollback.allow_production = inv.allow_production;
  if (inv.command == "rollback") {
    // Refused before anything, even before waiting for the database.
    Status guard = CheckProductionGuard(cfg, rollback);
    if (!guard.ok()) return guard;
  }
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  Database& db = *loaded->db;
  const std::vector<Migration>& files = loaded->files;
  if (inv.command == "rollback") return Rollback(db, cfg, files, rollback, RealClock());
  if (inv.command == "repair") return Repair(db, cfg, files, inv.yes, RealClock());
  if (inv.command == "baseline") {
    return Baseline(db, cfg, files, inv.operands.at(0), inv.force, RealClock());
  }
  return Doctor(db, cfg, files, inv.output == "json");
}

// new: files only, never the database.
Status NewCommand(const Invocation& inv, const Config& cfg) {
  auto path = CreateMigration(cfg.migrations_dir, inv.operands.at(0), SystemWallClock());
  if (!path.ok()) return path.status();
  LogInfo("migration.created", {{"path", *path}});
  PrintResult(*path + "\n");
  return Status::Ok();
}

Status Dispatch(const Invocation& inv, const Config& cfg) {
  if (inv.command == "run") return RunMode(inv, cfg);
  if (inv.command == "wait") {
    auto db = Connect(cfg);
    return db.ok() ? Status::Ok() : db.status();
  }
  if (inv.command == "migrate") return MigrateCommand(inv, cfg);
  if (inv.command == "status" || inv.command == "validate") return ReportCommand(inv, cfg);
  if (inv.command == "rollback" || inv.command == "repair" || inv.command == "baseline" ||
      inv.command == "doctor") {
    return OperatorCommand(inv, cfg);
  }
  if (inv.command == "new") return NewCommand(inv, cfg);
  if (inv.command == "version") {
    PrintResult("pgboot " PGBOOT_VERSION "\n");
    return Status::Ok();
  }
  // ParseCommandLine admits only the commands above.
  return Status::Internal("no handler for command '" + inv.command + "'");
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

  // Before the configuration is valid, the termination log is still where the
  // user said: the flag when it parsed, else the environment, else the default.
  const char* env_log = std::getenv("PGBOOT_TERMINATION_LOG");
  std::string early_log = env_log && *env_log ? env_log : "/dev/termination-log";
  auto inv = ParseCommandLine(argc, argv);
  if (!inv.ok()) return Finish(inv.status(), early_log);
  if (auto it = inv->flags.find("termination-log"); it != inv->flags.end()) early_log = it->second;
  if (inv->help) {
    PrintResult(HelpText());
    return 0;
  }
  if (inv->version) {
    PrintResult("pgboot " PGBOOT_VERSION "\n");
    return 0;
  }
  auto cfg = LoadConfig(inv->flags, ProcessEnv(), kDefaultConfigFile);
  if (!cfg.ok()) return Finish(cfg.status(), early_log);
  LogInit(cfg->log_format, cfg->log_level);
  return Finish(Dispatch(*inv, *cfg), cfg->termination_log);
}
