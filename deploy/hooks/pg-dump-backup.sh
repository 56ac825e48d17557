#!/bin/sh
# A pgboot --before-migrate hook: a pg_dump -Fc of the database about to be migrated, taken under
# pgboot's migration lock and only when something is pending (docs/reference.md, "Hooks").
#
#   pgboot migrate --before-migrate /hooks/pg-dump-backup.sh
#   PGBOOT_BEFORE_MIGRATE=/hooks/pg-dump-backup.sh
#
# pgboot hands the hook the libpq variables of its own connection (PGHOST, PGPORT, PGUSER,
# PGPASSWORD, PGDATABASE, PGSSLMODE, ...), so pg_dump needs no connection arguments. It writes
# $PGBOOT_BACKUP_DIR (default /backup)/<database>-<UTC time>-before-<first pending version>.dump,
# first as .partial, renamed once complete: a dump without .partial is whole. Restore with
#   pg_restore --no-owner -d <fresh database> FILE
# A non-zero exit (pg_dump failed, the directory is not writable) makes pgboot exit 9 with
# nothing applied.
set -eu

dir="${PGBOOT_BACKUP_DIR:-/backup}"
first="${PGBOOT_PENDING_VERSIONS%% *}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
file="$dir/${PGDATABASE:-database}-$stamp-before-${first:-none}.dump"

mkdir -p "$dir"
pg_dump -Fc -f "$file.partial"
mv "$file.partial" "$file"
echo "pg-dump-backup: wrote $file before $PGBOOT_PENDING pending migration(s): $PGBOOT_PENDING_VERSIONS" >&2
