#!/usr/bin/env python3
"""Median round trip of stats.get_totals with the stock deluge-client.

usage: latency.py HOST PORT USER PASSWORD [CALLS]
Prints one line: 'median_ms=<float> p90_ms=<float> calls=<n>'.
"""
import statistics
import sys
import time

from deluge_client import DelugeRPCClient

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
calls = int(sys.argv[5]) if len(sys.argv) > 5 else 200
client = DelugeRPCClient(host, port, user, password, decode_utf8=True)
client.connect()
for _ in range(5):  # warm up
    client.call("stats.get_totals")
samples = []
for _ in range(calls):
    t = time.perf_counter()
    totals = client.call("stats.get_totals")
    samples.append((time.perf_counter() - t) * 1000)
    assert "total_upload" in totals, totals
samples.sort()
print("median_ms=%.3f p90_ms=%.3f calls=%d" % (
    statistics.median(samples), samples[int(len(samples) * 0.9)], len(samples)))
