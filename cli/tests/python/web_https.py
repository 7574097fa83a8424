"""The web server over HTTPS with Python's own TLS (OpenSSL, certificate and host name
verified against the daemon's certificate): the page, a JSON-RPC login (its cookie
Secure) and a call on one kept-alive connection; the certificate the server showed is the
file's. The standard library only (no deluge-client).

Usage: web_https.py PORT CAFILE USER PASSWORD  (run by cli/tests/daemon/web_https.rs)
"""
import http.client
import json
import ssl
import sys



def check(cond, what):
    if not cond:
        raise AssertionError(what)


def step(text):
    print('-', text, flush=True)


port, cafile, user, password = sys.argv[1:]
# Verifies the chain against CAFILE and the name `localhost` (the certificate's).
context = ssl.create_default_context(cafile=cafile)
conn = http.client.HTTPSConnection('localhost', int(port), context=context, timeout=30)

conn.request('GET', '/')
resp = conn.getresponse()
page = resp.read().decode()
check(resp.status == 200 and page.lower().startswith('<!doctype html'), 'page: %s %r' % (resp.status, page[:80]))
seen = conn.sock.getpeercert(binary_form=True)
with open(cafile) as f:
    want = ssl.PEM_cert_to_DER_cert(f.read())
check(seen == want, 'the server showed another certificate than %s' % cafile)
step('GET / over %s (%s); the certificate is the file\'s' % (conn.sock.version(), conn.sock.cipher()[0]))

counter = [0]


def call(method, params, cookie=None):
    counter[0] += 1
    body = json.dumps({'method': method, 'params': params, 'id': counter[0]})
    headers = {'Content-Type': 'application/json'}
    if cookie:
        headers['Cookie'] = cookie
    conn.request('POST', '/json', body=body, headers=headers)
    resp = conn.getresponse()
    reply = json.loads(resp.read())
    check(resp.status == 200 and reply.get('error') is None and reply['id'] == counter[0],
          '%s: HTTP %s %r' % (method, resp.status, reply))
    return reply['result'], resp.getheader('Set-Cookie')


ok, set_cookie = call('auth.login', [user, password])
check(ok is True and set_cookie, 'login: %r %r' % (ok, set_cookie))
attributes = [a.strip() for a in set_cookie.split(';')]
check('Secure' in attributes and 'HttpOnly' in attributes, 'cookie attributes %r' % (attributes,))
cookie = attributes[0]
step('auth.login: true; cookie %s' % '; '.join(attributes[1:]))

session, _ = call('auth.get_session', [], cookie)
check(session and session['user'] == user, 'session %r' % (session,))
totals, _ = call('stats.get_totals', [], cookie)
check(isinstance(totals.get('total_upload'), int), 'totals %r' % (totals,))
step('auth.get_session %r; stats.get_totals total_upload %d' % (session, totals['total_upload']))
print('OK')
