"""The client's TLS context, built as kazoo builds its own.

KeeperClient(use_ssl=True, certfile=, keyfile=, keyfile_password=, ca=,
verify_certs=True, check_hostname=False) takes kazoo's parameter names with
kazoo's meaning (kazoo.handlers.utils.create_tcp_connection): the server's
certificate is verified against `ca` and the system's CAs unless
verify_certs is False; its host name is checked only with check_hostname
(kazoo's default is not to; Java's ZooKeeper client checks it by default).
Unlike kazoo, a certfile without a keyfile is loaded too (a PEM holding both),
and the files are read once, when the client is made, so a missing or bad
file fails at once rather than at each connection attempt.
"""

import ssl


def client_context(ca=None, certfile=None, keyfile=None, keyfile_password=None,
                   verify_certs=True, check_hostname=False):
    """An ssl.SSLContext for connecting to a server's secure client port."""
    if check_hostname and not verify_certs:
        raise ValueError("verify_certs must be True when check_hostname is True")
    if keyfile and not certfile:
        raise ValueError("keyfile needs certfile")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED if verify_certs else ssl.CERT_NONE
    if ca:
        context.load_verify_locations(cafile=ca)
    if certfile:
        context.load_cert_chain(certfile, keyfile, password=keyfile_password)
    return context
