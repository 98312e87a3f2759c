#!/usr/bin/python3
# A paced HTTP load: RATE requests per second in all, spread over CONNS keep-alive connections, each
# request sent at its scheduled time (open loop). Debian's wrk cannot pace (that is wrk2), and a closed
# loop hides a slow server behind its own waiting (coordinated omission): here a request's latency runs
# from the moment it was due, so a late answer delays no later request's clock.
#
# Usage: bench/paced.py URL [--rate 1000] [--duration 10] [--conns 8] [--count N]
# Prints one line: sent, rate achieved, errors, p50/p90/p99/max latency in ms, mean body size.
# --count N: N requests as fast as the connections go (no pacing), for a fixed amount of work.
import argparse
import http.client
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--count", type=int, default=0)
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    path = u.path + ("?" + u.query if u.query else "")
    total = a.count or int(a.rate * a.duration)
    lat, sizes, errors = [], [], [0]
    lock = threading.Lock()
    start = time.monotonic() + 0.2
    interval = 0 if a.count else 1.0 / a.rate

    def worker(k):
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
        mine, msz, err = [], [], 0
        for i in range(k, total, a.conns):
            due = start + i * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            if a.count:
                due = time.monotonic()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    err += 1
                msz.append(len(body))
            except (OSError, http.client.HTTPException):
                err += 1
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
                continue
            mine.append(time.monotonic() - due)
        conn.close()
        with lock:
            lat.extend(mine)
            sizes.extend(msz)
            errors[0] += err

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - start
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))] * 1000 if lat else float("nan")

    print("sent %d in %.1fs (%.0f/s), errors %d, latency ms p50 %.2f p90 %.2f p99 %.2f max %.2f, body %.0f B"
          % (total, took, len(lat) / took if took > 0 else 0, errors[0], pct(50), pct(90), pct(99),
             lat[-1] * 1000 if lat else float("nan"), sum(sizes) / len(sizes) if sizes else 0))


if __name__ == "__main__":
    main()
