"""daemon.shutdown as admin: returns None; prints the totals read just before as JSON
(last line) for the Rust test, which checks the daemon exits 0 with them saved."""
import json

from _common import TOTAL_KEYS, check, cli_args, client, step

host, port, user, password = cli_args()
c = client(host, port, user, password)
totals = c.call('stats.get_totals')
check(set(totals) == set(TOTAL_KEYS), 'stats.get_totals: %r' % (totals,))
step('daemon.shutdown')
check(c.call('daemon.shutdown') is None, 'daemon.shutdown must return None')
print(json.dumps(totals))
