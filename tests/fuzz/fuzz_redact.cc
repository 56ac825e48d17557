// libFuzzer target: password redaction (src/log.h) of connection strings and of
// the messages libpq makes of them, checked by the rule of docs/reference.md
// ("Testing for faults"): after removing from the output every occurrence of the string's
// other values (scheme, user, host, port, dbname, other keys' values) and
// pgboot's and libpq's fixed wording, no run of min(4, length) consecutive
// characters of the password remains.
//
// The input builds a connection string from parts (so the "other values" are the
// ones the user meant, not what libpq made of a malformed string), in one of five
// forms: URI with the password percent-encoded, URI with it raw (unescaped '/',
// '@', ':' allowed), URI with ?password=, key=value quoted, key=value bare.
// The outputs: the string as a log field shows it, libpq's own parse error as
// pg_connect.cc reports it, and libpq's connection messages quoting what it
// parsed (host, port, dbname, user), as pgboot logs them.
#include <fuzzer/FuzzedDataProvider.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "log.h"

namespace {

std::string Only(std::string s, std::string_view allowed, std::string_view fallback) {
  std::erase_if(s, [&](char c) { return allowed.find(c) == std::string_view::npos; });
  return s.empty() ? std::string(fallback) : s;
}

constexpr std::string_view kIdent = "abcdefghijklmnopqrstuvwxyz0123456789_";

struct Parts {
  int form = 0;
  std::string scheme, user, password, host, port, dbname, appname;
};

Parts Generate(FuzzedDataProvider& in) {
  Parts p;
  p.form = in.ConsumeIntegralInRange(0, 4);
  p.scheme = in.ConsumeBool() ? "postgres" : "postgresql";
  p.user = Only(in.ConsumeRandomLengthString(12), kIdent, "app");
  p.host = Only(in.ConsumeRandomLengthString(16), "abcdefghijklmnopqrstuvwxyz0123456789.-", "db");
  p.port = std::to_string(in.ConsumeIntegralInRange(1, 65535));
  p.dbname = Only(in.ConsumeRandomLengthString(12), kIdent, "app");
  p.appname = in.ConsumeBool() ? Only(in.ConsumeRandomLengthString(8), kIdent, "x") : "";
  // Printable ASCII and space; at least 4 characters (shorter ones are padded).
  std::string pw = in.ConsumeRemainingBytesAsString();
  std::erase_if(pw, [](char c) { return c < ' ' || c > '~'; });
  if (pw.size() < 4) pw += std::string("Zq9!").substr(0, 4 - pw.size());
  p.password = pw;
  return p;
}

std::string Percent(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string Build(const Parts& p) {
  std::string app = p.appname.empty() ? "" : p.appname;
  switch (p.form) {
    case 0:
    case 1: {
      std::string pw = p.form == 0 ? Percent(p.password) : p.password;
      return p.scheme + "://" + p.user + ":" + pw + "@" + p.host + ":" + p.port + "/" + p.dbname +
             (app.empty() ? "" : "?application_name=" + app);
    }
    case 2:
      return p.scheme + "://" + p.user + "@" + p.host + ":" + p.port + "/" + p.dbname +
             "?password=" + Percent(p.password) + (app.empty() ? "" : "&application_name=" + app);
    case 3:
      return "host=" + p.host + " port=" + p.port + " user=" + p.user +
             " password=" + Quote(p.password) + " dbname=" + p.dbname +
             (app.empty() ? "" : " application_name=" + app);
    default: {
      // Bare values end at a space; quotes and backslashes need the quoted form.
      std::string pw = Only(p.password,
                            "!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "[]^_`abcdefghijklmnopqrstuvwxyz{|}~",
                            "Zq9!Zq9!");
      if (pw.size() < 4) pw += std::string("Zq9!").substr(0, 4 - pw.size());
      return "host=" + p.host + " password=" + pw + " port=" + p.port + " user=" + p.user +
             " dbname=" + p.dbname;
    }
  }
}

// The password as the string carries it (the bare form drops some characters).
std::string EffectivePassword(const Parts& p, std::string_view conninfo) {
  if (p.form != 4) return p.password;
  size_t at = conninfo.find(" password=") + 10;
  return std::string(conninfo.substr(at, conninfo.find(' ', at) - at));
}

// pgboot's one-line form of a libpq message (pg_result.cc's OneLine).
std::string OneLine(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (!line.empty()) out += (out.empty() ? "" : "; ") + std::string(line);
    pos = end + 1;
  }
  return pgboot::Redact(out);
}

// Everything pgboot would print about `conninfo` (see the file comment).
std::vector<std::string> Outputs(const std::string& conninfo) {
  std::vector<std::string> out = {pgboot::Redact(conninfo)};
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string why = err ? err : "out of memory";
    PQfreemem(err);
    out.push_back("invalid database URL: " + OneLine(pgboot::MaskConninfoError(conninfo, why)));
    return out;
  }
  std::string host = "localhost", port = "5432", user = "app", dbname = "app";
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string_view k = o->keyword;
    if (k == "host") host = o->val;
    if (k == "port") port = o->val;
    if (k == "user") user = o->val;
    if (k == "dbname") dbname = o->val;
  }
  PQconninfoFree(opts);
  const std::string at =
      "connection to server at \"" + host + "\" (127.0.0.1), port " + port + " failed: ";
  for (const std::string& m :
       {at + "FATAL:  password authentication failed for user \"" + user + "\"",
        at + "FATAL:  database \"" + dbname + "\" does not exist",
        at + "FATAL:  role \"" + user + "\" does not exist",
        "could not translate host name \"" + host + "\" to address: Name or service not known",
        "invalid port number: \"" + port + "\""}) {
    out.push_back(OneLine(pgboot::MaskConninfoError(conninfo, m)));  // as pg_connect.cc does
  }
  return out;
}

// Fixed wording of pgboot's and libpq's messages (the templates above and
// libpq 15's conninfo parse errors). Single punctuation characters are left in:
// blanking them would hide a password made of them, and alone they never make
// a run of 4.
const std::vector<std::string_view>& Wording() {
  static const std::vector<std::string_view> w = {
      "connection to server at ",
      "(127.0.0.1)",
      ", port ",
      " failed: ",
      "FATAL:  ",
      "password authentication failed for user ",
      "database ",
      " does not exist",
      "role ",
      "could not translate host name ",
      " to address: Name or service not known",
      "invalid port number: ",
      "invalid database URL: ",
      "invalid connection option ",
      "missing ",
      " after ",
      " in connection info string",
      "unterminated quoted string",
      "invalid URI propagated to internal parser routine: ",
      "end of string reached when looking "
      "for matching ",
      " in IPv6 host address in URI: ",
      "IPv6 host address may not be empty in URI: ",
      "unexpected character ",
      " at position ",
      " in URI (expected ",
      " or ",
      "extra key/value "
      "separator ",
      " in URI query parameter: ",
      "missing key/value separator ",
      "invalid URI query parameter: ",
      "invalid percent-encoded token: ",
      "forbidden value %00 in percent-encoded value: ",
      "out of memory",
      "***",
      "password",
      "postgresql",
      "postgres",
      "host",
      "port",
      "user",
      "dbname",
      "application_name",
      "://",
      "; "};
  return w;
}

// Blanks in `rest` every occurrence of `piece` in `output` (the original, so
// that one removal never breaks another piece's match).
void Blank(const std::string& output, std::string* rest, std::string_view piece) {
  if (piece.empty()) return;
  for (size_t at = output.find(piece); at != std::string::npos; at = output.find(piece, at + 1)) {
    std::fill(rest->begin() + static_cast<std::ptrdiff_t>(at),
              rest->begin() + static_cast<std::ptrdiff_t>(at + piece.size()), '\0');
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const Parts p = Generate(in);
  const std::string conninfo = Build(p);
  const std::string pw = EffectivePassword(p, conninfo);
  const size_t k = std::min<size_t>(4, pw.size());
  for (const std::string& output : Outputs(conninfo)) {
    // Removed pieces become NULs (never in a password), so no run is made of
    // characters that were not next to each other.
    std::string rest = output;
    for (std::string_view v :
         {std::string_view(p.scheme), std::string_view(p.user), std::string_view(p.host),
          std::string_view(p.port), std::string_view(p.dbname), std::string_view(p.appname),
          std::string_view("5432"), std::string_view("localhost")}) {
      Blank(output, &rest, v);
    }
    for (std::string_view w : Wording()) Blank(output, &rest, w);
    // libpq's "at position N": N is wording too.
    for (size_t at = output.find(" at position "); at != std::string::npos;
         at = output.find(" at position ", at + 1)) {
      for (size_t i = at + 13;
           i < rest.size() && std::isdigit(static_cast<unsigned char>(output[i])); ++i) {
        rest[i] = '\0';
      }
    }
    for (size_t i = 0; i + k <= pw.size(); ++i) {
      FUZZ_CHECK(rest.find(pw.substr(i, k)) == std::string::npos,
                 "password run \"" + pw.substr(i, k) + "\" of \"" + pw + "\" in: " + output +
                     "\n  conninfo: " + conninfo);
    }
  }
  return 0;
}
