"""Events go only to sessions that asked for them: a raw subscriber receives
PluginDisabledEvent / PluginEnabledEvent when another client disables / enables Stats;
clients that did not subscribe (raw, and deluge-client, which cannot tell an event from a
reply) receive nothing unrequested and their next call gets its own answer."""
from _common import Raw, TOTAL_KEYS, check, cli_args, client, step

host, port, user, password = cli_args()
QUIET = 0.5  # seconds to wait for a message that must not come


def no_message(raw, who):
    m = raw.read_msg(QUIET)
    check(m is None, '%s received an unrequested message: %r' % (who, m))


def expect_event(raw, who, name):
    m = raw.read_msg(5.0)
    check(m == (3, name, ('Stats',)), '%s expected %s(Stats), got %r' % (who, name, m))


step('subscribers and bystanders log in')
both = Raw(host, port)
check(both.login(user, password) == 10, 'login')
check(both.call_ok('daemon.set_event_interest', ['PluginDisabledEvent', 'PluginEnabledEvent']) is True,
      'set_event_interest')
enabled_only = Raw(host, port)
enabled_only.login(user, password)
check(enabled_only.call_ok('daemon.set_event_interest', ['PluginEnabledEvent']) is True, 'set_event_interest')
quiet = Raw(host, port)
quiet.login(user, password)
bystander = client(host, port, user, password)  # deluge-client, no interest
admin = client(host, port, user, password)
check(admin.call('core.get_enabled_plugins') == ('Stats',), 'Stats enabled at start')

step('another client disables Stats')
check(admin.call('core.disable_plugin', 'Stats') is True, 'core.disable_plugin')
expect_event(both, 'subscriber', 'PluginDisabledEvent')
no_message(enabled_only, 'PluginEnabledEvent-only subscriber')
no_message(quiet, 'raw client without interest')
check(bystander.call('daemon.info').startswith('2.'), 'deluge-client bystander: daemon.info')
check(bystander.call('core.get_enabled_plugins') == (), 'deluge-client bystander: enabled plugins')
check(quiet.call_ok('core.get_enabled_plugins') == (), 'raw bystander: its own answer')

step('disabling again changes nothing and sends no event')
check(admin.call('core.disable_plugin', 'Stats') is True, 'core.disable_plugin again')
no_message(both, 'subscriber')

step('another client enables Stats')
check(admin.call('core.enable_plugin', 'Stats') is True, 'core.enable_plugin')
expect_event(both, 'subscriber', 'PluginEnabledEvent')
expect_event(enabled_only, 'PluginEnabledEvent-only subscriber', 'PluginEnabledEvent')
no_message(quiet, 'raw client without interest')
totals = bystander.call('stats.get_totals')
check(isinstance(totals, dict) and set(totals) == set(TOTAL_KEYS), 'bystander stats.get_totals: %r' % (totals,))
check(quiet.call_ok('daemon.info').startswith('2.'), 'raw bystander: daemon.info')
check(both.call_ok('daemon.info').startswith('2.'), 'subscriber: its own call answered')

step('a subscriber that disables Stats itself gets its reply and the event')
reply, before = both.call('core.disable_plugin', 'Stats')
check(reply[0] == 1 and reply[2] is True, 'core.disable_plugin: %r' % (reply,))
after = [] if before else [both.read_msg(5.0)]
check(before + after == [(3, 'PluginDisabledEvent', ('Stats',))], 'event around the reply: %r %r' % (before, after))
reply, before = both.call('core.enable_plugin', 'Stats')
check(reply[0] == 1 and reply[2] is True, 'core.enable_plugin: %r' % (reply,))
after = [] if before else [both.read_msg(5.0)]
check(before + after == [(3, 'PluginEnabledEvent', ('Stats',))], 'event around the reply: %r %r' % (before, after))
no_message(quiet, 'raw client without interest')
check(bystander.call('daemon.get_version').startswith('2.'), 'deluge-client bystander still in step')
check(admin.call('core.get_enabled_plugins') == ('Stats',), 'Stats enabled at the end')
print('OK')
