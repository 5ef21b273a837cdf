#!/usr/bin/env python3
"""Instruction counts per small request of a Larder under callgrind.

Drives a Larder started with `valgrind --tool=callgrind --instr-atstart=no`
through N 4 KiB PUTs of Bazel `cas/<sha256>` keys, then N GET hits of the
same keys, twice, then N GET misses of `ac/` keys, twice, switching collection on for each phase and dumping it after, so
each phase's profile has that phase alone (not startup, not the other one).
With --oci, the same for a registry's reads, as BuildKit imports a cache:
N 4 KiB blobs pushed (monolithic POST, not measured), then N HEADs of
them, N HEADs of digests never pushed, N GETs of the blobs, and N GETs of
one cache manifest by tag.
Callgrind counts user-space instructions only: the kernel's share (fsync,
socket I/O) is not in these numbers; compare with the load bench's CPU/req.

  valgrind --tool=callgrind --instr-atstart=no --dump-instr=no \\
      --callgrind-out-file=/tmp/cg/larder.%p target/release/larder serve \\
      --listen 127.0.0.1:7070 --data-dir /tmp/cg/data &
  benches/tools/callgrind_small.py --pid $! --base http://127.0.0.1:7070 -n 2000
  callgrind_annotate --inclusive=yes /tmp/cg/larder.<pid>.1   # PUT

With --stat-only against a Larder not under valgrind, prints the server's
user and system CPU per request of each phase instead.
"""
import argparse
import hashlib
import http.client
import os
import subprocess
import threading
import urllib.parse


def run(base, method, items, threads):
    """Sends `method` for every (path, body, want) in `items` over
    `threads` keep-alive connections, checking each status."""
    url = urllib.parse.urlparse(base)
    chunks = [items[i::threads] for i in range(threads)]
    errors = []

    def worker(chunk):
        conn = http.client.HTTPConnection(url.hostname, url.port)
        for path, body, want in chunk:
            sent = body if method in ("PUT", "POST") else None
            try:
                conn.request(method, path, body=sent)
                res = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                # The server may close an idle keep-alive connection; a
                # client reconnects and resends, as Bazel's does.
                conn.close()
                conn = http.client.HTTPConnection(url.hostname, url.port)
                conn.request(method, path, body=sent)
                res = conn.getresponse()
            data = res.read()
            whole = method == "HEAD" or data == body_of(path)
            if res.status not in want or (res.status == 200 and not whole):
                errors.append(f"{method} {path}: {res.status}")
        conn.close()

    body_of = dict((p, b) for p, b, _ in items).get
    ts = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} failures, first: {errors[0]}")


def callgrind(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def cpu(pid):
    """(user, system) CPU seconds of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


def phase(a, name, method, items):
    """Runs one phase; under callgrind, collects it alone and dumps it,
    else prints the server's user and system CPU per request (callgrind
    cannot see the kernel's share)."""
    before = cpu(a.pid)
    if not a.stat_only:
        callgrind(a.pid, "-i", "on")
    run(a.base, method, items, a.threads)
    if a.stat_only:
        (u0, s0), (u1, s1) = before, cpu(a.pid)
        n = len(items)
        print(f"{name}: user {(u1 - u0) * 1e6 / n:.0f} us/req, "
              f"system {(s1 - s0) * 1e6 / n:.0f} us/req")
    else:
        callgrind(a.pid, "-d", name)
        callgrind(a.pid, "-i", "off")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--oci", action="store_true",
                    help="registry reads (HEAD, GET of blobs and a manifest)")
    ap.add_argument("--stat-only", action="store_true",
                    help="no callgrind: print user/system CPU per request")
    a = ap.parse_args()
    if a.oci:
        return oci(a)
    items = []
    for i in range(a.n):
        body = os.urandom(a.size)
        path = f"/cache/bench/cas/{hashlib.sha256(body).hexdigest()}"
        items.append((path, body, (201, 204)))
    # Warm-up outside collection: connections, first-use allocations.
    run(a.base, "PUT", items[:100], a.threads)
    measured = items[100:]
    phase(a, "put", "PUT", measured)
    gets = [(p, b, (200,)) for p, b, _ in measured]
    # The first read of each key follows its write; the second is a read
    # of something read before (what a server's read caches hold).
    phase(a, "get_hit", "GET", gets)
    phase(a, "get_hit_again", "GET", gets)
    # Bazel asks its action cache before every action: misses, often twice
    # (the build's earlier runners asked too).
    misses = [(f"/cache/bench/ac/{os.urandom(32).hex()}", b"", (404,))
              for _ in measured]
    phase(a, "get_miss", "GET", misses)
    phase(a, "get_miss_again", "GET", misses)
    print(f"requests per phase: {len(measured)}")


def oci(a):
    repo = "/v2/bench/cache"
    blobs = []
    for _ in range(a.n):
        body = os.urandom(a.size)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        blobs.append((digest, body))
    pushes = [(f"{repo}/blobs/uploads/?digest={d}", b, (201,)) for d, b in blobs]
    run(a.base, "POST", pushes, a.threads)
    layers = ",".join(
        f'{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",'
        f'"digest":"{d}","size":{len(b)}}}' for d, b in blobs[:16])
    config = b"{}"
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    run(a.base, "POST", [(f"{repo}/blobs/uploads/?digest={config_digest}",
                          config, (201,))], 1)
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"config":{{"mediaType":"application/vnd.buildkit.cacheconfig.v0",'
        f'"digest":"{config_digest}","size":{len(config)}}},"layers":[{layers}]}}'
    ).encode()
    url = urllib.parse.urlparse(a.base)
    put = http.client.HTTPConnection(url.hostname, url.port)
    put.request("PUT", f"{repo}/manifests/buildcache", body=manifest, headers={
        "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    res = put.getresponse()
    res.read()
    if res.status != 201:
        raise SystemExit(f"manifest PUT: {res.status}")
    # Warm-up outside collection, as above.
    run(a.base, "HEAD", [(f"{repo}/blobs/{d}", b, (200,)) for d, b in blobs[:100]],
        a.threads)
    measured = blobs[100:]
    phase(a, "head_hit", "HEAD",
          [(f"{repo}/blobs/{d}", b, (200,)) for d, b in measured])
    phase(a, "head_miss", "HEAD",
          [(f"{repo}/blobs/sha256:{os.urandom(32).hex()}", b"", (404,))
           for _ in measured])
    phase(a, "get_blob", "GET",
          [(f"{repo}/blobs/{d}", b, (200,)) for d, b in measured])
    phase(a, "manifest_get", "GET",
          [(f"{repo}/manifests/buildcache", manifest, (200,))] * len(measured))
    print(f"requests per phase: {len(measured)}")


if __name__ == "__main__":
    main()
