"""deluge-web-client (PyPI 2.x) against a deluge-web JSON API: ours, or deluge-web's.

Run with the interop venv's python.
Usage: webapi_client.py BASE_URL PASSWORD add TORRENT_FILE
         log in (auth.login(password), web.connect to the first host), list
         (web.update_ui), add the file paused (core.add_torrent_file), its status and files,
         resume, pause, resume (each waited for); adding it again answers its id;
       webapi_client.py BASE_URL PASSWORD remove ID
         remove it (keeping its data), list.
Prints one JSON line of what it saw.
"""
import json
import sys
import time

from deluge_web_client import DelugeWebClient, TorrentOptions

url, password, phase, arg = sys.argv[1:]


def check(ok, what):
    if not ok:
        raise SystemExit('check failed: %s' % what)


def wait_for(what, get, ok):
    deadline = time.time() + 20
    while True:
        value = get()
        if ok(value):
            return value
        check(time.time() < deadline, '%s: last %r' % (what, value))
        time.sleep(0.2)


out = {}
with DelugeWebClient(url, password) as client:
    check(client.check_connected().result is True, 'web.connected after login')
    out['hosts'] = client.get_hosts().result
    out['host_status'] = client.get_host_status(out['hosts'][0][0]).result
    out['plugins'] = client.get_plugins().result

    def state(tid):
        return client.get_torrent_status(tid, ['state']).result['state']

    if phase == 'add':
        ui = client.update_ui(['name', 'state', 'progress'], {}).result
        out['ui_keys'] = sorted(ui)
        out['stats_keys'] = sorted(ui['stats'])
        added = client.upload_torrent(arg, TorrentOptions(add_paused=True))
        tid = added.result
        out['id'] = tid
        out['paused'] = wait_for('added paused', lambda: state(tid), lambda s: s == 'Paused')
        status = client.get_torrent_status(tid, ['name', 'total_size', 'num_files']).result
        out['status'] = status
        out['files'] = client.get_torrent_files(tid).result
        client.resume_torrent(tid)
        out['resumed'] = wait_for('resumed', lambda: state(tid), lambda s: s == 'Seeding')
        client.pause_torrent(tid)
        out['paused_again'] = wait_for('paused', lambda: state(tid), lambda s: s == 'Paused')
        client.resume_torrent(tid)
        out['resumed_again'] = wait_for('resumed again', lambda: state(tid), lambda s: s == 'Seeding')
        again = client.upload_torrent(arg, TorrentOptions(add_paused=True))
        out['again'] = [again.result, again.message]
        torrents = client.update_ui(['name', 'state'], {}).result['torrents']
        out['listed'] = {k: v['state'] for k, v in torrents.items()}
    elif phase == 'remove':
        out['removed'] = client.remove_torrent(arg, False).result
        out['listed'] = sorted(client.update_ui(['name'], {}).result['torrents'])
    else:
        raise SystemExit('unknown phase %s' % phase)
    out['disconnect'] = client.disconnect().result
print(json.dumps(out))
