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
#include "sha256.h"
#include "utf8.h"

namespace pgboot {
namespace {

constexpr std::string_view kOptionsHelp = "known: transaction:false, transaction:true";

struct FileError {
  std::string path;
  int line;
  std::string message;
};

using Errors = std::vector<FileError>;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

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

// A `-- migrate:up|down [options]` line, recognised exactly as dbmate does:
// ^--\s*migrate:(up|down)(\s*$|\s+\S+).
struct Marker {
  bool up;
  int line;
  size_t begin;  // Offset of the line.
  size_t end;    // Offset just past the line's '\n'.
  std::string_view options;
};

std::optional<Marker> ParseMarker(std::string_view line) {
  if (!line.starts_with("--")) return std::nullopt;
  std::string_view rest = line.substr(2);
  while (!rest.empty() && IsSpace(rest.front())) rest.remove_prefix(1);
  Marker m{};
  if (rest.starts_with("migrate:up")) {
    m.up = true;
    rest.remove_prefix(10);
  } else if (rest.starts_with("migrate:down")) {
    m.up = false;
    rest.remove_prefix(12);
  } else {
    return std::nullopt;
  }
  if (!rest.empty() && !IsSpace(rest.front())) return std::nullopt;  // e.g. migrate:upgrade
  m.options = Trim(rest);
  return m;
}

// Applies whitespace-separated `options` to `*transactional`; returns the first unknown one.
std::optional<std::string> ApplyOptions(std::string_view options, bool* transactional) {
  while (!(options = Trim(options)).empty()) {
    size_t end = 0;
    while (end < options.size() && !IsSpace(options[end])) ++end;
    std::string_view option = options.substr(0, end);
    if (option == "transaction:false") {
      *transactional = false;
    } else if (option == "transaction:true") {
      *transactional = true;
    } else {
      return std::string(option);
    }
    options.remove_prefix(end);
  }
  return std::nullopt;
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

// Takes `text` over: the up section becomes it, cut in place, so that the file
// is not held twice.
void ParseNative(const std::string& path, std::string text, Migration* m, Errors* errors) {
  std::vector<Marker> markers;
  int line = 1;
  for (size_t pos = 0; pos < text.size(); ++line) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    if (auto marker = ParseMarker(std::string_view(text).substr(pos, end - pos))) {
      marker->line = line;
      marker->begin = pos;
      marker->end = end;
      markers.push_back(*marker);
    }
    pos = end;
  }

  const Marker* up = nullptr;
  const Marker* down = nullptr;
  bool down_transactional = true;
  for (const Marker& marker : markers) {
    const Marker*& first = marker.up ? up : down;
    if (first != nullptr) {
      errors->push_back({path, marker.line,
                         std::string("repeated ") +
                             (marker.up ? "-- migrate:up" : "-- migrate:down") +
                             " marker (first at line " + std::to_string(first->line) + ")"});
      continue;
    }
    first = &marker;
    bool* transactional = marker.up ? &m->up.transactional : &down_transactional;
    if (auto unknown = ApplyOptions(marker.options, transactional)) {
      errors->push_back(
          {path, marker.line,
           "unknown marker option '" + *unknown + "' (" + std::string(kOptionsHelp) + ")"});
    }
  }
  if (down != nullptr && (up == nullptr || down->line < up->line)) {
    errors->push_back({path, down->line,
                       up == nullptr ? "-- migrate:down marker without a -- migrate:up marker"
                                     : "-- migrate:down marker before the -- migrate:up marker"});
    return;  // No sensible sections to split.
  }

  std::string_view all(text);
  size_t up_begin = 0;
  if (up != nullptr) {
    int error_line = 1;
    auto prefix = SplitSql(all.substr(0, up->begin), 1, &error_line);
    if (!prefix.ok()) {
      errors->push_back({path, error_line, prefix.status().message()});
    } else if (!prefix->empty()) {
      errors->push_back({path, prefix->front().line,
                         "statement before -- migrate:up (only blank lines and comments may "
                         "precede it)"});
    }
    up_begin = up->end;
    m->up.first_line = up->line + 1;
  }
  size_t up_end = down != nullptr ? down->begin : text.size();
  // The down part is copied out before the text becomes the up section in place
  // (`down` points into `markers`, whose options view `text`).
  Section down_section;
  std::string down_options;
  int down_first_line = 0;
  if (down != nullptr) {
    down_section.sql = std::string(all.substr(down->end));
    down_options = std::string(down->options);
    down_first_line = down->line + 1;
  }
  text.resize(up_end);
  text.erase(0, up_begin);
  m->up.sql = std::move(text);
  m->checksum = Sha256Hex(m->up.sql);
  // An empty or comment-only up section is a no-op migration, not an error: real sets
  // hold them (docs/reference.md, "Migration files").
  SplitSection(path, "'-- migrate:up transaction:false'", &m->up, errors);

  if (down != nullptr) {
    down_section.first_line = down_first_line;
    down_section.transactional = down_transactional;
    down_section.options = std::move(down_options);
    SplitSection(path, "'-- migrate:down transaction:false'", &down_section, errors);
    m->down = std::move(down_section);  // Without statements: an explicit no-op rollback.
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
    std::string_view rest = Trim(first.substr(2));
    if (rest.starts_with("pgboot:")) {
      rest.remove_prefix(7);
      section->options = std::string(Trim(rest));
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

// `s` with each byte that is not UTF-8 written as \\xNN, so a message can name it.
std::string EscapeBytes(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (size_t n = Utf8SequenceLength(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      unsigned char c = static_cast<unsigned char>(s[i++]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
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
  for (const auto& [file, d_type] : *files) {
    std::string path = prefix + file;
    if (FindInvalidUtf8(file) != 0) {
      errors.push_back({EscapeBytes(path), 1, "file name is not valid UTF-8"});
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
