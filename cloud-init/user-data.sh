#!/bin/sh
# cloud-init text/x-shellscript part: run the agent install through tagstrap.
# POSIX sh; tagstrap is baked into the image at /usr/local/bin/tagstrap.
set -eu
if [ -r /etc/tagstrap/vault.env ]; then
  # VAULT_ADDR=... and VAULT_TOKEN=... (0600); never passed on a command line.
  set -a
  . /etc/tagstrap/vault.env
  set +a
fi
exec /usr/local/bin/tagstrap run --once
