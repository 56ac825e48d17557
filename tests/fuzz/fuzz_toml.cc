// libFuzzer target: the TOML loader (LoadConfig with --config, src/config.h).
//
// Properties: no input crashes (toml++ throws; pgboot catches at its edge), and
// every refusal is exit 2 naming the file; an accepted file loads the same twice.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string path = pgboot::fuzz::ScratchDir() + "/pgboot.toml";
  pgboot::fuzz::WriteFile(path, text);
  pgboot::EnvLookup no_env = [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  auto cfg = pgboot::LoadConfig({{"config", path}}, no_env, "");
  if (!cfg.ok()) {
    FUZZ_CHECK(cfg.status().kind() == pgboot::StatusKind::kUsage,
               "a bad TOML file is not Usage: " + cfg.status().message());
    FUZZ_CHECK(cfg.status().message().find(path) != std::string::npos,
               "the error does not name the file: " + cfg.status().message());
  } else {
    auto again = pgboot::LoadConfig({{"config", path}}, no_env, "");
    FUZZ_CHECK(again.ok() && *again == *cfg, "loading the same file twice differs");
  }
  return 0;
}
