// The only translation unit that includes spdlog (it is heavy to compile).
#include "log.h"

#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <memory>

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

// Redacts `scheme://user:password@host` userinfo, up to the last '@' before
// the first '/' (libpq stops at the first '@'; an unescaped '@' in a password
// would leak its tail in libpq's messages otherwise). A password may hold '?',
// '#', quotes or spaces, and a message may quote a URI libpq could not parse.
std::string RedactUris(std::string_view in) {
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
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
    size_t end = start;
    while (end < in.size() && in[end] != '/' && in[end] != '\n') ++end;
    end = in.substr(start, end - start).rfind('@');
    if (end != std::string_view::npos) end += start;
    out.append(in.substr(i, scheme_len));
    i = start;
    if (end != std::string_view::npos) {
      std::string_view userinfo = in.substr(start, end - start);
      size_t colon = userinfo.find(':');
      if (colon != std::string_view::npos) {
        out.append(userinfo.substr(0, colon + 1));
        out.append("***");
        i = end;  // the '@' and the host follow as plain text
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

bool MayHoldPassword(std::string_view conninfo) {
  std::string lower(conninfo);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("password") != std::string::npos ||
         (lower.find("://") != std::string::npos && lower.find('@') != std::string::npos);
}

std::string MaskQuoted(std::string_view text) {
  std::string out;
  bool in_quote = false;
  for (char c : text) {
    if (c == '"') {
      out += c;
      if (!in_quote) out += "***";
      in_quote = !in_quote;
    } else if (!in_quote) {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string Redact(std::string_view text) { return RedactKeyValues(RedactUris(text)); }

std::string MaskConninfoError(std::string_view conninfo, std::string_view message) {
  if (!MayHoldPassword(conninfo)) return std::string(message);
  return MaskQuoted(message);
}

std::string JsonQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (unsigned char c : s) {
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

void PrintResult(std::string_view text) {
  std::string red = Redact(text);
  std::fwrite(red.data(), 1, red.size(), stdout);
  std::fflush(stdout);
}

void WriteTerminationLog(const std::string& path, std::string_view reason) {
  if (path.empty() || access(path.c_str(), W_OK) != 0) return;
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);  // never create it
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
