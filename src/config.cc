// The only translation unit that includes toml++.
#include "config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace pgboot {
namespace {

constexpr SettingSpec kSpecs[] = {
    {"database-url", "DATABASE_URL", "database.url", "", SettingKind::kString,
     "PostgreSQL URI or libpq key=value string (env also DATABASE_URL_FILE)"},
    {"migrations-dir", "PGBOOT_MIGRATIONS_DIR", "migrations.dir", "./migrations",
     SettingKind::kString, "Directory of migration files"},
    {"history-table", "PGBOOT_HISTORY_TABLE", "migrations.history_table", "public.pgboot_history",
     SettingKind::kTable, "History table [schema.]table; the audit table adds _log"},
    {"run-migrations", "RUN_MIGRATIONS", "run.migrations", "false", SettingKind::kBool,
     "Run mode: migrate before exec'ing APP"},
    {"wait-timeout", "PGBOOT_WAIT_TIMEOUT", "wait.timeout", "60s", SettingKind::kDuration,
     "Give up waiting for the database after this long (0 = forever)"},
    {"wait-max-interval", "PGBOOT_WAIT_MAX_INTERVAL", "wait.max_interval", "1s",
     SettingKind::kDuration, "Backoff cap while the server answers 'too many connections'"},
    {"lock-timeout", "PGBOOT_LOCK_TIMEOUT", "lock.timeout", "15m", SettingKind::kDuration,
     "Give up waiting for the migration lock after this long (0 = forever)"},
    {"ddl-lock-timeout", "PGBOOT_DDL_LOCK_TIMEOUT", "migrations.ddl_lock_timeout", "0",
     SettingKind::kDuration, "lock_timeout for each migration, retried on 55P03 (0 = off)"},
    {"ddl-retries", "PGBOOT_DDL_RETRIES", "migrations.ddl_retries", "3", SettingKind::kCount,
     "Retries of a migration that hit --ddl-lock-timeout"},
    {"statement-timeout", "PGBOOT_STATEMENT_TIMEOUT", "migrations.statement_timeout", "0",
     SettingKind::kDuration, "statement_timeout for migration statements (0 = off)"},
    {"out-of-order", "PGBOOT_OUT_OF_ORDER", "migrations.out_of_order", "false", SettingKind::kBool,
     "Apply pending versions below the newest applied one"},
    {"single-transaction", "PGBOOT_SINGLE_TRANSACTION", "migrations.single_transaction", "false",
     SettingKind::kBool, "All pending migrations in one transaction"},
    {"log-format", "PGBOOT_LOG_FORMAT", "log.format", "text", SettingKind::kLogFormat,
     "text or json"},
    {"log-level", "PGBOOT_LOG_LEVEL", "log.level", "info", SettingKind::kLogLevel,
     "debug, info, warn or error"},
    {"init", "PGBOOT_INIT", "run.init", "false", SettingKind::kBool,
     "Stay PID 1 as a minimal init: fork APP, forward signals, reap zombies"},
    {"init-grace", "PGBOOT_INIT_GRACE", "run.init_grace", "5s", SettingKind::kDuration,
     "--init: SIGKILL leftovers this long after SIGTERM"},
    {"termination-log", "PGBOOT_TERMINATION_LOG", "run.termination_log", "/dev/termination-log",
     SettingKind::kString, "Write the failure reason here when the file exists"},
    {"long-running", "PGBOOT_LONG_RUNNING", "doctor.long_running", "60s", SettingKind::kDuration,
     "doctor: report queries active for longer than this"},
    {nullptr, "PGBOOT_ENV", "env", "", SettingKind::kString, "production: guard rollback"},
    {nullptr, "PGBOOT_WAIT_LOG_INTERVAL", nullptr, "5s", SettingKind::kDuration, ""},
    {nullptr, "PGBOOT_LOCK_LOG_INTERVAL", nullptr, "10s", SettingKind::kDuration, ""},
    {nullptr, "PGBOOT_PROGRESS_INTERVAL", nullptr, "10s", SettingKind::kDuration, ""},
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Where a value came from, for error messages.
struct Sourced {
  std::string value;
  std::string source;
};

Status Bad(const SettingSpec& spec, const Sourced& v, const std::string& why) {
  std::string key = spec.flag ? std::string("--") + spec.flag : std::string(spec.env);
  return Status::Usage("invalid value " + JsonQuote(Redact(v.value)) + " for " + key + " (from " +
                       v.source + "): " + why);
}

bool IsPlainIdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsPlainIdentChar(char c) {
  return IsPlainIdentStart(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// Parses one identifier at `*pos`; advances past it.
Result<std::string> ParseIdent(std::string_view s, size_t* pos) {
  size_t i = *pos;
  if (i < s.size() && s[i] == '"') {
    std::string out;
    ++i;
    for (;;) {
      if (i >= s.size()) return Status::Usage("unterminated quoted identifier");
      if (s[i] == '"') {
        if (i + 1 < s.size() && s[i + 1] == '"') {
          out += '"';
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      out += s[i++];
    }
    if (out.empty()) return Status::Usage("empty quoted identifier");
    *pos = i;
    return out;
  }
  if (i >= s.size() || !IsPlainIdentStart(s[i])) {
    return Status::Usage("expected an identifier");
  }
  size_t start = i;
  while (i < s.size() && IsPlainIdentChar(s[i])) ++i;
  *pos = i;
  return Lower(s.substr(start, i - start));
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
      (*out)[key] = {*str, src};
    } else if (node.is_boolean()) {
      (*out)[key] = {*node.value<bool>() ? "true" : "false", src};
    } else if (node.is_integer()) {
      (*out)[key] = {std::to_string(*node.value<int64_t>()), src};
    } else {
      return Status::Usage(file + ": key " + key + " must be a string, boolean or integer");
    }
  }
  return Status::Ok();
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Usage("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

const std::vector<SettingSpec>& SettingSpecs() {
  static const std::vector<SettingSpec> specs(std::begin(kSpecs), std::end(kSpecs));
  return specs;
}

std::string QuoteIdent(const std::string& id) {
  std::string out = "\"";
  for (char c : id) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QualifiedName::Quoted() const { return QuoteIdent(schema) + "." + QuoteIdent(table); }

Result<QualifiedName> ParseQualifiedName(std::string_view text) {
  size_t pos = 0;
  auto first = ParseIdent(text, &pos);
  if (!first.ok()) return first.status();
  QualifiedName name;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    auto second = ParseIdent(text, &pos);
    if (!second.ok()) return second.status();
    name.schema = *first;
    name.table = *second;
  } else {
    name.table = *first;
  }
  if (pos != text.size()) return Status::Usage("expected [schema.]table");
  // The server truncates identifiers to 63 bytes: a longer name would collide
  // with its own `<table>_log` audit table.
  if (name.table.size() > 59 || name.schema.size() > 63) {
    return Status::Usage(
        "the table name may have at most 59 bytes (its audit table adds _log "
        "and PostgreSQL names have at most 63)");
  }
  return name;
}

Result<int64_t> ParseDuration(std::string_view text) {
  if (text == "0") return int64_t{0};
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  std::string number(text.substr(0, i));
  std::string unit(text.substr(i));
  const char* why = "expected a number with a unit: 250ms, 30s, 5m, 1h, or 0";
  if (number.empty() || number.front() == '.' || number.back() == '.' ||
      number.find('.') != number.rfind('.')) {
    return Status::Usage(why);
  }
  double factor;
  if (unit == "ms")
    factor = 1;
  else if (unit == "s")
    factor = 1000;
  else if (unit == "m")
    factor = 60 * 1000;
  else if (unit == "h")
    factor = 3600 * 1000;
  else
    return Status::Usage(why);
  double ms = std::strtod(number.c_str(), nullptr) * factor;
  if (ms > 1e15) return Status::Usage("duration too large");
  return static_cast<int64_t>(std::llround(ms));
}

Result<bool> ParseBool(std::string_view text) {
  std::string v = Lower(text);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return Status::Usage("expected true/false, 1/0, yes/no or on/off");
}

std::string FormatDuration(int64_t ms) {
  if (ms == 0) return "0";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<Config> LoadConfig(const FlagValues& flags, const EnvLookup& env_lookup) {
  // Empty environment variables count as unset (Compose's `FOO=` idiom).
  auto env = [&](const std::string& name) -> std::optional<std::string> {
    auto v = env_lookup(name);
    if (v && v->empty()) return std::nullopt;
    return v;
  };
  Config cfg;

  // The TOML file.
  std::map<std::string, Sourced> toml_values;
  std::string path;
  bool explicit_path = false;
  if (auto it = flags.find("config"); it != flags.end()) {
    path = it->second;
    explicit_path = true;
  } else if (auto e = env("PGBOOT_CONFIG")) {
    path = *e;
    explicit_path = true;
  } else if (access("pgboot.toml", F_OK) == 0) {
    path = "pgboot.toml";
  }
  if (!path.empty()) {
    if (explicit_path && access(path.c_str(), R_OK) != 0) {
      return Status::Usage("cannot read configuration file " + path);
    }
    toml::table parsed;
    try {
      parsed = toml::parse_file(path);
    } catch (const toml::parse_error& err) {
      return Status::Usage(path + ":" + std::to_string(err.source().begin.line) + ":" +
                           std::to_string(err.source().begin.column) + ": " +
                           std::string(err.description()));
    }
    Status s = FlattenToml(parsed, "", path, &toml_values);
    if (!s.ok()) return s;
    for (const auto& [key, v] : toml_values) {
      bool known = false;
      for (const SettingSpec& spec : kSpecs) {
        if (spec.toml_key && key == spec.toml_key) known = true;
      }
      if (!known) return Status::Usage(path + ": unknown key " + key);
    }
    cfg.config_file = path;
  }

  auto url = env("DATABASE_URL");
  auto url_file = env("DATABASE_URL_FILE");
  if (url && url_file) {
    return Status::Usage(
        "DATABASE_URL and DATABASE_URL_FILE are both set: set only one (the _FILE variant "
        "reads the URL from a file, e.g. a mounted secret)");
  }

  for (const SettingSpec& spec : kSpecs) {
    Sourced v{spec.default_value, "default"};
    bool found = false;
    if (spec.flag) {
      if (auto it = flags.find(spec.flag); it != flags.end()) {
        v = {it->second, std::string("flag --") + spec.flag};
        found = true;
      }
    }
    if (!found && spec.env) {
      if (auto e = env(spec.env)) {
        v = {*e, std::string("environment ") + spec.env};
        found = true;
      } else if (std::string(spec.env) == "DATABASE_URL" && url_file) {
        auto content = ReadWholeFile(*url_file);
        if (!content.ok()) {
          return Status::Usage("cannot read DATABASE_URL_FILE " + *url_file);
        }
        std::string text = *content;
        if (!text.empty() && text.back() == '\n') text.pop_back();
        if (!text.empty() && text.back() == '\r') text.pop_back();
        v = {text, "environment DATABASE_URL_FILE (" + *url_file + ")"};
        found = true;
      }
    }
    if (!found && spec.toml_key) {
      if (auto it = toml_values.find(spec.toml_key); it != toml_values.end()) {
        v = it->second;
        found = true;
      }
    }

    const std::string name = spec.flag ? spec.flag : spec.env;
    switch (spec.kind) {
      case SettingKind::kString:
        if (name == "database-url")
          cfg.database_url = v.value;
        else if (name == "migrations-dir")
          cfg.migrations_dir = v.value;
        else if (name == "termination-log")
          cfg.termination_log = v.value;
        else if (name == "PGBOOT_ENV")
          cfg.env = v.value;
        break;
      case SettingKind::kTable: {
        auto t = ParseQualifiedName(v.value);
        if (!t.ok()) return Bad(spec, v, t.status().message());
        cfg.history_table = *t;
        cfg.history_table_text = v.value;
        break;
      }
      case SettingKind::kBool: {
        auto b = ParseBool(v.value);
        if (!b.ok()) return Bad(spec, v, b.status().message());
        if (name == "run-migrations")
          cfg.run_migrations = *b;
        else if (name == "out-of-order")
          cfg.out_of_order = *b;
        else if (name == "single-transaction")
          cfg.single_transaction = *b;
        else if (name == "init")
          cfg.init = *b;
        break;
      }
      case SettingKind::kDuration: {
        auto d = ParseDuration(v.value);
        if (!d.ok()) return Bad(spec, v, d.status().message());
        if (name == "wait-timeout")
          cfg.wait_timeout_ms = *d;
        else if (name == "wait-max-interval")
          cfg.wait_max_interval_ms = *d;
        else if (name == "lock-timeout")
          cfg.lock_timeout_ms = *d;
        else if (name == "ddl-lock-timeout")
          cfg.ddl_lock_timeout_ms = *d;
        else if (name == "statement-timeout")
          cfg.statement_timeout_ms = *d;
        else if (name == "init-grace")
          cfg.init_grace_ms = *d;
        else if (name == "long-running")
          cfg.long_running_ms = *d;
        else if (name == "PGBOOT_WAIT_LOG_INTERVAL")
          cfg.wait_log_interval_ms = *d;
        else if (name == "PGBOOT_LOCK_LOG_INTERVAL")
          cfg.lock_log_interval_ms = *d;
        else if (name == "PGBOOT_PROGRESS_INTERVAL")
          cfg.progress_interval_ms = *d;
        break;
      }
      case SettingKind::kCount: {
        const std::string& t = v.value;
        bool digits = !t.empty() && t.size() < 10;
        for (char c : t) digits = digits && std::isdigit(static_cast<unsigned char>(c));
        if (!digits) return Bad(spec, v, "expected a whole number >= 0");
        cfg.ddl_retries = std::stoll(t);
        break;
      }
      case SettingKind::kLogFormat: {
        std::string f = Lower(v.value);
        if (f == "text")
          cfg.log_format = LogFormat::kText;
        else if (f == "json")
          cfg.log_format = LogFormat::kJson;
        else
          return Bad(spec, v, "expected text or json");
        break;
      }
      case SettingKind::kLogLevel: {
        std::string l = Lower(v.value);
        if (l == "debug")
          cfg.log_level = LogLevel::kDebug;
        else if (l == "info")
          cfg.log_level = LogLevel::kInfo;
        else if (l == "warn" || l == "warning")
          cfg.log_level = LogLevel::kWarn;
        else if (l == "error")
          cfg.log_level = LogLevel::kError;
        else
          return Bad(spec, v, "expected debug, info, warn or error");
        break;
      }
    }
  }
  if (cfg.wait_max_interval_ms <= 0) {
    return Status::Usage("--wait-max-interval must be greater than 0");
  }
  return cfg;
}

}  // namespace pgboot
