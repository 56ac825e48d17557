// Inputs pgboot refuses (docs/reference.md, "Inputs pgboot refuses"): file
// inputs that are not regular files, deep TOML, TOML values of the wrong type.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "config.h"
#include "input_file.h"
#include "toml_limits.h"

namespace pgboot {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A scratch directory, removed with everything in it.
struct ScratchDir {
  ScratchDir() {
    char tmpl[] = "/tmp/pgboot-inputs-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~ScratchDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string Write(const std::string& name, const std::string& content) const {
    std::ofstream(path + "/" + name, std::ios::binary) << content;
    return path + "/" + name;
  }
  std::string path;
};

std::string Repeat(const std::string& part, int n, const std::string& sep) {
  std::string out;
  for (int i = 0; i < n; ++i) out += (i ? sep : "") + part;
  return out;
}

}  // namespace

TEST_CASE("file inputs must be regular files: FIFO, directory and device are refused at once") {
  ScratchDir dir;
  const std::string fifo = dir.path + "/fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  const auto start = std::chrono::steady_clock::now();
  for (const auto& [path, kind] : std::map<std::string, std::string>{
           {fifo, "a FIFO"}, {dir.path, "a directory"}, {"/dev/zero", "a character device"}}) {
    INFO(path);
    auto r = ReadInputFile(path, "DATABASE_URL_FILE");
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().kind() == StatusKind::kUsage);
    CHECK(r.status().message().find("DATABASE_URL_FILE " + path + " is " + kind) !=
          std::string::npos);
    auto cfg = LoadConfig({}, Env({{"DATABASE_URL_FILE", path}}), "");
    REQUIRE_FALSE(cfg.ok());
    CHECK(cfg.status().message().find(path) != std::string::npos);
    auto toml = LoadConfig({{"config", path}}, Env({}), "");
    REQUIRE_FALSE(toml.ok());
    CHECK(toml.status().kind() == StatusKind::kUsage);
    CHECK(toml.status().message().find("configuration file " + path) != std::string::npos);
    auto toml_env = LoadConfig({}, Env({{"PGBOOT_CONFIG", path}}), "");
    CHECK(toml_env.status().kind() == StatusKind::kUsage);
    auto default_file = LoadConfig({}, Env({}), path);  // ./pgboot.toml as a FIFO, a directory
    REQUIRE_FALSE(default_file.ok());
    CHECK(default_file.status().message().find(path) != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("file inputs through symlinks, as Kubernetes mounts secrets, are read") {
  ScratchDir dir;
  // A secret volume: NAME -> ..data/NAME, ..data -> ..2026_12_01/
  REQUIRE(mkdir((dir.path + "/..2026_12_01").c_str(), 0700) == 0);
  dir.Write("..2026_12_01/url", "postgres://u:p@h/db\n");
  dir.Write("..2026_12_01/pgboot.toml", "[migrations]\ndir = \"/m\"\n");
  REQUIRE(symlink("..2026_12_01", (dir.path + "/..data").c_str()) == 0);
  REQUIRE(symlink("..data/url", (dir.path + "/url").c_str()) == 0);
  REQUIRE(symlink("..data/pgboot.toml", (dir.path + "/pgboot.toml").c_str()) == 0);
  auto cfg = LoadConfig({{"config", dir.path + "/pgboot.toml"}},
                        Env({{"DATABASE_URL_FILE", dir.path + "/url"}}), "");
  REQUIRE(cfg.ok());
  CHECK(cfg->database_url == "postgres://u:p@h/db");
  CHECK(cfg->migrations_dir == "/m");
  auto by_default = LoadConfig({}, Env({}), dir.path + "/pgboot.toml");
  REQUIRE(by_default.ok());
  CHECK(by_default->migrations_dir == "/m");
}

TEST_CASE("file inputs larger than 1 MiB are refused; a missing default file is none") {
  ScratchDir dir;
  const std::string big = dir.Write("big", std::string(kMaxInputFileBytes + 1, 'x'));
  auto r = ReadInputFile(big, "DATABASE_URL_FILE");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("larger than 1024 KiB") != std::string::npos);
  const std::string just = dir.Write("just", std::string(kMaxInputFileBytes, 'x'));
  CHECK(ReadInputFile(just, "x").ok());
  CHECK(LoadConfig({}, Env({}), dir.path + "/absent.toml").ok());
  auto missing = LoadConfig({{"config", dir.path + "/absent.toml"}}, Env({}), "");
  CHECK(missing.status().kind() == StatusKind::kUsage);
}

TEST_CASE("deep TOML is refused before toml++ parses it, naming the file") {
  ScratchDir dir;
  for (const std::string& text :
       {Repeat("a", 100000, ".") + " = 1\n", "[" + Repeat("a", 20000, ".") + "]\n",
        "x = " + std::string(20000, '[') + "\n", "x = " + Repeat("{a=", 5000, "") + "\n",
        "[wait]\n" + Repeat("a", 66, ".") + " = 1\n"}) {
    const std::string path = dir.Write("deep.toml", text);
    auto cfg = LoadConfig({{"config", path}}, Env({}), "");
    REQUIRE_FALSE(cfg.ok());
    CHECK(cfg.status().kind() == StatusKind::kUsage);
    CHECK(cfg.status().message().find(path + ":") != std::string::npos);
    CHECK(cfg.status().message().find("nested too deeply") != std::string::npos);
  }
  // The line is the one that goes too deep.
  CHECK(
      CheckTomlNesting("a = 1\n\n" + Repeat("a", 70, ".") + " = 1\n", "f").message().find("f:3:") !=
      std::string::npos);
}

TEST_CASE("the TOML depth check skips strings and comments") {
  const std::string dots(200, '.');
  for (const std::string& text : {
           "a = \"" + dots + "\"\n",
           "a = '" + dots + "'\n",
           "a = \"\"\"\n" + dots + "\n\"\"\"\n",
           "a = '''\n" + dots + "\n'''\n",
           "# " + dots + " [[[[[[[[[[\n",
           "a = \"\\\"" + dots + "\"\n",
           "a = \"" + std::string(100, '[') + "\"\n",
           std::string("a = 1.5\nb = 2.5\n[x.y]\nz = [[1], [2]]\n"),
       }) {
    INFO(text);
    CHECK(CheckTomlNesting(text, "f").ok());
  }
}

TEST_CASE("a TOML value of the wrong type is exit 2 naming the key") {
  ScratchDir dir;
  for (const auto& [text, key] : std::map<std::string, std::string>{
           {"[migrations]\ndir = true\n", "migrations.dir"},
           {"[migrations]\ndir = 5\n", "migrations.dir"},
           {"[database]\nurl = 1\n", "database.url"},
           {"[log]\nformat = false\n", "log.format"},
           {"[run]\nmigrations = 2\n", "run.migrations"},
           {"[wait]\ntimeout = 30\n", "wait.timeout"},
           {"[wait]\ntimeout = true\n", "wait.timeout"},
           {"[migrations]\nddl_retries = true\n", "migrations.ddl_retries"},
           {"[migrations]\nhistory_table = 1\n", "migrations.history_table"},
       }) {
    INFO(text);
    const std::string path = dir.Write("t.toml", text);
    auto cfg = LoadConfig({{"config", path}}, Env({}), "");
    REQUIRE_FALSE(cfg.ok());
    CHECK(cfg.status().kind() == StatusKind::kUsage);
    CHECK(cfg.status().message().find(path + " key " + key) != std::string::npos);
    CHECK(cfg.status().message().find("a TOML ") != std::string::npos);
  }
  // What each kind does take.
  const std::string ok = dir.Write("ok.toml",
                                   "[run]\nmigrations = true\ninit = \"yes\"\n"
                                   "[migrations]\nddl_retries = 5\nstatement_timeout = 0\n"
                                   "dir = \"true\"\n[wait]\ntimeout = \"5s\"\n");
  auto cfg = LoadConfig({{"config", ok}}, Env({}), "");
  REQUIRE(cfg.ok());
  CHECK(cfg->run_migrations);
  CHECK(cfg->init);
  CHECK(cfg->ddl_retries == 5);
  CHECK(cfg->migrations_dir == "true");
  CHECK(cfg->wait_timeout_ms == 5000);
}

TEST_CASE("--wait-max-interval=0 names the value and its source") {
  for (const auto& [flags, env, source] :
       std::vector<std::tuple<FlagValues, std::map<std::string, std::string>, std::string>>{
           {{{"wait-max-interval", "0"}}, {}, "flag --wait-max-interval"},
           {{}, {{"PGBOOT_WAIT_MAX_INTERVAL", "0"}}, "environment PGBOOT_WAIT_MAX_INTERVAL"},
       }) {
    auto cfg = LoadConfig(flags, Env(env), "");
    REQUIRE_FALSE(cfg.ok());
    CHECK(cfg.status().kind() == StatusKind::kUsage);
    CHECK(cfg.status().message().find("\"0\" for --wait-max-interval (from " + source + ")") !=
          std::string::npos);
    CHECK(cfg.status().message().find("greater than 0") != std::string::npos);
  }
}

}  // namespace pgboot
