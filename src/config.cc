// The only translation unit that includes toml++.
#include "config.h"

#include <toml++/toml.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "input_file.h"
#include "toml_limits.h"

namespace pgboot {
namespace {

// ---- where values go: one template per kind ---------------------------------

template <std::string Config::*F>
constexpr SettingTarget Text{SettingKind::kString, [](const std::string& v, Config& c) {
                               c.*F = v;
                               return Status::Ok();
                             }};

template <bool Config::*F>
constexpr SettingTarget Flag{SettingKind::kBool, [](const std::string& v, Config& c) {
                               auto b = ParseBool(v);
                               if (!b.ok()) return b.status();
                               c.*F = *b;
                               return Status::Ok();
                             }};

template <int64_t Config::*F>
constexpr SettingTarget Duration{SettingKind::kDuration, [](const std::string& v, Config& c) {
                                   auto d = ParseDuration(v);
                                   if (!d.ok()) return d.status();
                                   c.*F = *d;
                                   return Status::Ok();
                                 }};

// A duration that must not be 0 (a backoff cap of 0 would spin).
template <int64_t Config::*F>
constexpr SettingTarget PositiveDuration{
    SettingKind::kDuration, [](const std::string& v, Config& c) {
      auto d = ParseDuration(v);
      if (!d.ok()) return d.status();
      if (*d <= 0) return Status::Usage("must be greater than 0, e.g. 250ms or 1s");
      c.*F = *d;
      return Status::Ok();
    }};

template <int64_t Config::*F>
constexpr SettingTarget Count{SettingKind::kCount, [](const std::string& v, Config& c) {
                                bool digits = !v.empty() && v.size() < 10;
                                for (char ch : v)
                                  digits = digits && std::isdigit(static_cast<unsigned char>(ch));
                                if (!digits) return Status::Usage("expected a whole number >= 0");
                                c.*F = std::stoll(v);
                                return Status::Ok();
                              }};

template <LogFormat Config::*F>
constexpr SettingTarget Format{SettingKind::kLogFormat, [](const std::string& v, Config& c) {
                                 const std::string f = AsciiLower(v);
                                 if (f == "text") {
                                   c.*F = LogFormat::kText;
                                 } else if (f == "json") {
                                   c.*F = LogFormat::kJson;
                                 } else {
                                   return Status::Usage("expected text or json");
                                 }
                                 return Status::Ok();
                               }};

template <LogLevel Config::*F>
constexpr SettingTarget Level{SettingKind::kLogLevel, [](const std::string& v, Config& c) {
                                const std::string l = AsciiLower(v);
                                if (l == "debug") {
                                  c.*F = LogLevel::kDebug;
                                } else if (l == "info") {
                                  c.*F = LogLevel::kInfo;
                                } else if (l == "warn" || l == "warning") {
                                  c.*F = LogLevel::kWarn;
                                } else if (l == "error") {
                                  c.*F = LogLevel::kError;
                                } else {
                                  return Status::Usage("expected debug, info, warn or error");
                                }
                                return Status::Ok();
                              }};

// A table name, and the text as configured (for messages and JSON).
template <QualifiedName Config::*F, std::string Config::*Text>
constexpr SettingTarget Table{SettingKind::kTable, [](const std::string& v, Config& c) {
                                auto t = ParseQualifiedName(v);
                                if (!t.ok()) return t.status();
                                c.*F = *t;
                                c.*Text = v;
                                return Status::Ok();
                              }};

template <LockMode Config::*F>
constexpr SettingTarget Mode{SettingKind::kLockMode, [](const std::string& v, Config& c) {
                               const std::string m = AsciiLower(v);
                               if (m == "auto") {
                                 c.*F = LockMode::kAuto;
                               } else if (m == "session") {
                                 c.*F = LockMode::kSession;
                               } else if (m == "transaction") {
                                 c.*F = LockMode::kTransaction;
                               } else {
                                 return Status::Usage("expected auto, session or transaction");
                               }
                               return Status::Ok();
                             }};

// ---- the settings: adding one is adding a row (and its Config field) --------

const SettingSpec kSpecs[] = {
    {"database-url", "DATABASE_URL", "DATABASE_URL_FILE", "database.url", "",
     Text<&Config::database_url>,
     "PostgreSQL URI or libpq key=value string (env also DATABASE_URL_FILE; "
     "PGBOOT_DATABASE_URL(_FILE) wins for pgboot's own connections)",
     "PGBOOT_DATABASE_URL", "PGBOOT_DATABASE_URL_FILE"},
    {"migrations-dir", "PGBOOT_MIGRATIONS_DIR", nullptr, "migrations.dir", "./migrations",
     Text<&Config::migrations_dir>, "Directory of migration files"},
    {"history-table", "PGBOOT_HISTORY_TABLE", nullptr, "migrations.history_table",
     "public.pgboot_history", Table<&Config::history_table, &Config::history_table_text>,
     "History table [schema.]table; the audit table adds _log"},
    {"run-migrations", "RUN_MIGRATIONS", nullptr, "run.migrations", "false",
     Flag<&Config::run_migrations>, "Run mode: migrate before exec'ing APP"},
    {"wait-timeout", "PGBOOT_WAIT_TIMEOUT", nullptr, "wait.timeout", "60s",
     Duration<&Config::wait_timeout_ms>,
     "Give up waiting for the database after this long (0 = forever)"},
    {"wait-max-interval", "PGBOOT_WAIT_MAX_INTERVAL", nullptr, "wait.max_interval", "1s",
     PositiveDuration<&Config::wait_max_interval_ms>,
     "Backoff cap while the server answers 'too many connections'"},
    {"lock-timeout", "PGBOOT_LOCK_TIMEOUT", nullptr, "lock.timeout", "15m",
     Duration<&Config::lock_timeout_ms>,
     "Give up waiting for the migration lock after this long (0 = forever)"},
    {"ddl-lock-timeout", "PGBOOT_DDL_LOCK_TIMEOUT", nullptr, "migrations.ddl_lock_timeout", "0",
     Duration<&Config::ddl_lock_timeout_ms>,
     "lock_timeout for each migration, retried on 55P03 (0 = off)"},
    {"ddl-retries", "PGBOOT_DDL_RETRIES", nullptr, "migrations.ddl_retries", "3",
     Count<&Config::ddl_retries>, "Retries of a migration that hit --ddl-lock-timeout"},
    {"statement-timeout", "PGBOOT_STATEMENT_TIMEOUT", nullptr, "migrations.statement_timeout", "0",
     Duration<&Config::statement_timeout_ms>,
     "statement_timeout for migration statements (0 = off)"},
    {"out-of-order", "PGBOOT_OUT_OF_ORDER", nullptr, "migrations.out_of_order", "false",
     Flag<&Config::out_of_order>, "Apply pending versions below the newest applied one"},
    {"single-transaction", "PGBOOT_SINGLE_TRANSACTION", nullptr, "migrations.single_transaction",
     "false", Flag<&Config::single_transaction>, "All pending migrations in one transaction"},
    {"log-format", "PGBOOT_LOG_FORMAT", nullptr, "log.format", "text", Format<&Config::log_format>,
     "text or json"},
    {"log-level", "PGBOOT_LOG_LEVEL", nullptr, "log.level", "info", Level<&Config::log_level>,
     "debug, info, warn or error"},
    {"init", "PGBOOT_INIT", nullptr, "run.init", "false", Flag<&Config::init>,
     "Stay PID 1 as a minimal init: fork APP, forward signals, reap zombies"},
    {"init-group", "PGBOOT_INIT_GROUP", nullptr, "run.init_group", "false",
     Flag<&Config::init_group>, "--init: signal APP's process group, not only its pid (tini -g)"},
    {"init-grace", "PGBOOT_INIT_GRACE", nullptr, "run.init_grace", "5s",
     Duration<&Config::init_grace_ms>, "--init: SIGKILL leftovers this long after SIGTERM"},
    {"termination-log", "PGBOOT_TERMINATION_LOG", nullptr, "run.termination_log",
     "/dev/termination-log", Text<&Config::termination_log>,
     "Write the failure reason here when the file exists"},
    {"metrics-file", "PGBOOT_METRICS_FILE", nullptr, "metrics.file", "",
     Text<&Config::metrics_file>,
     "Write Prometheus text format here (atomically) at the end of each command"},
    {"long-running", "PGBOOT_LONG_RUNNING", nullptr, "doctor.long_running", "60s",
     Duration<&Config::long_running_ms>, "doctor: report queries active for longer than this"},
    {"wait-for-migrations", "PGBOOT_WAIT_FOR_MIGRATIONS", nullptr, "run.wait_for_migrations",
     "false", Flag<&Config::wait_for_migrations>,
     "Run mode without RUN_MIGRATIONS, and wait: wait until every migration is applied"},
    {"migrations-wait-timeout", "PGBOOT_MIGRATIONS_WAIT_TIMEOUT", nullptr,
     "run.migrations_wait_timeout", "15m", Duration<&Config::migrations_wait_timeout_ms>,
     "--wait-for-migrations: give up after this long from readiness (0 = forever)"},
    {"before-migrate", "PGBOOT_BEFORE_MIGRATE", nullptr, "hooks.before_migrate", "",
     Text<&Config::before_migrate>,
     "/bin/sh -c command run under the lock before the first pending migration"},
    {"after-migrate", "PGBOOT_AFTER_MIGRATE", nullptr, "hooks.after_migrate", "",
     Text<&Config::after_migrate>,
     "/bin/sh -c command run after the last migration committed, before the lock is released"},
    {nullptr, "PGBOOT_ENV", nullptr, "env", "", Text<&Config::env>, "production: guard rollback"},
    {"lock-mode", "PGBOOT_LOCK_MODE", nullptr, "lock.mode", "auto", Mode<&Config::lock_mode>,
     "auto, session or transaction: how the migration lock is taken (auto: transaction "
     "behind a pooler)"},
    // How often waits report themselves: environment only, so tests can shorten them.
    {nullptr, "PGBOOT_WAIT_LOG_INTERVAL", nullptr, nullptr, "5s",
     Duration<&Config::wait_log_interval_ms>, ""},
    {nullptr, "PGBOOT_LOCK_LOG_INTERVAL", nullptr, nullptr, "10s",
     Duration<&Config::lock_log_interval_ms>, ""},
    {nullptr, "PGBOOT_PROGRESS_INTERVAL", nullptr, nullptr, "10s",
     Duration<&Config::progress_interval_ms>, ""},
    {nullptr, "PGBOOT_GATE_LOG_INTERVAL", nullptr, nullptr, "10s",
     Duration<&Config::gate_log_interval_ms>, ""},
};

// Where a value came from, for error messages.
struct Sourced {
  std::string value;
  std::string source;
  const char* toml_type = nullptr;  // "string", "boolean" or "integer" for a TOML value
};

Status Bad(const SettingSpec& spec, const Sourced& v, const std::string& why) {
  std::string key = spec.flag ? std::string("--") + spec.flag : std::string(spec.env);
  return Status::Usage("invalid value " + JsonQuote(Redact(v.value)) + " for " + key + " (from " +
                       v.source + "): " + why);
}

// Flattens a TOML document into dotted keys -> string values.
Status FlattenToml(const toml::table& t, const std::string& prefix, const std::string& file,
                   std::map<std::string, Sourced>* out) {
  for (const auto& [k, node] : t) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    std::string src = file + " key " + key;
    if (const auto* sub = node.as_table()) {
      Status s = FlattenToml(*sub, key, file, out);
      if (!s.ok()) return s;
    } else if (auto str = node.value<std::string>(); str && node.is_string()) {
      (*out)[key] = {*str, src, "string"};
    } else if (node.is_boolean()) {
      (*out)[key] = {*node.value<bool>() ? "true" : "false", src, "boolean"};
    } else if (node.is_integer()) {
      (*out)[key] = {std::to_string(*node.value<int64_t>()), src, "integer"};
    } else {
      return Status::Usage(file + ": key " + key + " must be a string, boolean or integer");
    }
  }
  return Status::Ok();
}

// Whether a TOML value of `type` may set a setting of `kind`: text settings
// take strings only (`dir = true` is no directory "true"); booleans and counts
// also take their TOML type; durations take a string, or the integer 0.
bool TomlTypeFits(SettingKind kind, const Sourced& v, const char** expected) {
  const std::string_view type = v.toml_type;
  switch (kind) {
    case SettingKind::kBool:
      *expected = "a boolean";
      return type == "boolean" || type == "string";
    case SettingKind::kCount:
      *expected = "an integer";
      return type == "integer" || type == "string";
    case SettingKind::kDuration:
      *expected = "a string such as \"30s\" (or 0)";
      return type == "string" || (type == "integer" && v.value == "0");
    default:
      *expected = "a string";
      return type == "string";
  }
}

}  // namespace

const std::vector<SettingSpec>& SettingSpecs() {
  static const std::vector<SettingSpec> specs(std::begin(kSpecs), std::end(kSpecs));
  return specs;
}

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

namespace {

struct ConfigFile {
  std::string path;  // "" for none
  std::string text;
};

// The TOML file to read: --config, else PGBOOT_CONFIG (both must exist), else
// `default_file` when it exists. Read with ReadInputFile: a FIFO, directory or
// device is refused at once.
Result<ConfigFile> FindConfigFile(const FlagValues& flags, const EnvLookup& env,
                                  const std::string& default_file) {
  std::optional<std::string> named;
  if (auto it = flags.find("config"); it != flags.end()) {
    named = it->second;
  } else {
    named = env("PGBOOT_CONFIG");
  }
  if (named) {
    auto text = ReadInputFile(*named, "configuration file");
    if (!text.ok()) return text.status();
    return ConfigFile{*named, std::move(*text)};
  }
  if (default_file.empty()) return ConfigFile{};
  auto text = ReadOptionalInputFile(default_file, "configuration file");
  if (!text.ok()) return text.status();
  if (!*text) return ConfigFile{};
  return ConfigFile{default_file, std::move(**text)};
}

// The file's values by dotted key; every key must be a setting's.
Result<std::map<std::string, Sourced>> ReadConfigFile(const ConfigFile& file) {
  std::map<std::string, Sourced> values;
  const std::string& path = file.path;
  if (path.empty()) return values;
  if (Status s = CheckTomlNesting(file.text, path); !s.ok()) return s;
  toml::table parsed;
  try {
    parsed = toml::parse(file.text, path);
  } catch (const toml::parse_error& err) {
    return Status::Usage(path + ":" + std::to_string(err.source().begin.line) + ":" +
                         std::to_string(err.source().begin.column) + ": " +
                         std::string(err.description()));
  }
  if (Status s = FlattenToml(parsed, "", path, &values); !s.ok()) return s;
  for (const auto& [key, v] : values) {
    bool known = false;
    for (const SettingSpec& spec : kSpecs) known = known || (spec.toml_key && key == spec.toml_key);
    if (!known) return Status::Usage(path + ": unknown key " + key);
  }
  return values;
}

// The value of one environment variable or of the file its _FILE twin names;
// nullopt when neither is set, an error when both are.
Result<std::optional<Sourced>> FromEnvPair(const char* name, const char* file_name,
                                           const EnvLookup& env) {
  const auto from_env = name ? env(name) : std::nullopt;
  const auto from_file = file_name ? env(file_name) : std::nullopt;
  if (from_env && from_file) {
    return Status::Usage(std::string(name) + " and " + file_name +
                         " are both set: set only one (the _FILE variant reads the value from a "
                         "file, e.g. a mounted secret)");
  }
  if (from_env)
    return std::optional<Sourced>(Sourced{*from_env, std::string("environment ") + name});
  if (!from_file) return std::optional<Sourced>();
  auto content = ReadInputFile(*from_file, file_name);
  if (!content.ok()) return content.status();
  std::string text = std::move(*content);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return std::optional<Sourced>(
      Sourced{text, std::string("environment ") + file_name + " (" + *from_file + ")"});
}

// One setting's value and where it came from: flag > environment (the
// setting's first pair, then its own; each variable or the file its _FILE
// variant names) > TOML file > default.
Result<Sourced> Resolve(const SettingSpec& spec, const FlagValues& flags, const EnvLookup& env,
                        const std::map<std::string, Sourced>& toml_values) {
  auto first = FromEnvPair(spec.first_env, spec.first_env_file, env);
  if (!first.ok()) return first.status();
  auto own = FromEnvPair(spec.env, spec.env_file, env);
  if (!own.ok()) return own.status();
  if (spec.flag) {
    if (auto it = flags.find(spec.flag); it != flags.end()) {
      return Sourced{it->second, std::string("flag --") + spec.flag};
    }
  }
  if (*first) return **first;
  if (*own) return **own;
  if (spec.toml_key) {
    if (auto it = toml_values.find(spec.toml_key); it != toml_values.end()) return it->second;
  }
  return Sourced{spec.default_value, "default"};
}

}  // namespace

Result<Config> LoadConfig(const FlagValues& flags, const EnvLookup& env_lookup,
                          const std::string& default_file) {
  // Empty environment variables count as unset (Compose's `FOO=` idiom).
  const EnvLookup env = [&](const std::string& name) -> std::optional<std::string> {
    auto v = env_lookup(name);
    if (v && v->empty()) return std::nullopt;
    return v;
  };
  auto file = FindConfigFile(flags, env, default_file);
  if (!file.ok()) return file.status();
  auto toml_values = ReadConfigFile(*file);
  if (!toml_values.ok()) return toml_values.status();

  Config cfg;
  for (const SettingSpec& spec : kSpecs) {
    auto v = Resolve(spec, flags, env, *toml_values);
    if (!v.ok()) return v.status();
    if (const char* expected = ""; v->toml_type && !TomlTypeFits(spec.target.kind, *v, &expected)) {
      return Bad(spec, *v, std::string("a TOML ") + v->toml_type + ", expected " + expected);
    }
    if (Status s = spec.target.apply(v->value, cfg); !s.ok()) return Bad(spec, *v, s.message());
  }
  return cfg;
}

}  // namespace pgboot
