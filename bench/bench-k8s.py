#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gpuvirt-device-plugin through the kubelet stand-in (tests/k8s/kubelet.py) on a simulated dgx-a100.

Usage: bench-k8s.py GPUVIRT PLUGIN [CALLS] [APPLIES]
- Allocate latency p50/p99 for a whole GPU and for a MIG device, beside GetDevicePluginOptions on the same
  channel (the gRPC round trip with no work: the peer of the ratio).
- From the end of `gpuvirt mig apply` to the new list on the open ListAndWatch stream (p50, max), beside the
  apply's own wall time.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "k8s"))
import kubelet  # noqa: E402

GPUVIRT, PLUGIN = sys.argv[1], sys.argv[2]
CALLS = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
APPLIES = int(sys.argv[4]) if len(sys.argv) > 4 else 20
CONFIG = """version: v1
mig-configs:
  a:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1g.5gb": 2
        "3g.20gb": 1
    - devices: [2, 3, 4, 5, 6, 7]
      mig-enabled: false
  b:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1g.5gb": 7
    - devices: [2, 3, 4, 5, 6, 7]
      mig-enabled: false
"""


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


tmp = tempfile.mkdtemp(prefix="k8sb")
root = os.path.join(tmp, "h")
plugin = None
k = None
try:
    subprocess.run([GPUVIRT, "sim", "create", root, "--profile", "dgx-a100"], check=True, capture_output=True)
    cfg = os.path.join(tmp, "mig.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    subprocess.run([GPUVIRT, "--root", root, "mig", "apply", "-f", cfg, "-c", "a"], check=True, capture_output=True)
    k = kubelet.Kubelet(os.path.join(root, "var/lib/kubelet/device-plugins"))
    k.start()
    plugin = subprocess.Popen([PLUGIN, "--root", root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pl = k.accept(["nvidia.com/gpu", "nvidia.com/mig-1g.5gb"], timeout=20)
    gpu, mig = pl["nvidia.com/gpu"], pl["nvidia.com/mig-1g.5gb"]
    g_ids = [d["id"] for d in gpu.wait_list(lambda l: len(l) == 6)[0]]
    m_ids = [d["id"] for d in mig.wait_list(lambda l: len(l) == 4)[0]]
    for _ in range(50):  # warm up the channels
        gpu.options()
        gpu.allocate(g_ids[:1])
    base = timed(gpu.options, CALLS)
    a_gpu = timed(lambda: gpu.allocate(g_ids[:1]), CALLS)
    a_mig = timed(lambda: mig.allocate(m_ids[:1]), CALLS)
    b50 = pct(base, 50)
    print("%-46s p50 %7.0f us  p99 %7.0f us" % ("GetDevicePluginOptions (round trip, peer)", b50, pct(base, 99)))
    for name, v in (("Allocate nvidia.com/gpu (1 GPU)", a_gpu), ("Allocate nvidia.com/mig-1g.5gb (1 MIG device)", a_mig)):
        print("%-46s p50 %7.0f us  p99 %7.0f us  (p50 %.2fx the round trip)" % (name, pct(v, 50), pct(v, 99),
                                                                             pct(v, 50) / b50))

    lat, dur = [], []
    want = {"a": 4, "b": 14}
    for i in range(APPLIES):
        label = "b" if i % 2 == 0 else "a"
        t0 = time.monotonic()
        subprocess.run([GPUVIRT, "--root", root, "mig", "apply", "-f", cfg, "-c", label], check=True,
                       capture_output=True)
        t1 = time.monotonic()
        _, _ = mig.wait_list(lambda l: len(l) == want[label], timeout=10)
        t2 = time.monotonic()
        dur.append((t1 - t0) * 1000)
        lat.append((t2 - t1) * 1000)
    print("%-46s p50 %7.1f ms  max %7.1f ms" % ("gpuvirt mig apply (its own wall time, peer)", pct(dur, 50), max(dur)))
    print("%-46s p50 %7.1f ms  max %7.1f ms  (p50 %.2fx the apply)" % (
        "mig apply exit -> new list on the stream", pct(lat, 50), max(lat), pct(lat, 50) / pct(dur, 50)))
finally:
    if k:
        k.stop(clean_sockets=False)
    if plugin:
        plugin.send_signal(signal.SIGTERM)
        plugin.wait(timeout=20)
    shutil.rmtree(tmp, ignore_errors=True)
