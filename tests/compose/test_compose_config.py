#!/usr/bin/env python3
"""`docker-compose config` of every Compose file, and what each must say.

No container runs here (config needs no daemon): docker-compose.yml (the
production pattern), docker-compose.dev.yml (the development pattern),
docker-compose.gate.yml (the schema gate), each alone and with the test
overrides, and deploy/compose/docker-compose.pooler.yml (behind PgBouncer) with
its PgBouncer configuration. By hand:

    python3 tests/compose/test_compose_config.py -v
"""

import configparser
import os
import unittest
import urllib.parse

import compose_tools
from compose_tools import yaml


TEST_VARS = {"PGBOOT_TEST_PG_PORT": "55432", "PGBOOT_TEST_APP_PORT": "18080",
             "PGBOOT_TEST_SECRETS": "/tmp/secrets", "PGBOOT_TEST_MIGRATIONS": "/tmp/migrations"}


def config(*files, variables=None):
    """(CompletedProcess, parsed config or None) of `docker-compose -f F... config`."""
    p = compose_tools.docker_compose(files, "config", variables=variables, timeout=60, check=False)
    return p, (yaml.safe_load(p.stdout) if p.returncode == 0 else None)


class ComposeConfigTest(unittest.TestCase):
    maxDiff = None

    def render(self, *files, variables=None):
        p, cfg = config(*files, variables=variables)
        self.assertEqual(p.returncode, 0, "docker-compose config of %s:\n%s%s"
                         % (" ".join(files), p.stdout, p.stderr))
        return cfg

    def assertSecretOnly(self, svc, name):
        """The URL reaches the service as a Compose secret and DATABASE_URL_FILE only."""
        self.assertEqual(svc["environment"].get("DATABASE_URL_FILE"), "/run/secrets/" + name)
        self.assertNotIn("DATABASE_URL", svc["environment"])
        self.assertIn({"source": name}, svc["secrets"])

    def test_production_file(self):
        cfg = self.render(compose_tools.COMPOSE_FILE)
        s = cfg["services"]
        self.assertEqual(sorted(s), ["app", "migrate", "postgres"])

        pg = s["postgres"]
        self.assertEqual(pg["image"], "postgres:15")
        hc = pg["healthcheck"]
        self.assertEqual(hc["test"][:2], ["CMD", "pg_isready"])
        self.assertIn("--host=127.0.0.1", hc["test"])
        self.assertIn("start_period", hc)
        self.assertEqual(pg["environment"]["POSTGRES_PASSWORD_FILE"], "/run/secrets/postgres_password")
        self.assertNotIn("POSTGRES_PASSWORD", pg["environment"])

        mig = s["migrate"]
        self.assertEqual(mig["build"]["dockerfile"], "Dockerfile.migration")
        self.assertEqual(mig["build"]["context"], compose_tools.SOURCE_DIR)
        self.assertEqual(mig["restart"], "no")
        self.assertEqual(mig["depends_on"], {"postgres": {"condition": "service_healthy"}})
        self.assertSecretOnly(mig, "database_url")

        app = s["app"]
        self.assertEqual(app["build"]["context"], os.path.join(compose_tools.SOURCE_DIR, "examples", "app"))
        self.assertEqual(app["depends_on"], {"migrate": {"condition": "service_completed_successfully"}})
        self.assertNotIn("RUN_MIGRATIONS", app["environment"])
        self.assertSecretOnly(app, "database_url")

        for name, sec in cfg["secrets"].items():
            self.assertTrue(os.path.isfile(sec["file"]), "secret %s: %s" % (name, sec["file"]))

    def test_example_secrets_agree(self):
        url = urllib.parse.urlsplit(compose_tools.read_secret("database_url"))
        pg = self.render(compose_tools.COMPOSE_FILE)["services"]["postgres"]["environment"]
        self.assertEqual(url.password, compose_tools.read_secret("postgres_password"))
        self.assertEqual(url.username, pg["POSTGRES_USER"])
        self.assertEqual(url.path, "/" + pg["POSTGRES_DB"])
        self.assertEqual((url.hostname, url.port), ("postgres", 5432))

    def test_dev_file(self):
        prod = self.render(compose_tools.COMPOSE_FILE)
        cfg = self.render(compose_tools.DEV_FILE)
        s = cfg["services"]
        self.assertEqual(sorted(s), ["app", "postgres"], "the dev pattern runs no migrate service")
        self.assertEqual(s["postgres"], prod["services"]["postgres"])
        app = s["app"]
        self.assertEqual(app["environment"]["RUN_MIGRATIONS"], "true")
        self.assertEqual(app["depends_on"], {"postgres": {"condition": "service_started"}})
        self.assertSecretOnly(app, "database_url")
        # Otherwise the production app: same image, build, command, secret, ports.
        same = {k: v for k, v in app.items() if k not in ("environment", "depends_on")}
        self.assertEqual(same, {k: v for k, v in prod["services"]["app"].items()
                                if k not in ("environment", "depends_on")})
        self.assertEqual(cfg["secrets"], prod["secrets"])

    def test_gate_file(self):
        prod = self.render(compose_tools.COMPOSE_FILE)
        cfg = self.render(compose_tools.GATE_FILE)
        s = cfg["services"]
        self.assertEqual(sorted(s), ["app", "migrate", "postgres", "worker"])
        self.assertEqual(s["postgres"], prod["services"]["postgres"])
        # The migrator and the app services start together: nothing orders them,
        # the gate does (docs/gate.md).
        for name in ("migrate", "app", "worker"):
            self.assertNotIn("depends_on", s[name], name)
        mig = s["migrate"]
        self.assertEqual({k: v for k, v in mig.items() if k != "depends_on"},
                         {k: v for k, v in prod["services"]["migrate"].items() if k != "depends_on"})
        for name in ("app", "worker"):
            env = s[name]["environment"]
            self.assertEqual(env["PGBOOT_WAIT_FOR_MIGRATIONS"], "true", name)
            self.assertEqual(env["PGBOOT_MIGRATIONS_WAIT_TIMEOUT"], "15m", name)
            self.assertNotIn("RUN_MIGRATIONS", env, name)
            self.assertEqual(s[name]["image"], prod["services"]["app"]["image"])
            self.assertEqual(s[name]["command"], prod["services"]["app"]["command"])
            self.assertSecretOnly(s[name], "database_url")
        self.assertEqual(s["worker"]["environment"]["PORT"], "8081")
        self.assertEqual(cfg["secrets"], prod["secrets"])

    def test_rollback_file(self):
        # docs/operations.md, "Rolling back a deploy": with docker-compose.yml, the
        # previous release's image runs rollback --future, only when asked for.
        rollback_file = os.path.join(compose_tools.SOURCE_DIR, "docker-compose.rollback.yml")
        prod = self.render(compose_tools.COMPOSE_FILE)
        cfg = self.render(compose_tools.COMPOSE_FILE, rollback_file,
                          variables={"PGBOOT_PREVIOUS_IMAGE": "app-migrations:1.3.0"})
        s = cfg["services"]
        rb = s["rollback"]
        self.assertEqual(rb["image"], "app-migrations:1.3.0")
        self.assertEqual(rb["command"], ["rollback", "--future"])
        self.assertEqual(rb["profiles"], ["rollback"], "never started by `up`")
        self.assertEqual(rb["restart"], "no")
        self.assertSecretOnly(rb, "database_url")
        self.assertEqual(rb["environment"], prod["services"]["migrate"]["environment"])
        self.assertIn("postgres", rb["depends_on"])
        for name in prod["services"]:
            self.assertEqual(s[name], prod["services"][name], name)
        p, _ = config(compose_tools.COMPOSE_FILE, rollback_file)
        self.assertNotEqual(p.returncode, 0, "the previous image must be named")
        self.assertIn("PGBOOT_PREVIOUS_IMAGE", p.stdout + p.stderr)

    def test_pooler_file(self):
        # docs/pooler.md: the app through PgBouncer, pgboot straight to PostgreSQL.
        compose_dir = os.path.join(compose_tools.SOURCE_DIR, "deploy", "compose")
        prod = self.render(compose_tools.COMPOSE_FILE)
        cfg = self.render(os.path.join(compose_dir, "docker-compose.pooler.yml"))
        s = cfg["services"]
        self.assertEqual(sorted(s), ["app", "pgbouncer", "postgres"])
        self.assertEqual(s["postgres"], prod["services"]["postgres"])
        app, bouncer = s["app"], s["pgbouncer"]
        self.assertEqual(app["environment"], {
            "RUN_MIGRATIONS": "true",
            "PGBOOT_DATABASE_URL_FILE": "/run/secrets/database_url",
            "DATABASE_URL_FILE": "/run/secrets/pooled_database_url"})
        self.assertEqual(app["secrets"], [{"source": "database_url"},
                                          {"source": "pooled_database_url"}])
        self.assertIn("DATABASE_URL=$$(cat /run/secrets/pooled_database_url) exec /app/serve",
                      app["command"][-1], "the app gets the pooled URL")
        self.assertEqual(app["build"], prod["services"]["app"]["build"])
        self.assertEqual(app["depends_on"]["postgres"], {"condition": "service_healthy"})
        self.assertIn("pgbouncer", app["depends_on"])
        self.assertEqual(bouncer["build"]["context"], os.path.join(compose_dir, "pgbouncer"))
        for name, sec in cfg["secrets"].items():
            self.assertTrue(os.path.isfile(sec["file"]), "secret %s: %s" % (name, sec["file"]))

        ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
        ini.read(os.path.join(compose_dir, "pgbouncer", "pgbouncer.ini"))
        pb = ini["pgbouncer"]
        self.assertEqual(pb["pool_mode"], "transaction")
        self.assertNotIn("ignore_startup_parameters", pb, "pgboot needs no workaround")
        self.assertEqual(pb["auth_file"], "/run/secrets/" + bouncer["secrets"][0]["source"])
        with open(os.path.join(compose_dir, "pgbouncer", "Dockerfile")) as f:
            self.assertIn("COPY pgbouncer.ini /etc/pgbouncer/pgbouncer.ini", f.read())
        # One database and one user everywhere: the URLs differ only in where they go.
        pg_env = s["postgres"]["environment"]
        password = compose_tools.read_secret("postgres_password")
        direct = urllib.parse.urlsplit(compose_tools.read_secret("database_url"))
        pooled = urllib.parse.urlsplit(compose_tools.read_secret("pooled_database_url"))
        for u in (direct, pooled):
            self.assertEqual((u.username, u.password, u.path),
                             (pg_env["POSTGRES_USER"], password, "/" + pg_env["POSTGRES_DB"]))
        self.assertEqual((direct.hostname, direct.port), ("postgres", 5432))
        self.assertEqual((pooled.hostname, pooled.port), ("pgbouncer", int(pb["listen_port"])))
        target = dict(kv.split("=") for kv in ini["databases"][pg_env["POSTGRES_DB"]].split())
        self.assertEqual(target, {"host": "postgres", "port": "5432",
                                  "dbname": pg_env["POSTGRES_DB"]})
        self.assertEqual(compose_tools.read_secret("pgbouncer_userlist"),
                         '"%s" "%s"' % (pg_env["POSTGRES_USER"], password))

    def test_with_the_test_overrides(self):
        variants = {
            "production": compose_tools.PROD_FILES,
            "production, broken migrations": compose_tools.PROD_FILES + [compose_tools.MIGRATIONS_OVERRIDE],
            "dev": compose_tools.DEV_FILES,
            "gate": compose_tools.GATE_FILES,
        }
        for label, files in variants.items():
            with self.subTest(label):
                cfg = self.render(*files, variables=TEST_VARS)
                for name, svc in cfg["services"].items():
                    if label == "gate" and name == "worker":
                        continue  # the test sets the worker's port and network itself
                    self.assertEqual(svc.get("network_mode"), "host", name)
                    self.assertTrue(svc["image"].startswith("localhost/"), svc["image"])
                self.assertEqual(cfg["services"]["postgres"]["environment"]["PGPORT"], "55432")
                self.assertEqual(cfg["services"]["app"]["environment"]["PORT"], "18080")
                self.assertEqual(cfg["secrets"]["database_url"]["file"], "/tmp/secrets/database_url")
                self.assertEqual("migrate" in cfg["services"], label != "dev")

    def test_test_overrides_refuse_to_run_without_their_variables(self):
        p, _ = config(*compose_tools.PROD_FILES)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("the test sets", p.stderr)


if __name__ == "__main__":
    unittest.main()
