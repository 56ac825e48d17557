#include "operator.h"

#include <algorithm>
#include <map>

#include "history.h"
#include "log.h"
#include "migration_lock.h"
#include "transaction_lock.h"

namespace pgboot {

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

const Migration* FindMigration(const std::vector<Migration>& files, const std::string& version) {
  auto it = std::lower_bound(
      files.begin(), files.end(), version,
      [](const Migration& m, const std::string& v) { return CompareVersions(m.version, v) < 0; });
  return it != files.end() && it->version == version ? &*it : nullptr;
}

Status RefuseUnfinished(const std::vector<HistoryRow>& rows, const std::string& command) {
  std::vector<std::string> bad;
  for (const HistoryRow& r : rows) {
    if (r.status != "applied")
      bad.push_back(VersionLabel(r.version, r.name) + " is marked " + r.status);
  }
  if (bad.empty()) return Status::Ok();
  return Status::Precondition(command + " refused: " + Join(bad, "; ") +
                              " (a transaction:false migration stopped part-way); fix the database "
                              "by hand, then run `pgboot repair`");
}

std::vector<RepairAction> PlanRepair(const std::vector<Migration>& files,
                                     const std::vector<HistoryRow>& history) {
  std::vector<RepairAction> actions;
  for (const HistoryRow& r : history) {
    const Migration* m = FindMigration(files, r.version);
    if (r.status != "applied") {
      actions.push_back({RepairAction::kDelete, &r, m});
    } else if (m && (m->checksum != r.checksum || m->name != r.name || !StoredDownMatches(*m, r))) {
      actions.push_back({RepairAction::kRealign, &r, m});
    }
  }
  std::sort(actions.begin(), actions.end(), [](const RepairAction& a, const RepairAction& b) {
    return CompareVersions(a.row->version, b.row->version) < 0;
  });
  return actions;
}

std::string DescribeRepair(const RepairAction& a) {
  const HistoryRow& r = *a.row;
  if (a.kind == RepairAction::kDelete) {
    return "delete   version " + VersionLabel(r.version, r.name) + ": its '" + r.status +
           "' row goes; the next migrate runs it again from its first statement";
  }
  std::vector<std::string> parts;
  if (a.file->checksum != r.checksum) {
    parts.push_back("checksum " + r.checksum + " -> " + a.file->checksum);
  }
  if (a.file->name != r.name) parts.push_back("name " + r.name + " -> " + a.file->name);
  if (!StoredDownMatches(*a.file, r)) {
    parts.push_back(std::string("stored down ") + (r.down_sql ? "replaced" : "added") +
                    " from the file" + (a.file->down ? "" : " (which has none: cleared)"));
  }
  return "realign  version " + VersionLabel(r.version, r.name) + ": " + Join(parts, ", ") +
         " (from " + a.file->up_path + ")";
}

namespace {

// Appends the statements that make `a` (the change and its audit row) and
// returns its description.
std::string RepairSql(const RepairAction& a, const History& history,
                      std::vector<std::string>* stmts) {
  const HistoryRow& r = *a.row;
  if (a.kind == RepairAction::kDelete) {
    stmts->push_back(history.Delete(r.version, r.status));
    stmts->push_back(history.Audit({"repaired",
                                    r.version,
                                    {{"action", SqlValue::Text("delete")},
                                     {"old_status", SqlValue::Text(r.status)},
                                     {"new_status", SqlValue::Null()},
                                     {"name", SqlValue::Text(r.name)},
                                     {"checksum", SqlValue::Text(r.checksum)},
                                     {"batch", SqlValue::Int(r.batch)},
                                     {"applied_at", SqlValue::Text(r.applied_at)}}}));
  } else {
    stmts->push_back(history.UpdateChecksum(*a.file));
    auto text = [](const std::optional<std::string>& v) {
      return v ? SqlValue::Text(*v) : SqlValue::Null();
    };
    const std::optional<Section>& down = a.file->down;
    std::optional<std::string> new_options;
    if (down && !down->options.empty()) new_options = down->options;
    stmts->push_back(
        history.Audit({"repaired",
                       r.version,
                       {{"action", SqlValue::Text("realign")},
                        {"old_checksum", SqlValue::Text(r.checksum)},
                        {"new_checksum", SqlValue::Text(a.file->checksum)},
                        {"old_name", SqlValue::Text(r.name)},
                        {"new_name", SqlValue::Text(a.file->name)},
                        {"old_down_sql", text(r.down_sql)},
                        {"new_down_sql", down ? SqlValue::Text(down->sql) : SqlValue::Null()},
                        {"old_down_options", text(r.down_options)},
                        {"new_down_options", text(new_options)},
                        {"file", SqlValue::Text(a.file->up_path)}}}));
  }
  return DescribeRepair(a);
}

// What repair leaves alone, so the operator is not surprised by the next validate.
std::string UnrepairedNotes(const std::vector<Migration>& files,
                            const std::vector<HistoryRow>& history, const Config& cfg) {
  Plan plan = BuildPlan(files, history, cfg.out_of_order);
  std::string out;
  for (const PlanRow& r : plan.rows) {
    if (r.state == MigrationState::kMissing) {
      out += "left alone: version " + VersionLabel(r.version, r.name) +
             " is applied but its file is missing; restore the file (repair never forgets an "
             "applied migration)\n";
    }
  }
  return out;
}

}  // namespace

Status Repair(Database& db, const Config& cfg, const std::vector<Migration>& files, bool yes,
              Clock& clock) {
  History history(db, cfg.history_table);
  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  std::vector<RepairAction> actions = PlanRepair(files, *rows);
  const std::string notes = UnrepairedNotes(files, *rows, cfg);
  if (actions.empty()) {
    PrintResult(notes +
                "nothing to repair: every applied version matches its file and no row is "
                "failed or running\n");
    return Status::Ok();
  }
  if (!yes) {
    std::string out = "repair would make " + std::to_string(actions.size()) + " change(s):\n";
    for (const RepairAction& a : actions) out += "  " + DescribeRepair(a) + "\n";
    PrintResult(out + notes + "nothing was changed; rerun with --yes to do it\n");
    return Status::Findings("repair has " + std::to_string(actions.size()) +
                            " change(s) to make and needs --yes");
  }

  std::string out;
  std::vector<HistoryRow> locked_rows;
  Status s = WriteUnderLock(
      db, history, cfg, clock,
      [&](const std::vector<HistoryRow>& now) -> Result<std::vector<std::string>> {
        locked_rows = now;
        actions = PlanRepair(files, locked_rows);
        std::vector<std::string> stmts;
        for (const RepairAction& a : actions) out += "  " + RepairSql(a, history, &stmts) + "\n";
        return stmts;
      },
      "repair failed; nothing was changed");
  if (!s.ok()) return s;
  if (actions.empty()) {
    PrintResult("nothing to repair (another run repaired it meanwhile)\n");
    return Status::Ok();
  }
  for (const RepairAction& a : actions) {
    LogInfo("migration.repaired",
            {{"version", a.row->version},
             {"action", a.kind == RepairAction::kDelete ? "delete" : "realign"}});
  }
  PrintResult("repaired " + std::to_string(actions.size()) + " change(s):\n" + out +
              UnrepairedNotes(files, locked_rows, cfg));
  return Status::Ok();
}

Result<std::vector<const Migration*>> SelectBaseline(const std::vector<Migration>& files,
                                                     const std::vector<HistoryRow>& history,
                                                     const std::string& version, bool force) {
  if (!IsVersionText(version) || !FindMigration(files, CanonicalVersion(version))) {
    return Status::Usage("baseline " + version +
                         ": the version must name a migration file (the newest one the existing "
                         "database already contains)");
  }
  if (!history.empty() && !force) {
    return Status::Precondition("baseline refused: the history table already has " +
                                std::to_string(history.size()) +
                                " row(s); baseline adopts a database pgboot has not migrated yet "
                                "(--force marks the versions without a row anyway)");
  }
  Status s = RefuseUnfinished(history, "baseline");
  if (!s.ok()) return s;
  const std::string v = CanonicalVersion(version);
  std::map<std::string, bool> recorded;
  for (const HistoryRow& r : history) recorded[r.version] = true;
  std::vector<const Migration*> out;
  for (const Migration& m : files) {
    if (CompareVersions(m.version, v) <= 0 && !recorded.count(m.version)) out.push_back(&m);
  }
  return out;
}

Status Baseline(Database& db, const Config& cfg, const std::vector<Migration>& files,
                const std::string& version, bool force, Clock& clock) {
  History history(db, cfg.history_table);
  auto rows = history.Read();
  if (!rows.ok()) return rows.status();
  auto todo = SelectBaseline(files, *rows, version, force);
  if (!todo.ok()) return todo.status();

  const std::string v = CanonicalVersion(version);
  int64_t batch = 0;
  std::string out;
  Status s = WriteUnderLock(
      db, history, cfg, clock,
      [&](const std::vector<HistoryRow>& now) -> Result<std::vector<std::string>> {
        todo = SelectBaseline(files, now, version, force);
        if (!todo.ok()) return todo.status();
        std::vector<std::string> stmts;
        if (todo->empty()) return stmts;
        auto next = history.NextBatch();
        if (!next.ok()) return next.status();
        batch = *next;
        for (const Migration* m : *todo) {
          stmts.push_back(history.RecordApplied(*m, batch, SqlValue::Int(0)));
          stmts.push_back(history.Audit({"baselined",
                                         m->version,
                                         {{"name", SqlValue::Text(m->name)},
                                          {"checksum", SqlValue::Text(m->checksum)},
                                          {"baseline", SqlValue::Text(v)},
                                          {"batch", SqlValue::Int(batch)},
                                          {"execution_ms", SqlValue::Int(0)}}}));
          out += "  " + VersionLabel(m->version, m->name) + "\n";
        }
        return stmts;
      },
      "baseline failed; nothing was recorded");
  if (!s.ok()) return s;
  if (todo->empty()) {
    PrintResult("nothing to baseline: every migration up to " + v + " is already recorded\n");
    return Status::Ok();
  }
  LogInfo("baseline.done",
          {{"version", v}, {"recorded", static_cast<int64_t>(todo->size())}, {"batch", batch}});
  PrintResult("baselined " + std::to_string(todo->size()) + " migration(s) up to " + v +
              " as applied (not run):\n" + out);
  return Status::Ok();
}

}  // namespace pgboot
