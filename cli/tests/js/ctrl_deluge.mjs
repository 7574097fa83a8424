// @ctrl/deluge (npm) against a deluge-web JSON API: ours, or deluge-web's.
//
// Usage: node ctrl_deluge.mjs MODULE_DIR BASE_URL PASSWORD PHASE [TORRENT_FILE]
//   MODULE_DIR: the node_modules holding @ctrl/deluge.
//   PHASE add: log in, connect, list, upload and add the torrent file paused, its status,
//     files, resume, pause, resume (each waited for); prints one JSON line of what it saw.
//   PHASE remove ID: remove torrent ID (keeping its data), list; prints one JSON line.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [moduleDir, baseUrl, password, phase, arg] = process.argv.slice(2);
const entry = join(moduleDir, '@ctrl', 'deluge', 'dist', 'src', 'index.js');
const { Deluge } = await import(pathToFileURL(entry).href);
const client = new Deluge({ baseUrl, password, timeout: 20000 });

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

/** Polls `get` until `ok` holds of its value (20 s at most). */
async function waitFor(what, get, ok) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const value = await get();
    if (ok(value)) return value;
    check(Date.now() < deadline, `${what}: last ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const state = async (id) => (await client.getTorrentStatus(id)).result.state;

await client.login();
check(await client.checkSession(), 'auth.check_session after login');
const hosts = (await client.getHosts()).result;
const methods = (await client.connect()).result;
check(Array.isArray(methods) && methods.includes('core.add_torrent_file'), 'web.connect: method list');
check(await client.connected(), 'web.connected');
const out = { hosts, connected: true };

if (phase === 'add') {
  const before = await client.listTorrents();
  out.stats = before.result.stats;
  out.filters = Object.keys(before.result.filters);
  const upload = await client.upload(new Uint8Array(readFileSync(arg)));
  check(upload.success && upload.files.length === 1, `upload: ${JSON.stringify(upload)}`);
  out.upload = upload;
  const added = await client.addTorrent(upload.files[0], { add_paused: true });
  out.added = added.result;
  const id = added.result[0][1];
  out.id = id;
  out.paused = await waitFor('added paused', () => state(id), (s) => s === 'Paused');
  const status = (await client.getTorrentStatus(id)).result;
  out.status = { name: status.name, total_size: status.total_size, num_files: status.num_files };
  out.files = (await client.getTorrentFiles(id)).result;
  await client.resumeTorrent(id);
  out.resumed = await waitFor('resumed', () => state(id), (s) => s === 'Seeding');
  await client.pauseTorrent(id);
  out.paused_again = await waitFor('paused', () => state(id), (s) => s === 'Paused');
  await client.resumeTorrent(id);
  out.resumed_again = await waitFor('resumed again', () => state(id), (s) => s === 'Seeding');
  const listed = await client.getAllData();
  out.listed = listed.torrents.map((t) => ({ id: t.id, name: t.name, state: t.state }));
} else if (phase === 'remove') {
  out.removed = (await client.removeTorrent(arg, false)).result;
  out.listed = Object.keys((await client.listTorrents()).result.torrents);
} else {
  throw new Error(`unknown phase ${phase}`);
}
out.logout = await client.logout();
console.log(JSON.stringify(out));
