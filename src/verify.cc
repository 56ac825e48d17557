#include "verify.h"

#include "history.h"
#include "log.h"

namespace pgboot {
namespace {

constexpr uint32_t kBoolOid = 16;

// The SQL name of type `oid` ("integer"), or its number when the server cannot say.
std::string TypeName(Database& db, uint32_t oid) {
  auto r = db.Exec("SELECT format_type($1::oid, NULL)", {std::to_string(oid)});
  std::string name = r.ok() ? Cell(*r) : "";
  return name.empty() ? "type oid " + std::to_string(oid) : name;
}

// Why the rows of a check fail the boolean rule; empty when they pass.
std::string JudgeRows(Database& db, const QueryResult& r) {
  if (r.rows.empty()) return "";
  if (r.column_types.empty() || r.column_types.front() != kBoolOid) {
    const std::string type = r.column_types.empty() ? "unknown" : TypeName(db, r.column_types[0]);
    return "first column is " + type + ", not boolean (a check returns e.g. SELECT EXISTS (...))";
  }
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const SqlRow& row = r.rows[i];
    if (row.empty() || !row[0]) return "returned NULL (row " + std::to_string(i + 1) + ")";
    if (*row[0] != "t") return "returned false (row " + std::to_string(i + 1) + ")";
  }
  return "";
}

Status Internal(const Status& s, const std::string& what) {
  if (s.is_signal() || s.kind() == StatusKind::kConnectionLost) return s;
  return Status::Internal(what + ": " + s.message());
}

}  // namespace

std::string CheckLocation(const CheckOutcome& c) { return c.file + ":" + std::to_string(c.line); }

Result<std::vector<CheckOutcome>> RunChecks(Database& db, const std::string& version,
                                            const std::string& path, const Section& checks,
                                            bool keep_going) {
  std::vector<CheckOutcome> out;
  for (const SqlStatement& st : checks.statements) {
    CheckOutcome c{version, path, st.line, true, ""};
    auto r = db.Exec(st.text);
    if (!r.ok()) {
      const Status& s = r.status();
      if (s.is_signal() || s.kind() == StatusKind::kConnectionLost) return s;
      c.ok = false;
      c.message = (s.sqlstate().empty() ? "" : "SQLSTATE " + s.sqlstate() + ": ") + s.message();
      if (keep_going) {
        auto back = db.Exec("ROLLBACK TO SAVEPOINT pgboot_verify");
        if (!back.ok()) return Internal(back.status(), "verify: rolling back a failed check");
      }
    } else {
      c.message = JudgeRows(db, *r);
      c.ok = c.message.empty();
    }
    out.push_back(std::move(c));
    if (!out.back().ok && !keep_going) break;
  }
  return out;
}

Result<std::vector<CheckOutcome>> VerifyApplied(Database& db, const Config& cfg,
                                                const std::vector<Migration>& files) {
  History history(db, cfg.history_table);
  auto rows = history.Read();
  if (!rows.ok()) return Internal(rows.status(), "verify: reading the history table");
  std::vector<CheckOutcome> out;
  for (const Migration& m : files) {
    if (!m.verify) continue;
    bool applied = false;
    for (const HistoryRow& row : *rows)
      applied |= row.version == m.version && row.status == "applied";
    if (!applied) continue;
    std::vector<std::string> begin = BeginStatements(db);
    begin.push_back("SET TRANSACTION READ ONLY");
    begin.push_back("SAVEPOINT pgboot_verify");
    Status s = db.ExecSequence(Views(begin));
    if (!s.ok()) {
      (void)db.Exec("ROLLBACK");
      return Internal(s, "verify: opening a read-only transaction");
    }
    auto checks = RunChecks(db, m.version, m.verify_path, *m.verify, /*keep_going=*/true);
    (void)db.Exec("ROLLBACK");
    if (!checks.ok()) return checks.status();
    for (CheckOutcome& c : *checks) out.push_back(std::move(c));
  }
  return out;
}

std::string FormatVerifyText(const std::vector<CheckOutcome>& checks) {
  std::string out;
  size_t failed = 0;
  for (const CheckOutcome& c : checks) {
    out += (c.ok ? "ok    " : "FAIL  ") + c.version + "  " + CheckLocation(c) +
           (c.ok ? "" : ": " + c.message) + "\n";
    failed += c.ok ? 0 : 1;
  }
  out += std::to_string(checks.size()) + " check(s), " + std::to_string(failed) + " failed\n";
  return out;
}

std::string FormatVerifyJson(const std::vector<CheckOutcome>& checks) {
  std::string out = "{\"checks\":[";
  size_t failed = 0;
  for (size_t i = 0; i < checks.size(); ++i) {
    const CheckOutcome& c = checks[i];
    out += std::string(i ? "," : "") + "{\"version\":" + JsonQuote(c.version) +
           ",\"file\":" + JsonQuote(c.file) + ",\"line\":" + std::to_string(c.line) +
           ",\"ok\":" + (c.ok ? "true" : "false") + ",\"message\":" + JsonQuote(c.message) + "}";
    failed += c.ok ? 0 : 1;
  }
  return out + "],\"failed\":" + std::to_string(failed) + "}\n";
}

Status Verify(Database& db, const Config& cfg, const std::vector<Migration>& files, bool json) {
  auto checks = VerifyApplied(db, cfg, files);
  if (!checks.ok()) return checks.status();
  PrintResult(json ? FormatVerifyJson(*checks) : FormatVerifyText(*checks));
  std::string failing;
  size_t n = 0;
  for (const CheckOutcome& c : *checks) {
    if (c.ok) continue;
    ++n;
    failing += (failing.empty() ? "" : "; ") + CheckLocation(c) + ": " + c.message;
  }
  if (n == 0) return Status::Ok();
  return Status::Precondition("verify: " + std::to_string(n) + " failing check(s): " + failing);
}

}  // namespace pgboot
