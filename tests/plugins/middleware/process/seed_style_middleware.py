#!/usr/bin/env python3
"""The seed's middleware pattern (GoReplay's canonical one): on a request, register a callback
for that id's original response; on the response, register one for its replay; on the replay,
compare. Appends "ID same|diff" to the file named by argv[1] for every replay it compared."""
import sys
from gor.middleware import AsyncioGor

out = open(sys.argv[1], "a")


def on_request(proxy, msg, **kwargs):
    proxy.on("response", on_response, idx=msg.id, req=msg)


def on_response(proxy, msg, **kwargs):
    proxy.on("replay", on_replay, idx=kwargs["req"].id, req=kwargs["req"], resp=msg)


def on_replay(proxy, msg, **kwargs):
    same = proxy.http_status(msg.http) == proxy.http_status(kwargs["resp"].http) and \
        proxy.http_body(msg.http) == proxy.http_body(kwargs["resp"].http)
    out.write("%s %s\n" % (msg.id, "same" if same else "diff"))
    out.flush()


if __name__ == "__main__":
    proxy = AsyncioGor()
    proxy.on("request", on_request)
    proxy.run()
