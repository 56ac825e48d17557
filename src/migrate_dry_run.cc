#include "migrate_dry_run.h"

#include <string>

#include "log.h"
#include "migrator.h"

namespace pgboot {
namespace {

std::string DryRunStatements(const Migration& m, const std::vector<size_t>& indexes) {
  std::string out;
  for (size_t i : indexes) {
    const SqlStatement& st = m.up.statements[i];
    out += "-- " + m.up_path + ":" + std::to_string(st.line) + "\n" + Terminated(st.text);
  }
  return out;
}

std::vector<size_t> From(const Migration& m, size_t first) {
  std::vector<size_t> out;
  for (size_t i = first; i < m.up.statements.size(); ++i) out.push_back(i);
  return out;
}

}  // namespace

Status DryRun(const std::vector<Resumable>& resumables, const std::vector<const Migration*>& todo) {
  std::string out =
      "-- pgboot dry run: " + std::to_string(todo.size()) + " pending migration(s)" +
      (resumables.empty() ? "" : ", " + std::to_string(resumables.size()) + " to resume") +
      "; nothing is changed\n";
  for (const Resumable& r : resumables) {
    const Migration& m = *r.migration;
    out += "\n-- version " + m.version + " " + m.name +
           " (transaction:false, resumed at statement " + std::to_string(r.point.next + 1) +
           " of " + std::to_string(m.up.statements.size()) + ")\n";
    if (!r.point.prelude.empty()) {
      out += "-- the earlier settings, re-run first:\n" + DryRunStatements(m, r.point.prelude);
      out += "-- then from statement " + std::to_string(r.point.next + 1) + ":\n";
    }
    out += DryRunStatements(m, From(m, r.point.next));
  }
  for (const Migration* m : todo) {
    out += "\n-- version " + m->version + " " + m->name + " (" +
           (m->up.transactional ? "one transaction" : "transaction:false, statement by statement") +
           ")\n";
    // Statement by statement, never a copy of the whole SQL: peak memory stays
    // within the files' sizes (docs/reference.md, "Inputs pgboot refuses").
    for (const SqlStatement& st : m->up.statements) {
      out += "-- " + m->up_path + ":" + std::to_string(st.line) + "\n";
      PrintResult(out);
      PrintResult(st.text);
      out = Terminator(st.text);
    }
  }
  PrintResult(out);
  return Status::Ok();
}

}  // namespace pgboot
