#!/usr/bin/env bash
# MetaStore backup: one consistent snapshot through the API, checksummed, with retention.
#
# Why not `tar` the data directory: LevelDB writes its log, tables and MANIFEST at different
# moments, so a copy of a live data dir can hold a MANIFEST naming tables that are not in the
# copy (or tables without the log records they depend on). `etcdctl snapshot save` asks a
# member for a point-in-time image taken inside the server, which is consistent by design.
# The file format is whatever the server streams; this script never looks inside it.
#
# Usage (all settings are environment variables, so a cron line stays short):
#   METASTORE_ENDPOINTS  comma-separated client endpoints, tried in order   (127.0.0.1:2379)
#   BACKUP_DIR           where snapshots go                                 (/backup/metastore)
#   RETENTION_DAYS       delete snapshots older than this many days        (7)
#   KEEP_MIN             never delete below this many newest snapshots     (3)
#   ETCDCTL              the etcdctl binary                                 (etcdctl)
#   ETCDCTL_CACERT/ETCDCTL_CERT/ETCDCTL_KEY/ETCDCTL_USER: read by etcdctl itself (TLS, auth).
#
# Output: BACKUP_DIR/snapshot_YYYYmmdd_HHMMSS.db and .db.sha256 beside it (`sha256sum -c`
# format, relative name, so it verifies from inside BACKUP_DIR or after copying both files).
# The last line printed is the snapshot's path. Exit status is non-zero when no member could
# be snapshotted, so cron mails the failure.
#
# Cron (daily at 02:00; /etc/cron.d format, with the user column):
#   0 2 * * * metastore BACKUP_DIR=/backup/metastore /usr/local/bin/metastore-backup.sh >>/var/log/metastore/backup.log 2>&1
set -euo pipefail

endpoints=${METASTORE_ENDPOINTS:-127.0.0.1:2379}
backup_dir=${BACKUP_DIR:-/backup/metastore}
retention_days=${RETENTION_DAYS:-7}
keep_min=${KEEP_MIN:-3}
etcdctl=${ETCDCTL:-etcdctl}
export ETCDCTL_API=3

log() { printf '%s metastore-backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

# Snapshots hold every key: readable by the backup user only.
umask 077
mkdir -p "$backup_dir"
cd "$backup_dir"

# One run at a time: two overlapping runs would race on retention.
exec 9>"$backup_dir/.lock"
if ! flock -n 9; then
  log "another backup is running in $backup_dir; not starting a second one"
  exit 1
fi

stamp=$(date -u +%Y%m%d_%H%M%S)
name="snapshot_${stamp}.db"
# Two runs within one second (a manual run right after cron's) must not overwrite each other.
for n in 2 3 4 5 6 7 8 9; do
  [ -e "$name" ] || break
  name="snapshot_${stamp}_${n}.db"
done
partial=".${name}.partial"
trap 'rm -f "$backup_dir/$partial" "$backup_dir/$partial.part"' EXIT

# `snapshot save` talks to exactly one member; try each until one answers, so a backup still
# happens while a member is down.
saved=""
IFS=',' read -r -a candidates <<<"$endpoints"
for endpoint in "${candidates[@]}"; do
  # A short status call first: snapshot save on a dead endpoint would wait out its whole
  # (long, because big snapshots take time) command timeout before giving up.
  if "$etcdctl" --endpoints="$endpoint" --command-timeout=5s endpoint status >/dev/null &&
    "$etcdctl" --endpoints="$endpoint" --command-timeout=30m snapshot save "$partial" >/dev/null; then
    saved=$endpoint
    break
  fi
  log "snapshot from $endpoint failed; trying the next endpoint"
done
if [ -z "$saved" ] || [ ! -s "$partial" ]; then
  log "no snapshot taken: every endpoint failed ($endpoints)"
  exit 1
fi

# Checksum the bytes as received, then publish both names; the .db appears last, so a file
# named snapshot_*.db always has its checksum beside it.
sum=$(sha256sum "$partial" | cut -d' ' -f1)
printf '%s  %s\n' "$sum" "$name" >"$name.sha256"
mv "$partial" "$name"
sha256sum --quiet -c "$name.sha256"
log "saved $name from $saved ($(stat -c %s "$name") bytes, sha256 $sum)"

# Retention: older than RETENTION_DAYS goes, but the KEEP_MIN newest always stay (a cluster
# that failed to back up for a week must not end up with no backup at all).
mapfile -t old < <(ls -1t snapshot_*.db | tail -n +"$((keep_min + 1))")
for file in "${old[@]}"; do
  if [ -n "$(find "$file" -maxdepth 0 -mtime +"$retention_days")" ]; then
    rm -f -- "$file" "$file.sha256"
    log "removed $file (older than $retention_days days)"
  fi
done

echo "$backup_dir/$name"
