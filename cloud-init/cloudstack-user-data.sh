#!/bin/sh
# cloud-init text/x-shellscript part for Apache CloudStack: tagstrap reads
# its tags from the text/x-tagstrap-tags part of this same user-data, served
# by the virtual router (found as cloud-init finds it, or named with
# --metadata-endpoint). Build the user-data with both parts:
#
#   cloud-init devel make-mime --force \
#     -a tagstrap.tags:x-tagstrap-tags -a cloudstack-user-data.sh:x-shellscript
#
# (--force: make-mime refuses a part type cloud-init has no handler for;
# cloud-init then skips that part with a warning and runs this one.)
# The store opens with what /etc/tagstrap/config.toml on the image names; a
# Vault token, if the image holds one, is read from /etc/tagstrap/vault.env
# (0600) when present, never from user-data (user-data.sh says more).
# POSIX sh: no bashisms.
set -eu

if [ -r /etc/tagstrap/vault.env ]; then
  set -a
  . /etc/tagstrap/vault.env
  set +a
fi

# An image that must name the router (tests, unusual networks) writes its
# URL here; otherwise tagstrap finds it.
endpoint=
if [ -r /etc/tagstrap/cloudstack-router ]; then
  endpoint="--metadata-endpoint $(cat /etc/tagstrap/cloudstack-router)"
fi

# shellcheck disable=SC2086 # $endpoint is two words or none
exec /usr/local/bin/tagstrap run --source cloudstack $endpoint --once \
  --write-env /etc/tagstrap/proxy.env
