// Structured logging to stderr (text or JSON, docs/reference.md "Log lines"), results to stdout,
// and password redaction.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pgboot {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kText, kJson };

// One `key=value` field of a log event. Strings are redacted before they are printed.
struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(std::string(v)) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string(v ? v : "")) {}
  LogField(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, long v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, long long v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, unsigned v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, unsigned long v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
  std::string key;
  std::variant<std::string, int64_t, bool> value;
};
using LogFields = std::vector<LogField>;

// Configures the stderr logger. Safe to call again (the last call wins).
void LogInit(LogFormat format, LogLevel level);
bool LogEnabled(LogLevel level);

// Writes one event line: the event name, then the fields in order.
void LogEvent(LogLevel level, std::string_view event, const LogFields& fields = {});
inline void LogDebug(std::string_view e, const LogFields& f = {}) {
  LogEvent(LogLevel::kDebug, e, f);
}
inline void LogInfo(std::string_view e, const LogFields& f = {}) {
  LogEvent(LogLevel::kInfo, e, f);
}
inline void LogWarn(std::string_view e, const LogFields& f = {}) {
  LogEvent(LogLevel::kWarn, e, f);
}
inline void LogError(std::string_view e, const LogFields& f = {}) {
  LogEvent(LogLevel::kError, e, f);
}

// Writes a command result (table, JSON, SQL, a path) to stdout, unredacted but for passwords.
void PrintResult(std::string_view text);

// Replaces every password in `text` by ***: URI userinfo (postgres://u:p@h,
// postgresql://), `password=...` key/values (quoted or not) and `?password=` /
// `&password=` query parameters.
std::string Redact(std::string_view text);

// Masks in `message` (libpq's words about `conninfo`) every run of at least
// min(4, its length) characters of a password `conninfo` carries, as its
// author meant it: a URI's from `user:` to the last '@' (libpq stops at the
// first '@' or '/' and then quotes pieces of the password as host, port or
// dbname), `password=` values (unquoted ones up to the next `key=`) and
// `?password=` parameters, each also percent-decoded. Each masked run becomes
// "***"; everything else is kept, so the message still says what is wrong.
std::string MaskConninfoError(std::string_view conninfo, std::string_view message);

// Formats a JSON string literal (with quotes) of `s`, escaping as RFC 8259 requires.
std::string JsonQuote(std::string_view s);

// Writes the one-line, redacted `reason` to `path` when that file exists and is
// writable (Kubernetes creates /dev/termination-log); otherwise does nothing.
void WriteTerminationLog(const std::string& path, std::string_view reason);

}  // namespace pgboot
