"""A real deluge-client while the daemon is under attack (cli/tests/daemon/rpc_admission.rs): N times
a fresh DelugeRPCClient connects (version probe, TLS, login) and calls
stats.get_totals; one line per attempt: ``attempt I SECONDS ok|error``. Never raises:
the test counts the attempts answered within its limit.

Run as ``python3 cli/tests/python/admission_client.py HOST PORT USER PASSWORD N``."""
import sys
import time
import warnings

warnings.simplefilter('ignore', DeprecationWarning)

from deluge_client import DelugeRPCClient  # noqa: E402

host, port, user, password, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
for i in range(n):
    started = time.monotonic()
    outcome = 'ok'
    c = DelugeRPCClient(host, port, user, password, automatic_reconnect=False, timeout=3,
                        decode_utf8=True)
    try:
        c.connect()
        totals = c.call('stats.get_totals')
        if 'total_upload' not in totals:
            outcome = 'error:bad-totals'
    except Exception as e:  # counted as a failure, whatever it is
        outcome = 'error:%s:%s' % (type(e).__name__, str(e)[:80].replace(' ', '_'))
    elapsed = time.monotonic() - started
    try:
        c.disconnect()
    except Exception:
        pass
    print('attempt %d %.4f %s' % (i, elapsed, outcome), flush=True)
    time.sleep(0.02)
