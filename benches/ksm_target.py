"""A kube-state-metrics-shaped scrape target for the side-by-side benchmark.

Serves N series named and labelled like kube-state-metrics (5-8 labels each) plus
a Go runtime block (go_gc_*, go_memstats_*) that the agents' write relabel rule drops.
Each agent scrapes its own path (/metrics/<agent>) so the target can count the
scrapes it served per agent: that count is the ground truth for "samples expected".

Bodies are cheap to produce: the label part of every line is rendered once at start;
a scrape only formats values. One body is built per second and shared by every
scrape in that second (gzip too), so three agents cost the target one render.

Run standalone: python3 ksm_target.py --series 50000 --port 0 --log scrapes.log
It prints the bound port on its first stdout line.
"""

import argparse
import gzip
import http.server
import random
import socketserver
import sys
import threading
import time

# Series per pod, in the order they are emitted.
POD_FAMILIES = 11
# Series per deployment.
DEPLOYMENT_FAMILIES = 4
PODS_PER_DEPLOYMENT = 3
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
APPS = ("api", "web", "worker", "cache", "ingest", "auth", "billing", "search", "notify", "gateway")

HELP_TYPE = {
    "kube_pod_info": ("Information about pod.", "gauge"),
    "kube_pod_status_phase": ("The pods current phase.", "gauge"),
    "kube_pod_container_resource_requests": ("The number of requested resource by a container.", "gauge"),
    "kube_pod_container_resource_limits": ("The number of requested limit resource by a container.", "gauge"),
    "kube_pod_container_status_restarts_total": ("The number of container restarts per container.", "counter"),
    "kube_pod_container_status_running": ("Describes whether the container is currently in running state.", "gauge"),
    "kube_deployment_status_replicas": ("The number of replicas per deployment.", "gauge"),
    "kube_deployment_status_replicas_available": ("The number of available replicas per deployment.", "gauge"),
    "kube_deployment_status_replicas_updated": ("The number of updated replicas per deployment.", "gauge"),
    "kube_deployment_spec_replicas": ("Number of desired pods for a deployment.", "gauge"),
}

# Value kinds: constant, a 0/1 flag that flips now and then, a counter, a small gauge.
CONST, FLAG, COUNTER, GAUGE = range(4)


def uid(rng):
    h = "%032x" % rng.getrandbits(128)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def build_series(n, seed=7):
    """Returns (families, go_block): families maps metric name -> list of
    (label_text, kind, base); go_block is a fixed list of Go runtime lines."""
    rng = random.Random(seed)
    families = {name: [] for name in HELP_TYPE}
    count = 0
    pod_no = 0
    deployment_no = 0
    while count < n:
        app = APPS[deployment_no % len(APPS)]
        ns = "team-%02d" % (deployment_no % 40)
        deployment = "%s-%04d" % (app, deployment_no)
        dep_uid = uid(rng)
        dep_labels = 'namespace="%s",deployment="%s",uid="%s",app_kubernetes_io_name="%s",app_kubernetes_io_part_of="%s"' % (
            ns, deployment, dep_uid, app, ns)
        for name in ("kube_deployment_status_replicas", "kube_deployment_status_replicas_available",
                     "kube_deployment_status_replicas_updated", "kube_deployment_spec_replicas"):
            if count < n:
                families[name].append((dep_labels, GAUGE, PODS_PER_DEPLOYMENT))
                count += 1
        for _ in range(PODS_PER_DEPLOYMENT):
            if count >= n:
                break
            suffix = "%010x" % rng.getrandbits(40)
            pod = "%s-%s-%s" % (deployment, suffix[:5], suffix[5:])
            pod_uid = uid(rng)
            node = "edge-node-%02d" % (pod_no % 16)
            pod_ip = "10.42.%d.%d" % ((pod_no // 250) % 250, pod_no % 250 + 2)
            host_ip = "192.168.10.%d" % (pod_no % 16 + 10)
            base = 'namespace="%s",pod="%s",uid="%s"' % (ns, pod, pod_uid)
            cont = '%s,container="%s",node="%s"' % (base, app, node)
            rows = [
                ("kube_pod_info", '%s,host_ip="%s",pod_ip="%s",node="%s",created_by_kind="ReplicaSet",created_by_name="%s-%s"'
                 % (base, host_ip, pod_ip, node, deployment, suffix[:5]), CONST, 1),
            ]
            for phase in PHASES:
                rows.append(("kube_pod_status_phase", '%s,node="%s",phase="%s"' % (base, node, phase),
                             FLAG if phase in ("Running", "Pending") else CONST, 1 if phase == "Running" else 0))
            rows += [
                ("kube_pod_container_resource_requests", cont + ',resource="cpu",unit="core"', CONST,
                 rng.choice((0.05, 0.1, 0.25, 0.5, 1))),
                ("kube_pod_container_resource_requests", cont + ',resource="memory",unit="byte"', CONST,
                 rng.choice((64, 128, 256, 512)) * 1048576),
                ("kube_pod_container_resource_limits", cont + ',resource="memory",unit="byte"', CONST,
                 rng.choice((256, 512, 1024)) * 1048576),
                ("kube_pod_container_status_restarts_total", cont, COUNTER, rng.randrange(0, 5)),
                ("kube_pod_container_status_running", cont, FLAG, 1),
            ]
            assert len(rows) == POD_FAMILIES
            for name, labels, kind, value in rows:
                if count < n:
                    families[name].append((labels, kind, value))
                    count += 1
            pod_no += 1
        deployment_no += 1
    go_block = go_runtime_lines()
    return families, go_block


def go_runtime_lines():
    names = ["go_memstats_" + s for s in (
        "alloc_bytes", "alloc_bytes_total", "buck_hash_sys_bytes", "frees_total", "gc_sys_bytes",
        "heap_alloc_bytes", "heap_idle_bytes", "heap_inuse_bytes", "heap_objects", "heap_released_bytes",
        "heap_sys_bytes", "last_gc_time_seconds", "lookups_total", "mallocs_total", "mcache_inuse_bytes",
        "mcache_sys_bytes", "mspan_inuse_bytes", "mspan_sys_bytes", "next_gc_bytes", "other_sys_bytes",
        "stack_inuse_bytes", "stack_sys_bytes", "sys_bytes")]
    lines = ['go_gc_duration_seconds{quantile="%s"}' % q for q in ("0", "0.25", "0.5", "0.75", "1")]
    lines += ["go_gc_duration_seconds_sum", "go_gc_duration_seconds_count"]
    return lines + names


class Body:
    """Renders the exposition text for a given second; keeps the last one."""

    def __init__(self, n):
        self.families, self.go_block = build_series(n)
        # +1: go_goroutines, which the relabel rule keeps.
        self.series = sum(len(v) for v in self.families.values()) + len(self.go_block) + 1
        self.lock = threading.Lock()
        self.tick = None
        self.plain = b""
        self.gzipped = b""
        self.started = int(time.time())

    def render(self, tick):
        t = tick - self.started
        out = []
        append = out.append
        for name, rows in self.families.items():
            help_text, kind = HELP_TYPE[name]
            append("# HELP %s %s\n# TYPE %s %s\n" % (name, help_text, name, kind))
            for i, (labels, vkind, base) in enumerate(rows):
                if vkind == CONST:
                    value = base
                elif vkind == FLAG:
                    # About one series in 500 differs from its base value in a given second.
                    value = base if (i * 7919 + t) % 500 else 1 - base
                elif vkind == COUNTER:
                    value = base + (i * 31 + t) // 97
                else:
                    value = base + ((i + t) % 3) - 1
                append("%s{%s} %s\n" % (name, labels, value))
        for i, line in enumerate(self.go_block):
            append("%s %s\n" % (line, (i * 1000003 + t * 4099) % 10_000_000 / 7))
        append("go_goroutines %d\n" % (80 + t % 7))
        return "".join(out).encode()

    def get(self, want_gzip):
        tick = int(time.time())
        with self.lock:
            if tick != self.tick:
                self.plain = self.render(tick)
                self.gzipped = b""
                self.tick = tick
            if want_gzip and not self.gzipped:
                self.gzipped = gzip.compress(self.plain, compresslevel=1)
            return self.gzipped if want_gzip else self.plain


def serve(n, port, log_path, ready_out=sys.stdout):
    body = Body(n)
    log = open(log_path, "a", buffering=1) if log_path else None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if not self.path.startswith("/metrics"):
                self.send_error(404)
                return
            who = self.path[len("/metrics/"):] or "unknown"
            want_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
            data = body.get(want_gzip)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            if want_gzip:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if log:
                # Logged after the body is written: a scrape counts once it was served.
                log.write("%s %.3f\n" % (who, time.time()))

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", port), Handler)
    print(server.server_address[1], body.series, file=ready_out, flush=True)
    server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, default=10000)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", default="")
    a = p.parse_args()
    serve(a.series, a.port, a.log)


if __name__ == "__main__":
    main()
