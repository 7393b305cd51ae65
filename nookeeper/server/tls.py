"""TLS for the secure client port and the peer links.

- check_files: the certificate, key and CA files checked as the config is
  loaded (and again before a reload), each problem naming the file.
- Contexts: ssl.SSLContexts built from those files, rebuilt when a file
  changes on disk (an mtime check on each accept or dial, as cheap as three
  stats); a change that does not load is logged and the previous context
  kept, so a half-copied certificate never takes a port down.
- TlsSocket: TLS over a blocking socket through a memory BIO, so that one
  reader thread and any number of writer threads may use it at once, as the
  connections and peer links do with plain sockets (an SSLSocket may not be
  read and written from two threads at once: OpenSSL's SSL object is not
  thread-safe). It has the socket methods those callers use.
"""

import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
from datetime import datetime, timezone
from typing import NamedTuple

from nookeeper.x509 import CertificateError, parse_certificate

log = logging.getLogger("nookeeper.tls")

HANDSHAKE_TIMEOUT_S = 5.0  # ZooKeeper's ssl.handshakeDetectionTimeoutMillis
CLIENT_AUTH = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


class TlsFileError(Exception):
    """A certificate, key or CA file that cannot be used; key is its config key."""

    def __init__(self, key, message):
        super().__init__(message)
        self.key = key
        self.message = message


class TlsFiles(NamedTuple):
    cert: str
    key: str
    ca: str | None


# -- checking the files ---------------------------------------------------------

def _read(key, path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise TlsFileError(key, f"{path}: no such file") from None
    except OSError as exc:
        raise TlsFileError(key, f"{path}: cannot read: {exc.strerror or exc}") from None


def _pem_certificates(key, path):
    """The DER of every certificate in a PEM file."""
    text = _read(key, path).decode("ascii", "replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    ders = []
    pos = text.find(begin)
    while pos >= 0:
        stop = text.find(end, pos)
        if stop < 0:
            break
        try:
            ders.append(ssl.PEM_cert_to_DER_cert(text[pos:stop + len(end)]))
        except ValueError as exc:
            raise TlsFileError(key, f"{path}: bad PEM certificate: {exc}") from None
        pos = text.find(begin, stop)
    if not ders:
        raise TlsFileError(key, f"{path}: no PEM certificate in it")
    return ders


def _fmt(when):
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def check_files(files, now=None):
    """Raise TlsFileError for the first problem: a missing or unreadable file,
    no PEM certificate, a certificate expired or not yet valid, a key that
    is not PEM or does not match the certificate, a CA file OpenSSL refuses."""
    now = now or datetime.now(timezone.utc)
    leaf = _pem_certificates("tls_cert_file", files.cert)[0]
    try:
        cert = parse_certificate(leaf)
    except CertificateError as exc:
        raise TlsFileError("tls_cert_file", f"{files.cert}: {exc}") from None
    if cert.not_after < now:
        raise TlsFileError("tls_cert_file", f"{files.cert}: certificate for {cert.subject} "
                                            f"expired on {_fmt(cert.not_after)}")
    if cert.not_before > now:
        raise TlsFileError("tls_cert_file", f"{files.cert}: certificate for {cert.subject} "
                                            f"is not valid before {_fmt(cert.not_before)}")
    if b"PRIVATE KEY-----" not in _read("tls_key_file", files.key):
        raise TlsFileError("tls_key_file", f"{files.key}: no PEM private key in it")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(files.cert, files.key, password=_no_password(files.key))
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise TlsFileError("tls_key_file", f"{files.key} is not the key of the certificate "
                                               f"in {files.cert}") from None
        raise TlsFileError("tls_key_file", f"{files.key}: cannot load with {files.cert}: "
                                           f"{_reason(exc)}") from None
    except (OSError, ValueError) as exc:
        raise TlsFileError("tls_key_file", f"{files.key}: cannot load: {exc}") from None
    if files.ca is not None:
        _pem_certificates("tls_ca_file", files.ca)
        try:
            context.load_verify_locations(cafile=files.ca)
        except (ssl.SSLError, OSError) as exc:
            raise TlsFileError("tls_ca_file", f"{files.ca}: {_reason(exc)}") from None
    return cert


def _no_password(path):
    """A password callback that fails clearly: an encrypted key needs one, and
    the server has none to give."""
    def refuse():
        raise TlsFileError("tls_key_file", f"{path} is encrypted; give the server an "
                                           "unencrypted key readable only by its user")
    return refuse


def _reason(exc):
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or str(exc)
    return exc.strerror or str(exc)


def describe_error(exc):
    """One readable line for a failed handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").replace("_", " ").lower()
        return reason or str(exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no TLS handshake in time"
    return str(exc) or type(exc).__name__


# -- contexts, rebuilt when the files change ------------------------------------

def server_context(files, client_auth="need"):
    """For accepting: the client port (client_auth) or the peer port ('need')."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key, password=_no_password(files.key))
    if client_auth != "none":
        context.load_verify_locations(cafile=files.ca)
    context.verify_mode = CLIENT_AUTH[client_auth]
    return context


def client_context(files, check_hostname=True):
    """For dialing another member: its certificate checked against the CA (and,
    with check_hostname, against the host the member list names); ours sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key, password=_no_password(files.key))
    context.load_verify_locations(cafile=files.ca)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class ReloadingContext:
    """An SSLContext that follows its files: `get()` compares their (mtime,
    size, inode) with those last loaded and rebuilds on a change. A change
    that does not load (expired, key and certificate not matching yet while
    they are being copied) is logged once and the previous context kept; it
    is tried again when a file changes again."""

    def __init__(self, files, build, what):
        self.files = files
        self._build = build
        self.what = what
        self._lock = threading.Lock()
        self._seen = self._signature()
        check_files(files)
        self._context = build()
        self.reloads = 0

    def _signature(self):
        sig = []
        for path in self.files:
            if path is None:
                continue
            try:
                st = os.stat(path)
                sig.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                sig.append(None)
        return tuple(sig)

    def get(self):
        sig = self._signature()
        if sig != self._seen:
            with self._lock:
                if sig != self._seen:
                    self._seen = sig
                    self._reload()
        return self._context

    def _reload(self):
        try:
            cert = check_files(self.files)
            context = self._build()
        except TlsFileError as exc:
            log.error("%s: TLS files changed but cannot be used: %s: %s; keeping the previous "
                      "certificate", self.what, exc.key, exc.message)
            return
        except (ssl.SSLError, OSError, ValueError) as exc:
            log.error("%s: TLS files changed but cannot be used: %s; keeping the previous "
                      "certificate", self.what, _reason(exc))
            return
        self._context = context
        self.reloads += 1
        log.info("%s: TLS files reloaded: certificate for %s, valid until %s", self.what,
                 cert.subject, _fmt(cert.not_after))


# -- TLS over a blocking socket, for one reader and many writers ----------------

class TlsSocket:
    """TLS on a connected blocking socket, through an SSLObject and memory
    BIOs under one lock. The reader waits on the raw socket without that lock,
    so writers are never held up by a read; ciphertext leaves in the order it
    was produced (a queue drained under a second lock). A non-blocking send
    (MSG_DONTWAIT) raises BlockingIOError: encrypted bytes cannot be taken
    back, so callers hand that data to their sender thread instead."""

    def __init__(self, raw, context, server_side, server_hostname=None):
        self._raw = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=server_hostname)
        self._lock = threading.Lock()      # the SSLObject, its BIOs and _pending
        self._wire = threading.Lock()      # writing to the raw socket
        self._pending = []                 # ciphertext not yet written, in order

    # -- the handshake --------------------------------------------------------

    def do_handshake(self, timeout):
        """The whole handshake within `timeout` seconds (socket.timeout past it)."""
        deadline = time.monotonic() + timeout
        previous = self._raw.gettimeout()
        try:
            while True:
                failure = None
                with self._lock:
                    try:
                        self._obj.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        done = False
                    except ssl.SSLError as exc:
                        failure = exc
                    finally:
                        self._take_output()
                left = deadline - time.monotonic()
                if failure is not None:
                    # Send the alert OpenSSL wrote, so the other side hears why.
                    try:
                        self._raw.settimeout(max(min(left, 1.0), 0.01))
                        self._flush(True)
                    except OSError:
                        pass
                    raise failure
                if left <= 0:
                    raise socket.timeout("TLS handshake timed out")
                self._raw.settimeout(left)
                self._flush(True)
                if done:
                    return self
                self._fill()
        finally:
            try:
                self._raw.settimeout(previous)
            except OSError:
                pass

    def getpeercert(self, binary_form=False):
        return self._obj.getpeercert(binary_form)

    def version(self):
        return self._obj.version()

    def cipher(self):
        return self._obj.cipher()

    # -- reading (one thread) -------------------------------------------------

    def recv_into(self, buffer, nbytes=0):
        nbytes = nbytes or len(buffer)
        return self._read(lambda: self._obj.read(nbytes, buffer), 0)

    def recv(self, bufsize, flags=0):
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        return self._read(lambda: self._obj.read(bufsize), b"")

    def _read(self, read, closed):
        while True:
            with self._lock:
                try:
                    result = read()
                except ssl.SSLWantReadError:
                    result = None
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    result = closed  # close_notify, or the TCP connection closed
                finally:
                    produced = self._take_output()
            if produced:
                try:
                    self._flush(False)
                except OSError:
                    pass  # the connection is gone: the read says so, or a writer does
            if result is not None:
                return result
            self._fill()

    def _fill(self):
        data = self._raw.recv(65536)
        with self._lock:
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    # -- writing (any thread) -------------------------------------------------

    def sendall(self, data, flags=0):
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        view = memoryview(data)
        with self._lock:
            while view:
                written = self._obj.write(view)
                view = view[written:]
            self._take_output()
        self._flush(True)

    def send(self, data, flags=0):
        if flags & getattr(socket, "MSG_DONTWAIT", 0):
            raise BlockingIOError("a TLS socket does not write without blocking")
        self.sendall(data)
        return len(data)

    def _take_output(self):
        """With _lock held: move what the SSLObject produced to the queue."""
        if self._outgoing.pending:
            self._pending.append(self._outgoing.read())
            return True
        return False

    def _flush(self, block):
        """Write the queue. Whoever holds _wire looks again after letting go,
        so output queued meanwhile by a non-blocking caller is never left."""
        while True:
            if not self._wire.acquire(blocking=block):
                return
            try:
                while True:
                    with self._lock:
                        if not self._pending:
                            break
                        data = b"".join(self._pending)
                        self._pending.clear()
                    self._raw.sendall(data)
            finally:
                self._wire.release()
            with self._lock:
                if not self._pending:
                    return
            block = True

    def close_notify(self):
        """Say (best effort) that nothing more comes, so the other side tells the
        end of an answer that runs until the close (a four-letter word's) from a
        cut connection."""
        with self._lock:
            try:
                self._obj.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the other side's close_notify is not awaited
            self._take_output()
        try:
            self._flush(True)
        except OSError:
            pass

    # -- the socket underneath --------------------------------------------------

    def settimeout(self, value):
        self._raw.settimeout(value)

    def gettimeout(self):
        return self._raw.gettimeout()

    def setsockopt(self, *args):
        self._raw.setsockopt(*args)

    def getpeername(self):
        return self._raw.getpeername()

    def getsockname(self):
        return self._raw.getsockname()

    def fileno(self):
        return self._raw.fileno()

    def shutdown(self, how):
        self._raw.shutdown(how)

    def close(self):
        self._raw.close()


def handshake(raw, context, server_side, timeout=HANDSHAKE_TIMEOUT_S, server_hostname=None):
    """A TlsSocket over `raw` once the handshake is done; raises ssl.SSLError
    (certificate refused, not TLS), socket.timeout or OSError."""
    return TlsSocket(raw, context, server_side, server_hostname).do_handshake(timeout)


def peer_subject(tls_sock):
    """The verified peer certificate's subject (RFC 2253), or None without one."""
    der = tls_sock.getpeercert(binary_form=True)
    if not der:
        return None
    return parse_certificate(der).subject


def names_host(der, host):
    """Whether a certificate is issued for `host` (an IP address or a DNS name)
    by its subjectAltName entries, as the dialing side's hostname check reads
    them (a wildcard covers one label)."""
    cert = parse_certificate(der)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return address in cert.ip_addresses
    host = host.lower().rstrip(".")
    for name in cert.dns_names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False



class PeerTls:
    """Both ends of a peer link over TLS (peer_tls): each side sends its
    certificate and checks the other's against the CA; with check_hostname the
    dialing side checks that the certificate names the host the member list
    gives, and the accepting side that it names the host of the member the
    link says it comes from."""

    def __init__(self, files, check_hostname=True):
        self.check_hostname = check_hostname
        self._accepting = ReloadingContext(files, lambda: server_context(files, "need"),
                                           "peer port")
        self._dialing = ReloadingContext(files, lambda: client_context(files, check_hostname),
                                         "peer links")

    @classmethod
    def from_config(cls, config):
        """None unless the config asks for peer_tls."""
        if not config.peer_tls:
            return None
        return cls(config.tls_files, config.peer_tls_check_hostname)

    def accept(self, raw, timeout=HANDSHAKE_TIMEOUT_S):
        return handshake(raw, self._accepting.get(), server_side=True, timeout=timeout)

    def dial(self, raw, host, timeout=HANDSHAKE_TIMEOUT_S):
        return handshake(raw, self._dialing.get(), server_side=False, timeout=timeout,
                         server_hostname=host if self.check_hostname else None)

    def names_member(self, secure, host):
        """Whether the accepted link's certificate is issued for `host` (always
        True without check_hostname)."""
        return not self.check_hostname or names_host(secure.getpeercert(binary_form=True), host)
