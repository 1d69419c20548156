#!/bin/sh
# cloud-init text/x-shellscript part: install the agent through tagstrap.
#
# For an image with tagstrap baked in at /usr/local/bin/tagstrap. cloud-init
# runs this part once per instance, in its final stage; its output goes to
# /var/log/cloud-init-output.log, and a non-zero exit shows in
# `cloud-init status --long`.
#
# tagstrap reads the instance's rs_agent:* tags (from the cloud, and from
# /etc/tagstrap/tags on the image), fetches the proxy password from the
# credential store, downloads the install script through the proxy and runs
# it. --once makes a later boot of the same instance do nothing; --write-env
# leaves the proxy environment (0600) for later services and boot stages,
# which do not read proxies on their own.
#
# The store's address and token come from the image, never from user-data
# (anyone who can read the instance's user-data could read them there):
# /etc/tagstrap/vault.env, mode 0600, holding VAULT_ADDR=... and
# VAULT_TOKEN=... lines (or VAULT_ADDR alone with the token in a file; see
# docs/credential-stores.md). POSIX sh: no bashisms.
set -eu

if [ -r /etc/tagstrap/vault.env ]; then
  set -a
  . /etc/tagstrap/vault.env
  set +a
fi

exec /usr/local/bin/tagstrap run --once --write-env /etc/tagstrap/proxy.env
