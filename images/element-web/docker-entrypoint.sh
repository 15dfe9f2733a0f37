#!/bin/sh
# The entrypoint of Caduceus' Element Web image, the parts of the official
# image's entrypoint the operator relies on:
#   - copies /app/config*.json to /tmp/element-web-config, where nginx
#     serves /config*.json from (the operator mounts /app/config.json);
#   - renders /etc/nginx/templates/*.template into /etc/nginx/conf.d with
#     ELEMENT_WEB_PORT (default 80), keeping files already there (the
#     operator mounts its well-known server into conf.d);
#   - drops `listen [::]` when the kernel has no IPv6.
# Then runs the command (nginx in the foreground).
set -eu

ELEMENT_WEB_PORT="${ELEMENT_WEB_PORT:-80}"
case "$ELEMENT_WEB_PORT" in
  ''|*[!0-9]*) echo "docker-entrypoint: ELEMENT_WEB_PORT must be a port number, not '$ELEMENT_WEB_PORT'" >&2; exit 1 ;;
esac

if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
  mkdir -p /tmp/element-web-config
  for file in /app/config*.json; do
    [ -e "$file" ] || continue
    cp -f "$file" /tmp/element-web-config/
  done

  for template in /etc/nginx/templates/*.template; do
    [ -e "$template" ] || continue
    out="/etc/nginx/conf.d/$(basename "$template" .template)"
    if [ -w /etc/nginx/conf.d ]; then
      sed "s/\${ELEMENT_WEB_PORT}/$ELEMENT_WEB_PORT/g" "$template" >"$out"
      if [ ! -e /proc/net/if_inet6 ]; then
        sed -i '/listen[[:space:]]*\[::\]/d' "$out"
      fi
    else
      echo "docker-entrypoint: /etc/nginx/conf.d is not writable; $out not rendered" >&2
    fi
  done
fi

exec "$@"
