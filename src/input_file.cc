#include "input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pgboot {
namespace {

const char* FileType(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Reads at most `limit` + 1 bytes, so that a file that grew past the limit
// after fstat (or that lies about its size, as /proc files do) is still caught.
Result<std::string> ReadAll(int fd, const std::string& path, const std::string& what) {
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status::Usage("cannot read " + what + " " + path + ": " + std::strerror(errno));
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxInputFileBytes) break;
  }
  return Status::Usage(what + " " + path + " is larger than " +
                       std::to_string(kMaxInputFileBytes / 1024) + " KiB");
}

Result<std::optional<std::string>> Read(const std::string& path, const std::string& what,
                                        bool optional) {
  // O_NONBLOCK: opening a FIFO for reading never waits for a writer.
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (optional && errno == ENOENT) return std::optional<std::string>();
    return Status::Usage("cannot read " + what + " " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return Status::Usage("cannot read " + what + " " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return Status::Usage(what + " " + path + " is " + FileType(st.st_mode) +
                         ": it must be a regular file (or a symlink to one)");
  }
  if (static_cast<unsigned long long>(st.st_size) > kMaxInputFileBytes) {
    close(fd);
    return Status::Usage(what + " " + path + " is larger than " +
                         std::to_string(kMaxInputFileBytes / 1024) + " KiB");
  }
  auto content = ReadAll(fd, path, what);
  close(fd);
  if (!content.ok()) return content.status();
  return std::optional<std::string>(std::move(*content));
}

}  // namespace

Result<std::string> ReadInputFile(const std::string& path, const std::string& what) {
  auto r = Read(path, what, /*optional=*/false);
  if (!r.ok()) return r.status();
  return std::move(**r);
}

Result<std::optional<std::string>> ReadOptionalInputFile(const std::string& path,
                                                         const std::string& what) {
  return Read(path, what, /*optional=*/true);
}

}  // namespace pgboot
