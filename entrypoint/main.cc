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
#include "exit_code.h"
#include "gate.h"
#include "gate_session.h"
#include "hook_runner.h"
#include "log.h"
#include "metrics_file.h"
#include "migration_files.h"
#include "migrator.h"
#include "new_migration.h"
#include "operator.h"
#include "pg_connect.h"
#include "readiness.h"
#include "reset.h"
#include "rollback.h"
#include "supervisor.h"
#include "verify.h"

namespace pgboot {
namespace {

// Set once APP was started (exec or fork): from then on APP's end is not pgboot's run.
bool app_started = false;

// --metrics-file (docs/reference.md, "Metrics"): a file that cannot be written
// is a warning, never another exit code.
void WriteMetrics(const std::string& path, int code) {
  Status m = WriteRunMetrics(path, code);
  if (!m.ok()) LogWarn("metrics.write_failed", {{"path", path}, {"reason", m.message()}});
}

// Logs the failure, writes the termination log and the metrics file (run
// mode: again only when APP could not be started), and returns the exit code.
int Finish(const Status& s, const std::string& termination_log,
           const std::string& metrics_file = "") {
  const int code = s.ok() ? 0 : ExitCodeFor(s);
  const bool rewrite = !app_started || s.kind() == StatusKind::kAppNotFound ||
                       s.kind() == StatusKind::kAppNotExecutable;
  if (!s.ok()) {
    if (s.signal() != 0) {
      LogInfo("exit", {{"code", code}, {"signal", s.signal()}, {"reason", s.message()}});
    } else {
      LogError("exit", {{"code", code}, {"reason", s.message()}});
    }
    WriteTerminationLog(termination_log, s.message());
  }
  if (rewrite) WriteMetrics(metrics_file, code);
  return code;
}

Result<std::unique_ptr<Database>> Connect(const Config& cfg,
                                          std::function<Status()> give_up = nullptr) {
  NoteConnecting();
  const int64_t start = RealClock().NowMs();
  WaitOptions w;
  w.conninfo = cfg.database_url;
  w.lock_mode = cfg.lock_mode;
  w.timeout_ms = cfg.wait_timeout_ms;
  w.max_interval_ms = cfg.wait_max_interval_ms;
  w.summary_interval_ms = cfg.wait_log_interval_ms;
  w.give_up = std::move(give_up);
  auto db = WaitForDatabase(w);
  NoteWait(RealClock().NowMs() - start);  // however the wait ended
  return db;
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
  // Filled by the loading thread; read only after its future is ready.
  auto warnings = std::make_shared<std::vector<FileWarning>>();
  auto load = [dir, warnings] { return LoadMigrations(dir, warnings.get()); };
  try {
    pending = std::async(std::launch::async, load);
  } catch (const std::system_error&) {  // no thread to be had: read them here, first
    pending = std::async(std::launch::deferred, load);
  }
  std::optional<Result<std::vector<Migration>>> files;
  auto files_status = [&](bool block) -> Status {
    if (!files) {
      if (!block && pending.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        return Status::Ok();
      }
      files.emplace(pending.get());
      for (const FileWarning& w : *warnings) {
        LogWarn(w.event, {{"path", w.path}, {"message", w.message}});
      }
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

// The schema gate (docs/gate.md): after readiness, until the history holds every
// file; the connection closes when it returns, before APP starts.
Status Gate(const Config& cfg, FilesAndDb loaded) {
  Clock& clock = RealClock();
  GateSessionOptions session;
  session.connect = [&cfg, &clock](int64_t deadline_ms) -> Result<std::unique_ptr<Database>> {
    Config again = cfg;
    again.wait_timeout_ms = 0;  // forever, unless the gate has a deadline
    if (deadline_ms >= 0) {
      again.wait_timeout_ms = deadline_ms - clock.NowMs();
      if (again.wait_timeout_ms <= 0) return Status::Timeout("the gate's deadline passed");
    }
    return Connect(again);
  };
  session.sleep = [](int64_t ms) {
    EventLoop::Wake w = EventLoop::Get().Wait(-1, 0, ms);
    return w.kind == EventLoop::Wake::kSignal ? Status::Signal(w.signo) : Status::Ok();
  };
  GateSession source(std::move(loaded.db), cfg, std::move(session), clock);
  GateOptions opts;
  opts.out_of_order = cfg.out_of_order;
  opts.timeout_ms = cfg.migrations_wait_timeout_ms;
  opts.log_interval_ms = cfg.gate_log_interval_ms;
  return RunGate(source, loaded.files, opts, clock);
}

// wait, and run mode without RUN_MIGRATIONS: readiness, then the gate when asked.
Status ReadyOrGate(const Config& cfg) {
  if (!cfg.wait_for_migrations) {
    auto db = Connect(cfg);
    return db.ok() ? Status::Ok() : db.status();
  }
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  return Gate(cfg, std::move(*loaded));
}

// --wait-for-migrations where the process migrates itself: said once, not an error.
void SayGateMoot(const Config& cfg, const char* why) {
  if (cfg.wait_for_migrations) LogInfo("gate.moot", {{"reason", why}});
}

// After a lost connection migrate connects again, under a fresh --wait-timeout.
Reconnect ReconnectFor(const Config& cfg) {
  return [&cfg]() -> Result<std::unique_ptr<Database>> { return Connect(cfg); };
}

// Whether this command would run hooks, checked before any wait: an image
// without /bin/sh fails at once with exit 9 (docs/reference.md, "Hooks").
Status CheckHooks(const Config& cfg, bool dry_run) {
  if (dry_run || (cfg.before_migrate.empty() && cfg.after_migrate.empty())) return Status::Ok();
  return CheckHookShell();
}

// The hooks of migrate and run: /bin/sh with the libpq variables of pgboot's
// connection, so that `pg_dump` needs no arguments.
HookRunner HooksFor(const Config& cfg) {
  return [&cfg](HookKind kind, const std::string& command,
                const std::vector<std::string>& versions) -> Status {
    auto libpq = LibpqEnvironment(cfg.database_url);
    if (!libpq.ok()) return libpq.status();
    HookRun run;
    run.kind = kind;
    run.command = command;
    run.versions = versions;
    run.libpq = std::move(*libpq);
    run.grace_ms = cfg.init_grace_ms;
    return RunHook(run);
  };
}

Status RunCommand(const Invocation& inv, const Config& cfg) {
  // Run mode only: the other commands start no APP and ignore it (docs/reference.md).
  if (cfg.init_group && !cfg.init) {
    return Status::Usage("--init-group (PGBOOT_INIT_GROUP) needs --init (PGBOOT_INIT)");
  }
  if (cfg.run_migrations) {
    SayGateMoot(cfg, "RUN_MIGRATIONS=true: this process applies the migrations itself");
    if (Status hooks = CheckHooks(cfg, false); !hooks.ok()) return hooks;
    auto loaded = LoadFilesAndConnect(cfg);
    if (!loaded.ok()) return loaded.status();
    MigrateOptions opts;
    opts.run_hook = HooksFor(cfg);
    Status s = MigrateReconnecting(std::move(loaded->db), ReconnectFor(cfg), cfg, loaded->files,
                                   opts, RealClock());
    if (!s.ok()) return s;
  } else {
    Status s = ReadyOrGate(cfg);
    if (!s.ok()) return s;
  }                                   // the connection closes before APP starts
  WriteMetrics(cfg.metrics_file, 0);  // APP replaces pgboot: now or never
  app_started = true;
  if (cfg.init) return SuperviseApp(inv.app, cfg.init_grace_ms, cfg.init_group);
  return ExecApp(inv.app);
}

Status WaitCommand(const Invocation&, const Config& cfg) { return ReadyOrGate(cfg); }

Status MigrateCommand(const Invocation& inv, const Config& cfg) {
  SayGateMoot(cfg, "migrate applies the migrations itself");
  if (Status hooks = CheckHooks(cfg, inv.dry_run); !hooks.ok()) return hooks;
  auto loaded = LoadFilesAndConnect(cfg, [&](const std::vector<Migration>& files) {
    return CheckTarget(files, inv.target, cfg.migrations_dir);
  });
  if (!loaded.ok()) return loaded.status();
  MigrateOptions opts;
  opts.target = inv.target;
  opts.dry_run = inv.dry_run;
  opts.run_hook = HooksFor(cfg);
  return MigrateReconnecting(std::move(loaded->db), ReconnectFor(cfg), cfg, loaded->files, opts,
                             RealClock());
}

// status and validate are read-only: no lock.
Status StatusCommand(const Invocation& inv, const Config& cfg) {
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
  return ShowStatus(*loaded->db, cfg, loaded->files, opts);
}

Status ValidateCommand(const Invocation&, const Config& cfg) {
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  return Validate(*loaded->db, cfg, loaded->files);
}

Status RollbackCommand(const Invocation& inv, const Config& cfg) {
  RollbackOptions rollback;
  rollback.steps = inv.steps;
  rollback.to = inv.to;
  rollback.batch = inv.batch;
  rollback.future = inv.future;
  rollback.dry_run = inv.dry_run;
  rollback.allow_production = inv.allow_production;
  // Refused before anything, even before waiting for the database.
  if (Status guard = CheckProductionGuard(cfg, rollback); !guard.ok()) return guard;
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  return Rollback(*loaded->db, cfg, loaded->files, rollback, RealClock());
}

Status ResetCommand(const Invocation& inv, const Config& cfg) {
  // Refused before anything, even before waiting for the database.
  if (Status guard = CheckResetGuard(cfg); !guard.ok()) return guard;
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  return Reset(*loaded->db, cfg, loaded->files, inv.yes, RealClock());
}

Status RepairCommand(const Invocation& inv, const Config& cfg) {
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  return Repair(*loaded->db, cfg, loaded->files, inv.yes, RealClock());
}

Status BaselineCommand(const Invocation& inv, const Config& cfg) {
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  return Baseline(*loaded->db, cfg, loaded->files, inv.operands.at(0), inv.force, RealClock());
}

Status DoctorCommand(const Invocation& inv, const Config& cfg) {
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  return Doctor(*loaded->db, cfg, loaded->files, inv.output == "json");
}

// verify is read-only: each migration's checks in a READ ONLY transaction rolled back.
Status VerifyCommand(const Invocation& inv, const Config& cfg) {
  auto loaded = LoadFilesAndConnect(cfg);
  if (!loaded.ok()) return loaded.status();
  return Verify(*loaded->db, cfg, loaded->files, inv.output == "json");
}

// new: files only, never the database.
Status NewCommand(const Invocation& inv, const Config& cfg) {
  auto path = CreateMigration(cfg.migrations_dir, inv.operands.at(0), SystemWallClock());
  if (!path.ok()) return path.status();
  LogInfo("migration.created", {{"path", *path}});
  PrintResult(*path + "\n");
  return Status::Ok();
}

Status VersionCommand(const Invocation&, const Config&) {
  PrintResult(VersionText());
  return Status::Ok();
}

// The commands (docs/reference.md, "Commands"); the first is the default.
const CommandSpec kCommands[] = {
    {"run",
     {},
     {},
     nullptr,
     true,
     RunCommand,
     "wait; migrate if RUN_MIGRATIONS is true; then exec APP (after --)"},
    {"wait",
     {},
     {},
     nullptr,
     false,
     WaitCommand,
     "wait until the database accepts the login (and, with --wait-for-migrations,\nuntil every "
     "migration is applied), then exit 0"},
    {"migrate",
     {"up"},
     {"target", "dry-run"},
     nullptr,
     false,
     MigrateCommand,
     "wait, then apply pending migrations [--target V] [--dry-run]"},
    {"status",
     {"info"},
     {"output", "fail-on-pending", "history"},
     nullptr,
     false,
     StatusCommand,
     "list migrations and their state [--output json] [--fail-on-pending]\n[--history]"},
    {"validate",
     {},
     {},
     nullptr,
     false,
     ValidateCommand,
     "compare migration files with the history table (exit 6 on findings)"},
    {"rollback",
     {"down"},
     {"steps", "to", "batch", "future", "dry-run", "allow-production"},
     nullptr,
     false,
     RollbackCommand,
     "run down sections [--steps N | --to V | --batch | --future] [--dry-run]\n"
     "[--allow-production]"},
    {"repair",
     {},
     {"yes"},
     nullptr,
     false,
     RepairCommand,
     "accept current checksums, clear failed rows [--yes]"},
    {"baseline",
     {},
     {"force"},
     "V",
     false,
     BaselineCommand,
     "mark every migration <= V applied without running it [--force]"},
    {"reset",
     {},
     {"yes"},
     nullptr,
     false,
     ResetCommand,
     "development only: roll back everything, then migrate again [--yes]"},
    {"new", {}, {}, "NAME", false, NewCommand, "create <UTC timestamp>_NAME.sql"},
    {"doctor", {}, {"output"}, nullptr, false, DoctorCommand, "preflight report [--output json]"},
    {"verify",
     {},
     {"output"},
     nullptr,
     false,
     VerifyCommand,
     "run the verify checks of every applied migration [--output json]\n(exit 6 naming each "
     "failing check)"},
    {"version", {}, {}, nullptr, false, VersionCommand, "print the version"},
};

Status Dispatch(const Invocation& inv, const Config& cfg) {
  const CommandSpec* command = FindCommand(kCommands, inv.command);
  // ParseCommandLine admits only the commands of the table.
  if (command == nullptr) return Status::Internal("no handler for command '" + inv.command + "'");
  return command->handler(inv, cfg);
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
  auto inv = ParseCommandLine(argc, argv, kCommands);
  if (!inv.ok()) return Finish(inv.status(), early_log);
  if (auto it = inv->flags.find("termination-log"); it != inv->flags.end()) early_log = it->second;
  if (inv->help) {
    PrintResult(HelpText(kCommands));
    return 0;
  }
  if (inv->version) return Finish(VersionCommand(*inv, Config{}), early_log);
  auto cfg = LoadConfig(inv->flags, ProcessEnv(), kDefaultConfigFile);
  if (!cfg.ok()) return Finish(cfg.status(), early_log);
  LogInit(cfg->log_format, cfg->log_level);
  return Finish(Dispatch(*inv, *cfg), cfg->termination_log, cfg->metrics_file);
}
