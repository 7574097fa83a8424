"""Against examples/embed_rpc.rs: stock deluge-client reads the totals, the status and the
method list, then asks the embedding application to shut down."""
from _common import TOTAL_KEYS, check, cli_args, client, step

host, port, user, password = cli_args()
c = client(host, port, user, password)

totals = c.call('stats.get_totals')
check(sorted(totals) == sorted(TOTAL_KEYS), 'stats.get_totals keys %r' % (sorted(totals),))
step('stats.get_totals: %r' % (totals,))
status = c.call('stats.get_status')
check(status['source'].startswith('sim:'), 'stats.get_status source %r' % (status['source'],))
step('stats.get_status: source %s, up %s' % (status['source'], status['source_up']))
methods = c.call('daemon.get_method_list')
for m in ('core.get_session_status', 'daemon.login', 'stats.get_totals', 'stats.get_status'):
    check(m in methods, '%s in daemon.get_method_list' % m)
c.call('daemon.shutdown')
step('daemon.shutdown accepted')
print('OK')
