#!/usr/bin/env bash
# Runs the README's two commands, exactly as written there, in a fresh minimal
# Debian 12 root made by mmdebstrap, on a fresh clone of a commit with ../shared
# beside it: proves that `make demo` and `make test` install what they need.
#
#   scripts/fresh_root.sh [COMMIT]        (default: HEAD; needs root or sudo)
#
# The root lives under ${TQ_ROOT_DIR:-/var/tmp} and is removed afterwards, mounts
# first, even when a step fails. TQ_KEEP_ROOT=1 keeps it for a look inside.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$repo" rev-parse "${1:-HEAD}")
shared="$repo/../shared"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v mmdebstrap >/dev/null; then
  echo "fresh_root: installing mmdebstrap" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

# The commands are read from the README's first sh block so that they cannot drift.
mapfile -t commands < <(awk '/^```sh/{f=1; next} /^```/{if(f) exit} f' "$repo/README.md" |
                        sed -e 's/[[:space:]]*#.*$//' -e '/^[[:space:]]*$/d')
[ ${#commands[@]} -ge 1 ] || { echo "fresh_root: no commands found in README.md" >&2; exit 2; }

root=$(mktemp -d "${TQ_ROOT_DIR:-/var/tmp}/tquant-root.XXXXXX")
cleanup() {
  local rc=$?
  for m in dev/pts dev proc; do
    if mountpoint -q "$root/$m" 2>/dev/null; then $sudo umount -l "$root/$m" || true; fi
  done
  if [ "${TQ_KEEP_ROOT:-0}" = 1 ]; then
    echo "fresh_root: kept $root" >&2
  else
    $sudo rm -rf --one-file-system "$root"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

t0=$(date +%s)
echo "fresh_root: making a Debian 12 root in $root" >&2
$sudo mmdebstrap --quiet --variant=apt --include=ca-certificates,sudo,git,make bookworm "$root"
echo "fresh_root: root made in $(( $(date +%s) - t0 )) s" >&2

$sudo mkdir -p "$root/srv"
$sudo git clone --quiet --no-local "$repo" "$root/srv/tquant"
$sudo git -C "$root/srv/tquant" checkout --quiet "$commit"
if [ -d "$shared" ]; then
  $sudo cp -a "$shared" "$root/srv/shared"
else
  echo "fresh_root: no ../shared beside the repository; tests that need it will say skipped" >&2
fi
$sudo cp /etc/resolv.conf "$root/etc/resolv.conf"
$sudo mount -t proc proc "$root/proc"
$sudo mount --bind /dev "$root/dev"
$sudo mount --bind /dev/pts "$root/dev/pts"

for cmd in "${commands[@]}"; do
  echo "fresh_root: == $cmd (commit ${commit:0:12})" >&2
  t=$(date +%s)
  $sudo chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 /bin/bash -c "cd /srv/tquant && $cmd"
  echo "fresh_root: '$cmd' passed in $(( $(date +%s) - t )) s" >&2
done
echo "fresh_root: all passed in $(( $(date +%s) - t0 )) s" >&2
