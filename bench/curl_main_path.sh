#!/bin/sh
# The main path of `tagstrap run` done by hand with curl, as the baseline of
# benches/main_path.rs: read the proxy password from OpenBao/Vault KV v2,
# download the install script through the authenticated CONNECT proxy, make
# it executable, run it, exit with its code.
#
# usage: curl_main_path.sh PROXY_HOST:PORT USER SECRET_NAME CA_FILE SCRIPT_URL DIR
# env:   VAULT_ADDR, VAULT_TOKEN
#
# No secret is ever on a command line: the token and the proxy credentials
# reach curl through a config read from stdin (`-K -`), written by the shell
# builtin printf. The password must not hold '"', '\' or '%' (the sed
# extraction does not decode JSON escapes, and curl would percent-decode it).
set -eu

proxy=$1 user=$2 secret=$3 ca=$4 url=$5 dir=$6

# 1. The proxy password: GET /v1/secret/data/NAME, field .data.data.value.
pass=$(printf 'header = "X-Vault-Token: %s"\n' "$VAULT_TOKEN" |
    curl -q --fail -sS -K - "$VAULT_ADDR/v1/secret/data/$secret" |
    sed -n 's/.*"data":{"data":{[^}]*"value":"\([^"\\]*\)".*/\1/p')
if [ -z "$pass" ]; then
    echo "curl_main_path.sh: no value in secret/data/$secret" >&2
    exit 1
fi

# 2. The script, through the proxy (CONNECT), checked against the CA.
mkdir -p "$dir"
printf 'proxy-user = "%s:%s"\n' "$user" "$pass" |
    curl -q --fail -sS -K - --cacert "$ca" --proxy "http://$proxy" \
        -o "$dir/install.sh" "$url"

# 3. Run it.
chmod 700 "$dir/install.sh"
"$dir/install.sh"
