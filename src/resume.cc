#include "resume.h"

#include <algorithm>
#include <cctype>

namespace pgboot {
namespace {

// A word of a statement: an identifier or keyword (`quoted` for "..."), or one
// punctuation character.
struct Token {
  std::string text;  // as written, quotes included
  std::string name;  // the identifier as the server stores it
  bool quoted = false;
};

bool IdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// The first `max` tokens of `s`, skipping blanks and comments.
std::vector<Token> Tokens(std::string_view s, size_t max) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size() && out.size() < max) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (s.substr(i, 2) == "--") {
      i = s.find('\n', i);
      if (i == std::string_view::npos) break;
    } else if (s.substr(i, 2) == "/*") {
      int depth = 0;
      do {
        if (s.substr(i, 2) == "/*") {
          ++depth;
          i += 2;
        } else if (s.substr(i, 2) == "*/") {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      } while (depth > 0 && i < s.size());
    } else if (c == '"') {
      Token t;
      t.quoted = true;
      size_t j = i + 1;
      for (; j < s.size(); ++j) {
        if (s[j] == '"') {
          if (j + 1 < s.size() && s[j + 1] == '"') {
            t.name += '"';
            ++j;
            continue;
          }
          break;
        }
        t.name += s[j];
      }
      t.text = std::string(s.substr(i, j + 1 - i));
      out.push_back(std::move(t));
      i = j + 1;
    } else if (IdentChar(c)) {
      size_t j = i;
      while (j < s.size() && IdentChar(s[j])) ++j;
      Token t;
      t.text = std::string(s.substr(i, j - i));
      for (char ch : t.text)
        t.name += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out.push_back(std::move(t));
      i = j;
    } else {
      out.push_back({std::string(1, c), std::string(1, c), false});
      ++i;
    }
  }
  return out;
}

bool Is(const std::vector<Token>& t, size_t i, const char* keyword) {
  return i < t.size() && !t[i].quoted && t[i].name == keyword;
}

// Whether statement `st` opens / closes a transaction block of the section.
bool Opens(const SqlStatement& st) {
  auto t = Tokens(st.text, 1);
  return st.is_transaction_control && (Is(t, 0, "begin") || Is(t, 0, "start"));
}
bool Closes(const SqlStatement& st) {
  auto t = Tokens(st.text, 1);
  return st.is_transaction_control && !Opens(st) && !Is(t, 0, "prepare");
}
bool Commits(const SqlStatement& st) {
  auto t = Tokens(st.text, 1);
  return Closes(st) && (Is(t, 0, "commit") || Is(t, 0, "end"));
}

Status RepairNeeded(const Migration& m, const std::string& why) {
  return Status::Precondition("version " + VersionLabel(m.version, m.name) +
                              " is marked running: " + why +
                              "; fix the database by hand, then run `pgboot repair`");
}

}  // namespace

bool IsSessionSetting(std::string_view statement) {
  auto t = Tokens(statement, 2);
  if (Is(t, 0, "reset")) return true;
  if (!Is(t, 0, "set")) return false;
  return !(Is(t, 1, "local") || Is(t, 1, "transaction") || Is(t, 1, "constraints"));
}

bool ResetsSettings(std::string_view statement) {
  auto t = Tokens(statement, 1);
  return Is(t, 0, "reset") || Is(t, 0, "discard");
}

std::optional<ConcurrentIndex> ParseCreateIndexConcurrently(std::string_view statement) {
  auto t = Tokens(statement, 24);
  size_t i = 0;
  if (!Is(t, i++, "create")) return std::nullopt;
  if (Is(t, i, "unique")) ++i;
  if (!Is(t, i++, "index") || !Is(t, i++, "concurrently")) return std::nullopt;
  if (Is(t, i, "if") && Is(t, i + 1, "not") && Is(t, i + 2, "exists")) i += 3;
  if (Is(t, i, "on") || i >= t.size() || (!t[i].quoted && !IdentChar(t[i].text[0]))) {
    return std::nullopt;  // unnamed: the server picks a name
  }
  ConcurrentIndex out;
  out.index = t[i++].name;
  if (!Is(t, i++, "on")) return std::nullopt;
  if (Is(t, i, "only")) ++i;
  // schema.table or table, each part plain or quoted.
  while (i < t.size()) {
    const bool ident = t[i].quoted || IdentChar(t[i].text[0]);
    if (!ident) return std::nullopt;
    out.table += t[i++].text;
    if (i < t.size() && t[i].text == ".") {
      out.table += ".";
      ++i;
      continue;
    }
    break;
  }
  if (out.table.empty()) return std::nullopt;
  return out;
}

Result<ResumePoint> DecideResume(const Migration& m, const HistoryRow& row) {
  if (row.checksum != m.checksum) {
    return Status::Precondition(
        "version " + VersionLabel(m.version, m.name) + " is marked running but " + m.up_path +
        " was changed since it started: checksum " + m.checksum + ", recorded " + row.checksum +
        "; fix the database by hand, then run `pgboot repair`");
  }
  if (m.up.transactional) {
    return RepairNeeded(m,
                        m.up_path + " is no longer transaction:false, so it cannot go on part-way");
  }
  if (!row.statements_done) {
    return RepairNeeded(m,
                        "it was started by an older pgboot, which did not record how far it got");
  }
  const std::vector<SqlStatement>& st = m.up.statements;
  const int64_t done = *row.statements_done;
  if (done < 0 || static_cast<size_t>(done) > st.size()) {
    return RepairNeeded(m, "its record says " + std::to_string(done) +
                               " statements completed, but " + m.up_path + " has " +
                               std::to_string(st.size()));
  }
  ResumePoint p;
  p.next = static_cast<size_t>(done);
  // Walk the completed statements, tracking the section's own transaction
  // blocks: a setting made in a block that rolled back did not last.
  std::optional<size_t> open;  // BEGIN of the block open at the walk's point
  std::vector<size_t> block_settings;
  for (size_t i = 0; i < p.next; ++i) {
    if (Opens(st[i])) {
      open = i;
      block_settings.clear();
    } else if (Closes(st[i]) && open) {
      if (Commits(st[i]))
        p.prelude.insert(p.prelude.end(), block_settings.begin(), block_settings.end());
      open.reset();
      block_settings.clear();
    } else if (IsSessionSetting(st[i].text)) {
      (open ? block_settings : p.prelude).push_back(i);
    }
  }
  if (open) {
    // Writes inside a block commit with it: an interrupted block left the
    // count at its BEGIN, unless the count is at the COMMIT that closed it.
    if (p.next < st.size() && Commits(st[p.next])) {
      p.prelude.insert(p.prelude.end(), block_settings.begin(), block_settings.end());
      ++p.next;
    } else {
      p.next = *open;
    }
  }
  return p;
}

Result<std::vector<Resumable>> FindResumables(Plan& plan, const std::string& target) {
  std::vector<Resumable> out;
  std::vector<std::string> resumed;
  for (const PlanRow& r : plan.rows) {
    if (r.state != MigrationState::kRunning || !r.file || !r.row) continue;
    if (!target.empty() && CompareVersions(r.version, target) > 0) continue;
    auto point = DecideResume(*r.file, *r.row);
    if (!point.ok()) return point.status();
    out.push_back({r.file, r.row, *point});
    resumed.push_back(r.version);
  }
  std::erase_if(plan.findings, [&](const Finding& f) {
    return f.unfinished && std::find(resumed.begin(), resumed.end(), f.version) != resumed.end();
  });
  return out;
}

Result<std::string> DropInvalidIndex(Database& db, std::string_view statement) {
  auto target = ParseCreateIndexConcurrently(statement);
  if (!target) return std::string();
  // to_regclass resolves the table as the statement will: under the search_path
  // the resume restored.
  auto r = db.Exec(
      "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_index i JOIN "
      "pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
      "c.relname = $1 AND i.indrelid = to_regclass($2) AND NOT i.indisvalid",
      {target->index, target->table});
  if (!r.ok()) return r.status();
  if (r->rows.empty()) return std::string();
  const std::string name = Cell(*r);
  auto drop = db.Exec("DROP INDEX CONCURRENTLY IF EXISTS " + name);
  if (!drop.ok()) return drop.status();
  return name;
}

}  // namespace pgboot
