#!/bin/sh
# Installs sluice as a systemd service, or removes it.
#
#   sudo build/install.sh [BINARY]             install or upgrade, enable and start
#   sudo build/install.sh --uninstall          stop and remove; keeps /etc/sluice and the data
#   sudo build/install.sh --uninstall --purge  ...and deletes config, data, cache and the user
#
# BINARY defaults to build/out/sluice-linux-<this machine's arch> (npm run build:bin). Copy the binary
# and this script (with systemd/) to the gateway, or run it where you built. Options:
#   --no-start      install and enable, but do not start (e.g. to edit the config first)
#   PREFIX=/opt     where bin/sluice goes (default /usr/local)
#   DESTDIR=/tmp/x  stage the files under a root directory (packaging, tests): no user, no systemctl
set -eu

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
unit_src="$repo/systemd/sluice.service"
config_src="$repo/systemd/sluice.yaml"
readme_src="$repo/README.md"

bin_dst="$DESTDIR$PREFIX/bin/sluice"
unit_dst="$DESTDIR/etc/systemd/system/sluice.service"
config_dir="$DESTDIR/etc/sluice"
doc_dst="$DESTDIR$PREFIX/share/doc/sluice/README.md"
state_dir="$DESTDIR/var/lib/sluice"
cache_dir="$DESTDIR/var/cache/sluice"

say() { printf 'sluice: %s\n' "$*"; }
die() { printf 'sluice: %s\n' "$*" >&2; exit 1; }
system() { [ -z "$DESTDIR" ]; }
have_systemd() { system && [ -d /run/systemd/system ]; }

mode=install
start=yes
purge=no
binary=
for arg in "$@"; do
  case "$arg" in
    --uninstall) mode=uninstall ;;
    --purge) purge=yes ;;
    --no-start) start=no ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $arg (--help lists them)" ;;
    *) binary=$arg ;;
  esac
done
if system && [ "$(id -u)" != 0 ]; then die "run as root (sudo), or set DESTDIR to stage the files"; fi

install_files() {
  if [ -z "$binary" ]; then
    case "$(uname -m)" in
      x86_64|amd64) arch=x64 ;;
      aarch64|arm64) arch=arm64 ;;
      *) die "no sluice build for $(uname -m); pass the binary's path" ;;
    esac
    binary="$repo/build/out/sluice-linux-$arch"
  fi
  [ -f "$binary" ] || die "$binary not found (npm run build:bin makes it)"
  [ -f "$unit_src" ] || die "$unit_src not found: run this script from a sluice checkout or release directory"

  # A new file renamed over the old one: a running agent keeps its binary until it restarts.
  mkdir -p "$(dirname "$bin_dst")"
  cp "$binary" "$bin_dst.new"
  chmod 0755 "$bin_dst.new"
  mv -f "$bin_dst.new" "$bin_dst"
  say "installed $bin_dst ($("$bin_dst" --version 2>/dev/null || echo 'version unknown'))"

  mkdir -p "$(dirname "$unit_dst")"
  sed "s|/usr/local/bin/sluice|$PREFIX/bin/sluice|g; s|/usr/local/share/doc/sluice|$PREFIX/share/doc/sluice|g" "$unit_src" > "$unit_dst.new"
  chmod 0644 "$unit_dst.new"
  mv -f "$unit_dst.new" "$unit_dst"
  say "installed $unit_dst"

  if [ -f "$readme_src" ]; then
    mkdir -p "$(dirname "$doc_dst")"
    cp "$readme_src" "$doc_dst"
  fi

  mkdir -p "$config_dir"
  if [ -e "$config_dir/sluice.yaml" ]; then
    say "kept $config_dir/sluice.yaml (yours)"
  else
    cp "$config_src" "$config_dir/sluice.yaml"
    chmod 0640 "$config_dir/sluice.yaml"
    say "installed $config_dir/sluice.yaml (a demo input: edit it)"
  fi
}

create_user() {
  if getent passwd sluice >/dev/null 2>&1; then return; fi
  nologin=/usr/sbin/nologin
  [ -x "$nologin" ] || nologin=/sbin/nologin
  useradd --system --user-group --home-dir /var/lib/sluice --no-create-home --shell "$nologin" --comment "sluice gateway agent" sluice
  say "created system user sluice"
}

do_install() {
  was_active=no
  if have_systemd && systemctl is-active --quiet sluice; then was_active=yes; fi
  install_files
  if ! system; then
    say "staged under $DESTDIR (no user created, systemd not told)"
    return
  fi
  create_user
  # The service reads its config as the sluice group; secrets may live in it.
  chgrp sluice "$config_dir/sluice.yaml"
  [ -e "$config_dir/sluice.env" ] && chgrp sluice "$config_dir/sluice.env" && chmod 0640 "$config_dir/sluice.env"
  "$bin_dst" check -c "$config_dir/sluice.yaml" || die "the config does not validate; fix it, then: systemctl restart sluice"
  if ! have_systemd; then
    say "systemd is not running here: start the agent with  $bin_dst run -c /etc/sluice/sluice.yaml"
    return
  fi
  systemctl daemon-reload
  systemctl enable sluice >/dev/null 2>&1
  if [ "$start" = no ]; then
    say "enabled; start it with  systemctl start sluice"
  elif [ "$was_active" = yes ]; then
    systemctl restart sluice
    say "upgraded and restarted"
  else
    systemctl start sluice
    say "started: systemctl status sluice, journalctl -u sluice, http://127.0.0.1:9273/"
  fi
}

do_uninstall() {
  if have_systemd; then
    systemctl disable --now sluice >/dev/null 2>&1 || true
  fi
  rm -f "$unit_dst" "$bin_dst" "$doc_dst"
  rmdir "$(dirname "$doc_dst")" 2>/dev/null || true
  have_systemd && systemctl daemon-reload
  say "removed the binary and the unit"
  if [ "$purge" = yes ]; then
    rm -rf "$config_dir" "$state_dir" "$cache_dir"
    if system && getent passwd sluice >/dev/null 2>&1; then userdel sluice 2>/dev/null || true; fi
    say "purged $config_dir, $state_dir and $cache_dir"
  else
    say "kept $config_dir and the data in $state_dir (--purge deletes them)"
  fi
}

if [ "$mode" = install ]; then do_install; else do_uninstall; fi
