// libFuzzer target: the migration-file parser (src/migration_files.h) through
// LoadMigrations on a scratch directory, as pgboot reads files.
//
// Input: up to 4 files separated by NUL bytes; each file's first line is its
// name ('/' becomes '_', ".sql" appended when missing), the rest its bytes.
// Properties: a loaded set is sorted by unique canonical versions with
// SHA-256 checksums and statements found where their line and column say
// (no-op sections without statements are allowed); a refused set is
// InvalidFiles with every line naming `path:line:`.
#include <dirent.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "migration_files.h"

namespace {

void CheckSection(const pgboot::Section& section, const std::string& what) {
  FUZZ_CHECK(section.first_line >= 1, what + ": first_line < 1");
  for (const auto& st : section.statements) {
    const size_t at =
        pgboot::fuzz::FindAt(section.sql, section.first_line, st.line, st.column, st.text);
    FUZZ_CHECK(at != std::string::npos, what + ": line/column do not point at the statement");
    FUZZ_CHECK(st.line >= section.first_line, what + ": statement line before the section");
  }
}

void CheckLoaded(const std::vector<pgboot::Migration>& ms) {
  for (size_t i = 0; i < ms.size(); ++i) {
    const auto& m = ms[i];
    FUZZ_CHECK(pgboot::IsVersionText(m.version), "version " + m.version);
    FUZZ_CHECK(m.version == pgboot::CanonicalVersion(m.version), "not canonical: " + m.version);
    if (i > 0) {
      FUZZ_CHECK(pgboot::CompareVersions(ms[i - 1].version, m.version) < 0,
                 "not sorted or duplicate: " + m.version);
    }
    FUZZ_CHECK(m.checksum.size() == 64 &&
                   m.checksum.find_first_not_of("0123456789abcdef") == std::string::npos,
               "checksum " + m.checksum);
    CheckSection(m.up, m.up_path);
    if (m.down) {
      CheckSection(*m.down, m.down_path);
    }
    if (m.verify) {
      FUZZ_CHECK(!m.verify->statements.empty(),
                 m.verify_path + ": a verify section without checks");
      CheckSection(*m.verify, m.verify_path);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = pgboot::fuzz::ScratchDir() + "/migrations";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (int n = 0; n < 4 && !in.empty(); ++n) {
    size_t end = in.find('\0');
    std::string_view file = in.substr(0, end);
    in = end == std::string_view::npos ? std::string_view() : in.substr(end + 1);
    size_t nl = file.find('\n');
    std::string name(file.substr(0, std::min<size_t>(nl, 100)));
    std::string_view body = nl == std::string_view::npos ? "" : file.substr(nl + 1);
    for (char& c : name) c = c == '/' ? '_' : c;
    if (name.empty() || name == "." || name == "..") name = "0_x";
    if (!name.ends_with(".sql")) name += ".sql";
    pgboot::fuzz::WriteFile(dir + "/" + name, body);
  }
  auto r = pgboot::LoadMigrations(dir);
  if (r.ok()) {
    CheckLoaded(*r);
    return 0;
  }
  FUZZ_CHECK(r.status().kind() == pgboot::StatusKind::kInvalidFiles,
             "refused files are not InvalidFiles: " + r.status().message());
  std::string_view msg = r.status().message();
  size_t pos = 0;
  while (pos <= msg.size()) {
    size_t end = msg.find('\n', pos);
    if (end == std::string_view::npos) end = msg.size();
    std::string_view line = msg.substr(pos, end - pos);
    FUZZ_CHECK(line.starts_with(dir + "/"),
               "error line does not name a file: " + std::string(line));
    pos = end + 1;
  }
  return 0;
}
