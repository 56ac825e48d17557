// The only translation unit that includes spdlog (it is heavy to compile).
#include "log.h"

#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>
#include <vector>

#include "utf8.h"

namespace pgboot {
namespace {

struct LogState {
  std::shared_ptr<spdlog::logger> logger;
  LogFormat format = LogFormat::kText;
  LogLevel level = LogLevel::kInfo;
};

LogState& State() {
  static LogState s;
  return s;
}

spdlog::level::level_enum ToSpd(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

const char* TextLevel(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO ";
    case LogLevel::kWarn:
      return "WARN ";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO ";
}

const char* JsonLevel(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// logfmt-style: bare when it is a plain word, JSON-quoted otherwise.
std::string TextValue(const std::string& v) {
  bool plain = !v.empty();
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) plain = false;
  }
  return plain ? v : JsonQuote(v);
}

bool StartsWithNoCase(std::string_view s, size_t pos, std::string_view word) {
  if (pos + word.size() > s.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[pos + i])) != word[i]) return false;
  }
  return true;
}

// Redacts `scheme://user:password@host` userinfo: from the first ':' after the
// scheme up to the last '@' of the line. libpq stops at the first '@' or '/',
// but a raw password may hold '/', '@', '?', '#', quotes, blanks and even a
// scheme of its own (`postgres://u:x@y postgres://z@h`), so no earlier end can
// be trusted. Text after the URI holding an '@' is hidden with it, and so is a
// second URI on the same line (too much rather than a piece of a password).
// One pass: each line's last '@' is found once.
std::string RedactUris(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  size_t line_end = 0;
  size_t last_at = std::string_view::npos;  // of the line holding i
  while (i < in.size()) {
    if (i >= line_end) {
      line_end = std::min(in.find('\n', i), in.size());
      const size_t at = in.substr(i, line_end - i).rfind('@');
      last_at = at == std::string_view::npos ? at : i + at;
    }
    size_t scheme_len = 0;
    if (StartsWithNoCase(in, i, "postgresql://"))
      scheme_len = 13;
    else if (StartsWithNoCase(in, i, "postgres://"))
      scheme_len = 11;
    if (scheme_len == 0) {
      out += in[i++];
      continue;
    }
    const size_t start = i + scheme_len;
    out.append(in.substr(i, scheme_len));
    i = start;
    if (last_at != std::string_view::npos && last_at >= start) {
      std::string_view userinfo = in.substr(start, last_at - start);
      size_t colon = userinfo.find(':');
      if (colon != std::string_view::npos) {
        out.append(userinfo.substr(0, colon + 1));
        out.append("***");
        i = last_at;  // the '@' and the host follow as plain text
      }
    }
  }
  return out;
}

// Redacts `password=value` (libpq key/value, quoted or not) and `?password=` /
// `&password=` query parameters.
std::string RedactKeyValues(std::string_view in) {
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    if (!StartsWithNoCase(in, i, "password")) {
      out += in[i++];
      continue;
    }
    size_t j = i + 8;
    while (j < in.size() && (in[j] == ' ' || in[j] == '\t')) ++j;
    if (j >= in.size() || in[j] != '=') {
      out.append(in.substr(i, 8));
      i += 8;
      continue;
    }
    bool query = i > 0 && (in[i - 1] == '?' || in[i - 1] == '&');
    ++j;
    if (!query) {
      while (j < in.size() && (in[j] == ' ' || in[j] == '\t')) ++j;
    }
    out.append(in.substr(i, j - i));
    out.append("***");
    if (!query && j < in.size() && in[j] == '\'') {
      ++j;
      while (j < in.size() && in[j] != '\'') {
        if (in[j] == '\\' && j + 1 < in.size()) ++j;
        ++j;
      }
      if (j < in.size()) ++j;  // closing quote
    } else {
      while (j < in.size() && !std::isspace(static_cast<unsigned char>(in[j])) &&
             !(query && (in[j] == '&' || in[j] == '#')) && in[j] != '"') {
        ++j;
      }
    }
    i = j;
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// %XX decoded where it is well-formed (libpq decodes URI parts before quoting them).
std::string PercentDecoded(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The password a URI's author meant: after `scheme://user:` up to the last '@'
// of the string. libpq stops at the first '@' or '/', so an unescaped '@', '/'
// or ':' in a password makes it parse pieces of it as host, port or dbname,
// which its messages then quote.
void UriPasswords(std::string_view conninfo, std::vector<std::string>* out) {
  const size_t scheme = conninfo.find("://");
  if (scheme == std::string_view::npos) return;
  const std::string_view rest = conninfo.substr(scheme + 3);
  const size_t at = rest.rfind('@');
  if (at == std::string_view::npos) return;
  const std::string_view userinfo = rest.substr(0, at);
  const size_t colon = userinfo.find(':');
  if (colon == std::string_view::npos) return;
  out->emplace_back(userinfo.substr(colon + 1));
}

// `password=` values: of a key/value string (quoted, or unquoted up to the next
// ` key=` since an unquoted value with a space is what its author meant) and
// of a URI query (up to '&').
void KeyValuePasswords(std::string_view conninfo, std::vector<std::string>* out) {
  const std::string lower = Lower(conninfo);
  for (size_t at = lower.find("password"); at != std::string::npos;
       at = lower.find("password", at + 1)) {
    size_t j = at + 8;
    while (j < lower.size() && (lower[j] == ' ' || lower[j] == '\t')) ++j;
    if (j >= lower.size() || lower[j] != '=') continue;
    const bool query = at > 0 && (lower[at - 1] == '?' || lower[at - 1] == '&');
    ++j;
    while (!query && j < lower.size() && (lower[j] == ' ' || lower[j] == '\t')) ++j;
    std::string value;
    if (query) {
      while (j < conninfo.size() && conninfo[j] != '&') value += conninfo[j++];
    } else if (j < conninfo.size() && conninfo[j] == '\'') {
      for (++j; j < conninfo.size() && conninfo[j] != '\''; ++j) {
        if (conninfo[j] == '\\' && j + 1 < conninfo.size()) ++j;
        value += conninfo[j];
      }
    } else {
      // Up to the next word followed by '=' (the next key), or the end.
      size_t end = j;
      while (end < conninfo.size()) {
        size_t space = conninfo.find_first_of(" \t\n", end);
        if (space == std::string_view::npos) {
          end = conninfo.size();
          break;
        }
        const size_t word = conninfo.find_first_not_of(" \t\n", space);
        if (word == std::string_view::npos) {
          end = space;
          break;
        }
        // `key=` or `key =`: the next key begins at `word`.
        size_t eq = conninfo.find_first_of("= \t\n", word);
        if (eq != std::string_view::npos) eq = conninfo.find_first_not_of(" \t\n", eq);
        if (eq != std::string_view::npos && conninfo[eq] == '=' && eq > word) {
          end = space;
          break;
        }
        end = word;
      }
      value = std::string(conninfo.substr(j, end - j));
    }
    out->push_back(value);
  }
}

// Marks in `covered` every run of at least min(4, |secret|) characters of
// `text` that also occurs in `secret`.
void MarkRuns(std::string_view text, std::string_view secret, std::vector<bool>* covered) {
  const size_t need = std::min<size_t>(4, secret.size());
  if (need == 0) return;
  for (size_t i = 0; i < text.size(); ++i) {
    size_t longest = 0;
    for (size_t j = secret.find(text[i]); j != std::string_view::npos;
         j = secret.find(text[i], j + 1)) {
      size_t m = 0;
      while (i + m < text.size() && j + m < secret.size() && text[i + m] == secret[j + m]) ++m;
      longest = std::max(longest, m);
    }
    if (longest < need) continue;
    for (size_t k = i; k < i + longest; ++k) (*covered)[k] = true;
  }
}

}  // namespace

std::string Redact(std::string_view text) { return RedactKeyValues(RedactUris(text)); }

std::string MaskConninfoError(std::string_view conninfo, std::string_view message) {
  std::vector<std::string> secrets;
  UriPasswords(conninfo, &secrets);
  KeyValuePasswords(conninfo, &secrets);
  const size_t n = secrets.size();
  for (size_t i = 0; i < n; ++i) secrets.push_back(PercentDecoded(secrets[i]));
  std::vector<bool> covered(message.size(), false);
  for (const std::string& secret : secrets) MarkRuns(message, secret, &covered);
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    if (!covered[i]) {
      out += message[i];
    } else if (i == 0 || !covered[i - 1]) {
      out += "***";
    }
  }
  return out;
}

std::string JsonQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // JSON text is UTF-8: a byte that starts no valid sequence (a misbehaving
      // server, a file name) becomes U+FFFD.
      const size_t len = Utf8SequenceLength(s, i);
      if (len == 0) {
        out += "\\ufffd";
      } else {
        out.append(s.substr(i, len));
        i += len - 1;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

void LogInit(LogFormat format, LogLevel level) {
  LogState& s = State();
  if (!s.logger) {
    s.logger = std::make_shared<spdlog::logger>("pgboot",
                                                std::make_shared<spdlog::sinks::stderr_sink_st>());
    s.logger->flush_on(spdlog::level::trace);
  }
  s.format = format;
  s.level = level;
  s.logger->set_level(ToSpd(level));
  s.logger->set_pattern(format == LogFormat::kJson ? R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ",%v})"
                                                   : "%Y-%m-%dT%H:%M:%S.%eZ %v",
                        spdlog::pattern_time_type::utc);
}

bool LogEnabled(LogLevel level) { return level >= State().level; }

void LogEvent(LogLevel level, std::string_view event, const LogFields& fields) {
  LogState& s = State();
  if (!s.logger) LogInit(s.format, s.level);
  if (!LogEnabled(level)) return;
  std::string line;
  const bool json = s.format == LogFormat::kJson;
  if (json) {
    line = std::string("\"level\":\"") + JsonLevel(level) + "\",\"event\":" + JsonQuote(event);
  } else {
    line = std::string(TextLevel(level)) + " " + std::string(event);
  }
  for (const LogField& f : fields) {
    std::string value;
    if (const auto* str = std::get_if<std::string>(&f.value)) {
      std::string red = Redact(*str);
      value = json ? JsonQuote(red) : TextValue(red);
    } else if (const auto* num = std::get_if<int64_t>(&f.value)) {
      value = std::to_string(*num);
    } else {
      value = std::get<bool>(f.value) ? "true" : "false";
    }
    if (json) {
      line += "," + JsonQuote(f.key) + ":" + value;
    } else {
      line += " " + f.key + "=" + value;
    }
  }
  s.logger->log(ToSpd(level), spdlog::string_view_t(line.data(), line.size()));
}

// Whether Redact could change `text`: most results (a dry run's SQL) hold no
// URI and no password key, and are written as they are, without copies.
bool MayNeedRedaction(std::string_view text) {
  if (text.find("://") != std::string_view::npos) return true;
  for (size_t at = text.find_first_of("pP"); at != std::string_view::npos;
       at = text.find_first_of("pP", at + 1)) {
    if (StartsWithNoCase(text, at, "password")) return true;
  }
  return false;
}

void PrintResult(std::string_view text) {
  if (!MayNeedRedaction(text)) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return;
  }
  std::string red = Redact(text);
  std::fwrite(red.data(), 1, red.size(), stdout);
  std::fflush(stdout);
}

void WriteTerminationLog(const std::string& path, std::string_view reason) {
  if (path.empty() || access(path.c_str(), W_OK) != 0) return;
  // Never create it; O_NONBLOCK: a FIFO without a reader must not hang pgboot.
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return;
  std::string line = Redact(reason);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  line += '\n';
  ssize_t ignored = write(fd, line.data(), line.size());
  (void)ignored;
  close(fd);
}

}  // namespace pgboot
