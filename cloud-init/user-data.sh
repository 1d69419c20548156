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
# Nothing secret is in this part or on the image: /etc/tagstrap/config.toml
# (baked, no secret in it) names a store that opens with the instance's own
# cloud identity, e.g.
#     store = "aws-secrets-manager"
#     [aws_secrets_manager]
#     prefix = "tagstrap/"
# (dist/config/ has one for each cloud and for Vault's jwt and aws logins;
# docs/credential-stores.md#no-secret-on-the-image). An image that does hold a
# Vault token keeps it in /etc/tagstrap/vault.env, mode 0600, with VAULT_ADDR=
# and VAULT_TOKEN= lines, read below when present; never in user-data, which
# any process on the instance can read through the metadata service. POSIX sh:
# no bashisms.
set -eu

if [ -r /etc/tagstrap/vault.env ]; then
  set -a
  . /etc/tagstrap/vault.env
  set +a
fi

exec /usr/local/bin/tagstrap run --once --write-env /etc/tagstrap/proxy.env
