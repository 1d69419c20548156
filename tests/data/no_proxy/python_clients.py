"""Python's HTTP clients for tests/no_proxy_clients.rs, one process for every case.

Started inside the test's network namespace as
    python3 python_clients.py PROXY_PORT CATCHER_PORT
it prints one JSON line with its versions, then answers one JSON line per
request line on stdin: {"client": "urllib"|"requests", "url": ..., "env": {...}}
-> {"outcome": ...}. The test counts what the proxy and the catcher saw
between a request and its answer, so the attempts must be one at a time.

os.environ is replaced per attempt with exactly the variables the test gives
(the clients read it at request time: urllib through a new opener, requests
on every get). Direct attempts are sent to the loopback catcher by answering
every name lookup, except for the proxy's own port, with 127.0.0.1:CATCHER:
the namespace has nothing else, and this way a direct attempt shows up as a
connection instead of a failed lookup.
"""

import json
import os
import socket
import ssl
import sys
import urllib.request
import warnings

PROXY_PORT = int(sys.argv[1])
CATCHER_PORT = int(sys.argv[2])

_real_getaddrinfo = socket.getaddrinfo


def _to_catcher(host, port, family=0, type=0, proto=0, flags=0):
    if str(port) == str(PROXY_PORT):
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    # AF_INET whatever was asked: the catcher listens on 127.0.0.1, and a
    # client asking for AF_INET6 (an IPv6 URL host) must still reach it.
    return _real_getaddrinfo("127.0.0.1", CATCHER_PORT, socket.AF_INET, type, proto, flags)


socket.getaddrinfo = _to_catcher

try:
    import requests
    import urllib3

    REQUESTS_VERSION = requests.__version__
    # verify=False is the point (the catcher speaks no TLS); the warning
    # about it would only fill the test's log.
    urllib3.disable_warnings()
except ImportError:
    requests = None
    REQUESTS_VERSION = None
warnings.simplefilter("ignore")


# One TLS context for every urllib opener: building an opener makes a fresh
# one otherwise, loading the CA store each time (most of an attempt's cost).
# Unverified, as curl -k and wget --no-check-certificate: the catcher speaks
# no TLS, and only the route matters.
URLLIB_TLS = ssl._create_unverified_context()


def attempt(client, url):
    if client == "urllib":
        # A new opener per attempt: its ProxyHandler reads the environment
        # when it is built.
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=URLLIB_TLS))
        opener.open(url, timeout=5).close()
    elif client == "requests":
        requests.get(url, timeout=5, verify=False)
    else:
        raise ValueError(f"unknown client {client!r}")


def main():
    print(
        json.dumps(
            {"python": sys.version.split()[0], "requests": REQUESTS_VERSION}
        ),
        flush=True,
    )
    for line in sys.stdin:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        try:
            attempt(request["client"], request["url"])
            outcome = "answered"
        except Exception as e:  # every failure is an outcome here
            outcome = f"{type(e).__name__}: {e}"
        print(json.dumps({"outcome": outcome[:300]}), flush=True)


main()
