#include "migration_markers.h"

namespace pgboot {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::optional<Marker> ParseMarker(std::string_view line) {
  if (!line.starts_with("--")) return std::nullopt;
  std::string_view rest = line.substr(2);
  while (!rest.empty() && IsSpace(rest.front())) rest.remove_prefix(1);
  Marker m{};
  if (rest.starts_with("migrate:up")) {
    m.kind = MarkerKind::kUp;
    rest.remove_prefix(10);
  } else if (rest.starts_with("migrate:down")) {
    m.kind = MarkerKind::kDown;
    rest.remove_prefix(12);
  } else if (rest.starts_with("migrate:verify")) {
    m.kind = MarkerKind::kVerify;
    rest.remove_prefix(14);
  } else {
    return std::nullopt;
  }
  if (!rest.empty() && !IsSpace(rest.front())) return std::nullopt;  // e.g. migrate:upgrade
  m.options = TrimSpace(rest);
  return m;
}

}  // namespace

const char* MarkerText(MarkerKind kind) {
  return kind == MarkerKind::kUp     ? "-- migrate:up"
         : kind == MarkerKind::kDown ? "-- migrate:down"
                                     : "-- migrate:verify";
}

std::vector<Marker> FindMarkers(std::string_view text) {
  std::vector<Marker> markers;
  int line = 1;
  for (size_t pos = 0; pos < text.size(); ++line) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    if (auto marker = ParseMarker(text.substr(pos, end - pos))) {
      marker->line = line;
      marker->begin = pos;
      marker->end = end;
      markers.push_back(*marker);
    }
    pos = end;
  }
  return markers;
}

std::optional<std::string> ApplyOptions(std::string_view options, bool* transactional) {
  while (!(options = TrimSpace(options)).empty()) {
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

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace pgboot
