"""Deluge's torrent methods on two of our daemons running the embedded engine, driven by the
stock deluge-client: the seeder gets a torrent file whose data it has, the downloader gets
the same file and the seeder as a peer; shapes, errors, pause/resume, and the counts.

Usage: torrents.py SEED_PORT SEED_PASSWORD LEECH_PORT LEECH_PASSWORD TORRENT_FILE SIZE
"""
import base64
import http.server
import os
import threading
import sys
import time

from _common import check, client, expect_remote, step

seed_port, seed_pw, leech_port, leech_pw, torrent_path, size = sys.argv[1:]
seed_port, leech_port, size = int(seed_port), int(leech_port), int(size)
seeder = client('127.0.0.1', seed_port, 'localclient', seed_pw)
leecher = client('127.0.0.1', leech_port, 'localclient', leech_pw)
with open(torrent_path, 'rb') as f:
    dump = base64.b64encode(f.read()).decode()
name = os.path.basename(torrent_path)


checking_seen = []


def wait_for(c, tid, cond, what, limit=120, pause=0.2):
    deadline = time.time() + limit
    while time.time() < deadline:
        st = c.call('core.get_torrent_status', tid, ['state', 'progress', 'total_done', 'total_size', 'is_finished'])
        if st.get('state') == 'Checking':
            # Nothing is known present while the engine checks (it counts bytes checked).
            checking_seen.append(st)
            check(st['total_done'] == 0 and st['is_finished'] is False, 'while checking: %r' % st)
        if cond(st):
            return st
        time.sleep(pause)
    raise AssertionError('%s: not within %ss; last status %r' % (what, limit, st))


for c in (seeder, leecher):
    c.call('stats.set_config', {'update_interval': 1})
check(list(seeder.call('core.get_session_state')) == [], 'a new daemon has no torrents')
version = seeder.call('core.get_libtorrent_version')
check('librqbit' in version, 'core.get_libtorrent_version: %r' % version)
free = seeder.call('core.get_free_space')
check(isinstance(free, int) and free > size, 'core.get_free_space: %r' % (free,))
expect_remote(lambda: seeder.call('core.get_free_space', '/no/such/dir'), 'InvalidPathError')
step('empty session; engine %s; %d bytes free' % (version, free))

tid = seeder.call('core.add_torrent_file', name, dump, {})
check(isinstance(tid, str) and len(tid) == 40, 'torrent id %r' % tid)
st = wait_for(seeder, tid, lambda s: s.get('state') == 'Seeding', 'seeder checks its data', pause=0.01)
check(st['progress'] == 100.0 and st['total_done'] == size, 'seeder status %r' % st)
check(checking_seen, 'the check of %d bytes was never seen' % size)
step('seeder: add_torrent_file -> %s, Seeding after its check (%d Checking answers: nothing done, not finished)'
     % (tid, len(checking_seen)))

expect_remote(lambda: seeder.call('core.add_torrent_file', name, dump, {}), 'AddTorrentError')
expect_remote(lambda: seeder.call('core.add_torrent_file', 'x.torrent', base64.b64encode(b'not a torrent').decode(), {}),
              'InvalidTorrentError')
expect_remote(lambda: seeder.call('core.add_torrent_file', 'x.torrent', '%%%', {}), 'InvalidTorrentError')
expect_remote(lambda: seeder.call('core.add_torrent_magnet', 'magnet:?dn=nothing', {}), 'InvalidTorrentError')
expect_remote(lambda: seeder.call('core.pause_torrent', ['0' * 40]), 'InvalidTorrentError')
expect_remote(lambda: seeder.call('core.remove_torrent', '0' * 40, False), 'InvalidTorrentError')
expect_remote(lambda: seeder.call('core.get_torrents_status', {'colour': 'red'}, []), 'WrappedException', 'ValueError', 'colour')
check(seeder.call('core.get_torrent_status', '0' * 40, ['name']) == {}, 'unknown id -> {}')
check(list(seeder.call('core.get_session_state')) == [tid], 'nothing else was added')
step('duplicate -> AddTorrentError; garbage, bad base64, bad magnet, unknown ids -> InvalidTorrentError; unknown filter -> ValueError')

levels = seeder.call('core.get_auth_levels_mappings')
check(levels[1] == {0: 'NONE', 1: 'READONLY', 5: 'NORMAL', 10: 'ADMIN'} and levels[0]['ADMIN'] == 10,
      'auth levels mappings, the reverse keyed by int as Deluge sends it: %r' % (levels,))
port = seeder.call('core.get_listen_port')
check(port > 0, 'seeder listen port %r' % port)
lid = leecher.call('core.add_torrent_file', name, dump, {'add_paused': True})
check(lid == tid, 'same info-hash on both sides')
st = wait_for(leecher, lid, lambda s: s.get('state') == 'Paused', 'added paused')
# A download limit, so the transfer spans several polls (update_interval 1).
limit = 16 << 20
leecher.call('core.set_config', {'max_download_speed': limit / 1024})
leecher.call('core.connect_peer', lid, '127.0.0.1', port)
started = time.monotonic()
leecher.call('core.resume_torrent', [lid])
step('downloader: added paused, limit %d B/s, connect_peer(127.0.0.1, %d), resumed' % (limit, port))
st = wait_for(leecher, lid, lambda s: s.get('is_finished'), 'download completes')
took = time.monotonic() - started
check(st['total_done'] == size and st['state'] == 'Seeding', 'downloader status %r' % st)
check(took >= size / limit / 2, 'the limit did not hold: %d bytes in %.1f s' % (size, took))
leecher.call('core.set_config', {'max_download_speed': -1.0})
step('downloaded %d bytes in %.1f s; now Seeding' % (size, took))

meta = leecher.call('core.get_torrent_status', lid,
                    ['files', 'num_files', 'file_progress', 'file_priorities', 'piece_length', 'num_pieces',
                     'private'])
piece = 256 << 10
check(meta['num_files'] == 1 and meta['private'] is False, 'metainfo %r' % meta)
check(meta['piece_length'] == piece and meta['num_pieces'] == (size + piece - 1) // piece,
      'pieces %r' % meta)
check([dict(f) for f in meta['files']] == [{'index': 0, 'path': 'payload.bin', 'size': size, 'offset': 0}],
      'files %r' % meta['files'])
check(list(meta['file_progress']) == [1.0] and list(meta['file_priorities']) == [4], 'file progress %r' % meta)
step('metainfo keys: files, piece length and count, per-file progress')

grid = ['queue', 'name', 'total_wanted', 'state', 'progress', 'num_seeds', 'total_seeds', 'num_peers',
        'total_peers', 'download_payload_rate', 'upload_payload_rate', 'eta', 'ratio', 'distributed_copies',
        'is_auto_managed', 'time_added', 'tracker_host', 'download_location', 'last_seen_complete',
        'total_done', 'total_uploaded', 'max_download_speed', 'max_upload_speed', 'seeds_peers_ratio',
        'total_remaining', 'completed_time', 'time_since_transfer']
all_status = leecher.call('core.get_torrents_status', {}, grid)
check(list(all_status) == [lid], 'get_torrents_status ids %r' % list(all_status))
missing = [k for k in grid if k not in all_status[lid]]
check(not missing, 'deluge-web grid keys missing: %r' % missing)
check(all_status[lid]['name'] == name[:-len('.torrent')] or all_status[lid]['name'], 'name')
check(leecher.call('core.get_torrents_status', {'state': 'Paused'}, ['name']) == {}, 'state filter')
check(list(leecher.call('core.get_torrents_status', {'id': [lid]}, ['name'])) == [lid], 'id filter')
tree = leecher.call('core.get_filter_tree', True, [])
check(['All', 1] in [list(x) for x in tree['state']], 'filter tree %r' % tree)
config = leecher.call('core.get_config')
for key in ('dht', 'download_location', 'max_download_speed', 'max_upload_speed', 'max_connections_global'):
    check(key in config, 'core.get_config has %s' % key)
step('status shapes, filters, filter tree, config keys')

leecher.call('core.pause_torrent', lid)
wait_for(leecher, lid, lambda s: s.get('state') == 'Paused', 'pause')
leecher.call('core.resume_torrent', lid)
wait_for(leecher, lid, lambda s: s.get('state') == 'Seeding', 'resume')
step('pause_torrent / resume_torrent with a single id')

time.sleep(2.5)  # two polls at update_interval 1
totals = leecher.call('stats.get_totals')
engine = leecher.call('core.get_session_status', ['total_payload_download'])
check(totals['total_payload_download'] == engine['total_payload_download'] == size,
      'leecher: stats %r, engine %r, size %d' % (totals, engine, size))
check(totals['total_download'] == 0, 'wire totals are not measured: %r' % totals)
up = seeder.call('stats.get_totals')
check(up['total_payload_upload'] == size, 'seeder: stats %r' % up)
step('stats: leecher payload download = engine counter = %d; seeder payload upload = %d' % (size, size))

failures = [list(f) for f in leecher.call('core.remove_torrents', [lid, '1' * 40], False)]
check(failures == [['1' * 40, 'Torrent ID not in session: ' + '1' * 40]], 'remove_torrents failures %r' % failures)
check(list(leecher.call('core.get_session_state')) == [], 'removed')
check(seeder.call('core.remove_torrent', tid, False) is True, 'remove_torrent')
step('remove_torrents reports failures, remove_torrent -> True')

# core.add_torrent_url: the daemon fetches the file over HTTP (headers passed on), bounded.
with open(torrent_path, 'rb') as f:
    torrent_bytes = f.read()


class Files(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'  # bodies end when the connection closes: no length needed

    def do_GET(self):
        if self.path == '/t.torrent' and self.headers.get('Cookie') == 'session=42':
            self.reply(200, torrent_bytes)
        elif self.path == '/t.torrent':
            self.reply(403, b'no cookie')
        elif self.path == '/garbage':
            self.reply(200, b'<html>not a torrent</html>')
        elif self.path == '/endless':  # no Content-Length, more than any torrent file
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b'd' * (1 << 20))
            except OSError:
                pass  # the daemon hung up: what it should do
        else:
            self.reply(404, b'not here')

    def reply(self, code, body):
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


web = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Files)
threading.Thread(target=web.serve_forever, daemon=True).start()
base = 'http://127.0.0.1:%d' % web.server_address[1]
uid = leecher.call('core.add_torrent_url', base + '/t.torrent', {'add_paused': True}, {'Cookie': 'session=42'})
check(uid == tid, 'add_torrent_url -> %r' % uid)
wait_for(leecher, uid, lambda s: s.get('state') == 'Paused', 'added from the URL, paused')
expect_remote(lambda: leecher.call('core.add_torrent_url', base + '/t.torrent', {}), 'AddTorrentError', '403')
expect_remote(lambda: leecher.call('core.add_torrent_url', base + '/nothing', {}), 'AddTorrentError', '404')
expect_remote(lambda: leecher.call('core.add_torrent_url', base + '/endless', {}), 'AddTorrentError',
              'more than 16777216 bytes')
expect_remote(lambda: leecher.call('core.add_torrent_url', base + '/garbage', {}), 'InvalidTorrentError',
              'not a torrent file')
expect_remote(lambda: leecher.call('core.add_torrent_url', 'ftp://127.0.0.1/t.torrent', {}),
              'InvalidTorrentError', 'only http and https')
expect_remote(lambda: leecher.call('core.add_torrent_url', 'http://127.0.0.1:1/t.torrent', {}),
              'AddTorrentError', 'could not fetch')
check(list(leecher.call('core.get_session_state')) == [uid], 'only the good URL added a torrent')
web.shutdown()
step('add_torrent_url: fetched with its headers; 403, 404, an endless body (> 16 MiB), '
     'not a torrent, ftp:, a closed port -> clear errors, nothing added')
print('OK')
