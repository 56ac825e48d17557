// Config: command-line flags, environment and the TOML file merged into one plain struct
// (docs/configuration.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lock_mode.h"
#include "log.h"
#include "status.h"

namespace pgboot {

// A `[schema.]table` name, parts already unquoted (plain identifiers folded to
// lower case, as the server does).
struct QualifiedName {
  std::string schema = "public";
  std::string table;
  std::string Quoted() const;  // "schema"."table", safe to splice into SQL
  bool operator==(const QualifiedName&) const = default;
};

// "identifier" with embedded quotes doubled, safe to splice into SQL.
std::string QuoteIdent(const std::string& id);

struct Config {
  std::string database_url;  // empty: libpq's PG* variables and defaults
  std::string migrations_dir = "./migrations";
  QualifiedName history_table{"public", "pgboot_history"};
  std::string history_table_text = "public.pgboot_history";  // as configured, for messages
  bool run_migrations = false;
  int64_t wait_timeout_ms = 60000;
  int64_t wait_max_interval_ms = 1000;
  int64_t lock_timeout_ms = 15 * 60 * 1000;
  int64_t ddl_lock_timeout_ms = 0;
  int64_t ddl_retries = 3;
  int64_t statement_timeout_ms = 0;
  bool out_of_order = false;
  bool single_transaction = false;
  LogFormat log_format = LogFormat::kText;
  LogLevel log_level = LogLevel::kInfo;
  bool init = false;
  bool init_group = false;  // with init: forward to APP's process group
  int64_t init_grace_ms = 5000;
  std::string termination_log = "/dev/termination-log";
  std::string metrics_file;  // empty: none (docs/reference.md, "Metrics")
  int64_t long_running_ms = 60000;
  // The schema gate (docs/gate.md): run mode without RUN_MIGRATIONS and `wait`.
  bool wait_for_migrations = false;
  int64_t migrations_wait_timeout_ms = 15 * 60 * 1000;
  std::string env;  // PGBOOT_ENV; "production" turns on the rollback guard
  LockMode lock_mode = LockMode::kAuto;
  // Hooks (docs/reference.md, "Hooks"): /bin/sh -c commands; empty = none.
  std::string before_migrate;
  std::string after_migrate;
  // How often waits report themselves. Environment only (PGBOOT_WAIT_LOG_INTERVAL,
  // PGBOOT_LOCK_LOG_INTERVAL, PGBOOT_PROGRESS_INTERVAL, PGBOOT_GATE_LOG_INTERVAL):
  // tests shorten them.
  int64_t wait_log_interval_ms = 5000;
  int64_t lock_log_interval_ms = 10000;
  int64_t progress_interval_ms = 10000;
  int64_t gate_log_interval_ms = 10000;  // PGBOOT_GATE_LOG_INTERVAL

  bool operator==(const Config&) const = default;
};

enum class SettingKind {
  kString,
  kBool,
  kDuration,
  kCount,
  kLogFormat,
  kLogLevel,
  kTable,
  kLockMode,
};

// Where a setting's value goes: its kind (how it is parsed, and whether a bare
// flag means true) and the function that parses a value into its Config field.
// Made only by the templates below, so the kind and the field cannot disagree.
struct SettingTarget {
  SettingKind kind;
  // Stores `value` in the field; a Usage status saying why it is invalid otherwise.
  Status (*apply)(const std::string& value, Config& cfg);
};

// One setting, declared once in config.cc's table (docs/configuration.md is
// its user-facing twin): flag, environment, TOML key, default, where it goes.
// `flag` is the long option without dashes; a null flag, toml_key or env_file
// means the setting has none. `env_file` names a variable holding the path of
// a file to read the value from (a mounted secret); setting both it and `env`
// is an error. `first_env`/`first_env_file`, when set, are a pair of the same
// kind that wins over `env`/`env_file` (PGBOOT_DATABASE_URL: pgboot's own URL
// while the app keeps reading DATABASE_URL).
struct SettingSpec {
  const char* flag;
  const char* env;
  const char* env_file;
  const char* toml_key;
  const char* default_value;
  SettingTarget target;
  const char* help;
  const char* first_env = nullptr;
  const char* first_env_file = nullptr;
};
const std::vector<SettingSpec>& SettingSpecs();

// Flag values given on the command line, keyed by flag name without dashes
// (booleans given bare carry "true").
using FlagValues = std::map<std::string, std::string>;
// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup ProcessEnv();

// The TOML file read when neither --config nor PGBOOT_CONFIG names one (and it exists).
inline constexpr char kDefaultConfigFile[] = "pgboot.toml";

// Merges flag > environment > TOML file > default. `flags["config"]` or
// PGBOOT_CONFIG names the TOML file, else `default_file` when it exists (""
// for none: tests must not read the pgboot.toml of wherever they run). Every
// error (exit 2) names the key, the value and where it came from.
Result<Config> LoadConfig(const FlagValues& flags, const EnvLookup& env,
                          const std::string& default_file);

// "250ms", "30s", "5m", "1h", "1.5s" or "0" -> milliseconds.
Result<int64_t> ParseDuration(std::string_view text);
// true/false/1/0/yes/no/on/off, any case.
Result<bool> ParseBool(std::string_view text);
Result<QualifiedName> ParseQualifiedName(std::string_view text);
// Formats milliseconds back the way a user would write them ("60s", "250ms", "0").
std::string FormatDuration(int64_t ms);
// ASCII lower case (settings' words and plain identifiers are case-insensitive).
std::string AsciiLower(std::string_view s);

}  // namespace pgboot
