"""Helpers shared by the interop scripts: arguments, checks, and a raw client.

Every script is run by cli/tests/daemon/ (rpc_interop.rs and others) as
``python3 cli/tests/python/<script>.py HOST PORT USER PASSWORD`` and must exit 0.
deluge-client (1.10.2) has no event API and never checks request ids, so event checks
use ``Raw``: TLS + Deluge's v1 framing + the rencode module shipped in deluge_client.
"""
import socket
import ssl
import struct
import sys
import time
import warnings
import zlib

# decode_utf8=False is deprecated in deluge-client: the tests use it on purpose.
warnings.simplefilter('ignore', DeprecationWarning)

from deluge_client import DelugeRPCClient  # noqa: E402
from deluge_client.client import RemoteException  # noqa: E402
from deluge_client.rencode import dumps, loads  # noqa: E402

TOTAL_KEYS = ('total_upload', 'total_download', 'total_payload_upload', 'total_payload_download')


def cli_args():
    if len(sys.argv) != 5:
        sys.exit('usage: %s HOST PORT USER PASSWORD' % sys.argv[0])
    return sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def step(text):
    print('-', text, flush=True)


def client(host, port, user, password, decode_utf8=True, login=True):
    """A deluge-client connection; logged in unless login=False (then only connected
    and version-probed, as connect() does before daemon.login)."""
    c = DelugeRPCClient(host, port, user, password, decode_utf8=decode_utf8,
                        automatic_reconnect=False, timeout=10)
    if login:
        c.connect()
    else:
        c._connect()
        c._detect_deluge_version()
        check(c.deluge_version == 2 and c.deluge_protocol_version == 1,
              'version probe: deluge_version=%r protocol=%r' % (c.deluge_version, c.deluge_protocol_version))
    return c


def expect_remote(fn, class_name, *needles):
    """fn() must raise the server's exception class_name (a deluge-client
    RemoteException subclass, not an error of the client itself) whose message holds
    every needle."""
    try:
        value = fn()
    except RemoteException as e:
        got = type(e).__name__
        text = str(e)
        check(got == class_name, 'expected %s, got %s: %s' % (class_name, got, text))
        for n in needles:
            check(n in text, 'expected %r in the %s message: %s' % (n, got, text))
        return text
    except Exception as e:  # e.g. TypeError when the error args are not strings
        raise AssertionError('expected remote %s, the client raised %s: %r'
                             % (class_name, type(e).__name__, e))
    raise AssertionError('expected %s, got the value %r' % (class_name, value))


def text(value, decode_utf8):
    """A string as deluge-client returns it (bytes when decode_utf8 is False)."""
    return value if decode_utf8 else value.encode()


class Raw:
    """A raw client: no probe, no id checks, every message kept."""

    def __init__(self, host, port):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.s = ctx.wrap_socket(socket.create_connection((host, port), timeout=10))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''
        self.rid = 0

    def send_obj(self, obj):
        body = zlib.compress(dumps(obj))
        self.s.sendall(struct.pack('!BI', 1, len(body)) + body)

    def send_call(self, method, *args, **kwargs):
        self.rid += 1
        self.send_obj(((self.rid, method, args, kwargs),))
        return self.rid

    def read_msg(self, timeout=5.0):
        """The next message, or None if nothing arrives within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 5:
                version, size = struct.unpack('!BI', self.buf[:5])
                check(version == 1, 'reply frame version %r' % version)
                if len(self.buf) >= 5 + size:
                    body, self.buf = self.buf[5:5 + size], self.buf[5 + size:]
                    return loads(zlib.decompress(body), decode_utf8=True)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                data = self.s.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                return None
            if not data:
                raise EOFError('connection closed by the daemon')
            self.buf += data

    def call(self, method, *args, **kwargs):
        """(reply, other messages received before it)."""
        rid = self.send_call(method, *args, **kwargs)
        others = []
        while True:
            m = self.read_msg()
            check(m is not None, 'no reply to %s within 5 s (got %r)' % (method, others))
            if m[0] in (1, 2) and m[1] == rid:
                return m, others
            others.append(m)

    def call_ok(self, method, *args, **kwargs):
        """The value of a successful call that arrived with nothing before it."""
        reply, others = self.call(method, *args, **kwargs)
        check(reply[0] == 1, '%s failed: %r' % (method, reply))
        check(others == [], '%s: unrequested messages before the reply: %r' % (method, others))
        return reply[2]

    def login(self, user, password):
        return self.call_ok('daemon.login', user, password, client_version='raw-python')

    def close(self):
        self.s.close()
