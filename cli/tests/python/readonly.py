"""A READONLY account (added to the auth file while the daemon runs): login returns 1,
READONLY methods work, NORMAL and ADMIN ones raise NotAuthorizedError."""
from _common import check, cli_args, client, expect_remote, step

host, port, user, password = cli_args()

step('login as %s returns 1 (READONLY)' % user)
c = client(host, port, user, password, login=False)
level = c.call('daemon.login', user, password, client_version='deluge-client')
check(level == 1, 'daemon.login returned %r' % (level,))
c.connected = True

for method, args in [('stats.get_totals', ()), ('stats.get_stats', (['upload_rate'], 2)),
                     ('stats.set_config', ({'update_interval': 2},)), ('stats.reset_totals', ()),
                     ('core.disable_plugin', ('Stats',)), ('daemon.shutdown', ())]:
    expect_remote(lambda: c.call(method, *args), 'NotAuthorizedError')
    check(c.call('daemon.get_version').startswith('2.'), 'daemon.get_version after %s' % method)
    step('%s -> NotAuthorizedError; READONLY calls still answered' % method)

check(c.call('daemon.authorized_call', 'stats.get_totals') is False, 'authorized_call(stats.get_totals)')
check(c.call('daemon.authorized_call', 'daemon.get_version') is True, 'authorized_call(daemon.get_version)')
check('Stats' in c.call('core.get_enabled_plugins'), 'core.get_enabled_plugins')

step('a wrong password for %s -> BadLoginError' % user)
bad = client(host, port, user, password + 'x', login=False)
expect_remote(lambda: bad.call('daemon.login', user, password + 'x', client_version='deluge-client'),
              'BadLoginError')
print('OK')
