"""SASL for the client port: DIGEST-MD5's server side, and the JAAS file it reads users from.

Pure: bytes in, bytes out, no sockets, threads or clocks (the connection
carries it out, server/connection.py). It speaks what Apache ZooKeeper's
server speaks (ZooKeeperSaslServer: Java's DIGEST-MD5 SaslServer, RFC 2831,
with SaslServerCallbackHandler), so zkCli.sh with a JAAS ``Client`` section,
kazoo's ``sasl_options`` (pure-sasl) and nookeeper's own client authenticate:

1. the client's first token is empty (DIGEST-MD5 has no initial response;
   like Java's server, this one ignores what a client sends there); the
   server answers a challenge: realm "zk-sasl-md5", a fresh nonce,
   qop "auth", charset utf-8, algorithm md5-sess;
2. the client answers a digest-response: user name, the nonce, its cnonce,
   nc 1, digest-uri "zookeeper/zk-sasl-md5" and the digest proving the
   password; the server checks it against the user's password and answers
   rspauth (proving it knows the password too). Authentication is complete.

Only qop "auth" is offered: no integrity or privacy layer, as ZooKeeper's
server sets none. GSSAPI (Kerberos) is not offered: its first token (a
GSS-API initial context token, tag 0x60) fails the exchange at once, so the
client gets AuthFailed and the log says why (ZooKeeper, given no Kerberos
login, answers it a DIGEST-MD5 challenge that the Kerberos client then fails on).

The authorization id is ZooKeeper 3.8's: whatever authzid a client asks for,
SaslServerCallbackHandler authorizes it and sets the authorized id to the
authenticated user's name, so a session is always "sasl:<user>" (plus
"super" when that user is a configured super user); an authzid never lets a
client act as another user.

Users come from a JAAS file in ZooKeeper's own format, so operators reuse
theirs: every ``user_NAME="password"`` option of every login module in the
``Server`` section::

    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_bob="bobsecret";
    };
"""

import hashlib
import hmac
import secrets

REALM = "zk-sasl-md5"
SERVICE = "zookeeper"
HOST = "zk-sasl-md5"
MECHANISM = "DIGEST-MD5"
SERVER_SECTION = "Server"

# A digest-response is a few hundred bytes; anything far longer is not one.
MAX_TOKEN = 8192

_FLAGS = ("required", "requisite", "sufficient", "optional")
_USER_PREFIX = "user_"
_GSSAPI_TOKEN_TAG = 0x60  # ASN.1 [APPLICATION 0]: a GSS-API initial context token


class SaslFailure(Exception):
    """An exchange that cannot succeed: the client gets AuthFailed. ``user``
    is the name the client gave, when it got that far (for the log)."""

    def __init__(self, reason, user=None):
        super().__init__(reason)
        self.reason = reason
        self.user = user


class JaasError(Exception):
    """A JAAS file that cannot be read as ZooKeeper reads it; ``line`` is 1-based."""

    def __init__(self, message, line=None):
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


# -- DIGEST-MD5 (RFC 2831), server side ------------------------------------


def _h(data):
    return hashlib.md5(data).digest()


def _hex(data):
    return hashlib.md5(data).hexdigest().encode("ascii")


def response_value(user, realm, password, nonce, cnonce, nc, qop, digest_uri, authzid=None,
                   encoding="utf-8", a2_prefix=b"AUTHENTICATE"):
    """RFC 2831 2.1.2.1's response-value (and, with a2_prefix b"", rspauth's):
    HEX(KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2)))), A1 with md5-sess.
    Arguments are str: user, realm and password encoded with ``encoding``
    (ISO-8859-1 unless the client said charset=utf-8), the others as the
    bytes they were sent as (parse_directives keeps those recoverable)."""
    secret = _h(user.encode(encoding) + b":" + realm.encode(encoding) + b":"
                + password.encode(encoding))
    a1 = secret + b":" + _raw(nonce) + b":" + _raw(cnonce)
    if authzid:
        a1 += b":" + _raw(authzid)
    a2 = a2_prefix + b":" + _raw(digest_uri)
    return _hex(b":".join((_hex(a1), _raw(nonce), _raw(nc), _raw(cnonce), _raw(qop),
                           _hex(a2))))


def parse_directives(token):
    """A digest-challenge or digest-response as {name: value}: comma-separated
    name=value pairs (values a token or a quoted-string with backslash
    escapes, empty elements allowed). Values are str, decoded as UTF-8 (invalid
    bytes kept as surrogates, so the raw bytes can be recovered). A directive
    given twice, or text that is not name=value, raises SaslFailure."""
    text = token.decode("utf-8", errors="surrogateescape")
    directives = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in "=, \t\r\n":
            i += 1
        name = text[start:i].lower()
        while i < n and text[i] in " \t\r\n":
            i += 1
        if not name or i >= n or text[i] != "=":
            raise SaslFailure(f"malformed digest-response near {text[start:start + 20]!r}")
        i += 1
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value = []
            while True:
                if i >= n:
                    raise SaslFailure(f"unterminated quoted value of {name}")
                char = text[i]
                if char == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                elif char == '"':
                    i += 1
                    break
                else:
                    value.append(char)
                    i += 1
            value = "".join(value)
            while i < n and text[i] in " \t\r\n":
                i += 1
            if i < n and text[i] != ",":
                raise SaslFailure(f"junk after the quoted value of {name}")
        else:
            start = i
            while i < n and text[i] != ",":
                i += 1
            value = text[start:i].strip()
        if name in directives:
            raise SaslFailure(f"directive {name} given twice")
        directives[name] = value
    return directives


def _raw(value):
    """The bytes a directive's value was sent as."""
    return value.encode("utf-8", errors="surrogateescape")


def looks_like_gssapi(token):
    """Whether a first token is a GSS-API initial context token (a Kerberos client)."""
    return bool(token) and token[0] == _GSSAPI_TOKEN_TAG


class DigestMD5Server:
    """One connection's DIGEST-MD5 exchange, as ZooKeeper's server runs it.

    ``users`` maps a user name to its password; ``super_users`` are the
    names that also get the super identity (ZooKeeper's zookeeper.superUser).
    step() takes each client token and returns the token to answer, or
    raises SaslFailure. Once ``complete``, ``user`` is the authenticated
    name, ``authorization_id`` the identity the session gets ("sasl", it)
    and ``requested_authzid`` whatever authzid the client asked for."""

    def __init__(self, users, super_users=(), nonce=None):
        self._users = users
        self._super_users = frozenset(super_users)
        self.nonce = nonce if nonce is not None else secrets.token_urlsafe(30)
        self._step = 0
        self.complete = False
        self.user = None
        self.authorization_id = None
        self.requested_authzid = None

    @property
    def is_super(self):
        return self.complete and self.authorization_id in self._super_users

    def challenge(self):
        return (f'realm="{REALM}",nonce="{self.nonce}",qop="auth",'
                f"charset=utf-8,algorithm=md5-sess").encode("utf-8")

    def step(self, token):
        token = bytes(token or b"")
        if len(token) > MAX_TOKEN:
            raise SaslFailure(f"token of {len(token)} bytes is too long")
        self._step += 1
        if self.complete or self._step > 2:
            raise SaslFailure("DIGEST-MD5 authentication is already complete", self.user)
        if self._step == 1:
            if looks_like_gssapi(token):
                raise SaslFailure("the client asked for GSSAPI (Kerberos), which this server does "
                                  "not offer; only DIGEST-MD5")
            # Anything else is ignored, as Java's DigestMD5Server ignores it.
            return self.challenge()
        return self._check(parse_directives(token))

    def _check(self, got):
        user_text = got.get("username")
        if user_text is None:
            raise SaslFailure("digest-response without a username")
        utf8 = got.get("charset")
        if utf8 is not None and utf8.lower() != "utf-8":
            raise SaslFailure(f"unsupported charset {utf8!r}", user_text)
        if got.get("nonce") != self.nonce:
            raise SaslFailure("the nonce is not the one this server sent", user_text)
        cnonce = got.get("cnonce")
        if not cnonce:
            raise SaslFailure("digest-response without a cnonce", user_text)
        nc = got.get("nc", "")
        try:
            count = int(nc, 16)
        except ValueError:
            count = None
        if len(nc) != 8 or count != 1:
            raise SaslFailure(f"nonce count must be 00000001, got {nc!r}", user_text)
        qop = got.get("qop", "auth")
        if qop != "auth":
            raise SaslFailure(f"qop {qop!r} was not offered (only auth)", user_text)
        realm = got.get("realm", "")
        if realm != REALM:
            raise SaslFailure(f"realm {realm!r} is not {REALM!r}", user_text)
        uri = got.get("digest-uri", "")
        parts = uri.split("/")
        if (len(parts) not in (2, 3) or parts[0].lower() != SERVICE
                or parts[1].lower() != HOST):
            raise SaslFailure(f"digest-uri {uri!r} is not {SERVICE}/{HOST}", user_text)
        response = got.get("response", "").lower()
        if len(response) != 32:
            raise SaslFailure("digest-response without a 32-digit response", user_text)
        authzid = got.get("authzid") or None

        # With charset=utf-8 names and password are UTF-8; without, RFC 2831
        # says ISO-8859-1, but pure-sasl (kazoo) sends UTF-8 without saying so.
        raw_user = _raw(user_text)
        encodings = ("utf-8",) if utf8 else ("iso-8859-1", "utf-8")
        tried = set()
        for encoding in encodings:
            try:
                name = raw_user.decode(encoding)
            except UnicodeDecodeError:
                continue
            password = self._users.get(name)
            if password is None or (name, encoding) in tried:
                continue
            tried.add((name, encoding))
            try:
                expected = response_value(name, realm, password, self.nonce, cnonce, nc, qop,
                                          uri, authzid, encoding)
            except UnicodeEncodeError:
                continue
            if hmac.compare_digest(expected, response.encode("ascii", errors="replace")):
                return self._succeed(name, realm, password, cnonce, nc, qop, uri, authzid,
                                     encoding)
        if not tried:
            raise SaslFailure("no such user", user_text)
        raise SaslFailure("wrong password", user_text)

    def _succeed(self, name, realm, password, cnonce, nc, qop, uri, authzid, encoding):
        self.complete = True
        self.user = name
        self.requested_authzid = authzid
        # SaslServerCallbackHandler: authorized, as the authenticated user.
        self.authorization_id = name
        rspauth = response_value(name, realm, password, self.nonce, cnonce, nc, qop, uri,
                                 authzid, encoding, a2_prefix=b"")
        return b"rspauth=" + rspauth


# -- JAAS files -------------------------------------------------------------


def _jaas_tokens(text):
    """(kind, value, line): kind 'word', 'string' or the punctuation itself.
    As Java's ConfigFile reads the file: // and /* */ comments, double-quoted
    strings with backslash escapes that end at the line's end at the latest."""
    i, n, line = 0, len(text), 1
    escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
            i += 1
        elif char.isspace():
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise JaasError("unterminated /* comment", line)
            line += text.count("\n", i, end)
            i = end + 2
        elif char in "{};=":
            yield char, char, line
            i += 1
        elif char == '"':
            i += 1
            value = []
            while True:
                if i >= n or text[i] == "\n":
                    raise JaasError("unterminated quoted string", line)
                if text[i] == "\\" and i + 1 < n and text[i + 1] != "\n":
                    value.append(escapes.get(text[i + 1], text[i + 1]))
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    value.append(text[i])
                    i += 1
            yield "string", "".join(value), line
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '{};="' \
                    and not text.startswith("//", i) and not text.startswith("/*", i):
                i += 1
            yield "word", text[start:i], line


def parse_jaas(text):
    """{section: [(login module, flag, {option: value})]} of a JAAS file's text."""
    tokens = list(_jaas_tokens(text))
    pos = 0
    sections = {}

    def peek():
        return tokens[pos] if pos < len(tokens) else ("end", None, tokens[-1][2] if tokens else 1)

    def take(kinds, what):
        nonlocal pos
        kind, value, line = peek()
        if kind not in kinds:
            found = "the end of the file" if kind == "end" else repr(value)
            raise JaasError(f"expected {what}, found {found}", line)
        pos += 1
        return value, line

    while peek()[0] != "end":
        name, line = take(("word",), "a section name")
        take(("{",), "'{'")
        modules = []
        while peek()[0] != "}":
            module, _ = take(("word",), "a login module class name")
            flag, flag_line = take(("word",), "a control flag (required, requisite, "
                                              "sufficient or optional)")
            if flag.lower() not in _FLAGS:
                raise JaasError(f"control flag {flag!r} is not one of {', '.join(_FLAGS)}",
                                flag_line)
            options = {}
            while peek()[0] != ";":
                key, _ = take(("word",), "an option name or ';'")
                take(("=",), f"'=' after {key}")
                value, _ = take(("string", "word"), f"a value for {key}")
                options[key] = value
            take((";",), "';'")
            modules.append((module, flag.lower(), options))
        take(("}",), "'}'")
        take((";",), "';' after '}'")
        if name in sections:
            sections[name].extend(modules)
        else:
            sections[name] = modules
    return sections


def jaas_users(text, section=SERVER_SECTION):
    """{user: password} from the ``user_NAME`` options of a JAAS section, as
    ZooKeeper's SaslServerCallbackHandler collects them."""
    sections = parse_jaas(text)
    if section not in sections:
        found = ", ".join(sorted(sections)) or "none"
        raise JaasError(f"no '{section}' section (sections found: {found})")
    users = {}
    for _module, _flag, options in sections[section]:
        for key, value in options.items():
            if key.startswith(_USER_PREFIX):
                name = key[len(_USER_PREFIX):]
                if not name:
                    raise JaasError(f"option {key!r} in '{section}' names no user")
                users[name] = value
    if not users:
        raise JaasError(f"the '{section}' section has no user_NAME=\"password\" options")
    return users
