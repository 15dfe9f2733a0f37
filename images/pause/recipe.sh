# The pods' sandbox ("pause") image, which containerd's CRI runs as each
# pod's first process: Debian's statically linked catatonit in pause mode
# (`catatonit -P`), alone. Runs as 65535:65535 like the upstream pause image.
#
# Inputs: REF, WORK, OUT_ROOTFS, OUT_CONFIG.

root="$WORK/root"
install -d -m 0755 "$root"
install -m 0755 /usr/bin/catatonit "$root/catatonit"
tar --create --file "$OUT_ROOTFS" --directory "$root" --sort=name \
  --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .

image_config "$OUT_CONFIG" "$REF" 65535:65535 / '["/catatonit", "-P"]' null
