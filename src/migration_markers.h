// The marker lines of native migration files (`-- migrate:up|down|verify [options]`) and the
// options they and a pairs file's `-- pgboot:` line carry (docs/reference.md, "Migration files").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgboot {

enum class MarkerKind { kUp, kDown, kVerify };

// "-- migrate:up", "-- migrate:down" or "-- migrate:verify", for messages.
const char* MarkerText(MarkerKind kind);

// A marker line, recognised exactly as dbmate does: ^--\s*migrate:(up|down)(\s*$|\s+\S+),
// plus `verify`.
struct Marker {
  MarkerKind kind;
  int line;                  // 1-based line of the marker
  size_t begin;              // offset of the line
  size_t end;                // offset just past the line's '\n'
  std::string_view options;  // trimmed; a view of the scanned text
};

// Every marker line of `text`, in order.
std::vector<Marker> FindMarkers(std::string_view text);

// Applies whitespace-separated `options` to `*transactional`; returns the first unknown one.
std::optional<std::string> ApplyOptions(std::string_view options, bool* transactional);

// `s` without leading and trailing ASCII whitespace.
std::string_view TrimSpace(std::string_view s);

}  // namespace pgboot
