#!/usr/bin/env bash
# Install everything lua-p0f builds, tests and demonstrates with, on Debian 12.
# Run as root. Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(
  # build
  cmake make gcc pkg-config git ca-certificates
  lua5.4 liblua5.4-dev luajit libluajit-5.1-dev libev-dev libhiredis-dev luarocks
  lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev
  # tests
  lua-unit lua-cqueues lua-luv lua-rex-pcre2 lua-socket lua-cjson
  p0f redis-server rspamd postfix swaks
  valgrind clang libclang-rt-14-dev
  procps iproute2 util-linux netcat-openbsd
  # packaging: release rock, Debian packages, man pages
  build-essential debhelper dpkg-dev lintian pandoc man-db groff-base zip unzip
  curl  # the p0f-mux rspamd spec drives rspamd's HTTP API with curl --parallel
)

# Postfix asks what kind of mail system to set up; the tests run their own.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"

# The packaged daemons must not run on their own: tests start private ones.
for svc in redis-server rspamd postfix; do
  (service "$svc" stop || true) >/dev/null 2>&1
done
