// libFuzzer target: duration, boolean and table-name parsing and the setting
// table's environment path (src/config.h).
//
// Input: byte 0 picks a setting of SettingSpecs(), the rest is its value.
// Properties: a parsed duration is >= 0 and survives FormatDuration; a parsed
// boolean is one of the accepted words; a parsed table name survives Quoted();
// LoadConfig either accepts the value or refuses it with exit 2 naming the
// variable it came from.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config.h"
#include "fuzz_util.h"

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

void CheckDuration(std::string_view v) {
  auto d = pgboot::ParseDuration(v);
  if (!d.ok()) {
    FUZZ_CHECK(d.status().kind() == pgboot::StatusKind::kUsage, "a bad duration is not Usage");
    return;
  }
  FUZZ_CHECK(*d >= 0, "negative duration from " + std::string(v));
  std::string text = pgboot::FormatDuration(*d);
  auto again = pgboot::ParseDuration(text);
  FUZZ_CHECK(again.ok() && *again == *d, "FormatDuration does not round-trip: " + text);
}

void CheckBool(std::string_view v) {
  auto b = pgboot::ParseBool(v);
  if (!b.ok()) return;
  std::string l = Lower(v);
  bool word = l == "true" || l == "1" || l == "yes" || l == "on";
  bool no = l == "false" || l == "0" || l == "no" || l == "off";
  FUZZ_CHECK(*b ? word : no, "ParseBool accepted " + std::string(v));
}

void CheckTable(std::string_view v) {
  auto t = pgboot::ParseQualifiedName(v);
  if (!t.ok()) return;
  FUZZ_CHECK(!t->table.empty() && !t->schema.empty(), "empty name part");
  auto again = pgboot::ParseQualifiedName(t->Quoted());
  FUZZ_CHECK(again.ok() && again->schema == t->schema && again->table == t->table,
             "Quoted() does not round-trip: " + t->Quoted());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view value(reinterpret_cast<const char*>(data) + 1, size - 1);
  CheckDuration(value);
  CheckBool(value);
  CheckTable(value);

  const auto& specs = pgboot::SettingSpecs();
  const pgboot::SettingSpec& spec = specs[data[0] % specs.size()];
  // Files are the TOML and file targets' business; an empty value is unset.
  if (spec.env == nullptr || value.empty() || value.find('\0') != std::string_view::npos) return 0;
  const std::string var = spec.env;
  if (var.ends_with("_FILE") || var == "PGBOOT_CONFIG") return 0;
  pgboot::EnvLookup env = [&](const std::string& name) -> std::optional<std::string> {
    if (name == var) return std::string(value);
    return std::nullopt;
  };
  auto cfg = pgboot::LoadConfig({}, env, "");
  if (!cfg.ok()) {
    FUZZ_CHECK(cfg.status().kind() == pgboot::StatusKind::kUsage,
               "a bad setting is not Usage: " + cfg.status().message());
    FUZZ_CHECK(cfg.status().message().find(var) != std::string::npos,
               "the error does not name " + var + ": " + cfg.status().message());
  }
  return 0;
}
