# The Element Web image: Debian bookworm's nginx reproducing the contract of
# the official vectorim/element-web image that the operator relies on
# (src/desired/element.rs): nginx as nginx (101:101) without root, the
# listening port from ELEMENT_WEB_PORT, the server rendered by the
# entrypoint into /etc/nginx/conf.d (an emptyDir; the operator mounts its
# well-known server next to it), /app/config*.json copied to
# /tmp/element-web-config and served as /config*.json, the pid in /tmp and
# temporary files in /var/cache/nginx.
#
# The Element Web JavaScript bundle cannot be downloaded here: /app holds a
# placeholder index.html saying so. /config.json and the well-known server
# work as in the official image.
#
# Inputs: REF, WORK, OUT_ROOTFS, OUT_CONFIG, RECIPE_DIR, ELEMENT_WEB_VERSION.

sed "s/@ELEMENT_WEB_VERSION@/$ELEMENT_WEB_VERSION/g" "$RECIPE_DIR/index.html" >"$WORK/index.html"
printf '%s\n' "$ELEMENT_WEB_VERSION" >"$WORK/version"

debian_rootfs "$OUT_ROOTFS" nginx-light \
  --essential-hook='echo "nginx:x:101:101:nginx:/nonexistent:/usr/sbin/nologin" >>"$1"/etc/passwd' \
  --essential-hook='echo "nginx:x:101:" >>"$1"/etc/group' \
  --customize-hook='rm -rf "$1"/etc/nginx/sites-enabled "$1"/etc/nginx/sites-available "$1"/etc/nginx/conf.d/* "$1"/var/www/html "$1"/var/log/nginx/*' \
  --customize-hook="upload '$RECIPE_DIR/nginx.conf' /etc/nginx/nginx.conf" \
  --customize-hook='mkdir -p "$1"/etc/nginx/templates "$1"/app' \
  --customize-hook="upload '$RECIPE_DIR/default.conf.template' /etc/nginx/templates/default.conf.template" \
  --customize-hook="upload '$RECIPE_DIR/docker-entrypoint.sh' /docker-entrypoint.sh" \
  --customize-hook='chmod 0755 "$1"/docker-entrypoint.sh' \
  --customize-hook="upload '$WORK/index.html' /app/index.html" \
  --customize-hook="upload '$WORK/version' /app/version" \
  --customize-hook="upload '$RECIPE_DIR/config.sample.json' /app/config.sample.json" \
  --customize-hook='chmod -R a+rX "$1"/app "$1"/etc/nginx' \
  --customize-hook='ln -sf /dev/stdout "$1"/var/log/nginx/access.log && ln -sf /dev/stderr "$1"/var/log/nginx/error.log' \
  --customize-hook='install -d -m 0775 -o 101 -g 0 "$1"/var/cache/nginx "$1"/etc/nginx/conf.d "$1"/tmp/element-web-config' \
  --customize-hook='chmod 1777 "$1"/tmp'

image_config "$OUT_CONFIG" "$REF" 101:101 / '["/docker-entrypoint.sh"]' '["nginx","-g","daemon off;"]' \
  "PATH=$DEFAULT_PATH" ELEMENT_WEB_PORT=80 "ELEMENT_WEB_VERSION=$ELEMENT_WEB_VERSION"
