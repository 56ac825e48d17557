#include "new_migration.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "log.h"
#include "migration_files.h"

namespace pgboot {
namespace {

// The longest NAME that still leaves a file name under NAME_MAX (255) bytes.
constexpr size_t kMaxName = 200;

Status FileError(const std::string& what, const std::string& path, int err) {
  return Status::InvalidFiles(what + " " + path + ": " + std::strerror(err));
}

// mkdir -p: dbmate's `new` creates the migrations directory too.
Status MakeDirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      return FileError("cannot create migrations directory", part, errno);
    }
  }
  return Status::Ok();
}

// The canonical versions of the directory's migration files, by name only: a
// file that does not parse yet still owns its version.
Result<std::set<std::string>> TakenVersions(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return FileError("cannot read migrations directory", dir, errno);
  std::set<std::string> taken;
  while (dirent* entry = readdir(d)) {
    std::string_view file = entry->d_name;
    if (file.starts_with(".") || !file.ends_with(".sql")) continue;
    size_t digits = 0;
    while (digits < file.size() && file[digits] >= '0' && file[digits] <= '9') ++digits;
    if (digits > 0 && digits < file.size() && file[digits] == '_') {
      taken.insert(CanonicalVersion(file.substr(0, digits)));
    }
  }
  closedir(d);
  return taken;
}

Status WriteAll(int fd, const std::string& text, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError("cannot write", path, errno);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return FileError("cannot write", path, errno);
  return Status::Ok();
}

}  // namespace

WallClock SystemWallClock() {
  return [] { return static_cast<int64_t>(std::time(nullptr)); };
}

bool ValidMigrationName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string TimestampVersion(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  return buf;
}

std::string NextFreeVersion(int64_t now, const std::set<std::string>& taken) {
  // Seconds, not version + 1: 20260101235959 + 1 is not a time.
  for (int64_t t = now;; ++t) {
    std::string v = TimestampVersion(t);
    if (!taken.count(v)) return v;
  }
}

std::string MigrationTemplate(const std::string& version, const std::string& name) {
  const std::string id = version + "_" + name;
  return "-- migrate:up\n"
         "-- Write the change here and delete the placeholder below: it stops `pgboot migrate`\n"
         "-- (exit 5) so that an unwritten migration is never recorded as applied.\n"
         "DO $$ BEGIN RAISE EXCEPTION 'migration " +
         id +
         " is not written yet'; END $$;\n"
         "\n"
         "-- migrate:down\n"
         "-- Undo the up section here and delete the placeholder below: a down section with\n"
         "-- only comments is a no-op rollback, so the placeholder makes `pgboot rollback` fail\n"
         "-- (exit 5) instead of forgetting a change it did not undo.\n"
         "DO $$ BEGIN RAISE EXCEPTION 'the down section of migration " +
         id + " is not written yet'; END $$;\n";
}

Result<std::string> CreateMigration(const std::string& dir, const std::string& name,
                                    const WallClock& now) {
  if (!ValidMigrationName(name) || name.size() > kMaxName) {
    return Status::Usage("migration name '" + name + "' must match [a-z0-9_]+ (at most " +
                         std::to_string(kMaxName) + " characters), e.g. add_users");
  }
  Status s = MakeDirs(dir);
  if (!s.ok()) return s;
  // Two `new`s in the same second pick their versions one after the other.
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return FileError("cannot open migrations directory", dir, errno);
  while (flock(dfd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      int err = errno;
      close(dfd);
      return FileError("cannot lock migrations directory", dir, err);
    }
  }
  Result<std::string> result = Status::Internal("unreachable");
  auto taken = TakenVersions(dir);
  if (!taken.ok()) {
    result = taken.status();
  } else {
    const std::string prefix = dir.ends_with("/") ? dir : dir + "/";
    const int64_t t0 = now();
    for (int attempt = 0;; ++attempt) {
      const std::string version = NextFreeVersion(t0, *taken);
      const std::string path = prefix + version + "_" + name + ".sql";
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 && errno == EEXIST && attempt < 1000) {
        taken->insert(version);  // someone without our lock took it: next second
        continue;
      }
      if (fd < 0) {
        result = FileError("cannot create", path, errno);
        break;
      }
      s = WriteAll(fd, MigrationTemplate(version, name), path);
      close(fd);
      if (!s.ok()) {
        unlink(path.c_str());
        result = s;
        break;
      }
      std::string newest;  // numerically: the set orders as text
      for (const std::string& v : *taken) {
        if (newest.empty() || CompareVersions(v, newest) > 0) newest = v;
      }
      if (!newest.empty() && CompareVersions(newest, version) > 0) {
        LogWarn("new.older_than_existing",
                {{"version", version},
                 {"newest", newest},
                 {"reason",
                  "an existing migration has a later version (clock skew?); once that "
                  "one is applied, this one needs --out-of-order"}});
      }
      result = path;
      break;
    }
  }
  close(dfd);  // releases the flock
  return result;
}

}  // namespace pgboot
