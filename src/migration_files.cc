#include "migration_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <tuple>

#include "migration_dir.h"
#include "migration_markers.h"
#include "sha256.h"
#include "utf8.h"

namespace pgboot {
namespace {

constexpr std::string_view kOptionsHelp = "known: transaction:false, transaction:true";
// Verify checks always run inside the migration's transaction (docs/reference.md, "Verify
// sections"), so transaction control belongs elsewhere.
constexpr std::string_view kVerifyOptOut =
    "an up section with transaction:false (verify checks always run in a transaction)";

struct FileError {
  std::string path;
  int line;
  std::string message;
};

using Errors = std::vector<FileError>;

bool ReadFile(const std::string& path, std::string* out, std::string* error) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = std::strerror(errno);
    return false;
  }
  // Peak memory stays within the files' sizes (docs/reference.md, "Inputs
  // pgboot refuses"): reserve the size once instead of doubling as it grows.
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) out->reserve(static_cast<size_t>(st.st_size));
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = std::strerror(errno);
      close(fd);
      return false;
    }
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// The only normalisation the checksum allows (docs/reference.md, "Migration files"): drop a
// leading BOM, CRLF -> LF.
// In place: a file is never held twice.
void Normalize(std::string* text) {
  std::string& s = *text;
  size_t out = 0;
  size_t i = std::string_view(s).starts_with("\xEF\xBB\xBF") ? 3 : 0;
  for (; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    s[out++] = s[i];
  }
  s.resize(out);
}

// Splits `section` into statements, recording lexer errors and forbidden transaction
// control. Returns false when the section could not be lexed.
bool SplitSection(const std::string& path, std::string_view how_to_opt_out, Section* section,
                  Errors* errors) {
  int error_line = section->first_line;
  auto split = SplitSql(section->sql, section->first_line, &error_line);
  if (!split.ok()) {
    errors->push_back({path, error_line, split.status().message()});
    return false;
  }
  section->statements = std::move(*split);
  for (const SqlStatement& st : section->statements) {
    if (IsCopyFromStdin(st.text)) {
      errors->push_back({path, st.line,
                         "COPY ... FROM STDIN needs data that a migration file cannot carry "
                         "(psql's inline data is not SQL); use INSERT, or COPY FROM a file "
                         "the server can read"});
    }
  }
  if (!section->transactional) return true;
  for (const SqlStatement& st : section->statements) {
    if (!st.is_transaction_control) continue;
    errors->push_back({path, st.line,
                       LeadingKeywords(st.text) +
                           " in a transactional section: pgboot runs the section in its own "
                           "transaction; to manage transactions yourself, use " +
                           std::string(how_to_opt_out)});
  }
  return true;
}

// Reads and normalises a migration file; false (with an error recorded) when unreadable.
bool LoadText(const std::string& path, std::string* text, Errors* errors) {
  std::string raw, error;
  if (!ReadFile(path, &raw, &error)) {
    errors->push_back({path, 1, "cannot read file: " + error});
    return false;
  }
  Normalize(&raw);
  *text = std::move(raw);
  if (int line = FindInvalidUtf8(*text)) {
    errors->push_back({path, line, "invalid UTF-8 (or a NUL byte)"});
  }
  return true;
}

// The markers of a native file, at most one of each kind.
struct NativeMarkers {
  const Marker* up = nullptr;
  const Marker* down = nullptr;
  const Marker* verify = nullptr;
  bool down_transactional = true;
};

// Picks the first marker of each kind, recording repeats, unknown options and a down or
// verify marker without an up marker before it. False when no sections can be cut.
bool SelectMarkers(const std::string& path, const std::vector<Marker>& markers,
                   bool* up_transactional, NativeMarkers* out, Errors* errors) {
  for (const Marker& marker : markers) {
    const Marker*& first = marker.kind == MarkerKind::kUp     ? out->up
                           : marker.kind == MarkerKind::kDown ? out->down
                                                              : out->verify;
    if (first != nullptr) {
      errors->push_back({path, marker.line,
                         std::string("repeated ") + MarkerText(marker.kind) +
                             " marker (first at line " + std::to_string(first->line) + ")"});
      continue;
    }
    first = &marker;
    if (marker.kind == MarkerKind::kVerify) {
      // Checks always run inside a transaction (behind a savepoint): no option applies.
      if (!marker.options.empty()) {
        errors->push_back({path, marker.line,
                           "unknown marker option '" + std::string(marker.options) +
                               "' (-- migrate:verify takes none: its checks always run in a "
                               "transaction)"});
      }
      continue;
    }
    bool* transactional =
        marker.kind == MarkerKind::kUp ? up_transactional : &out->down_transactional;
    if (auto unknown = ApplyOptions(marker.options, transactional)) {
      errors->push_back(
          {path, marker.line,
           "unknown marker option '" + *unknown + "' (" + std::string(kOptionsHelp) + ")"});
    }
  }
  bool misplaced = false;
  for (const Marker* later : {out->down, out->verify}) {
    if (later == nullptr || (out->up != nullptr && later->line > out->up->line)) continue;
    errors->push_back({path, later->line,
                       std::string(MarkerText(later->kind)) +
                           (out->up == nullptr ? " marker without a -- migrate:up marker"
                                               : " marker before the -- migrate:up marker")});
    misplaced = true;
  }
  return !misplaced;
}

// Where the section after `marker` ends: at the next marker of any kind, or at `size`.
size_t SectionEnd(const NativeMarkers& k, const Marker& marker, size_t size) {
  for (const Marker* other : {k.up, k.down, k.verify}) {
    if (other != nullptr && other->begin > marker.begin) size = std::min(size, other->begin);
  }
  return size;
}

// A copy of the section after `marker`.
Section CutSection(std::string_view all, const NativeMarkers& k, const Marker& marker) {
  const size_t end = SectionEnd(k, marker, all.size());
  Section section;
  section.sql = std::string(all.substr(marker.end, end - marker.end));
  section.first_line = marker.line + 1;
  section.options = std::string(marker.options);
  return section;
}

// Takes `text` over: the up section becomes it, cut in place, so that the file
// is not held twice.
void ParseNative(const std::string& path, std::string text, Migration* m, Errors* errors) {
  std::vector<Marker> markers = FindMarkers(text);
  NativeMarkers k;
  if (!SelectMarkers(path, markers, &m->up.transactional, &k, errors)) return;

  std::string_view all(text);
  size_t up_begin = 0;
  size_t up_end = text.size();
  if (k.up != nullptr) {
    int error_line = 1;
    auto prefix = SplitSql(all.substr(0, k.up->begin), 1, &error_line);
    if (!prefix.ok()) {
      errors->push_back({path, error_line, prefix.status().message()});
    } else if (!prefix->empty()) {
      errors->push_back({path, prefix->front().line,
                         "statement before -- migrate:up (only blank lines and comments may "
                         "precede it)"});
    }
    up_begin = k.up->end;
    m->up.first_line = k.up->line + 1;
    up_end = SectionEnd(k, *k.up, text.size());
  }
  // The down and verify sections are copied out before the text becomes the up section in
  // place (the markers' options view `text`). The verify section ends the up section, so it
  // is never checksummed (docs/reference.md, "Verify sections").
  std::optional<Section> down, verify;
  if (k.down != nullptr) {
    down = CutSection(all, k, *k.down);
    down->transactional = k.down_transactional;
  }
  if (k.verify != nullptr) verify = CutSection(all, k, *k.verify);
  text.resize(up_end);
  text.erase(0, up_begin);
  m->up.sql = std::move(text);
  m->checksum = Sha256Hex(m->up.sql);
  // An empty or comment-only up section is a no-op migration, not an error: real sets
  // hold them (docs/reference.md, "Migration files").
  SplitSection(path, "'-- migrate:up transaction:false'", &m->up, errors);

  if (down) {
    SplitSection(path, "'-- migrate:down transaction:false'", &*down, errors);
    m->down = std::move(*down);  // Without statements: an explicit no-op rollback.
  }
  if (verify) {
    SplitSection(path, kVerifyOptOut, &*verify, errors);
    m->verify_path = path;
    if (!verify->statements.empty()) m->verify = std::move(*verify);
  }
}

// A whole pairs file, with its optional first line `-- pgboot:transaction:false`.
// Returns false when it could not be lexed.
bool ParsePairsSection(const std::string& path, std::string text, Section* section,
                       Errors* errors) {
  section->sql = std::move(text);
  std::string_view first(section->sql);
  first = first.substr(0, first.find('\n'));
  if (first.starts_with("--")) {
    std::string_view rest = TrimSpace(first.substr(2));
    if (rest.starts_with("pgboot:")) {
      rest.remove_prefix(7);
      section->options = std::string(TrimSpace(rest));
      if (auto unknown = ApplyOptions(rest, &section->transactional)) {
        errors->push_back(
            {path, 1,
             "unknown option 'pgboot:" + *unknown + "' (" + std::string(kOptionsHelp) + ")"});
      }
    }
  }
  return SplitSection(path, "a first line '-- pgboot:transaction:false'", section, errors);
}

// A native file or a pairs .up.sql as a Migration (its errors recorded).
Migration ReadUpFile(const std::string& path, const FileName& name, Errors* errors) {
  Migration m;
  m.version = name.version;
  m.name = name.name;
  m.up_path = path;
  std::string text;
  if (!LoadText(path, &text, errors)) return m;
  if (name.kind == FileKind::kNative) {
    m.down_path = path;
    ParseNative(path, std::move(text), &m, errors);
  } else {
    ParsePairsSection(path, std::move(text), &m.up, errors);
    m.checksum = Sha256Hex(m.up.sql);
  }
  return m;
}

// A pairs .down.sql as the down section of its migration `m`.
void ReadDownFile(const std::string& path, Migration* m, Errors* errors) {
  m->down_path = path;
  std::string text;
  if (!LoadText(path, &text, errors)) return;
  Section section;
  ParsePairsSection(path, std::move(text), &section, errors);
  m->down = std::move(section);  // Empty or comment-only: an explicit no-op rollback.
}

// A pairs .verify.sql as the verify section of its migration `m`.
void ReadVerifyFile(const std::string& path, Migration* m, Errors* errors) {
  m->verify_path = path;
  std::string text;
  if (!LoadText(path, &text, errors)) return;
  Section section;
  section.sql = std::move(text);  // No option line: checks always run in a transaction.
  SplitSection(path, kVerifyOptOut, &section, errors);
  if (!section.statements.empty()) m->verify = std::move(section);
}

// Orders migrations by version; a version used twice is an error.
void SortByVersion(std::vector<Migration>* migrations, Errors* errors) {
  std::stable_sort(migrations->begin(), migrations->end(),
                   [](const Migration& a, const Migration& b) {
                     return CompareVersions(a.version, b.version) < 0;
                   });
  for (size_t i = 1; i < migrations->size(); ++i) {
    const Migration& m = (*migrations)[i];
    const Migration& prev = (*migrations)[i - 1];
    if (m.version == prev.version) {
      errors->push_back(
          {m.up_path, 1, "version " + m.version + " is also used by " + prev.up_path});
    }
  }
}

// Every error at once, ordered by file and line: one `path:line: message` per line.
Status FilesError(Errors errors) {
  std::stable_sort(errors.begin(), errors.end(), [](const FileError& a, const FileError& b) {
    return std::tie(a.path, a.line) < std::tie(b.path, b.line);
  });
  std::string message;
  for (const FileError& e : errors) {
    if (!message.empty()) message += '\n';
    message += e.path + ":" + std::to_string(e.line) + ": " + e.message;
  }
  return Status::InvalidFiles(message);
}

}  // namespace

Section& Section::operator=(const Section& other) {
  if (this == &other) return *this;
  sql = other.sql;
  first_line = other.first_line;
  transactional = other.transactional;
  options = other.options;
  statements = other.statements;
  Rebase();
  return *this;
}

Section& Section::operator=(Section&& other) noexcept {
  if (this == &other) return *this;
  sql = std::move(other.sql);
  first_line = other.first_line;
  transactional = other.transactional;
  options = std::move(other.options);
  statements = std::move(other.statements);
  Rebase();
  return *this;
}

// A short sql lives inside the string object: a move changes its address.
void Section::Rebase() {
  for (SqlStatement& st : statements) {
    if (st.offset + st.text.size() <= sql.size()) {
      st.text = std::string_view(sql).substr(st.offset, st.text.size());
    }
  }
}

Result<std::vector<Migration>> LoadMigrations(const std::string& dir,
                                              std::vector<FileWarning>* warnings) {
  auto files = ListSqlFiles(dir);
  if (!files.ok()) return files.status();
  const std::string prefix = dir.ends_with("/") ? dir : dir + "/";
  Errors errors;
  std::vector<Migration> migrations;
  std::map<std::string, size_t> pairs_up;                       // stem -> index in migrations
  std::vector<std::pair<std::string, std::string>> pairs_down;  // {stem, path}
  std::vector<std::pair<std::string, std::string>> pairs_verify;
  for (const auto& [file, d_type] : *files) {
    std::string path = prefix + file;
    if (FindInvalidUtf8(file) != 0) {
      errors.push_back({EscapeInvalidUtf8(path), 1, "file name is not valid UTF-8"});
      continue;
    }
    auto name = ParseFileName(file);
    struct stat st;
    if (d_type != DT_REG && stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      // Named like a migration, it is one the user meant: never skip it silently.
      if (name || !S_ISDIR(st.st_mode)) {
        errors.push_back(
            {path, 1,
             S_ISDIR(st.st_mode) ? "a directory, not a migration file" : "not a regular file"});
      }
      continue;
    }
    if (!name) {
      errors.push_back({path, 1,
                        "not a migration file name: expected <version>_<name>.sql, "
                        "<version>_<name>.up.sql or <version>_<name>.down.sql"});
    } else if (name->kind == FileKind::kPairsDown) {
      pairs_down.emplace_back(name->stem, path);
    } else if (name->kind == FileKind::kPairsVerify) {
      pairs_verify.emplace_back(name->stem, path);
    } else {
      if (name->kind == FileKind::kPairsUp) pairs_up[name->stem] = migrations.size();
      migrations.push_back(ReadUpFile(path, *name, &errors));
      // For pairs the .down.sql looked for, present or not: rollback names it when absent.
      if (name->kind == FileKind::kPairsUp) {
        migrations.back().down_path = prefix + name->stem + ".down.sql";
      }
    }
  }
  for (const auto& [stem, path] : pairs_down) {
    auto it = pairs_up.find(stem);
    if (it != pairs_up.end()) {
      ReadDownFile(path, &migrations[it->second], &errors);
    } else if (warnings != nullptr) {
      warnings->push_back(
          {"files.orphan", path, "down file without " + prefix + stem + ".up.sql: ignored"});
    }
  }
  for (const auto& [stem, path] : pairs_verify) {
    auto it = pairs_up.find(stem);
    if (it != pairs_up.end()) {
      ReadVerifyFile(path, &migrations[it->second], &errors);
    } else if (warnings != nullptr) {
      warnings->push_back(
          {"files.orphan", path, "verify file without " + prefix + stem + ".up.sql: ignored"});
    }
  }
  SortByVersion(&migrations, &errors);
  if (errors.empty()) return migrations;
  return FilesError(std::move(errors));
}

Result<Section> ParseStoredDown(const std::string& sql, const std::string& options) {
  Section section;
  section.sql = sql;
  section.options = options;
  if (auto unknown = ApplyOptions(options, &section.transactional)) {
    return Status::InvalidFiles("stored down: unknown option '" + *unknown + "'");
  }
  Errors errors;
  SplitSection("stored down", "transaction:false", &section, &errors);
  if (!errors.empty()) return FilesError(std::move(errors));
  return section;
}

}  // namespace pgboot
