#include "config.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <vector>

#include "exit_code.h"

namespace pgboot {
namespace {

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string TempFile(const std::string& content) {
  char path[] = "/tmp/pgboot-config-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  close(fd);
  return path;
}

// Unit tests never read the pgboot.toml of the directory they run in.
const std::string NoDefaultFile;

}  // namespace

TEST_CASE("durations") {
  CHECK(*ParseDuration("0") == 0);
  CHECK(*ParseDuration("250ms") == 250);
  CHECK(*ParseDuration("30s") == 30000);
  CHECK(*ParseDuration("5m") == 300000);
  CHECK(*ParseDuration("1h") == 3600000);
  CHECK(*ParseDuration("1.5s") == 1500);
  for (const char* bad :
       {"", "30", "s", "-1s", "10sec", "1.2.3s", ".5s", "5.s", "1d", " 1s", "1S", "0s0"}) {
    INFO(bad);
    CHECK_FALSE(ParseDuration(bad).ok());
    CHECK(ExitCodeFor(ParseDuration(bad).status()) == kExitUsage);
  }
  CHECK(FormatDuration(60000) == "1m");
  CHECK(FormatDuration(1500) == "1500ms");
  CHECK(FormatDuration(0) == "0");
}

TEST_CASE("booleans accept every spelling in any case") {
  for (const char* t : {"true", "TRUE", "True", "1", "yes", "YES", "on", "On"})
    CHECK(*ParseBool(t));
  for (const char* f : {"false", "FALSE", "0", "no", "No", "off", "OFF"})
    CHECK_FALSE(*ParseBool(f));
  for (const char* bad : {"", "y", "n", "2", "enabled", "truee"}) {
    INFO(bad);
    CHECK_FALSE(ParseBool(bad).ok());
  }
}

TEST_CASE("qualified names fold plain identifiers and keep quoted ones") {
  auto a = ParseQualifiedName("public.pgboot_history");
  REQUIRE(a.ok());
  CHECK(a->schema == "public");
  CHECK(a->table == "pgboot_history");
  auto b = ParseQualifiedName("History");
  REQUIRE(b.ok());
  CHECK(b->schema == "public");
  CHECK(b->table == "history");
  auto c = ParseQualifiedName("\"My Schema\".\"Tab\"\"le\"");
  REQUIRE(c.ok());
  CHECK(c->schema == "My Schema");
  CHECK(c->table == "Tab\"le");
  CHECK(c->Quoted() == "\"My Schema\".\"Tab\"\"le\"");
  CHECK(ParseQualifiedName(std::string(59, 'h')).ok());
  CHECK_FALSE(ParseQualifiedName(std::string(60, 'h')).ok());  // + "_log" > 63 bytes
  for (const char* bad : {"", "a.b.c", "1abc", "a.", ".b", "\"unterminated", "\"\"", "a b"}) {
    INFO(bad);
    CHECK_FALSE(ParseQualifiedName(bad).ok());
  }
}

TEST_CASE("defaults match docs/configuration.md") {
  auto cfg = LoadConfig({}, FakeEnv({}), NoDefaultFile);
  REQUIRE(cfg.ok());
  CHECK(cfg->database_url.empty());
  CHECK(cfg->migrations_dir == "./migrations");
  CHECK(cfg->history_table.Quoted() == "\"public\".\"pgboot_history\"");
  CHECK_FALSE(cfg->run_migrations);
  CHECK(cfg->wait_timeout_ms == 60000);
  CHECK(cfg->wait_max_interval_ms == 1000);
  CHECK(cfg->lock_timeout_ms == 900000);
  CHECK(cfg->ddl_lock_timeout_ms == 0);
  CHECK(cfg->ddl_retries == 3);
  CHECK(cfg->statement_timeout_ms == 0);
  CHECK_FALSE(cfg->out_of_order);
  CHECK_FALSE(cfg->single_transaction);
  CHECK(cfg->log_format == LogFormat::kText);
  CHECK(cfg->log_level == LogLevel::kInfo);
  CHECK_FALSE(cfg->init);
  CHECK(cfg->init_grace_ms == 5000);
  CHECK(cfg->termination_log == "/dev/termination-log");
  CHECK(cfg->long_running_ms == 60000);
  CHECK(cfg->env.empty());
  // The table's defaults and Config's member initializers cannot drift apart.
  CHECK(*cfg == Config{});
}

// A value unlike the default, valid for the setting's kind.
std::string OtherValue(const SettingSpec& spec) {
  switch (spec.target.kind) {
    case SettingKind::kString:
      return "other-value";
    case SettingKind::kBool:
      return *ParseBool(spec.default_value) ? "false" : "true";
    case SettingKind::kDuration:
      return "1234ms";
    case SettingKind::kCount:
      return "42";
    case SettingKind::kLogFormat:
      return std::string(spec.default_value) == "json" ? "text" : "json";
    case SettingKind::kLogLevel:
      return std::string(spec.default_value) == "error" ? "debug" : "error";
    case SettingKind::kTable:
      return "other.table";
    case SettingKind::kLockMode:
      return std::string(spec.default_value) == "session" ? "transaction" : "session";
  }
  return "";
}

TEST_CASE("every setting reaches a field of its own, from each of its sources") {
  const Config defaults;
  std::vector<Config> changed;
  for (const SettingSpec& spec : SettingSpecs()) {
    INFO(spec.env);
    const std::string value = OtherValue(spec);
    auto by_env = LoadConfig({}, FakeEnv({{spec.env, value}}), NoDefaultFile);
    REQUIRE(by_env.ok());
    CHECK(*by_env != defaults);
    if (spec.flag) {
      auto by_flag = LoadConfig({{spec.flag, value}}, FakeEnv({}), NoDefaultFile);
      REQUIRE(by_flag.ok());
      CHECK(*by_flag == *by_env);
    }
    if (spec.toml_key) {
      std::string key = spec.toml_key;
      const size_t dot = key.rfind('.');
      std::string text =
          dot == std::string::npos
              ? key + " = \"" + value + "\"\n"
              : "[" + key.substr(0, dot) + "]\n" + key.substr(dot + 1) + " = \"" + value + "\"\n";
      std::string toml = TempFile(text);
      auto by_toml = LoadConfig({{"config", toml}}, FakeEnv({}), NoDefaultFile);
      unlink(toml.c_str());
      REQUIRE(by_toml.ok());
      CHECK(*by_toml == *by_env);
    }
    for (const Config& other : changed) CHECK(other != *by_env);  // no two share a field
    changed.push_back(*by_env);
  }
  CHECK(changed.size() == SettingSpecs().size());
}

TEST_CASE("the default file is read only when it exists and nothing else is named") {
  std::string toml = TempFile("[wait]\ntimeout = \"300ms\"\n");
  auto found = LoadConfig({}, FakeEnv({}), toml);
  REQUIRE(found.ok());
  CHECK(found->wait_timeout_ms == 300);
  auto absent = LoadConfig({}, FakeEnv({}), "/nonexistent/pgboot.toml");
  REQUIRE(absent.ok());
  CHECK(absent->wait_timeout_ms == 60000);
  std::string named = TempFile("[wait]\ntimeout = \"2s\"\n");
  auto flag = LoadConfig({{"config", named}}, FakeEnv({}), toml);
  REQUIRE(flag.ok());
  CHECK(flag->wait_timeout_ms == 2000);
  auto env = LoadConfig({}, FakeEnv({{"PGBOOT_CONFIG", named}}), toml);
  REQUIRE(env.ok());
  CHECK(env->wait_timeout_ms == 2000);
  unlink(named.c_str());
  unlink(toml.c_str());
}

TEST_CASE("precedence: flag > environment > TOML > default, for every setting") {
  std::string toml = TempFile(
      "env = \"staging\"\n"
      "[database]\nurl = \"postgres://toml@h/db\"\n"
      "[migrations]\ndir = \"toml-dir\"\nhistory_table = \"toml.hist\"\n"
      "ddl_lock_timeout = \"1s\"\nddl_retries = 7\nstatement_timeout = \"2s\"\n"
      "out_of_order = true\nsingle_transaction = \"yes\"\n"
      "[run]\nmigrations = true\ninit = true\ninit_grace = \"3s\"\n"
      "termination_log = \"/tmp/toml-term\"\n"
      "[wait]\ntimeout = \"9s\"\nmax_interval = \"2s\"\n"
      "[lock]\ntimeout = \"1m\"\n"
      "[log]\nformat = \"json\"\nlevel = \"debug\"\n"
      "[doctor]\nlong_running = \"2m\"\n");

  // TOML over defaults.
  auto t = LoadConfig({{"config", toml}}, FakeEnv({}), NoDefaultFile);
  REQUIRE(t.ok());
  CHECK(t->database_url == "postgres://toml@h/db");
  CHECK(t->migrations_dir == "toml-dir");
  CHECK(t->history_table.schema == "toml");
  CHECK(t->ddl_lock_timeout_ms == 1000);
  CHECK(t->ddl_retries == 7);
  CHECK(t->statement_timeout_ms == 2000);
  CHECK(t->out_of_order);
  CHECK(t->single_transaction);
  CHECK(t->run_migrations);
  CHECK(t->init);
  CHECK(t->init_grace_ms == 3000);
  CHECK(t->termination_log == "/tmp/toml-term");
  CHECK(t->wait_timeout_ms == 9000);
  CHECK(t->wait_max_interval_ms == 2000);
  CHECK(t->lock_timeout_ms == 60000);
  CHECK(t->log_format == LogFormat::kJson);
  CHECK(t->log_level == LogLevel::kDebug);
  CHECK(t->long_running_ms == 120000);
  CHECK(t->env == "staging");

  // Environment over TOML.
  std::map<std::string, std::string> env = {
      {"PGBOOT_CONFIG", toml},
      {"DATABASE_URL", "postgres://env@h/db"},
      {"PGBOOT_MIGRATIONS_DIR", "env-dir"},
      {"PGBOOT_HISTORY_TABLE", "env.hist"},
      {"RUN_MIGRATIONS", "false"},
      {"PGBOOT_WAIT_TIMEOUT", "8s"},
      {"PGBOOT_WAIT_MAX_INTERVAL", "3s"},
      {"PGBOOT_LOCK_TIMEOUT", "2m"},
      {"PGBOOT_DDL_LOCK_TIMEOUT", "4s"},
      {"PGBOOT_DDL_RETRIES", "1"},
      {"PGBOOT_STATEMENT_TIMEOUT", "5s"},
      {"PGBOOT_OUT_OF_ORDER", "off"},
      {"PGBOOT_SINGLE_TRANSACTION", "no"},
      {"PGBOOT_LOG_FORMAT", "text"},
      {"PGBOOT_LOG_LEVEL", "warn"},
      {"PGBOOT_INIT", "0"},
      {"PGBOOT_INIT_GRACE", "6s"},
      {"PGBOOT_TERMINATION_LOG", "/tmp/env-term"},
      {"PGBOOT_LONG_RUNNING", "3m"},
      {"PGBOOT_ENV", "production"},
  };
  auto e = LoadConfig({}, FakeEnv(env), NoDefaultFile);
  REQUIRE(e.ok());
  CHECK(e->database_url == "postgres://env@h/db");
  CHECK(e->migrations_dir == "env-dir");
  CHECK(e->history_table.schema == "env");
  CHECK_FALSE(e->run_migrations);
  CHECK(e->wait_timeout_ms == 8000);
  CHECK(e->wait_max_interval_ms == 3000);
  CHECK(e->lock_timeout_ms == 120000);
  CHECK(e->ddl_lock_timeout_ms == 4000);
  CHECK(e->ddl_retries == 1);
  CHECK(e->statement_timeout_ms == 5000);
  CHECK_FALSE(e->out_of_order);
  CHECK_FALSE(e->single_transaction);
  CHECK(e->log_format == LogFormat::kText);
  CHECK(e->log_level == LogLevel::kWarn);
  CHECK_FALSE(e->init);
  CHECK(e->init_grace_ms == 6000);
  CHECK(e->termination_log == "/tmp/env-term");
  CHECK(e->long_running_ms == 180000);
  CHECK(e->env == "production");

  // Flags over environment.
  FlagValues flags = {
      {"database-url", "postgres://flag@h/db"},
      {"migrations-dir", "flag-dir"},
      {"history-table", "flag.hist"},
      {"run-migrations", "true"},
      {"wait-timeout", "7s"},
      {"wait-max-interval", "4s"},
      {"lock-timeout", "3m"},
      {"ddl-lock-timeout", "5s"},
      {"ddl-retries", "2"},
      {"statement-timeout", "6s"},
      {"out-of-order", "true"},
      {"single-transaction", "true"},
      {"log-format", "json"},
      {"log-level", "error"},
      {"init", "true"},
      {"init-grace", "7s"},
      {"termination-log", "/tmp/flag-term"},
      {"long-running", "4m"},
  };
  auto f = LoadConfig(flags, FakeEnv(env), NoDefaultFile);
  REQUIRE(f.ok());
  CHECK(f->database_url == "postgres://flag@h/db");
  CHECK(f->migrations_dir == "flag-dir");
  CHECK(f->history_table.schema == "flag");
  CHECK(f->run_migrations);
  CHECK(f->wait_timeout_ms == 7000);
  CHECK(f->wait_max_interval_ms == 4000);
  CHECK(f->lock_timeout_ms == 180000);
  CHECK(f->ddl_lock_timeout_ms == 5000);
  CHECK(f->ddl_retries == 2);
  CHECK(f->statement_timeout_ms == 6000);
  CHECK(f->out_of_order);
  CHECK(f->single_transaction);
  CHECK(f->log_format == LogFormat::kJson);
  CHECK(f->log_level == LogLevel::kError);
  CHECK(f->init);
  CHECK(f->init_grace_ms == 7000);
  CHECK(f->termination_log == "/tmp/flag-term");
  CHECK(f->long_running_ms == 240000);
  unlink(toml.c_str());
}

TEST_CASE("errors name the key, the value and the source") {
  auto env_err = LoadConfig({}, FakeEnv({{"PGBOOT_WAIT_TIMEOUT", "soon"}}), NoDefaultFile);
  REQUIRE_FALSE(env_err.ok());
  CHECK(ExitCodeFor(env_err.status()) == kExitUsage);
  CHECK(env_err.status().message().find("--wait-timeout") != std::string::npos);
  CHECK(env_err.status().message().find("\"soon\"") != std::string::npos);
  CHECK(env_err.status().message().find("environment PGBOOT_WAIT_TIMEOUT") != std::string::npos);

  auto flag_err = LoadConfig({{"run-migrations", "maybe"}}, FakeEnv({}), NoDefaultFile);
  REQUIRE_FALSE(flag_err.ok());
  CHECK(flag_err.status().message().find("flag --run-migrations") != std::string::npos);

  std::string toml = TempFile("[lock]\ntimeout = 30\n");
  auto toml_err = LoadConfig({{"config", toml}}, FakeEnv({}), NoDefaultFile);
  REQUIRE_FALSE(toml_err.ok());
  CHECK(toml_err.status().message().find(toml + " key lock.timeout") != std::string::npos);
  unlink(toml.c_str());

  std::string unknown = TempFile("[wait]\ntimeuot = \"1s\"\n");
  auto unknown_err = LoadConfig({{"config", unknown}}, FakeEnv({}), NoDefaultFile);
  REQUIRE_FALSE(unknown_err.ok());
  CHECK(unknown_err.status().message().find("unknown key wait.timeuot") != std::string::npos);
  unlink(unknown.c_str());

  std::string broken = TempFile("[wait\n");
  auto broken_err = LoadConfig({{"config", broken}}, FakeEnv({}), NoDefaultFile);
  REQUIRE_FALSE(broken_err.ok());
  CHECK(broken_err.status().message().find(broken + ":1:") != std::string::npos);
  unlink(broken.c_str());

  auto missing = LoadConfig({{"config", "/nonexistent/pgboot.toml"}}, FakeEnv({}), NoDefaultFile);
  REQUIRE_FALSE(missing.ok());
  CHECK(ExitCodeFor(missing.status()) == kExitUsage);

  auto bad_level = LoadConfig({}, FakeEnv({{"PGBOOT_LOG_LEVEL", "loud"}}), NoDefaultFile);
  CHECK(ExitCodeFor(bad_level.status()) == kExitUsage);
  auto bad_count = LoadConfig({}, FakeEnv({{"PGBOOT_DDL_RETRIES", "-1"}}), NoDefaultFile);
  CHECK(ExitCodeFor(bad_count.status()) == kExitUsage);
}

TEST_CASE("a password in a bad value is not echoed") {
  auto r = LoadConfig({{"history-table", "postgres://u:hunter2@h/db"}}, FakeEnv({}), NoDefaultFile);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("hunter2") == std::string::npos);
}

TEST_CASE("DATABASE_URL_FILE") {
  std::string f = TempFile("postgres://u:p@h/db\n");
  auto r = LoadConfig({}, FakeEnv({{"DATABASE_URL_FILE", f}}), NoDefaultFile);
  REQUIRE(r.ok());
  CHECK(r->database_url == "postgres://u:p@h/db");  // one trailing newline dropped

  auto both =
      LoadConfig({}, FakeEnv({{"DATABASE_URL_FILE", f}, {"DATABASE_URL", "x"}}), NoDefaultFile);
  REQUIRE_FALSE(both.ok());
  CHECK(ExitCodeFor(both.status()) == kExitUsage);
  CHECK(both.status().message().find("DATABASE_URL_FILE") != std::string::npos);

  auto flag_wins = LoadConfig({{"database-url", "postgres://flag@h/db"}},
                              FakeEnv({{"DATABASE_URL_FILE", f}}), NoDefaultFile);
  REQUIRE(flag_wins.ok());
  CHECK(flag_wins->database_url == "postgres://flag@h/db");

  auto unreadable =
      LoadConfig({}, FakeEnv({{"DATABASE_URL_FILE", "/nonexistent/secret"}}), NoDefaultFile);
  REQUIRE_FALSE(unreadable.ok());
  CHECK(ExitCodeFor(unreadable.status()) == kExitUsage);
  CHECK(unreadable.status().message().find("/nonexistent/secret") != std::string::npos);
  unlink(f.c_str());
}

TEST_CASE("PGBOOT_DATABASE_URL(_FILE) wins over DATABASE_URL(_FILE) for pgboot's connections") {
  std::string own = TempFile("postgres://direct@db/app\n");
  std::string app = TempFile("postgres://pooled@bouncer/app\n");
  const std::string toml = TempFile("[database]\nurl = \"postgres://toml@h/db\"\n");

  auto env_over_env = LoadConfig({},
                                 FakeEnv({{"PGBOOT_DATABASE_URL", "postgres://direct@db/app"},
                                          {"DATABASE_URL", "postgres://pooled@bouncer/app"}}),
                                 NoDefaultFile);
  REQUIRE(env_over_env.ok());
  CHECK(env_over_env->database_url == "postgres://direct@db/app");

  // Each form of the first pair beats each form of the second.
  auto file_over_env = LoadConfig(
      {}, FakeEnv({{"PGBOOT_DATABASE_URL_FILE", own}, {"DATABASE_URL", "postgres://x@y/z"}}),
      NoDefaultFile);
  REQUIRE(file_over_env.ok());
  CHECK(file_over_env->database_url == "postgres://direct@db/app");
  auto env_over_file = LoadConfig(
      {},
      FakeEnv({{"PGBOOT_DATABASE_URL", "postgres://direct@db/app"}, {"DATABASE_URL_FILE", app}}),
      NoDefaultFile);
  REQUIRE(env_over_file.ok());
  CHECK(env_over_file->database_url == "postgres://direct@db/app");

  // The flag beats both; the TOML key loses to both.
  auto flag =
      LoadConfig({{"database-url", "postgres://flag@h/db"}},
                 FakeEnv({{"PGBOOT_DATABASE_URL", "postgres://direct@db/app"}}), NoDefaultFile);
  REQUIRE(flag.ok());
  CHECK(flag->database_url == "postgres://flag@h/db");
  auto over_toml =
      LoadConfig({{"config", toml}}, FakeEnv({{"PGBOOT_DATABASE_URL_FILE", own}}), NoDefaultFile);
  REQUIRE(over_toml.ok());
  CHECK(over_toml->database_url == "postgres://direct@db/app");
  auto toml_only = LoadConfig({{"config", toml}}, FakeEnv({}), NoDefaultFile);
  REQUIRE(toml_only.ok());
  CHECK(toml_only->database_url == "postgres://toml@h/db");

  // A variable and its _FILE both set is exit 2, naming both, even with the flag given.
  auto both = LoadConfig(
      {{"database-url", "postgres://flag@h/db"}},
      FakeEnv({{"PGBOOT_DATABASE_URL", "postgres://a@b/c"}, {"PGBOOT_DATABASE_URL_FILE", own}}),
      NoDefaultFile);
  REQUIRE_FALSE(both.ok());
  CHECK(ExitCodeFor(both.status()) == kExitUsage);
  CHECK(both.status().message().find("PGBOOT_DATABASE_URL and PGBOOT_DATABASE_URL_FILE") !=
        std::string::npos);

  auto unreadable =
      LoadConfig({}, FakeEnv({{"PGBOOT_DATABASE_URL_FILE", "/nonexistent/direct"}}), NoDefaultFile);
  REQUIRE_FALSE(unreadable.ok());
  CHECK(unreadable.status().message().find("/nonexistent/direct") != std::string::npos);
  unlink(own.c_str());
  unlink(app.c_str());
  unlink(toml.c_str());
}

TEST_CASE("--lock-mode: auto by default, session or transaction, anything else exit 2 naming it") {
  auto def = LoadConfig({}, FakeEnv({}), NoDefaultFile);
  REQUIRE(def.ok());
  CHECK(def->lock_mode == LockMode::kAuto);
  auto session = LoadConfig({{"lock-mode", "session"}}, FakeEnv({}), NoDefaultFile);
  REQUIRE(session.ok());
  CHECK(session->lock_mode == LockMode::kSession);
  auto txn = LoadConfig({}, FakeEnv({{"PGBOOT_LOCK_MODE", "Transaction"}}), NoDefaultFile);
  REQUIRE(txn.ok());
  CHECK(txn->lock_mode == LockMode::kTransaction);
  auto bad = LoadConfig({{"lock-mode", "pooled"}}, FakeEnv({}), NoDefaultFile);
  REQUIRE_FALSE(bad.ok());
  CHECK(ExitCodeFor(bad.status()) == kExitUsage);
  CHECK(bad.status().message().find("\"pooled\"") != std::string::npos);
  CHECK(bad.status().message().find("--lock-mode") != std::string::npos);
}

TEST_CASE("empty environment variables count as unset") {
  auto r =
      LoadConfig({}, FakeEnv({{"RUN_MIGRATIONS", ""}, {"PGBOOT_WAIT_TIMEOUT", ""}}), NoDefaultFile);
  REQUIRE(r.ok());
  CHECK_FALSE(r->run_migrations);
  CHECK(r->wait_timeout_ms == 60000);
}

}  // namespace pgboot
