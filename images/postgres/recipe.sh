# The PostgreSQL image: Debian bookworm's postgresql-15 with an entrypoint
# (docker-entrypoint.sh here) honouring the env contract of the official
# postgres image that the operator's managed database uses. Runs as postgres
# (999:999, the official image's uid, added before
# postgresql-common's postinst would pick a dynamic one), on a read-only root file system with
# /var/run/postgresql, /tmp, /dev/shm and the data volume writable.
#
# JIT compilation is off and its LLVM libraries (over half the image) are
# removed: Synapse's short OLTP queries never benefit from it.
#
# Inputs: REF, WORK, OUT_ROOTFS, OUT_CONFIG, RECIPE_DIR, PG_MAJOR.

debian_rootfs "$OUT_ROOTFS" "postgresql-$PG_MAJOR,libnss-wrapper,tzdata" \
  --essential-hook='mkdir -p "$1"/etc/postgresql-common && printf "create_main_cluster = false\n" >"$1"/etc/postgresql-common/createcluster.conf' \
  --essential-hook='echo "postgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/bash" >>"$1"/etc/passwd' \
  --essential-hook='echo "postgres:x:999:" >>"$1"/etc/group' \
  --customize-hook="sed -ri \"s/^#?(listen_addresses)\\s*=\\s*\\S+.*/\\1 = '*'/\" \"\$1\"/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample" \
  --customize-hook="grep -F \"listen_addresses = '*'\" \"\$1\"/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample" \
  --customize-hook="sed -ri \"s/^#?(jit)\\s*=\\s*\\S+.*/\\1 = off/\" \"\$1\"/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample" \
  --customize-hook="rm -rf \"\$1\"/usr/lib/postgresql/$PG_MAJOR/lib/llvmjit* \"\$1\"/usr/lib/postgresql/$PG_MAJOR/lib/bitcode \"\$1\"/usr/lib/x86_64-linux-gnu/libLLVM-14.so* \"\$1\"/usr/lib/llvm-14 \"\$1\"/usr/lib/x86_64-linux-gnu/libz3.so*" \
  --customize-hook='install -d -m 3777 -o 999 -g 0 "$1"/var/run/postgresql' \
  --customize-hook='install -d -m 0775 -o 999 -g 0 "$1"/var/lib/postgresql' \
  --customize-hook='install -d -m 1777 -o 999 -g 0 "$1"/var/lib/postgresql/data' \
  --customize-hook='install -d -m 0755 "$1"/docker-entrypoint-initdb.d' \
  --customize-hook="upload '$RECIPE_DIR/docker-entrypoint.sh' /usr/local/bin/docker-entrypoint.sh" \
  --customize-hook='chmod 0755 "$1"/usr/local/bin/docker-entrypoint.sh'

image_config "$OUT_CONFIG" "$REF" 999:999 / '["docker-entrypoint.sh"]' '["postgres"]' \
  "PATH=/usr/lib/postgresql/$PG_MAJOR/bin:$DEFAULT_PATH" LANG=C.UTF-8 \
  "PG_MAJOR=$PG_MAJOR" PGDATA=/var/lib/postgresql/data
