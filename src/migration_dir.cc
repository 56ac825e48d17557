#include "migration_dir.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "version.h"

namespace pgboot {

std::optional<FileName> ParseFileName(std::string_view file) {
  FileName f{FileKind::kNative, "", "", ""};
  file.remove_suffix(4);  // ".sql"
  if (file.ends_with(".up")) {
    f.kind = FileKind::kPairsUp;
    file.remove_suffix(3);
  } else if (file.ends_with(".down")) {
    f.kind = FileKind::kPairsDown;
    file.remove_suffix(5);
  } else if (file.ends_with(".verify")) {
    f.kind = FileKind::kPairsVerify;
    file.remove_suffix(7);
  }
  size_t digits = 0;
  while (digits < file.size() && file[digits] >= '0' && file[digits] <= '9') ++digits;
  if (digits == 0 || digits == file.size() || file[digits] != '_') return std::nullopt;
  f.stem = std::string(file);
  f.version = CanonicalVersion(file.substr(0, digits));
  f.name = std::string(file.substr(digits + 1));
  return f;
}

Result<std::vector<DirEntry>> ListSqlFiles(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return Status::InvalidFiles("cannot read migrations directory " + dir + ": " +
                                std::strerror(errno));
  }
  std::vector<DirEntry> files;
  errno = 0;
  while (dirent* entry = readdir(d)) {
    std::string_view file = entry->d_name;
    if (!file.starts_with(".") && file.ends_with(".sql")) {
      files.push_back({std::string(file), entry->d_type});
    }
  }
  int read_errno = errno;
  closedir(d);
  if (read_errno != 0) {
    return Status::InvalidFiles("cannot read migrations directory " + dir + ": " +
                                std::strerror(read_errno));
  }
  std::sort(files.begin(), files.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.file < b.file; });
  return files;
}

}  // namespace pgboot
