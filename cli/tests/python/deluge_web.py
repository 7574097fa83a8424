"""Debian's deluge-web against our daemon, through deluge-web's own JSON API: log in to the
web UI, connect to our daemon with a non-localclient account, list (web.update_ui), add a
torrent file from disk (web.add_torrents) and see it seed.

Usage: deluge_web.py WEB_PORT TORRENT_FILE TORRENT_ID
"""
import http.cookiejar
import json
import sys
import time
import urllib.request

from _common import check, step

web_port, torrent_path, tid = sys.argv[1:]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
counter = [0]


def call(method, *params):
    counter[0] += 1
    body = json.dumps({'method': method, 'params': list(params), 'id': counter[0]}).encode()
    req = urllib.request.Request('http://127.0.0.1:%s/json' % web_port, data=body,
                                 headers={'Content-Type': 'application/json'})
    reply = json.loads(opener.open(req, timeout=30).read())
    check(reply.get('error') is None, '%s: %r' % (method, reply.get('error')))
    return reply['result']


check(call('auth.login', 'deluge') is True, 'web login with the default password')
hosts = call('web.get_hosts')
check(len(hosts) == 1 and hosts[0][3] == 'webuser', 'host list %r' % (hosts,))
host_id = hosts[0][0]
deadline = time.time() + 20
while True:
    status = call('web.get_host_status', host_id)
    if status[1] == 'Online':
        break
    check(time.time() < deadline, 'host status %r' % (status,))
    time.sleep(0.2)
step('web login; host %s:%s as %s is %s, version %s' % (hosts[0][1], hosts[0][2], hosts[0][3], status[1], status[2]))

call('web.connect', host_id)
check(call('web.connected') is True, 'web.connected')
keys = ['name', 'state', 'progress', 'total_wanted', 'num_seeds', 'num_peers', 'eta', 'ratio',
        'download_payload_rate', 'upload_payload_rate', 'time_added', 'download_location']
ui = call('web.update_ui', keys, {})
check(ui['connected'] is True and ui['torrents'] == {}, 'empty update_ui %r' % (ui,))
for k in ('num_connections', 'upload_rate', 'download_rate', 'dht_nodes', 'has_incoming_connections',
          'free_space'):
    check(k in ui['stats'], 'update_ui stats lack %s: %r' % (k, ui['stats']))
check(ui['filters'] and 'state' in ui['filters'], 'filters %r' % (ui['filters'],))
step('web.connect; web.update_ui: no torrents, stats and filters present')

check(call('web.add_torrents', [{'path': torrent_path, 'options': {'add_paused': False}}]) is not None,
      'web.add_torrents')
deadline = time.time() + 60
while True:
    ui = call('web.update_ui', keys, {})
    t = (ui['torrents'] or {}).get(tid)
    if t and t['state'] == 'Seeding':
        break
    check(time.time() < deadline, 'torrent not seeding via the web UI: %r' % (ui['torrents'],))
    time.sleep(0.3)
missing = [k for k in keys if k not in t]
check(not missing, 'keys missing in update_ui: %r' % missing)
check(t['progress'] == 100.0, 'progress %r' % t['progress'])
step('web.add_torrents from disk; update_ui lists %s Seeding at 100%%' % t['name'])
call('web.disconnect')
print('OK')
