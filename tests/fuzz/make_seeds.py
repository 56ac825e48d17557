#!/usr/bin/env python3
"""Writes the hand-made seeds of tests/fuzz/corpus/<target>/seed-*.

Run once when a target's input format changes; the files are committed. What a
campaign finds is added next to them by `tests/fuzz/run.sh --merge` (named by
libFuzzer after their SHA-1)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

SQL = [
    b"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);",
    b"SELECT 'it''s; here';\nSELECT E'a\\'; b';\nSELECT \"we;ird\" FROM x",
    b"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
    b"DO $body$ BEGIN PERFORM 1; END $body$;",
    b"/* outer /* nested ; */ still */ SELECT 1; -- tail ; comment\nSELECT 2",
    b"CREATE RULE r AS ON INSERT TO t DO (INSERT INTO u VALUES (1); INSERT INTO u VALUES (2));",
    b"CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); "
    b"SELECT CASE WHEN true THEN 1 END; END;\nSELECT 3;",
    b"BEGIN; COMMIT; ROLLBACK TO SAVEPOINT s; START TRANSACTION; END; ABORT; "
    b"PREPARE TRANSACTION 'x'; COMMIT PREPARED 'x';",
    "SELECT 'caf\u00e9', \"\u00fcber\"; SELECT $1, $tag_1$ x $tag_1$;".encode(),
    b"SELECT 'unterminated",
    b"/* unterminated comment",
    b";;;\n\n;  ;",
    b"COPY t FROM STDIN;\n1\n\\.\n",
]

NATIVE = b"""-- migrate:up
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE);

-- migrate:down
DROP TABLE users;
"""
FILES = [
    b"20260101000000_create_users.sql\n" + NATIVE,
    b"1_idx.sql\n-- comment\n-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n"
    b"-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY i;\n",
    b"2_a.up.sql\nCREATE TABLE a (x int);\n\x002_a.down.sql\nDROP TABLE a;\n",
    b"3_b.up.sql\n-- pgboot:transaction:false\nVACUUM;\n\x00003_b.down.sql\n\n",
    b"1_x.sql\n\xef\xbb\xbfSELECT 1;\r\nSELECT 2;\r\n\x001_y.sql\nSELECT 3;",
    b"4_tx.sql\n-- migrate:up\nBEGIN;\nCOMMIT;\n",
    b"bad.sql\nSELECT 1;\x00.hidden.sql\nSELECT 1;\x005_bad_utf8.sql\n\xff\xfe;",
    b"6_down_only.down.sql\nDROP TABLE x;",
    b"7_nomarker.sql\nSELECT 1;\n-- migrate:down\n",
    b"8_text_before.sql\nSELECT 0;\n-- migrate:up\nSELECT 1;\n",
    b"9_copy.sql\nCOPY t FROM STDIN;\n",
    b"10_verify.sql\n-- migrate:up\nCREATE TABLE v (id int);\n-- migrate:verify\n"
    b"SELECT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'v');\n-- migrate:down\nDROP TABLE v;\n",
    b"11_w.up.sql\nCREATE TABLE w (id int);\n\x0011_w.verify.sql\nSELECT true;\n"
    b"\x0012_x.verify.sql\nSELECT 1;\x0013_y.sql\n-- migrate:verify\n-- migrate:up\n",
]

# byte 0 picks a setting by index in SettingSpecs(); every index reaches a kind.
SETTINGS = [bytes([i]) + v for i in range(24) for v in
            [b"30s", b"250ms", b"1.5s", b"0", b"5m", b"1h", b"true", b"OFF", b"yes",
             b"public.pgboot_history", b'"My Schema"."T""x"', b"json", b"debug", b"12"]][::7]
SETTINGS += [b"\x05" + v for v in [b"99999999999999999999h", b".5s", b"1..2s", b"-1s", b"1e3s"]]

TOML = [
    b"""[database]
url = "postgres://app:secret@db:5432/app"

[migrations]
dir = "/migrations"
history_table = "public.pgboot_history"
ddl_lock_timeout = "5s"
ddl_retries = 3
out_of_order = false

[wait]
timeout = "60s"
max_interval = "1s"

[lock]
timeout = "15m"

[log]
format = "json"
level = "debug"

[run]
migrations = true
init = true
init_grace = "5s"
""",
    b'env = "production"\ndoctor.long_running = "60s"\n',
    b"[wait]\ntimeout = 30\n",
    b"[migrations]\ndir = true\n",
    b"[nope]\nkey = 1\n",
    b"a = [1, 2, {b = 3}]\n",
    b'x = """multi\nline"""\ny = \'literal\'\nz = 1979-05-27T07:32:00Z\n',
    b"[wait\ntimeout = ",
    b"a.b.c.d.e.f = 1\n[[t]]\n[[t]]\n",
]


# fuzz_stored_down: the first line is down_options, the rest down_sql.
STORED_DOWNS = [
    b"\nDROP TABLE users;\n",
    b"transaction:false\nDROP INDEX CONCURRENTLY i;\n\nDROP TABLE t;\n",
    b"transaction:true\nDELETE FROM t WHERE id > 3;\nALTER TABLE t DROP COLUMN c;",
    b"\n-- data is migrated in code.\n",
    b"transaction:false\nBEGIN;\nUPDATE t SET a = 1;\nCOMMIT;\nVACUUM t;",
    b"\nCOMMIT;",
    b"bogus\nSELECT 1;",
    b"transaction:false  transaction:true\nDROP FUNCTION f();\n"
    b"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;",
    b"\nSELECT 1;\nSELECT 'x;\n",
    b"\nCOPY t FROM STDIN;\n",
]


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for i, s in enumerate(seeds):
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(s)


def main():
    write("fuzz_sql_split", [bytes([1]) + s for s in SQL] + [bytes([7]) + SQL[2]])
    write("fuzz_migration_files", FILES)
    write("fuzz_settings", SETTINGS)
    write("fuzz_toml", TOML)
    write("fuzz_stored_down", STORED_DOWNS)
    # fuzz_redact's input is consumed by FuzzedDataProvider (parts from both
    # ends): its corpus is what the fuzzer itself found, merged by run.sh --merge.


if __name__ == "__main__":
    main()
