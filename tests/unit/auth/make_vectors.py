#!/usr/bin/python3
"""Test vectors for the JWT layer (src/auth), made by an independent
implementation: PyJWT and pyca/cryptography, as Debian 12 packages them.

    apt-get install -y python3-jwt python3-cryptography
    /usr/bin/python3 tests/unit/auth/make_vectors.py

writes tests/unit/auth/data/: the public keys as PEM files (SubjectPublicKeyInfo,
an X.509 certificate, PKCS#1), a JWK Set, and vectors.h: the HMAC secret, each
JWK alone (for the key-building tests to compose), and the tokens with the
result our verify() must give. Every run makes new keys, so every file
changes; the tests only rely on what this script writes.

Each token that should verify is decoded here by PyJWT with the same options
first, and each rejection PyJWT has an opinion on is checked to be refused by
PyJWT too, so the expectations are not just ours. The private keys are never
written.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import sys

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

NOW = 1_750_000_000  # the "now" every vector is verified at (2025-06-15)
FAR = 4_102_444_800  # 2100-01-01: exp of the tokens that must verify
AUD = "wstrace"
ISS = "https://issuer.example"
OPTS = {"audience": AUD, "issuer": ISS, "leeway": 0, "now": NOW}
CLAIMS = {
    "sub": "alice",
    "iss": ISS,
    "aud": AUD,
    "iat": NOW - 60,
    "exp": FAR,
    "channels": ["room:*", "user:{sub}"],
    "publish": ["room:lobby"],
}


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pem_public(key, fmt=serialization.PublicFormat.SubjectPublicKeyInfo) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt)


def ec_jwk(key, crv, size, **extra):
    # PyJWT 2.6's ECAlgorithm.to_jwk drops leading zero bytes of x and y;
    # RFC 7518 §6.2.1.2 wants the curve's full length, so we spell it here.
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "x": b64u(n.x.to_bytes(size, "big")),
            "y": b64u(n.y.to_bytes(size, "big")), **extra}


def okp_jwk(key, crv, **extra):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": crv, "x": b64u(raw), **extra}


def rsa_jwk(key, **extra):
    return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), **extra}


# ---- keys -----------------------------------------------------------------

rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa_small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
p256 = ec.generate_private_key(ec.SECP256R1())
p384 = ec.generate_private_key(ec.SECP384R1())
p521 = ec.generate_private_key(ec.SECP521R1())
ed1 = ed25519.Ed25519PrivateKey.generate()
ed448_key = ed448.Ed448PrivateKey.generate()
x25519_key = x25519.X25519PrivateKey.generate()
SECRET = secrets.token_urlsafe(48).encode()  # 64 ASCII bytes, used as they are

rsa1_pem = pem_public(rsa1)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wstrace test issuer")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(rsa1.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2024, 1, 1))
        .not_valid_after(datetime.datetime(2100, 1, 1))
        .sign(rsa1, hashes.SHA256()))

files = {
    "rsa.pem": rsa1_pem,
    "rsa_cert.pem": cert.public_bytes(serialization.Encoding.PEM),
    "rsa_pkcs1.pem": pem_public(rsa1, serialization.PublicFormat.PKCS1),
    "p256.pem": pem_public(p256),
    "p384.pem": pem_public(p384),
    "ed25519.pem": pem_public(ed1),
    "rsa1024.pem": pem_public(rsa_small),
    "p521.pem": pem_public(p521),
    "ed448.pem": pem_public(ed448_key),
}

jwk = {
    "rsa-1": rsa_jwk(rsa1, kid="rsa-1"),
    "rsa-2": rsa_jwk(rsa2, kid="rsa-2", alg="RS256", use="sig"),
    "rsa-enc": rsa_jwk(rsa1, kid="rsa-enc", use="enc"),
    "ec-256": ec_jwk(p256, "P-256", 32, kid="ec-256"),
    "ec-384": ec_jwk(p384, "P-384", 48, kid="ec-384", alg="ES384"),
    "ec-521": ec_jwk(p521, "P-521", 66, kid="ec-521"),
    "ed-1": okp_jwk(ed1, "Ed25519", kid="ed-1"),
    "hs-1": {**json.loads(jwt.algorithms.HMACAlgorithm.to_jwk(SECRET)), "kid": "hs-1"},
    # Only for the key-building tests:
    "rsa-1024": rsa_jwk(rsa_small, kid="rsa-1024"),
    "x25519": okp_jwk(x25519_key, "X25519", kid="x25519"),
    "ed448": okp_jwk(ed448_key, "Ed448", kid="ed448"),
}
# The P-256 key with y changed by one bit: a point off the curve.
off = dict(jwk["ec-256"], kid="ec-off-curve")
y = bytearray(unb64u(off["y"]))
y[-1] ^= 1
off["y"] = b64u(bytes(y))
try:
    ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b"\x04" + unb64u(off["x"]) + bytes(y))
    sys.exit("the changed point is on the curve; run again")
except ValueError:
    pass
jwk["ec-off-curve"] = off
# x without its first byte (the form PyJWT 2.6 writes when that byte is 0).
short = dict(jwk["ec-256"], kid="ec-short-x")
short["x"] = b64u(unb64u(short["x"])[1:])
jwk["ec-short-x"] = short

JWKS_KIDS = ["rsa-1", "rsa-2", "rsa-enc", "ec-256", "ec-384", "ec-521", "ed-1", "hs-1"]
files["jwks.json"] = (json.dumps({"keys": [jwk[k] for k in JWKS_KIDS]}, indent=2) + "\n").encode()

SIGNERS = {  # alg -> (PyJWT signing key, kid in the JWK Set, the single-key set)
    "HS256": (SECRET, "hs-1", "secret"),
    "HS384": (SECRET, "hs-1", "secret"),
    "HS512": (SECRET, "hs-1", "secret"),
    "RS256": (rsa1, "rsa-1", "rsa_pem"),
    "RS384": (rsa1, "rsa-1", "rsa_cert"),
    "RS512": (rsa1, "rsa-1", "rsa_pkcs1"),
    "PS256": (rsa1, "rsa-1", "rsa_pem"),
    "ES256": (p256, "ec-256", "p256_pem"),
    "ES384": (p384, "ec-384", "p384_pem"),
    "EdDSA": (ed1, "ed-1", "ed25519_pem"),
}
PUBLIC = {  # what PyJWT verifies with, per signing key
    id(SECRET): SECRET, id(rsa1): rsa1.public_key(), id(rsa2): rsa2.public_key(),
    id(p256): p256.public_key(), id(p384): p384.public_key(), id(ed1): ed1.public_key(),
}


def sign(claims, alg, key=None, kid=None, headers=None):
    key = SIGNERS[alg][0] if key is None else key
    h = dict(headers or {})
    if kid:
        h["kid"] = kid
    return jwt.encode(claims, key, algorithm=alg, headers=h or None)


def raw_token(header: bytes, payload: bytes, secret: bytes, digest=hashlib.sha256) -> str:
    """A token signed with Python's hmac, for headers PyJWT will not write."""
    signing = b64u(header) + "." + b64u(payload)
    return signing + "." + b64u(hmac.new(secret, signing.encode(), digest).digest())


def with_sig(token: str, sig: bytes) -> str:
    return token.rsplit(".", 1)[0] + "." + b64u(sig)


def flip(token: str) -> str:
    sig = bytearray(unb64u(token.rsplit(".", 1)[1]))
    sig[len(sig) // 2] ^= 0x01
    return with_sig(token, bytes(sig))


vectors = []


def add(name, token, keyset, code, pyjwt=None, claims=None, **opts):
    """pyjwt: (key, alg) PyJWT must accept the token with (code "ok") or
    refuse it with (otherwise); None when PyJWT has no say (kid selection,
    our channel claims, ...)."""
    o = {**OPTS, **opts}
    if pyjwt is not None:
        key, alg = pyjwt
        try:
            jwt.decode(token, PUBLIC.get(id(key), key), algorithms=[alg],
                       audience=o["audience"] or None, issuer=o["issuer"] or None,
                       leeway=o["leeway"],
                       options={"verify_iat": False, "require": []})
            accepted = True
        except jwt.PyJWTError:
            accepted = False
        except Exception as e:  # PyJWT sometimes fails on bad input with others
            accepted = False
            print(f"note: PyJWT raised {type(e).__name__} on {name}", file=sys.stderr)
        if accepted != (code == "ok"):
            sys.exit(f"{name}: PyJWT {'accepts' if accepted else 'refuses'} it, we expect {code}")
    c = claims if claims is not None else (CLAIMS if code == "ok" else None)
    vectors.append({"name": name, "token": token, "keyset": keyset, "code": code, "claims": c,
                    **o})


# PyJWT checks exp/nbf against the real clock: while making the time vectors
# we let it see NOW instead.
class FrozenDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(NOW, tz)

    @classmethod
    def utcnow(cls):
        return datetime.datetime.utcfromtimestamp(NOW)


jwt.api_jwt.datetime = FrozenDatetime

# ---- every algorithm, by kid in the JWK Set and alone -----------------------

for alg, (key, kid, single) in SIGNERS.items():
    add(f"{alg} by kid", sign(CLAIMS, alg, kid=kid), "jwks", "ok", (key, alg))
    add(f"{alg} without kid, single key", sign(CLAIMS, alg), single, "ok", (key, alg))
    add(f"{alg} flipped signature byte", flip(sign(CLAIMS, alg, kid=kid)), "jwks", "bad_signature",
        (key, alg))
# Without a kid, the one key of the JWK Set that can verify the alg is used.
for alg in ["HS512", "PS256", "ES256", "ES384", "EdDSA"]:
    add(f"{alg} without kid, one usable key in the set", sign(CLAIMS, alg), "jwks", "ok")
add("RS256 without kid, two RSA keys can verify it", sign(CLAIMS, "RS256"), "jwks", "unknown_kid")
add("RS256 by the RS256-only key", sign(CLAIMS, "RS256", key=rsa2, kid="rsa-2"), "jwks", "ok",
    (rsa2, "RS256"))
add("HS256 secret in a KeySet of its own", sign(CLAIMS, "HS256"), "secret", "ok",
    (SECRET, "HS256"))
add("RS256 against the certificate's key", sign(CLAIMS, "RS256"), "rsa_cert", "ok",
    (rsa1, "RS256"))

# ---- signatures -----------------------------------------------------------

t = sign(CLAIMS, "RS256", kid="rsa-1")
h, p, s = t.split(".")
add("RS256 claims changed after signing",
    h + "." + b64u(json.dumps({**CLAIMS, "sub": "admin"}).encode()) + "." + s, "jwks",
    "bad_signature", (rsa1, "RS256"))
add("RS256 signature of another key", sign(CLAIMS, "RS256", key=rsa2, kid="rsa-1"), "jwks",
    "bad_signature", (rsa1, "RS256"))
add("RS256 signature with a zero byte in front", with_sig(t, b"\0" + unb64u(s)), "jwks",
    "bad_signature", (rsa1, "RS256"))
add("RS256 signature cut by one byte", with_sig(t, unb64u(s)[:-1]), "jwks", "bad_signature",
    (rsa1, "RS256"))
add("PS256 signature with a zero byte in front",
    with_sig(tp := sign(CLAIMS, "PS256", kid="rsa-1"), b"\0" + unb64u(tp.rsplit(".", 1)[1])),
    "jwks", "bad_signature")
pkcs1_header = b64u(json.dumps({"alg": "PS256", "kid": "rsa-1"}).encode())
pkcs1_input = pkcs1_header + "." + b64u(json.dumps(CLAIMS).encode())
add("PKCS#1 v1.5 signature presented as PS256",
    pkcs1_input + "." + b64u(rsa1.sign(pkcs1_input.encode(), padding.PKCS1v15(), hashes.SHA256())),
    "jwks", "bad_signature", (rsa1, "PS256"))
pss_max_salt = rsa1.sign(pkcs1_input.encode(),
                         padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                     salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256())
add("PS256 with the longest salt instead of 32 bytes", pkcs1_input + "." + b64u(pss_max_salt),
    "jwks", "bad_signature")
def leading_zero_signature(alg, kid):
    """A token whose signature starts with a zero byte (about 1 in 256), so
    the same signature can also be written one byte shorter."""
    for i in range(100000):
        tok = sign({**CLAIMS, "jti": str(i)}, alg, kid=kid)
        if unb64u(tok.rsplit(".", 1)[1])[0] == 0:
            return tok
    sys.exit("no signature with a leading zero byte")


# RFC 8017 §8.1.2/§8.2.2: a signature is exactly k bytes. OpenSSL (and so
# PyJWT) takes a shorter PSS signature as one with leading zeros; we do not.
for alg in ["RS256", "PS256"]:
    tok = leading_zero_signature(alg, "rsa-1")
    add(f"{alg} signature with a leading zero byte", tok, "jwks", "ok", (rsa1, alg),
        claims={**CLAIMS, "jti": "x"})
    add(f"{alg} signature without its leading zero byte",
        with_sig(tok, unb64u(tok.rsplit(".", 1)[1])[1:]), "jwks", "bad_signature")
add("HS256 with another secret", sign(CLAIMS, "HS256", key=b"another secret", kid="hs-1"), "jwks",
    "bad_signature", (SECRET, "HS256"))
add("HS384 signature cut to 32 bytes",
    with_sig(t384 := sign(CLAIMS, "HS384", kid="hs-1"), unb64u(t384.rsplit(".", 1)[1])[:32]),
    "jwks", "bad_signature", (SECRET, "HS384"))

# ES signatures are r||s of exactly 64 (ES256) or 96 (ES384) bytes.
t = sign(CLAIMS, "ES256", kid="ec-256")
signing = t.rsplit(".", 1)[0].encode()
der = p256.sign(signing, ec.ECDSA(hashes.SHA256()))
add("ES256 signature in DER instead of r||s", with_sig(t, der), "jwks", "bad_signature",
    (p256, "ES256"))
raw = unb64u(t.rsplit(".", 1)[1])
add("ES256 signature of 63 bytes", with_sig(t, raw[:-1]), "jwks", "bad_signature", (p256, "ES256"))
add("ES256 signature of 65 bytes", with_sig(t, raw + b"\0"), "jwks", "bad_signature",
    (p256, "ES256"))
r, s_ = decode_dss_signature(der)
add("ES256 r||s with r and s swapped", with_sig(t, s_.to_bytes(32, "big") + r.to_bytes(32, "big")),
    "jwks", "bad_signature", (p256, "ES256"))
add("ES256 r||s of zeros", with_sig(t, bytes(64)), "jwks", "bad_signature", (p256, "ES256"))
t = sign(CLAIMS, "ES384", kid="ec-384")
add("ES384 signature of 64 bytes", with_sig(t, unb64u(t.rsplit(".", 1)[1])[:64]), "jwks",
    "bad_signature", (p384, "ES384"))
add("ES384 signature of 97 bytes", with_sig(t, unb64u(t.rsplit(".", 1)[1]) + b"\1"), "jwks",
    "bad_signature", (p384, "ES384"))
t = sign(CLAIMS, "EdDSA", kid="ed-1")
add("EdDSA signature of 63 bytes", with_sig(t, unb64u(t.rsplit(".", 1)[1])[:63]), "jwks",
    "bad_signature", (ed1, "EdDSA"))
add("signature segment empty", t.rsplit(".", 1)[0] + ".", "jwks", "bad_signature", (ed1, "EdDSA"))

# ---- algorithms and keys --------------------------------------------------

none = jwt.encode(CLAIMS, None, algorithm="none")
add("alg none", none, "jwks", "unsupported_algorithm", (SECRET, "HS256"))
add("alg none against a secret", none, "secret", "unsupported_algorithm", (SECRET, "HS256"))
add("alg none with a kid", jwt.encode(CLAIMS, None, algorithm="none", headers={"kid": "hs-1"}),
    "jwks", "unsupported_algorithm")
add("alg None", raw_token(b'{"alg":"None"}', json.dumps(CLAIMS).encode(), SECRET), "secret",
    "unsupported_algorithm")
add("alg hs256 (case matters)", raw_token(b'{"alg":"hs256"}', json.dumps(CLAIMS).encode(), SECRET),
    "secret", "unsupported_algorithm")
add("alg ES512 (not supported)", sign(CLAIMS, "ES512", key=p521), "jwks", "unsupported_algorithm")
add("alg PS384 (not supported)", sign(CLAIMS, "PS384", key=rsa1, kid="rsa-1"), "jwks",
    "unsupported_algorithm")

# Algorithm confusion: an HS256 token whose "secret" is the RSA public key as
# the server has it (the PEM file's bytes). PyJWT refuses to sign like that,
# so Python's hmac does.
conf = raw_token(b'{"alg":"HS256","typ":"JWT"}', json.dumps(CLAIMS).encode(), rsa1_pem)
add("HS256 signed with the RSA PEM as secret, against the PEM", conf, "rsa_pem",
    "algorithm_mismatch")
add("HS256 signed with the RSA PEM as secret, against the certificate", conf, "rsa_cert",
    "algorithm_mismatch")
add("HS256 signed with the RSA PEM as secret, kid of the RSA JWK",
    raw_token(b'{"alg":"HS256","kid":"rsa-1"}', json.dumps(CLAIMS).encode(), rsa1_pem), "jwks",
    "algorithm_mismatch")
add("HS256 signed with the RSA JWK as secret",
    raw_token(b'{"alg":"HS256","kid":"rsa-1"}', json.dumps(CLAIMS).encode(),
              json.dumps(jwk["rsa-1"]).encode()), "jwks", "algorithm_mismatch")
add("HS256 token against an EC key", sign(CLAIMS, "HS256"), "p256_pem", "algorithm_mismatch")
add("RS256 token against a secret", sign(CLAIMS, "RS256"), "secret", "algorithm_mismatch")
add("ES384 token against a P-256 key", sign(CLAIMS, "ES384"), "p256_pem", "algorithm_mismatch")
add("ES256 token against a P-384 key", sign(CLAIMS, "ES256"), "p384_pem", "algorithm_mismatch")
add("EdDSA token against an RSA key", sign(CLAIMS, "EdDSA"), "rsa_pem", "algorithm_mismatch")
add("RS256 token naming the P-256 key", sign(CLAIMS, "RS256", kid="ec-256"), "jwks",
    "algorithm_mismatch")
add("ES256 token naming the P-384 key", sign(CLAIMS, "ES256", kid="ec-384"), "jwks",
    "algorithm_mismatch")
add("RS384 token naming the RS256-only key", sign(CLAIMS, "RS384", key=rsa2, kid="rsa-2"), "jwks",
    "algorithm_mismatch")
add("PS256 token naming the RS256-only key", sign(CLAIMS, "PS256", key=rsa2, kid="rsa-2"), "jwks",
    "algorithm_mismatch")
add("HS256 token naming the Ed25519 key", sign(CLAIMS, "HS256", kid="ed-1"), "jwks",
    "algorithm_mismatch")

add("unknown kid", sign(CLAIMS, "RS256", kid="nope"), "jwks", "unknown_kid")
add("kid of a use=enc key", sign(CLAIMS, "RS256", kid="rsa-enc"), "jwks", "unknown_kid")
add("kid of a P-521 key (left out)", sign(CLAIMS, "ES512", key=p521, kid="ec-521"), "jwks",
    "unsupported_algorithm")
# A key configured without kid verifies a token whatever kid it names.
add("kid against a PEM key without kid", sign(CLAIMS, "RS256", kid="rsa-1"), "rsa_pem", "ok",
    pyjwt=(rsa1, "RS256"))

# ---- time -----------------------------------------------------------------

def timed(**claims):
    return {**CLAIMS, **claims}


for alg in ["HS256", "ES256"]:
    key, kid, _ = SIGNERS[alg]
    c = timed(exp=NOW - 10)
    tok = sign(c, alg, kid=kid)
    add(f"{alg} expired 10 s ago", tok, "jwks", "expired", (key, alg))
    add(f"{alg} expired 10 s ago, leeway 30", tok, "jwks", "ok", (key, alg), claims=c, leeway=30)
    add(f"{alg} expired 10 s ago, leeway 10", tok, "jwks", "expired", (key, alg), leeway=10)
    add(f"{alg} expired 10 s ago, leeway 11", tok, "jwks", "ok", (key, alg), claims=c, leeway=11)
    c = timed(nbf=NOW + 10)
    tok = sign(c, alg, kid=kid)
    add(f"{alg} valid in 10 s", tok, "jwks", "not_yet_valid", (key, alg))
    add(f"{alg} valid in 10 s, leeway 30", tok, "jwks", "ok", (key, alg), claims=c, leeway=30)
    add(f"{alg} valid in 10 s, leeway 9", tok, "jwks", "not_yet_valid", (key, alg), leeway=9)
    add(f"{alg} valid in 10 s, leeway 10", tok, "jwks", "ok", (key, alg), claims=c, leeway=10)
c = timed(exp=NOW)
add("exp equal to now", sign(c, "HS256"), "secret", "expired", (SECRET, "HS256"))
c = timed(exp=NOW + 1, nbf=NOW)
add("exp now + 1, nbf now", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"), claims=c)
c = timed(exp=NOW + 0.5)
add("fractional exp in the current second", sign(c, "HS256"), "secret", "expired")
c = timed(exp=NOW + 1.5)
add("fractional exp after the current second", sign(c, "HS256"), "secret", "ok",
    claims={**c, "exp": NOW + 1})
c = timed(nbf=NOW + 0.5)
add("fractional nbf in the current second", sign(c, "HS256"), "secret", "not_yet_valid")
c = {k: v for k, v in CLAIMS.items() if k != "exp"}
add("no exp", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"), claims={**c, "exp": 0})
add("expired long ago, verified long ago", sign(timed(exp=1_000_000_100), "HS256"), "secret", "ok",
    claims=timed(exp=1_000_000_100), now=1_000_000_000)
add("huge exp", sign(timed(exp=1e30), "HS256"), "secret", "ok",
    claims=timed(exp=2**63 - 1))

# ---- audience and issuer --------------------------------------------------

add("aud of another service", sign(timed(aud="other"), "HS256"), "secret", "wrong_audience",
    (SECRET, "HS256"))
c = timed(aud=["other", AUD])
add("aud array containing ours", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"), claims=c)
add("aud array without ours", sign(timed(aud=["a", "b"]), "HS256"), "secret", "wrong_audience",
    (SECRET, "HS256"))
add("aud empty array", sign(timed(aud=[]), "HS256"), "secret", "wrong_audience", (SECRET, "HS256"))
c = {k: v for k, v in CLAIMS.items() if k != "aud"}
add("no aud while one is expected", sign(c, "HS256"), "secret", "wrong_audience",
    (SECRET, "HS256"))
add("no aud, none expected", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"), claims=c,
    audience="")
add("aud while none is expected", sign(CLAIMS, "HS256"), "secret", "wrong_audience",
    (SECRET, "HS256"), audience="")
add("aud differs by case", sign(timed(aud="WSTRACE"), "HS256"), "secret", "wrong_audience",
    (SECRET, "HS256"))
add("iss of another issuer", sign(timed(iss="https://evil.example"), "HS256"), "secret",
    "wrong_issuer", (SECRET, "HS256"))
add("iss with a trailing slash", sign(timed(iss=ISS + "/"), "HS256"), "secret", "wrong_issuer",
    (SECRET, "HS256"))
c = {k: v for k, v in CLAIMS.items() if k != "iss"}
add("no iss while one is expected", sign(c, "HS256"), "secret", "wrong_issuer", (SECRET, "HS256"))
add("any iss when none is expected", sign(timed(iss="whoever"), "HS256"), "secret", "ok",
    (SECRET, "HS256"), claims=timed(iss="whoever"), issuer="")

# ---- claims ---------------------------------------------------------------

c = timed(sub=42)
add("integer sub", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"), claims={**c, "sub": "42"})
c = timed(sub="u" * 256)
add("sub of 256 bytes", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"), claims=c)
c = {k: v for k, v in CLAIMS.items() if k not in ("sub", "channels", "publish")}
add("no sub, channels or publish", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"),
    claims={**c, "sub": ""})
c = timed(channels=[], publish=[])
add("empty channels and publish", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"), claims=c)
c = timed(channels=["a", "Z-9_.:/x", "*", "?", "{sub}", "user:{sub}:*", "x" * 256])
add("every pattern character", sign(c, "HS256"), "secret", "ok", claims=c)
c = timed(sub="élodie", extra={"nested": [1, 2, {"a": None}]})
add("other claims ignored, UTF-8 sub", sign(c, "HS256"), "secret", "ok", (SECRET, "HS256"),
    claims=c)

BAD_CLAIMS = [  # (name, claims, PyJWT refuses it too)
    ("channels a string", timed(channels="room:*"), False),
    ("channels with a number", timed(channels=["room:*", 1]), False),
    ("channels an object", timed(channels={"room": "*"}), False),
    ("channels null", timed(channels=None), False),
    ("channels with an empty pattern", timed(channels=[""]), False),
    ("channels with a space", timed(channels=["room 1"]), False),
    ("channels with another placeholder", timed(channels=["user:{user}"]), False),
    ("channels with a lone brace", timed(channels=["user:{sub"]), False),
    ("channels with a pattern of 257 bytes", timed(channels=["x" * 257]), False),
    ("channels with a non-ASCII pattern", timed(channels=["salle:é"]), False),
    ("publish with a number", timed(publish=[7]), False),
    ("publish a string", timed(publish="room:lobby"), False),
    ("sub a float", timed(sub=1.5), False),
    ("sub an array", timed(sub=["alice"]), False),
    ("sub of 257 bytes", timed(sub="u" * 257), False),
    ("sub null", timed(sub=None), False),
    ("exp a string", timed(exp=str(FAR)), False),  # PyJWT takes int("...")
    ("nbf a boolean", timed(nbf=True), False),
    ("iat a string", timed(iat="yesterday"), False),
    ("aud a number", timed(aud=5), True),
    ("aud array with a number", timed(aud=[AUD, 5]), True),
    ("iss a number", timed(iss=7), True),
]
for name, claims, pyjwt_refuses in BAD_CLAIMS:
    add(name, sign(claims, "HS256"), "secret", "bad_claim",
        (SECRET, "HS256") if pyjwt_refuses else None)

# ---- malformed ------------------------------------------------------------

good = sign(CLAIMS, "HS256")
gh, gp, gs = good.split(".")
MALFORMED = [
    ("empty", ""),
    ("one segment", gh),
    ("two segments", gh + "." + gp),
    ("four segments", good + "." + gs),
    ("Bearer prefix", "Bearer " + good),
    ("trailing space", good + " "),
    ("padding", good + "="),
    ("header with padding", gh + "=." + gp + "." + gs),
    ("standard base64 in the header", gh[:-1] + "+." + gp + "." + gs),
    ("a lone base64 character", gh + "." + gp + "." + gs + "A" * ((1 - len(gs)) % 4)),
    # 32 bytes are 43 characters, the last with 2 unused bits: set one.
    ("non-zero unused bits in the signature",
     gh + "." + gp + "." + gs[:-1] + B64[B64.index(gs[-1]) | 1]),
    ("NUL in the claims", gh + "." + gp + "\0." + gs),
    ("claims in standard base64", gh + "." + gp[:-1] + "/." + gs),
    ("header not JSON", raw_token(b"alg HS256", json.dumps(CLAIMS).encode(), SECRET)),
    ("header a JSON array", raw_token(b'["HS256"]', json.dumps(CLAIMS).encode(), SECRET)),
    ("header empty", raw_token(b"", json.dumps(CLAIMS).encode(), SECRET)),
    ("header without alg", raw_token(b'{"typ":"JWT"}', json.dumps(CLAIMS).encode(), SECRET)),
    ("alg a number", raw_token(b'{"alg":256}', json.dumps(CLAIMS).encode(), SECRET)),
    ("alg twice", raw_token(b'{"alg":"HS256","alg":"none"}', json.dumps(CLAIMS).encode(), SECRET)),
    ("alg twice, other order",
     raw_token(b'{"alg":"none","alg":"HS256"}', json.dumps(CLAIMS).encode(), SECRET)),
    ("kid a number", raw_token(b'{"alg":"HS256","kid":1}', json.dumps(CLAIMS).encode(), SECRET)),
    ("kid empty", raw_token(b'{"alg":"HS256","kid":""}', json.dumps(CLAIMS).encode(), SECRET)),
    ("crit header", raw_token(b'{"alg":"HS256","crit":["exp"],"exp":1}',
                              json.dumps(CLAIMS).encode(), SECRET)),
    ("claims not JSON", raw_token(b'{"alg":"HS256"}', b"sub=alice", SECRET)),
    ("claims a JSON array", raw_token(b'{"alg":"HS256"}', b'["alice"]', SECRET)),
    ("claims empty", raw_token(b'{"alg":"HS256"}', b"", SECRET)),
    ("claims truncated JSON", raw_token(b'{"alg":"HS256"}', b'{"sub":"alice"', SECRET)),
    ("claim twice", raw_token(b'{"alg":"HS256"}', b'{"sub":"alice","sub":"admin"}', SECRET)),
    ("claims not UTF-8", raw_token(b'{"alg":"HS256"}', b'{"sub":"\xff"}', SECRET)),
    ("claims signed but not base64url",
     gh + ".*" + gp[1:] + "." + b64u(hmac.new(SECRET, (gh + ".*" + gp[1:]).encode(),
                                                hashlib.sha256).digest())),
]
for name, tok in MALFORMED:
    if tok is not None:
        add(f"malformed: {name}", tok, "secret", "malformed")
add("malformed: too long", raw_token(b'{"alg":"HS256"}',
                                     json.dumps(timed(pad="x" * 70000)).encode(), SECRET),
    "secret", "malformed")

# ---- output ---------------------------------------------------------------


def cstr(s) -> str:
    if isinstance(s, str):
        s = s.encode()
    out = []
    for b in s:
        c = chr(b)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F and c != "?":
            out.append(c)
        else:
            out.append(f'\\{b:03o}')
    return '"' + "".join(out) + '"'


def cvec(items) -> str:
    return "{" + ", ".join(cstr(i) for i in items) + "}"


os.makedirs(DATA, exist_ok=True)
for fname, content in files.items():
    with open(os.path.join(DATA, fname), "wb") as f:
        f.write(content)

lines = [
    f"// Generated by tests/unit/auth/make_vectors.py (PyJWT {jwt.__version__}): do not edit,",
    "// run the script again. Keys and tokens of an independent implementation.",
    "#pragma once",
    "",
    "#include <cstdint>",
    "#include <string>",
    "#include <vector>",
    "",
    "namespace wstrace::auth::vectors {",
    "",
    f"inline constexpr int64_t kNow = {NOW};",
    f"inline constexpr int64_t kFar = {FAR};",
    f"inline constexpr const char* kAudience = {cstr(AUD)};",
    f"inline constexpr const char* kIssuer = {cstr(ISS)};",
    f"inline constexpr const char* kSecret = {cstr(SECRET)};  // also jwks.json's hs-1",
    "",
    "// Each JWK alone (jwks.json holds rsa-1, rsa-2, rsa-enc, ec-256, ec-384,",
    "// ec-521, ed-1, hs-1 in that order).",
]
for k, v in jwk.items():
    ident = "kJwk" + "".join(part.capitalize() for part in k.replace("-", "_").split("_"))
    lines.append(f"inline constexpr const char* {ident} = {cstr(json.dumps(v))};")
lines += [
    "",
    "struct Vector {",
    "  const char* name;",
    "  // secret, jwks, rsa_pem, rsa_cert, rsa_pkcs1, p256_pem, p384_pem, ed25519_pem",
    "  const char* keyset;",
    "  std::string token;",
    "  const char* audience;",
    "  const char* issuer;",
    "  int64_t leeway;",
    "  int64_t now;",
    "  const char* code;  // error_code_name() of the result",
    "  // When code is \"ok\": the claims verify() returns.",
    "  const char* user;",
    "  int64_t exp;",
    "  bool has_channels;",
    "  std::vector<std::string> channels;",
    "  bool has_publish;",
    "  std::vector<std::string> publish;",
    "};",
    "",
    "inline const std::vector<Vector> kVectors = {",
]
for v in vectors:
    c = v["claims"] or {}
    lines.append(
        "    {" + ", ".join([
            cstr(v["name"]), cstr(v["keyset"]), cstr(v["token"]), cstr(v["audience"]),
            cstr(v["issuer"]), str(v["leeway"]), str(v["now"]), cstr(v["code"]),
            cstr(str(c.get("sub", ""))), str(int(c.get("exp", 0))),
            "true" if "channels" in c else "false", cvec(c.get("channels", [])),
            "true" if "publish" in c else "false", cvec(c.get("publish", [])),
        ]) + "},")
lines += ["};", "", "}  // namespace wstrace::auth::vectors", ""]
with open(os.path.join(DATA, "vectors.h"), "w") as f:
    f.write("\n".join(lines))
print(f"wrote {len(files)} key files and {len(vectors)} vectors to {DATA}")
