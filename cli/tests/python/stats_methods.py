"""deluge-client 1.10.2 against our daemon: connect, login, and every stats.* method
with Deluge's result shapes, with decode_utf8 both False and True."""
import time

from _common import TOTAL_KEYS, check, cli_args, client, step, text

host, port, user, password = cli_args()


def check_counters(value, name, t):
    check(isinstance(value, dict), '%s returned %r' % (name, value))
    check(set(value) == {t(k) for k in TOTAL_KEYS}, '%s keys %r' % (name, sorted(value)))
    for k, v in value.items():
        check(type(v) is int and v >= 0, '%s[%r] = %r is not a non-negative int' % (name, k, v))


for decode_utf8 in (False, True):
    def t(s):
        return text(s, decode_utf8)

    step('decode_utf8=%s: connect() probes the version and logs in' % decode_utf8)
    plain = client(host, port, user, password, decode_utf8)
    check(plain.connected, 'connect() did not connect')
    version = plain.call('daemon.info')
    check(isinstance(version, str if decode_utf8 else bytes) and version.startswith(t('2.')),
          'daemon.info returned %r' % (version,))

    step('daemon.login returns the auth level, 10 for localclient')
    c = client(host, port, user, password, decode_utf8, login=False)
    level = c.call('daemon.login', user, password, client_version='deluge-client')
    check(level == 10 and type(level) is int, 'daemon.login returned %r' % (level,))
    c.connected = True

    methods = c.call('daemon.get_method_list')
    for m in ('get_totals', 'get_session_totals', 'get_config', 'set_config', 'get_stats',
              'get_intervals', 'reset_totals'):
        check(t('stats.' + m) in methods, 'stats.%s missing from %r' % (m, methods))
    check(c.call('daemon.authorized_call', 'stats.get_totals') is True, 'authorized_call')

    step('stats.get_totals / get_session_totals: dicts of the four int counters')
    check_counters(c.call('stats.get_totals'), 'stats.get_totals', t)
    check_counters(c.call('stats.get_session_totals'), 'stats.get_session_totals', t)

    step('stats.get_config')
    config = c.call('stats.get_config')
    check(isinstance(config, dict), 'get_config returned %r' % (config,))
    for k in ('update_interval', 'length'):
        check(type(config.get(t(k))) is int, 'get_config()[%r] in %r' % (k, config))

    step('stats.get_intervals: a tuple of 4 increasing ints')
    intervals = c.call('stats.get_intervals')
    check(isinstance(intervals, tuple) and len(intervals) == 4
          and all(type(i) is int and i > 0 for i in intervals)
          and list(intervals) == sorted(set(intervals)),
          'get_intervals returned %r' % (intervals,))

    step('stats.get_stats(["upload_rate", "num_peers"], %d)' % intervals[0])
    stats = c.call('stats.get_stats', ['upload_rate', 'num_peers'], intervals[0])
    check(isinstance(stats, dict), 'get_stats returned %r' % (stats,))
    want = {t(k) for k in ('upload_rate', 'num_peers', '_last_update', '_length', '_update_interval')}
    check(set(stats) == want, 'get_stats keys %r' % sorted(stats))
    for k in ('upload_rate', 'num_peers'):
        series = stats[t(k)]
        check(isinstance(series, tuple) and all(type(v) is int and v >= 0 for v in series),
              '%s series %r is not a list of ints' % (k, series))
        check(len(series) <= config[t('length')], '%s has %d points' % (k, len(series)))
    if not decode_utf8:
        # The first poll happens when Stats is enabled, before the daemon takes calls.
        check(len(stats[t('num_peers')]) >= 1, 'no points yet: %r' % (stats,))
    check(all(v == 3 for v in stats[t('num_peers')]), 'num_peers %r (sim has 3)' % (stats[t('num_peers')],))
    check(all(v <= 2 * 1048576 for v in stats[t('upload_rate')]),
          'upload_rate %r (sim uploads 1 MiB/s)' % (stats[t('upload_rate')],))
    check(type(stats[t('_last_update')]) is float, '_last_update %r' % (stats[t('_last_update')],))
    if stats[t('num_peers')]:
        age = time.time() - stats[t('_last_update')]
        check(-5 < age < 120, '_last_update is %.1f s old' % age)
    check(type(stats[t('_length')]) is int and stats[t('_length')] == config[t('length')],
          '_length %r' % (stats[t('_length')],))
    check(stats[t('_update_interval')] == intervals[0] and type(stats[t('_update_interval')]) is int,
          '_update_interval %r' % (stats[t('_update_interval')],))

    step('the coarsest interval has no points yet: empty lists, as Deluge sends')
    coarse = c.call('stats.get_stats', ['upload_rate', 'num_peers'], intervals[3])
    check(coarse[t('upload_rate')] == () and coarse[t('num_peers')] == (),
          'get_stats(..., %d) = %r' % (intervals[3], coarse))

    step('stats.set_config({"update_interval": 3}) returns None; get_config shows it')
    check(c.call('stats.set_config', {'update_interval': 3}) is None, 'set_config must return None')
    config = c.call('stats.get_config')
    check(config[t('update_interval')] == 3, 'get_config after set_config: %r' % (config,))
    intervals = c.call('stats.get_intervals')
    stats = c.call('stats.get_stats', ['upload_rate', 'num_peers'], intervals[0])
    check(set(stats) == want and stats[t('_update_interval')] == intervals[0],
          'get_stats after set_config: %r' % (stats,))

    step('get_stats by keyword, and an unknown key is left out')
    by_kw = c.call('stats.get_stats', keys=['num_peers', 'no_such_key'], interval=intervals[0])
    check(set(by_kw) == {t(k) for k in ('num_peers', '_last_update', '_length', '_update_interval')},
          'get_stats by keyword: %r' % sorted(by_kw))

    step('stats.reset_totals as admin returns the totals it cleared')
    before = c.call('stats.get_totals')
    cleared = c.call('stats.reset_totals')
    check_counters(cleared, 'stats.reset_totals', t)
    check(cleared[t('total_upload')] >= before[t('total_upload')], 'reset_totals %r < %r' % (cleared, before))
    after = c.call('stats.get_totals')
    check_counters(after, 'stats.get_totals after reset', t)
    # At most a few poll intervals of 1 MiB/s upload can have been counted since the reset.
    check(after[t('total_upload')] < 16 * 1048576, 'totals after reset: %r' % (after,))

    step('latency: 20 calls of stats.get_totals')
    started = time.monotonic()
    for _ in range(20):
        c.call('stats.get_totals')
    per_call = (time.monotonic() - started) / 20
    print('  %.2f ms per call' % (per_call * 1000))
    check(per_call < 0.025, 'stats.get_totals takes %.1f ms per call (delayed ACKs?)' % (per_call * 1000))
    c.disconnect()
    plain.disconnect()

print('OK')
