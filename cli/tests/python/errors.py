"""deluge-client 1.10.2 against our daemon: the server's error classes reach the client
(never a TypeError of the client), and the connection keeps working after each error."""
from _common import DelugeRPCClient, TOTAL_KEYS, check, cli_args, client, expect_remote, step, text

host, port, user, password = cli_args()

CALL_ERRORS = [
    # (method, args, kwargs, exception class, needles in its message)
    ('stats.no_such_method', (), {}, 'WrappedException',
     ['AttributeError', 'RPC call on invalid function: stats.no_such_method']),
    ('nosuch', (), {}, 'WrappedException', ['AttributeError', 'nosuch']),
    ('stats.get_totals', (1,), {}, 'WrappedException', ['TypeError']),
    ('stats.get_totals', (), {'bogus': 1}, 'WrappedException', ['TypeError', 'bogus']),
    ('stats.get_stats', ('x', 'y'), {}, 'WrappedException', ['TypeError']),
    ('stats.get_stats', (['upload_rate'],), {}, 'WrappedException', ['TypeError', 'interval']),
    ('stats.set_config', ({'update_interval': 0},), {}, 'WrappedException', ['ValueError', 'update_interval']),
    ('stats.set_config', ({'update_interval': 'x'},), {}, 'WrappedException', ['TypeError', 'update_interval']),
    ('stats.set_config', ('x',), {}, 'WrappedException', ['TypeError']),
    ('stats.set_config', (), {}, 'WrappedException', ['TypeError']),
]


def totals_ok(c, t, what):
    value = c.call('stats.get_totals')
    check(isinstance(value, dict) and set(value) == {t(k) for k in TOTAL_KEYS},
          'after %s, stats.get_totals returned %r' % (what, value))


for decode_utf8 in (False, True):
    def t(s):
        return text(s, decode_utf8)

    step('decode_utf8=%s: call errors on a logged-in connection' % decode_utf8)
    c = client(host, port, user, password, decode_utf8)
    for method, args, kwargs, cls, needles in CALL_ERRORS:
        what = '%s%r %r' % (method, args, kwargs)
        expect_remote(lambda: c.call(method, *args, **kwargs), cls, *needles)
        totals_ok(c, t, what)
        step('  %s -> %s, connection still answers' % (what, cls))
    c.disconnect()

    step('bad password -> BadLoginError; the connection stays usable but not logged in')
    bad = client(host, port, user, 'wrong-' + password, decode_utf8, login=False)
    expect_remote(lambda: bad.call('daemon.login', user, 'wrong-' + password, client_version='deluge-client'),
                  'BadLoginError')
    check(bad.call('daemon.info').startswith(t('2.')), 'daemon.info after a bad login')
    expect_remote(lambda: bad.call('stats.get_totals'), 'NotAuthorizedError')
    bad2 = DelugeRPCClient(host, port, user, 'wrong', decode_utf8=decode_utf8, automatic_reconnect=False, timeout=10)
    expect_remote(bad2.connect, 'BadLoginError')
    nobody = DelugeRPCClient(host, port, 'nobody', password, decode_utf8=decode_utf8, automatic_reconnect=False, timeout=10)
    expect_remote(nobody.connect, 'BadLoginError')

    step('calls before login -> NotAuthorizedError (a server class, not a TypeError in the client)')
    anon = client(host, port, user, password, decode_utf8, login=False)
    for method, args in [('stats.get_totals', ()), ('stats.get_stats', (['upload_rate'], 2)),
                         ('stats.reset_totals', ()), ('stats.set_config', ({'update_interval': 2},)),
                         ('core.disable_plugin', ('Stats',)), ('daemon.get_method_list', ()),
                         ('daemon.shutdown', ())]:
        expect_remote(lambda: anon.call(method, *args), 'NotAuthorizedError')
        check(anon.call('daemon.info').startswith(t('2.')), 'daemon.info after %s' % method)
    # Before login an unknown method gets the same answer as an existing one (issue 9).
    expect_remote(lambda: anon.call('no.such'), 'NotAuthorizedError')

    step('daemon.login without client_version -> IncompatibleClient; then a proper login works')
    old = client(host, port, user, password, decode_utf8, login=False)
    expect_remote(lambda: old.call('daemon.login', user, password), 'IncompatibleClient')
    expect_remote(lambda: old.call('stats.get_totals'), 'NotAuthorizedError')
    level = old.call('daemon.login', user, password, client_version='deluge-client')
    check(level == 10, 'login after IncompatibleClient returned %r' % (level,))
    totals_ok(old, t, 'IncompatibleClient and a login')

print('OK')
