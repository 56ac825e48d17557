"""pgboot's black-box test harness (see README.md beside this file).

    cluster   a PostgreSQL cluster in a temporary directory; the pg.start/pg.stop fixture
    server    the shared server: pg(), url(), new_database(), new_role(), new_cluster()
    sql       admin_sql(), lit(), q1(), table_exists(), history(), audit(), PsqlSession
    proc      pgboot_bin(), run(), spawn(), wait_for_line(), wait_until(), StartBarrier
    files     temp_dir(), temp_migrations(), up()
    logs      parse_json_lines(), parse_text_lines(), events()
    case      PgbootTestCase, skip_loudly(), skip_if_sanitized(), time_limit()
    pgbouncer a PgBouncer in front of the shared server
    tls       certificates and a PostgreSQL server with ssl=on
    listeners TCP ports that never answer or answer garbage

Import names from the module that defines them (`from harness.sql import q1`);
nothing is re-exported here.
"""
