"""dev_token: the demo's stand-in for an identity provider — a token of presenced's development
issuer for the e-mail a page gives, made by `presenced -c FILE token EMAIL`.

A real page gets its token from the user's identity provider (an OpenID Connect ID token from
Mozilla accounts, Google, Keycloak…: SPEC §3.1) and hands it to presence.js; the chat room never
needs to see it. Here, as with dev_issuer itself, anyone may be anyone: it is for trying the demo
on one machine, and it answers on the loopback address only. Nothing of it is kept or logged.
"""
import asyncio
import re

EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


async def make(presenced, config, email, ttl="1h"):
    """The token, or None when the address is not one or presenced refuses."""
    if not EMAIL_RE.match(email) or len(email) > 254:
        return None
    process = await asyncio.create_subprocess_exec(
        presenced, "-c", config, "token", email, ttl,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    token = out.decode().strip()
    return token if process.returncode == 0 and token.count(".") == 2 else None
