# The operator image: the static caduceus binary alone (as the distroless
# base of the repository's Dockerfile), with passwd and group entries for
# its user, the CA bundle of the build host's Debian and a /tmp. Entrypoint
# /caduceus, command `run`, user 65532 (the Helm chart's pod security
# context).
#
# Inputs: REF, WORK, OUT_ROOTFS, OUT_CONFIG, OPERATOR_BINARY.

root="$WORK/root"
install -d -m 0755 "$root/etc/ssl/certs"
install -d -m 1777 "$root/tmp"
install -m 0755 "$OPERATOR_BINARY" "$root/caduceus"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
install -d -m 0700 -o 65532 -g 65532 "$root/home/nonroot"
# Files are owned by root (the build runs as root) but /home/nonroot.
tar --create --file "$OUT_ROOTFS" --directory "$root" --sort=name \
  --mtime="@$SOURCE_DATE_EPOCH" --numeric-owner \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .

image_config "$OUT_CONFIG" "$REF" 65532:65532 / '["/caduceus"]' '["run"]' \
  "PATH=$DEFAULT_PATH" SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
