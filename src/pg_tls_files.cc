#include "pg_tls_files.h"

#include <libpq-fe.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

namespace pgboot {
namespace {

struct TlsFile {
  const char* keyword;
  const char* env;
};
constexpr TlsFile kTlsFiles[] = {
    {"sslcert", "PGSSLCERT"},
    {"sslkey", "PGSSLKEY"},
    {"sslrootcert", "PGSSLROOTCERT"},
};

// The connection string's values of the TLS file keywords (empty ones left out).
std::map<std::string, std::string> FromConninfo(const std::string& conninfo) {
  std::map<std::string, std::string> out;
  if (conninfo.empty()) return out;
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &err);
  PQfreemem(err);
  if (parsed == nullptr) return out;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && *o->val != '\0') out[o->keyword] = o->val;
  }
  PQconninfoFree(parsed);
  return out;
}

}  // namespace

Status CheckConfiguredTlsFiles(const std::string& conninfo) {
  const std::map<std::string, std::string> given = FromConninfo(conninfo);
  for (const TlsFile& f : kTlsFiles) {
    std::string path, source;
    if (auto it = given.find(f.keyword); it != given.end()) {
      path = it->second;
      source = "the connection string";
    } else if (const char* env = std::getenv(f.env); env != nullptr && *env != '\0') {
      path = env;
      source = std::string("environment ") + f.env;
    } else {
      continue;
    }
    // libpq reads "ENGINE:KEY" as a key held by an OpenSSL engine, not a file.
    if (std::strcmp(f.keyword, "sslkey") == 0 && path.find(':') != std::string::npos) continue;
    struct stat st;
    if (stat(path.c_str(), &st) == 0 || errno != ENOENT) continue;  // libpq reports the rest
    return Status::ConnectRejected(std::string(f.keyword) + " file " + path + " (from " + source +
                                       ") does not exist: libpq would go on without it",
                                   "");
  }
  return Status::Ok();
}

}  // namespace pgboot
