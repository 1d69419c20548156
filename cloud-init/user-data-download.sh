#!/bin/sh
# cloud-init text/x-shellscript part for an image WITHOUT tagstrap: download
# the static tagstrap binary, check it against a pinned sha256, install it,
# and run it. POSIX sh: no bashisms.
#
# Fill in the three values below. The download is the one request that
# cannot use tagstrap's own proxy handling, so this part sets the proxy for
# that one curl only, and must be able to use it without the proxy password
# (which lives in the credential store, out of reach until tagstrap runs):
#   - a mirror inside the network, reached directly: DOWNLOAD_PROXY='';
#   - or a proxy that lets this one URL through without authentication.
# If every request through the proxy needs the password, bake tagstrap into
# the image instead (user-data.sh).
set -eu

TAGSTRAP_URL='https://repo.example.internal/tagstrap/0.1.0/tagstrap-x86_64-linux-musl'
TAGSTRAP_SHA256='0000000000000000000000000000000000000000000000000000000000000000'
DOWNLOAD_PROXY='http://proxy.example.internal:3128'

bin=/usr/local/bin/tagstrap
partial=$bin.partial
umask 077
# Retries cover the boot-time race that makes cloud-init's #include fail.
if [ -n "$DOWNLOAD_PROXY" ]; then
  http_proxy=$DOWNLOAD_PROXY https_proxy=$DOWNLOAD_PROXY curl -fsS --retry 30 --retry-all-errors --retry-delay 2 \
    --max-filesize 33554432 -o "$partial" "$TAGSTRAP_URL"
else
  curl -fsS --noproxy '*' --retry 30 --retry-all-errors --retry-delay 2 \
    --max-filesize 33554432 -o "$partial" "$TAGSTRAP_URL"
fi
got=$(sha256sum "$partial" | cut -d' ' -f1)
if [ "$got" != "$TAGSTRAP_SHA256" ]; then
  rm -f "$partial"
  echo "tagstrap download from $TAGSTRAP_URL does not match its pin: sha256 $got, want $TAGSTRAP_SHA256; not installed, nothing run" >&2
  exit 65
fi
chmod 0755 "$partial"
mv "$partial" "$bin"

# The store: what /etc/tagstrap/config.toml names (best, a store that opens
# with the instance's own identity: no secret anywhere), or a Vault token in
# /etc/tagstrap/vault.env (0600) on the image, never in this user-data.
if [ -r /etc/tagstrap/vault.env ]; then
  set -a
  . /etc/tagstrap/vault.env
  set +a
fi
exec "$bin" run --once --write-env /etc/tagstrap/proxy.env
