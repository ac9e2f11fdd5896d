"""Tokens and channel permissions end to end. Keys and tokens are made at
test time by an implementation that is not ours (Debian's python3-jwt and
python3-cryptography): every algorithm through --auth-jwks and
--auth-public-key, every refusal (a Close 1008 with its reason), key
rotation on SIGHUP, the permissions of channel rules and token claims
(unauthorized vs forbidden, a user's private channel), and a token's
expiry during the connection: Refresh asked, answered, or 4401."""

import asyncio
import json
import os
import signal
import tempfile
import time
import unittest

from wstrace_harness import AsyncTestCase, WstraceServer, recv_json, request, ws_connect

try:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
except ImportError:  # the whole module is skipped below
    jwt = None


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def write(test, text, suffix):
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="wstrace-auth-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    test.addCleanup(os.unlink, path)
    return path


class Keys:
    """One key per algorithm family, and a JWK Set of their public halves."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.p256 = ec.generate_private_key(ec.SECP256R1())
        self.p384 = ec.generate_private_key(ec.SECP384R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.secret = "hmac-secret-for-tests-0123456789abcdef"
        jwks = []
        for kid, key, algo in (("rsa", self.rsa, RSAAlgorithm), ("p256", self.p256, ECAlgorithm),
                               ("p384", self.p384, ECAlgorithm), ("ed", self.ed, OKPAlgorithm)):
            jwk = json.loads(algo.to_jwk(key.public_key()))
            jwk["kid"] = kid
            jwks.append(jwk)
        self.jwks = json.dumps({"keys": jwks})

    # (alg, signing key, kid)
    def cases(self):
        return [("RS256", self.rsa, "rsa"), ("RS384", self.rsa, "rsa"), ("RS512", self.rsa, "rsa"),
                ("PS256", self.rsa, "rsa"), ("ES256", self.p256, "p256"),
                ("ES384", self.p384, "p384"), ("EdDSA", self.ed, "ed")]


def token(claims, key, alg, kid=None):
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def hs_with_key(claims, secret_text, kid="rsa"):
    """The key-confusion attack: an HS256 token whose HMAC key is a public
    key's PEM text, naming that public key's kid (python3-jwt refuses to
    make one, so it is made by hand)."""
    import base64
    import hashlib
    import hmac

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret_text.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


async def refused(url, tok):
    """Connects with ?token=; returns the close code and reason the server sent."""
    ws = await ws_connect(f"{url}?token={tok}")
    try:
        await asyncio.wait_for(ws.wait_closed(), 20)
    finally:
        await ws.close()
    return ws.close_code, ws.close_reason


@unittest.skipIf(jwt is None, "python3-jwt and python3-cryptography are not installed")
class Tokens(AsyncTestCase):

    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()

    async def test_every_algorithm(self):
        k = self.keys
        jwks = write(self, k.jwks, ".json")
        exp = int(time.time()) + 600
        with WstraceServer("--auth-jwks", jwks, "--auth-secret", k.secret) as srv:
            cases = k.cases() + [("HS256", k.secret, None), ("HS384", k.secret, None),
                                 ("HS512", k.secret, None)]
            for alg, key, kid in cases:
                with self.subTest(alg=alg):
                    tok = token({"sub": f"user-{alg}", "exp": exp}, key, alg, kid)
                    ws = await ws_connect(f"{srv.url()}?token={tok}")
                    r = await request(ws, {"type": "Subscribe", "channel": "c"})
                    self.assertEqual(r["type"], "Subscribed", (alg, r))
                    await ws.close()
            rows = {c["user_id"] for c in srv.connections() if "user_id" in c}
            self.assertEqual(rows, set())  # all closed now
        # A PEM public key alone, and a header token.
        pem = write(self, public_pem(k.p256), ".pem")
        with WstraceServer("--auth-public-key", pem) as srv:
            tok = token({"sub": "pem-user"}, k.p256, "ES256")
            ws = await ws_connect(srv.url(), extra_headers={"Authorization": f"Bearer {tok}"})
            self.assertEqual((await request(ws, {"type": "Subscribe", "channel": "c"}))["type"],
                             "Subscribed")
            [row] = srv.connections()
            self.assertEqual(row["user_id"], "pem-user")
            await ws.close()

    async def test_every_refusal_is_a_1008_with_its_reason(self):
        k = self.keys
        jwks = write(self, k.jwks, ".json")
        now = int(time.time())
        args = ("--auth-jwks", jwks, "--auth-audience", "chat", "--auth-issuer", "https://id.test",
                "--auth-leeway", "5s")
        good = {"sub": "u", "aud": "chat", "iss": "https://id.test", "exp": now + 600}
        with WstraceServer(*args) as srv:
            url = srv.url()
            ok = token(good, k.rsa, "RS256", "rsa")
            ws = await ws_connect(f"{url}?token={ok}")
            self.assertEqual((await request(ws, {"type": "Ping"}))["type"], "Pong")
            await ws.close()
            head, body, sig = ok.split(".")
            flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
            cases = [
                ("bad signature", f"{head}.{body}.{flipped}", "bad_signature"),
                ("wrong alg for the key", token(good, k.p256, "ES256", "rsa"), "algorithm_mismatch"),
                ("HS signed with the RSA public key as the secret", hs_with_key(good, public_pem(k.rsa)),
                 "algorithm_mismatch"),
                ("alg none", jwt.encode(good, None, algorithm="none"), "unsupported_algorithm"),
                ("expired", token({**good, "exp": now - 60}, k.rsa, "RS256", "rsa"), "expired"),
                ("not yet valid", token({**good, "nbf": now + 60}, k.rsa, "RS256", "rsa"),
                 "not_yet_valid"),
                ("wrong audience", token({**good, "aud": "other"}, k.rsa, "RS256", "rsa"),
                 "wrong_audience"),
                ("wrong issuer", token({**good, "iss": "https://evil.test"}, k.rsa, "RS256", "rsa"),
                 "wrong_issuer"),
                ("unknown kid", token(good, k.rsa, "RS256", "nope"), "unknown_kid"),
                ("garbage", "not.a.token", "malformed"),
            ]
            for what, tok, reason in cases:
                with self.subTest(what=what):
                    code, text = await refused(url, tok)
                    self.assertEqual(code, 1008, (what, text))
                    self.assertTrue(text.startswith("token refused"), text)
            # Within the leeway an expired token is still good.
            tok = token({**good, "exp": now - 2}, k.rsa, "RS256", "rsa")
            ws = await ws_connect(f"{url}?token={tok}")
            self.assertEqual((await request(ws, {"type": "Ping"}))["type"], "Pong")
            await ws.close()
            m = srv.metrics()
            for _, _, reason in cases:
                self.assertGreaterEqual(m.value("websocket_auth_failures_total", reason=reason), 1,
                                        reason)

    async def test_keys_rotate_on_sighup(self):
        k = self.keys
        first = json.loads(k.jwks)
        path = write(self, json.dumps({"keys": [j for j in first["keys"] if j["kid"] == "rsa"]}),
                     ".json")
        with WstraceServer("--auth-jwks", path) as srv:
            old = token({"sub": "a"}, k.rsa, "RS256", "rsa")
            new = token({"sub": "b"}, k.ed, "EdDSA", "ed")
            self.assertEqual((await refused(srv.url(), new))[0], 1008)
            with open(path, "w") as f:
                f.write(json.dumps({"keys": [j for j in first["keys"] if j["kid"] == "ed"]}))
            srv.signal(signal.SIGHUP)
            srv.expect_log(lambda j: j.get("msg") == "token keys reloaded (SIGHUP)",
                           what="the key reload")
            ws = await ws_connect(f"{srv.url()}?token={new}")
            self.assertEqual((await request(ws, {"type": "Ping"}))["type"], "Pong")
            await ws.close()
            self.assertEqual((await refused(srv.url(), old))[0], 1008)
            # A broken file keeps the keys in use.
            with open(path, "w") as f:
                f.write("{broken")
            srv.signal(signal.SIGHUP)
            srv.expect_log(lambda j: j.get("level") == "error" and "refused" in j.get("msg", ""),
                           what="the broken key file refused")
            ws = await ws_connect(f"{srv.url()}?token={new}")
            self.assertEqual((await request(ws, {"type": "Ping"}))["type"], "Pong")
            await ws.close()


PERMISSION_RULES = """
[[channel]]
match = "user:{sub}"
subscribe = "authenticated"
publish = "api"

[[channel]]
match = "user:*"
subscribe = "claim"
publish = "claim"

[[channel]]
match = "room:*"
subscribe = "claim"
publish = "subscribers"

[[channel]]
match = "lobby"
subscribe = "anyone"
publish = "authenticated"
"""


@unittest.skipIf(jwt is None, "python3-jwt is not installed")
class Permissions(AsyncTestCase):

    async def test_the_permissions_matrix(self):
        secret = "perm-secret-0123456789abcdef0123456789"
        rules = write(self, PERMISSION_RULES, ".toml")
        with WstraceServer("--auth-secret", secret, "--config", rules) as srv:
            alice_tok = jwt.encode({"sub": "alice", "channels": ["room:1", "user:bob"],
                                    "publish": ["user:bob"]}, secret, algorithm="HS256")
            bob_tok = jwt.encode({"sub": "bob"}, secret, algorithm="HS256")
            alice = await ws_connect(f"{srv.url()}?token={alice_tok}")
            bob = await ws_connect(f"{srv.url()}?token={bob_tok}")
            anon = await ws_connect(srv.url())

            async def outcome(ws, msg):
                await ws.send(json.dumps({**msg, "id": 1}))
                while True:  # the client's own deliveries may come in between
                    r = await recv_json(ws, what=f"the reply to {msg}")
                    if r.get("id") == 1:
                        return r["type"] if r["type"] != "Error" else r["code"]

            sub = lambda ch: {"type": "Subscribe", "channel": ch}  # noqa: E731
            pub = lambda ch: {"type": "Message", "channel": ch, "content": "x"}  # noqa: E731
            hist = lambda ch: {"type": "History", "channel": ch}  # noqa: E731
            matrix = [
                # (client, message, expected)
                (alice, sub("user:alice"), "Subscribed"),    # her own channel
                (bob, sub("user:alice"), "forbidden"),       # someone else's, no claim
                (anon, sub("user:alice"), "unauthorized"),
                (alice, sub("user:bob"), "Subscribed"),      # granted by her claim
                (alice, pub("user:alice"), "forbidden"),     # only the server API publishes
                (alice, pub("user:bob"), "Published"),       # claim 'publish'
                (bob, pub("user:alice"), "forbidden"),
                (alice, sub("room:1"), "Subscribed"),        # claim 'channels'
                (alice, sub("room:2"), "forbidden"),
                (bob, sub("room:1"), "forbidden"),
                (alice, pub("room:1"), "Published"),         # she is a subscriber
                (bob, pub("room:1"), "forbidden"),           # he is not
                (anon, sub("lobby"), "Subscribed"),          # anyone
                (anon, pub("lobby"), "unauthorized"),
                (bob, pub("lobby"), "Published"),
                (anon, sub("elsewhere"), "unauthorized"),    # no rule: tokens required
                (bob, sub("elsewhere"), "Subscribed"),
                (bob, hist("user:alice"), "forbidden"),      # History needs subscribe rights
                (alice, hist("room:1"), "History"),
            ]
            for ws, msg, want in matrix:
                with self.subTest(msg=msg, want=want):
                    if msg["type"] == "Message":
                        msg = {**msg, "id": 1}
                    got = await outcome(ws, msg)
                    self.assertEqual(got, want, msg)
            m = srv.metrics()
            self.assertEqual(m.value("websocket_permission_refusals_total",
                                     error_type="forbidden"), 7)
            self.assertEqual(m.value("websocket_permission_refusals_total",
                                     error_type="unauthorized"), 3)
            for ws in (alice, bob, anon):
                await ws.close()


@unittest.skipIf(jwt is None, "python3-jwt is not installed")
class Expiry(AsyncTestCase):

    async def test_refresh_before_exp_or_4401(self):
        secret = "exp-secret-0123456789abcdef0123456789ab"
        args = ("--auth-secret", secret, "--auth-refresh-before", "2s", "--auth-leeway", "0s",
                "--heartbeat-interval", "0", "--client-timeout", "0")
        with WstraceServer(*args) as srv:
            exp = int(time.time()) + 3
            tok = jwt.encode({"sub": "carol", "exp": exp}, secret, algorithm="HS256")
            good = await ws_connect(f"{srv.url()}?token={tok}")
            lazy = await ws_connect(f"{srv.url()}?token={tok}")
            for ws in (good, lazy):
                r = await recv_json(ws, timeout=20, what="the server's Refresh request")
                self.assertEqual(r, {"type": "Refresh", "expires": exp})
            later = int(time.time()) + 600
            new = jwt.encode({"sub": "carol", "exp": later}, secret, algorithm="HS256")
            r = await request(good, {"type": "Refresh", "token": new, "id": "r"})
            self.assertEqual(r, {"type": "Refreshed", "expires": later, "id": "r"})
            # Someone else's token is no refresh.
            other = jwt.encode({"sub": "mallory", "exp": later}, secret, algorithm="HS256")
            r = await request(lazy, {"type": "Refresh", "token": other, "id": "x"})
            self.assertEqual((r["type"], r["code"]), ("Error", "forbidden"))
            # The lazy one is closed at exp with 4401; the refreshed one stays.
            await asyncio.wait_for(lazy.wait_closed(), 20)
            self.assertEqual((lazy.close_code, lazy.close_reason), (4401, "token expired"))
            self.assertEqual((await request(good, {"type": "Ping"}))["type"], "Pong")
            m = srv.metrics()
            self.assertEqual(m.value("websocket_auth_refreshes_total", outcome="requested"), 2)
            self.assertEqual(m.value("websocket_auth_refreshes_total", outcome="refreshed"), 1)
            self.assertEqual(m.value("websocket_auth_refreshes_total", outcome="expired"), 1)
            # The closed connection's span carries the steps as events.
            spans = json.loads(srv.admin_get("/api/traces?limit=1000")[1])["spans"]
            [conn] = [x for x in spans if x["name"] == "websocket.connection"
                      and x["attributes"].get("websocket.close.code") == 4401]
            self.assertEqual([e["name"] for e in conn["events"]],
                             ["websocket.token.refresh_requested", "websocket.token.expired"])
            await good.close()


if __name__ == "__main__":
    unittest.main()
