# The backup image of the backup and restore Jobs (scripts/backup.sh and
# scripts/restore.sh, run as `/bin/sh /scripts/….sh`): Debian bookworm's
# restic and PostgreSQL client tools (pg_dump, pg_restore, psql) with the
# shell tools the scripts use (coreutils, findutils, grep, sed, diffutils'
# cmp, tar). Runs as Synapse's uid (991:991). Dockerfile here is the same
# image for a registry build.
#
# Inputs: REF, WORK, OUT_ROOTFS, OUT_CONFIG, PG_MAJOR.

debian_rootfs "$OUT_ROOTFS" "postgresql-client-$PG_MAJOR,restic,ca-certificates,tar,gzip,tzdata" \
  --customize-hook='chroot "$1" groupadd --gid 991 synapse' \
  --customize-hook='chroot "$1" useradd --uid 991 --gid 991 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin synapse' \
  --customize-hook='chroot "$1" sh -c "restic version && pg_dump --version && command -v base64 cmp find grep sed tar mktemp"'

image_config "$OUT_CONFIG" "$REF" 991:991 /tmp null '["/bin/sh"]' \
  "PATH=/usr/lib/postgresql/$PG_MAJOR/bin:$DEFAULT_PATH" LANG=C.UTF-8 HOME=/tmp
