#!/usr/bin/env python3
"""Makes N distinct small single-file private torrents and their data, fast.

usage: make_torrents.py N DATA_DIR TORRENT_DIR [--size BYTES] [--piece BYTES] [--start I]

Torrent i (from --start, default 0) is the file DATA_DIR/tNNNNN.bin of --size random bytes
(default 32768) and TORRENT_DIR/tNNNNN.bin.torrent: an info dict (name, length, piece
length = --piece, default 16384, pieces, private = 1) and nothing else (no announce, no
trackers, no creation date). Prints one line per torrent, "tNNNNN.bin INFO_HASH_HEX", on
stdout, so a caller knows the ids a daemon gives them. Not a test: the data for
scripts/bench/seedbox.sh. Standard library only.
"""

import argparse
import hashlib
import os
import sys


def bencode(value):
    """Bencodes ints, bytes, str, lists and dicts (keys sorted as raw bytes)."""
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError("cannot bencode %r" % type(value))


def make_one(name, data, piece):
    """The .torrent bytes and info hash (hex) of one file's content."""
    pieces = b"".join(
        hashlib.sha1(data[i : i + piece]).digest() for i in range(0, len(data), piece)
    )
    info = {
        "name": name,
        "length": len(data),
        "piece length": piece,
        "pieces": pieces,
        "private": 1,
    }
    encoded = bencode(info)
    return bencode({"info": info}), hashlib.sha1(encoded).hexdigest()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int)
    p.add_argument("data_dir")
    p.add_argument("torrent_dir")
    p.add_argument("--size", type=int, default=32768)
    p.add_argument("--piece", type=int, default=16384)
    p.add_argument("--start", type=int, default=0)
    a = p.parse_args()
    if a.n < 0 or a.size < 1 or a.start < 0:
        p.error("N and --start must be >= 0, --size >= 1")
    if a.piece < 16384 or a.piece & (a.piece - 1):
        p.error("--piece must be a power of two >= 16384")
    os.makedirs(a.data_dir, exist_ok=True)
    os.makedirs(a.torrent_dir, exist_ok=True)
    out = sys.stdout
    for i in range(a.start, a.start + a.n):
        name = "t%05d.bin" % i
        data = os.urandom(a.size)
        with open(os.path.join(a.data_dir, name), "wb") as f:
            f.write(data)
        torrent, info_hash = make_one(name, data, a.piece)
        with open(os.path.join(a.torrent_dir, name + ".torrent"), "wb") as f:
            f.write(torrent)
        out.write("%s %s\n" % (name, info_hash))


if __name__ == "__main__":
    main()
