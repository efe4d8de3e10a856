#!/usr/bin/env python3
"""Side-by-side benchmark: outpost vs the Prometheus agent (2.42) vs vmagent (1.79).

One command, Python 3.11 standard library only:

    python3 benches/side_by_side.py [--quick] [--series 10000,50000,200000]
                                    [--interval 15s] [--duration 5m] [--outage 10m]

For each series count N it starts one shared load on 127.0.0.1 (prometheus-node-exporter
and a KSM-shaped target serving N series), one VictoriaMetrics receiver, and the three
agents with equivalent configs (same targets and interval, the seed's write-relabel drop
of go_gc_.*|go_memstats_.*, external labels cluster/role/location plus agent=<name> so
the receiver can tell them apart). It samples each agent's RSS and CPU from /proc every
second (and the bytes it had written to disk, /proc/<pid>/io write_bytes), stops the
receiver for the outage and restarts it, and then writes
benches/results/<date>.md and an SVG plot per N.

Ground truth for "expected samples": the KSM target logs every scrape it served, per
agent (each agent scrapes its own path). Every served scrape must show up at the
receiver as N kube_* samples of that agent. Delivered samples are counted by
VictoriaMetrics itself (count_over_time), so no agent's own bookkeeping is trusted.

--quick (<= 3 minutes): N=10000, 5s interval, 60s run, 30s outage; it checks only that
every agent delivered and exits non-zero if one did not.
"""

import argparse
import atexit
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
AGENTS = ("outpost", "prometheus", "vmagent")
DROP_REGEX = "go_gc_.*|go_memstats_.*"
EXTERNAL = {"cluster": "bench", "role": "edge", "location": "lab"}
# The seed's queue_config for the Prometheus agent, as deployed there.
SEED_QUEUE = {
    "capacity": 20000,
    "max_shards": 100,
    "min_shards": 10,
    "max_samples_per_send": 10000,
    "batch_send_deadline": "10s",
    "min_backoff": "30ms",
    "max_backoff": "5s",
}
# Self-metrics giving bytes on the wire and samples sent, per agent.
WIRE_METRICS = {
    "prometheus": ("prometheus_remote_storage_bytes_total", "prometheus_remote_storage_samples_total"),
    "outpost": ("prometheus_remote_storage_bytes_total", "prometheus_remote_storage_samples_total"),
    "vmagent": ("vmagent_remotewrite_bytes_sent_total", "vmagent_remotewrite_rows_pushed_after_relabel_total"),
}


def log(*parts):
    print("[%s]" % time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def parse_duration(text):
    """`90s`, `5m`, `1m30s`, `1h` -> seconds (float)."""
    total, rest = 0.0, text.strip()
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", rest):
        total += float(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if not re.fullmatch(r"(\d+(?:\.\d+)?(ms|s|m|h))+", rest):
        raise argparse.ArgumentTypeError("not a duration: %r (use e.g. 15s, 5m, 1m30s)" % text)
    return total


def fmt_duration(seconds):
    seconds = int(round(seconds))
    minutes, rest = divmod(seconds, 60)
    if minutes and rest:
        return "%dm%ds" % (minutes, rest)
    return "%dm" % minutes if minutes else "%ds" % rest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_http(url, timeout, proc=None, what="service"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with code %s before answering %s" % (what, proc.returncode, url))
        try:
            http_get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError("%s did not answer %s within %.0fs" % (what, url, timeout))


def metric_sums(text):
    """Sums every sample of each metric name in a Prometheus text body."""
    sums = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        sums[m.group(1)] = sums.get(m.group(1), 0.0) + value
    return sums


class Processes:
    """Every child the harness starts, so all are stopped on any exit path."""

    def __init__(self):
        self.procs = []
        atexit.register(self.stop_all)

    def start(self, name, argv, log_path, **kw):
        out = open(log_path, "ab")
        proc = subprocess.Popen(argv, stdout=kw.pop("stdout", out), stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kw)
        proc.bench_name = name
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=15):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in list(reversed(self.procs)):
            self.stop(proc, timeout=5)


PROCS = Processes()


def on_signal(signum, _frame):
    PROCS.stop_all()
    sys.exit(128 + signum)


class Sampler(threading.Thread):
    """Reads VmRSS, utime+stime and disk bytes written (write_bytes) of each agent once a second."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = dict(pids)
        self.samples = {name: [] for name in self.pids}  # (t, rss_bytes, cpu_seconds, disk_write_bytes)
        self.stopped = threading.Event()

    @staticmethod
    def read(pid):
        with open("/proc/%d/status" % pid) as f:
            rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat (1-based) are utime and stime; after the ')' split they are 11 and 12.
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        # Bytes the process caused to be sent to the storage layer: what reaches the flash.
        with open("/proc/%d/io" % pid) as f:
            written = next(int(l.split()[1]) for l in f if l.startswith("write_bytes:"))
        return rss, cpu, written

    def run(self):
        next_at = time.time()
        while not self.stopped.is_set():
            now = time.time()
            for name, pid in self.pids.items():
                try:
                    rss, cpu, written = self.read(pid)
                except (OSError, StopIteration, IndexError, ValueError):
                    continue
                self.samples[name].append((now, rss, cpu, written))
            next_at += 1.0
            self.stopped.wait(max(0.0, next_at - time.time()))

    def window(self, name, t0, t1):
        return [s for s in self.samples[name] if t0 <= s[0] <= t1]

    def written(self, name, t):
        """Disk bytes the agent had written by time t (its last sample at or before t)."""
        before = [s[3] for s in self.samples[name] if s[0] <= t]
        return before[-1] if before else 0


class Receiver:
    """VictoriaMetrics single node, restartable on the same port and data path."""

    def __init__(self, workdir):
        self.port = free_port()
        self.data = os.path.join(workdir, "vm-data")
        self.log = os.path.join(workdir, "victoria-metrics.log")
        self.proc = None

    @property
    def write_url(self):
        return "http://127.0.0.1:%d/api/v1/write" % self.port

    def start(self):
        argv = [
            "/usr/bin/victoria-metrics",
            "-httpListenAddr=127.0.0.1:%d" % self.port,
            "-storageDataPath=" + self.data,
            "-retentionPeriod=1y",
            # Instant queries must see samples up to the moment asked for.
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-search.maxUniqueTimeseries=10000000",
            "-loggerLevel=ERROR",
        ]
        self.proc = PROCS.start("victoria-metrics", argv, self.log)
        wait_http("http://127.0.0.1:%d/health" % self.port, 60, self.proc, "victoria-metrics")

    def stop(self):
        PROCS.stop(self.proc, timeout=30)

    def query(self, expr, at):
        qs = urllib.parse.urlencode({"query": expr, "time": "%.3f" % at, "nocache": "1"})
        body = json.loads(http_get("http://127.0.0.1:%d/api/v1/query?%s" % (self.port, qs), timeout=120))
        if body.get("status") != "success":
            raise RuntimeError("query %s failed: %s" % (expr, body))
        return body["data"]["result"]

    def scalar(self, expr, at):
        result = self.query(expr, at)
        return float(result[0]["value"][1]) if result else 0.0


class ScrapeLog:
    """The KSM target's log of served scrapes: `<agent> <unix time>` per line."""

    def __init__(self, path):
        self.path = path

    def served(self, agent):
        times = []
        try:
            with open(self.path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == agent:
                        times.append(float(parts[1]))
        except FileNotFoundError:
            pass
        return sorted(times)

    def checkpoint(self, agent, before):
        """A query time just after the last scrape served before `before`, and how
        many scrapes were served up to it. The next scrape starts an interval later,
        so no sample timestamp falls between a served scrape and this time."""
        times = [t for t in self.served(agent) if t <= before]
        if not times:
            return None, 0
        return times[-1] + 0.1, len(times)


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def yaml_list(items):
    return "[" + ", ".join("'%s'" % i for i in items) + "]"


class Agent:
    def __init__(self, name, workdir):
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(self.dir, "agent.log")

    @property
    def metrics_url(self):
        return "http://127.0.0.1:%d/metrics" % self.port

    def self_metrics(self):
        try:
            return metric_sums(http_get(self.metrics_url, timeout=10).decode("utf-8", "replace"))
        except OSError as e:
            log("%s: /metrics unreadable: %s" % (self.name, e))
            return {}


def scrape_section(interval, timeout, node_addr, ksm_addr, agent):
    return """scrape_configs:
  - job_name: node
    scrape_interval: {i}
    scrape_timeout: {t}
    static_configs:
      - targets: ['{node}']
  - job_name: ksm
    scrape_interval: {i}
    scrape_timeout: {t}
    metrics_path: /metrics/{agent}
    static_configs:
      - targets: ['{ksm}']
""".format(i=fmt_duration(interval), t=fmt_duration(timeout), node=node_addr, ksm=ksm_addr, agent=agent)


def start_prometheus(agent, env):
    labels = dict(EXTERNAL, agent=agent.name)
    config = "global:\n  external_labels:\n" + "".join("    %s: %s\n" % kv for kv in labels.items())
    config += scrape_section(env["interval"], env["timeout"], env["node"], env["ksm"], agent.name)
    config += """remote_write:
  - url: {url}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: '{drop}'
        action: drop
    queue_config:
""".format(url=env["write_url"], drop=DROP_REGEX)
    config += "".join("      %s: %s\n" % kv for kv in SEED_QUEUE.items())
    path = write_file(os.path.join(agent.dir, "prometheus.yml"), config)
    argv = [
        "/usr/bin/prometheus",
        "--enable-feature=agent",
        "--config.file=" + path,
        "--storage.agent.path=" + os.path.join(agent.dir, "wal"),
        # The seed runs the agent with WAL compression on.
        "--storage.agent.wal-compression",
        "--web.listen-address=127.0.0.1:%d" % agent.port,
        "--log.level=warn",
    ]
    return PROCS.start(agent.name, argv, agent.log)


def start_vmagent(agent, env):
    scrape = write_file(os.path.join(agent.dir, "scrape.yml"),
                        scrape_section(env["interval"], env["timeout"], env["node"], env["ksm"], agent.name))
    relabel = write_file(os.path.join(agent.dir, "relabel.yml"),
                         "- source_labels: [__name__]\n  regex: '%s'\n  action: drop\n" % DROP_REGEX)
    argv = [
        "/usr/bin/vmagent",
        "-promscrape.config=" + scrape,
        "-remoteWrite.url=" + env["write_url"],
        "-remoteWrite.urlRelabelConfig=" + relabel,
        "-remoteWrite.tmpDataPath=" + os.path.join(agent.dir, "tmp"),
        "-httpListenAddr=127.0.0.1:%d" % agent.port,
        # The 200k-series body is larger than vmagent's 16 MB default.
        "-promscrape.maxScrapeSize=256MB",
        "-loggerLevel=WARN",
    ]
    argv += ["-remoteWrite.label=%s=%s" % kv for kv in dict(EXTERNAL, agent=agent.name).items()]
    return PROCS.start(agent.name, argv, agent.log)


def start_outpost(agent, env):
    spec = open(os.path.join(HERE, "fleet-bench.yaml")).read()
    wal = os.path.join(agent.dir, "wal")
    for key, value in {
        "@VM_PORT@": str(env["vm_port"]),
        "@INTERVAL@": fmt_duration(env["interval"]),
        "@TIMEOUT@": fmt_duration(env["timeout"]),
        "@WAL_DIR@": wal,
        "@WAL_MODE@": env["wal_mode"],
        "@NODE_EXPORTER@": env["node"],
        "@KSM@": env["ksm"],
        # About 180 bytes per KSM line; 25% headroom, whole MiB.
        "@KSM_BODY_SIZE@": "%dMi" % (env["n"] * 225 // 1048576 + 1),
        "@KSM_SAMPLES@": str(env["n"] * 5 // 4 + 1000),
        # What N KSM series and node_exporter's keep in their series tables,
        # with room for a table's doubling (agent-linux/tests/memory_bound.rs).
        "@SERIES_POOL_SIZE@": "%dMi" % (env["n"] * 960 // 1048576 + 3),
        "@SERIES_POOL_SERIES@": str(max(200000, env["n"] * 3)),
    }.items():
        spec = spec.replace(key, value)
    spec_path = write_file(os.path.join(agent.dir, "fleet-bench.yaml"), spec)
    plans = os.path.join(agent.dir, "plans")
    compile_log = os.path.join(agent.dir, "outpostc.log")
    with open(compile_log, "wb") as out:
        rc = subprocess.call([env["outpostc"], "compile", spec_path, "--output", plans], stdout=out, stderr=out)
    if rc != 0:
        raise RuntimeError("outpostc compile failed (exit %d), see %s" % (rc, compile_log))
    plan = find_plan(plans)
    agent.plan = plan
    argv = [env["outpost"], "run", "--plan", plan, "--wal-dir", wal, "--listen", "127.0.0.1:%d" % agent.port]
    return PROCS.start(agent.name, argv, agent.log)


def find_plan(plans_dir):
    found = []
    for base, _dirs, files in os.walk(plans_dir):
        found += [os.path.join(base, f) for f in files if f.endswith(".plan")]
    # The benchmark fleet has no node collectors, so the cluster-role plan carries both jobs.
    cluster = [p for p in found if os.path.basename(p) == "cluster.plan"]
    if len(cluster) == 1:
        return cluster[0]
    if len(found) == 1:
        return found[0]
    raise RuntimeError("expected one cluster.plan under %s, found %s" % (plans_dir, found))


def worst_case_bound(env, plan):
    """The compiler's worst-case memory for the plan, from `outpostc explain --format json`."""
    try:
        out = subprocess.run([env["outpostc"], "explain", plan, "--format", "json"], capture_output=True,
                             timeout=30).stdout
        doc = json.loads(out)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                hit = walk(v, path + [k.lower()])
                if hit is not None:
                    return hit
        elif isinstance(node, (int, float)) and path and "total" in path[-1] and any(
                "memory" in p or "worst" in p for p in path):
            return node
        return None

    return walk(doc, [])


STARTERS = {"prometheus": start_prometheus, "vmagent": start_vmagent, "outpost": start_outpost}


class Scenario:
    def __init__(self, n, args, workroot):
        self.n = n
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="n%d-" % n, dir=workroot)
        self.receiver = Receiver(self.dir)
        self.agents = {name: Agent(name, self.dir) for name in args.agents}
        self.events = {}

    def start_load(self):
        node_port = free_port()
        self.node_exporter = PROCS.start("node-exporter", [
            "/usr/bin/prometheus-node-exporter",
            "--web.listen-address=127.0.0.1:%d" % node_port,
        ], os.path.join(self.dir, "node-exporter.log"))
        wait_http("http://127.0.0.1:%d/metrics" % node_port, 30, self.node_exporter, "node_exporter")
        self.scrape_log = ScrapeLog(os.path.join(self.dir, "scrapes.log"))
        ksm = PROCS.start("ksm-target", [sys.executable, os.path.join(HERE, "ksm_target.py"), "--series",
                                         str(self.n), "--port", "0", "--log", self.scrape_log.path],
                          os.path.join(self.dir, "ksm-target.log"), stdout=subprocess.PIPE)
        first = ksm.stdout.readline().split()
        if len(first) != 2:
            raise RuntimeError("KSM target did not start, see %s" % os.path.join(self.dir, "ksm-target.log"))
        ksm_port, self.target_series = int(first[0]), int(first[1])
        self.env = {
            "n": self.n,
            "interval": self.args.interval,
            "timeout": min(10.0, self.args.interval),
            "node": "127.0.0.1:%d" % node_port,
            "ksm": "127.0.0.1:%d" % ksm_port,
            "vm_port": self.receiver.port,
            "write_url": self.receiver.write_url,
            "outpost": self.args.outpost_bin,
            "outpostc": self.args.outpostc_bin,
            "wal_mode": self.args.wal_mode,
        }

    def delivered(self, agent, at):
        """kube_* samples of `agent` the receiver holds with timestamps up to `at`."""
        window = int(at - self.events["agents_started"]) + 120
        return self.receiver.scalar('sum(count_over_time({__name__=~"kube_.+",agent="%s"}[%ds]))'
                                    % (agent, window), at)

    def accounting(self, agent, before):
        at, scrapes = self.scrape_log.checkpoint(agent, before)
        if at is None:
            return {"scrapes": 0, "expected": 0, "delivered": 0, "lost": 0}
        expected = scrapes * self.n
        delivered = int(self.delivered(agent, at))
        return {"scrapes": scrapes, "expected": expected, "delivered": delivered,
                "lost": max(0, expected - delivered)}

    def run(self):
        a = self.args
        log("N=%d: starting receiver, node_exporter and KSM target in %s" % (self.n, self.dir))
        self.receiver.start()
        self.start_load()
        for agent in self.agents.values():
            agent.proc = STARTERS[agent.name](agent, self.env)
        for agent in self.agents.values():
            wait_http(agent.metrics_url, 60, agent.proc, agent.name)
        self.events["agents_started"] = time.time()
        self.sampler = Sampler({name: ag.proc.pid for name, ag in self.agents.items()})
        self.sampler.start()
        log("N=%d: agents up (%s); steady run of %s" % (
            self.n, ", ".join(self.agents), fmt_duration(a.duration)))
        warmup = min(max(2 * a.interval, 30.0), a.duration / 2)
        self.events["steady_from"] = self.events["agents_started"] + warmup
        self.sleep_until(self.events["agents_started"] + a.duration)
        self.events["steady_to"] = time.time()
        self.wire = {}
        self.sent_at = {"steady_to": self.samples_sent()}
        for agent in self.agents.values():
            sums = agent.self_metrics()
            bytes_name, samples_name = WIRE_METRICS[agent.name]
            sent_bytes, sent_samples = sums.get(bytes_name), sums.get(samples_name)
            self.wire[agent.name] = (sent_bytes / sent_samples) if sent_bytes and sent_samples else None
        # Steady-state delivery, counted before the outage, a batch deadline plus an interval back.
        settle = 10.0 + a.interval
        self.steady = {name: self.accounting(name, time.time() - settle) for name in self.agents}
        self.catchup = {}
        if a.outage > 0:
            log("N=%d: receiver down for %s" % (self.n, fmt_duration(a.outage)))
            self.events["outage_from"] = time.time()
            self.receiver.stop()
            self.sleep_until(self.events["outage_from"] + a.outage)
            self.receiver.start()
            back = self.events["outage_to"] = time.time()
            log("N=%d: receiver back; waiting for every agent to catch up" % self.n)
            limit = max(a.outage * 1.5, 60.0) if not a.quick else 60.0
            pending = set(self.agents)
            targets = {name: self.scrape_log.checkpoint(name, back) for name in pending}
            while pending and time.time() < back + limit:
                for name in sorted(pending):
                    at, scrapes = targets[name]
                    if at is None or self.delivered(name, at) >= scrapes * self.n:
                        self.catchup[name] = time.time() - back
                        pending.discard(name)
                        log("N=%d: %s caught up in %.1fs" % (self.n, name, self.catchup[name]))
                time.sleep(2.0)
            for name in pending:
                self.catchup[name] = None
                log("N=%d: %s did NOT catch up within %.0fs" % (self.n, name, limit))
            # Let every agent also deliver what it scraped after the restart.
            time.sleep(settle)
        self.events["end"] = time.time()
        self.sent_at["end"] = self.samples_sent()
        self.final = {name: self.accounting(name, self.events["end"] - settle) for name in self.agents}
        self.sampler.stopped.set()
        self.sampler.join()
        for agent in self.agents.values():
            agent.exit_code = agent.proc.poll()
        for agent in self.agents.values():
            PROCS.stop(agent.proc)
        self.receiver.stop()
        PROCS.stop_all()
        return self.summary()

    def samples_sent(self):
        """Samples each agent has sent so far, by its own counter."""
        out = {}
        for agent in self.agents.values():
            out[agent.name] = agent.self_metrics().get(WIRE_METRICS[agent.name][1])
        return out

    def disk_per_sample(self, name, t0, t1, sent0, sent1):
        """Disk bytes written from t0 to t1 per sample sent in that time."""
        if sent0 is None or sent1 is None or sent1 <= sent0:
            return None
        return (self.sampler.written(name, t1) - self.sampler.written(name, t0)) / (sent1 - sent0)

    @staticmethod
    def sleep_until(t):
        while time.time() < t:
            time.sleep(min(1.0, t - time.time()))

    def summary(self):
        ev = self.events
        rows = {}
        for name in self.agents:
            steady = self.sampler.window(name, ev["steady_from"], ev["steady_to"])
            rss = [s[1] for s in steady]
            row = {
                "rss_median": statistics.median(rss) if rss else None,
                "rss_peak": max(rss) if rss else None,
                "cpu_cores": ((steady[-1][2] - steady[0][2]) / (steady[-1][0] - steady[0][0]))
                if len(steady) >= 2 else None,
                "bytes_per_sample": self.wire.get(name),
                "steady": self.steady[name],
                "final": self.final[name],
                "catchup_s": self.catchup.get(name),
                # From the start (the agents' WAL set-up included) to the end of the steady run.
                "disk_per_sample_steady": self.disk_per_sample(
                    name, ev["agents_started"], ev["steady_to"], 0, self.sent_at["steady_to"].get(name)),
                "disk_per_sample_outage": self.disk_per_sample(
                    name, ev["steady_to"], ev["end"], self.sent_at["steady_to"].get(name),
                    self.sent_at["end"].get(name)) if "outage_to" in ev else None,
                "exit_code": self.agents[name].exit_code,
            }
            if "outage_to" in ev:
                done = ev["outage_to"] + (self.catchup.get(name) or (ev["end"] - ev["outage_to"]))
                during = [s[1] for s in self.sampler.window(name, ev["outage_from"], done)]
                row["catchup_rss_peak"] = max(during) if during else None
            rows[name] = row
        bound = None
        if "outpost" in self.agents and hasattr(self.agents["outpost"], "plan"):
            bound = worst_case_bound(self.env, self.agents["outpost"].plan)
        return {"n": self.n, "target_series": self.target_series, "rows": rows, "events": ev,
                "samples": self.sampler.samples, "worst_case_bound": bound}


# ---------------------------------------------------------------- report

def mib(b):
    return "-" if b is None else "%.1f" % (b / 1048576)


def num(x, f="%.3f"):
    return "-" if x is None else f % x


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def bars(result):
    """The issue's bars at this N, as (text, pass/fail/unknown, detail)."""
    rows = result["rows"]
    o, p, v = rows.get("outpost"), rows.get("prometheus"), rows.get("vmagent")
    out = []

    def check(text, ok, detail):
        out.append((text, "unknown" if ok is None else ("PASS" if ok else "FAIL"), detail))

    if o is None:
        return [("all bars", "unknown", "outpost did not run")]
    r = ratio(o["rss_median"], p and p["rss_median"])
    check("RSS <= 1/16 of the Prometheus agent", None if r is None else r <= 1 / 16, "ratio %s" % num(r))
    r = ratio(o["rss_median"], v and v["rss_median"])
    check("RSS <= 1/4 of vmagent", None if r is None else r <= 1 / 4, "ratio %s" % num(r))
    b = result.get("worst_case_bound")
    peak = max(x for x in (o["rss_peak"], o.get("catchup_rss_peak")) if x is not None) if o["rss_peak"] else None
    check("peak RSS below the compiler's worst-case bound", None if b is None or peak is None else peak < b,
          "peak %s MiB, bound %s MiB" % (mib(peak), mib(b)))
    r = ratio(o["cpu_cores"], v and v["cpu_cores"])
    check("CPU <= 1/2 of vmagent", None if r is None else r <= 0.5, "ratio %s" % num(r))
    ob, vb = o["bytes_per_sample"], v and v["bytes_per_sample"]
    check("bytes/sample <= vmagent's", None if ob is None or vb is None else ob <= vb,
          "%s vs %s" % (num(ob, "%.2f"), num(vb, "%.2f")))
    if o.get("catchup_s", None) is not None or "outage_to" in result["events"]:
        check("outage: zero loss", o["final"]["lost"] == 0 and o["catchup_s"] is not None,
              "lost %d, catch-up %s s" % (o["final"]["lost"], num(o["catchup_s"], "%.1f")))
        r = ratio(o.get("catchup_rss_peak"), o["rss_median"])
        check("catch-up peak RSS <= 1.5x steady", None if r is None else r <= 1.5, "ratio %s" % num(r))
    return out


def render_svg(result, path):
    """RSS and CPU over time for every agent, two panels, outage shaded."""
    colors = {"outpost": "#1b9e77", "prometheus": "#d95f02", "vmagent": "#7570b3"}
    samples, ev = result["samples"], result["events"]
    t0 = ev["agents_started"]
    t1 = max([s[-1][0] for s in samples.values() if s] + [t0 + 1])
    width, height, left, right, panel, gap, top = 900, 560, 70, 130, 210, 60, 40

    series = {}
    for name, pts in samples.items():
        rss = [(t - t0, r / 1048576) for t, r, *_ in pts]
        cpu = []
        for i in range(5, len(pts)):
            dt = pts[i][0] - pts[i - 5][0]
            cpu.append((pts[i][0] - t0, (pts[i][2] - pts[i - 5][2]) / dt if dt > 0 else 0.0))
        series[name] = (rss, cpu)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14">N=%d KSM series: RSS and CPU over time</text>' % (left, result["n"])]
    span = t1 - t0
    x_of = lambda t: left + (width - left - right) * t / span  # noqa: E731
    for idx, (title, unit) in enumerate((("RSS", "MiB"), ("CPU", "cores (5 s avg)"))):
        y_top = top + idx * (panel + gap)
        ymax = max([v for name in series for _, v in series[name][idx]] + [1e-9]) * 1.1
        y_of = lambda v: y_top + panel - panel * v / ymax  # noqa: E731
        if "outage_from" in ev:
            xa, xb = x_of(ev["outage_from"] - t0), x_of(ev["outage_to"] - t0)
            out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#eee"/>' % (xa, y_top, xb - xa, panel))
            out.append('<text x="%.1f" y="%d" fill="#888">receiver down</text>' % (xa + 3, y_top + 14))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
                   % (left, y_top, width - left - right, panel))
        for k in range(5):
            v = ymax * k / 4
            out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (left - 5, y_of(v) + 4,
                                                                              ("%.0f" if ymax > 10 else "%.2f") % v))
        out.append('<text x="10" y="%d" transform="rotate(-90 10 %d)">%s %s</text>'
                   % (y_top + panel // 2 + 30, y_top + panel // 2 + 30, title, unit))
        for name, pair in series.items():
            pts = pair[idx]
            if len(pts) < 2:
                continue
            d = " ".join("%.1f,%.1f" % (x_of(t), y_of(v)) for t, v in pts)
            out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>'
                       % (colors.get(name, "#000"), d))
    for k in range(6):
        t = span * k / 5
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                   % (x_of(t), top + 2 * panel + gap + 16, fmt_duration(t)))
    for i, name in enumerate(series):
        y = top + 20 * i + 10
        out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>'
                   % (width - right + 10, width - right + 30, y, y, colors.get(name, "#000")))
        out.append('<text x="%d" y="%d">%s</text>' % (width - right + 35, y + 4, name))
    out.append("</svg>")
    write_file(path, "\n".join(out) + "\n")


def render_markdown(results, args, plots):
    lines = ["# Side-by-side benchmark, %s" % datetime.date.today().isoformat(), ""]
    lines += [
        "Command: `python3 benches/side_by_side.py %s`" % " ".join(sys.argv[1:]),
        "",
        "Machine: %s, %d CPUs, %s. Peers: Prometheus 2.42 (agent mode, the seed's queue_config), "
        "vmagent 1.79 (defaults), receiver VictoriaMetrics 1.79. Interval %s, steady run %s, outage %s. "
        "outpost's WAL mode: %s." % (
            os.uname().machine, os.cpu_count(), meminfo_total(), fmt_duration(args.interval),
            fmt_duration(args.duration), fmt_duration(args.outage), args.wal_mode),
        "",
        "RSS from VmRSS, CPU from utime+stime, both over the steady window (after a warm-up of two intervals, "
        "before the outage). Bytes/sample from each agent's own counters (bytes sent / samples sent). "
        "Expected samples = scrapes the KSM target served to that agent x N; delivered = kube_* samples of that "
        "agent counted by the receiver. Catch-up: time from the receiver's restart until every scrape served "
        "before the restart is at the receiver. Disk B/sample: bytes the agent wrote to disk (/proc/<pid>/io "
        "write_bytes) per sample it sent, from its start to the end of the steady run, and from there through "
        "the outage and catch-up to the end.",
        "",
    ]
    for res in results:
        lines += ["## N = %d KSM series (%d served per scrape incl. the Go runtime block)" % (
            res["n"], res["target_series"]), ""]
        lines += ["| agent | RSS median MiB | RSS peak MiB | CPU cores | bytes/sample | delivered / expected "
                  "(steady) | delivered / expected (whole run) | lost | catch-up s | peak RSS outage+catch-up MiB "
                  "| disk B/sample steady | disk B/sample outage+catch-up |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name in AGENTS:
            r = res["rows"].get(name)
            if r is None:
                continue
            lines.append("| %s | %s | %s | %s | %s | %d / %d | %d / %d | %d | %s | %s | %s | %s |" % (
                name, mib(r["rss_median"]), mib(r["rss_peak"]), num(r["cpu_cores"]),
                num(r["bytes_per_sample"], "%.2f"), r["steady"]["delivered"], r["steady"]["expected"],
                r["final"]["delivered"], r["final"]["expected"], r["final"]["lost"],
                num(r["catchup_s"], "%.1f"), mib(r.get("catchup_rss_peak")),
                num(r.get("disk_per_sample_steady"), "%.2f"), num(r.get("disk_per_sample_outage"), "%.2f")))
        o = res["rows"].get("outpost")
        if o:
            lines += ["", "Ratios outpost / peer (lower is better):", "",
                      "| peer | RSS median | RSS peak | CPU | bytes/sample |", "|---|---|---|---|---|"]
            for peer in ("prometheus", "vmagent"):
                p = res["rows"].get(peer)
                if p:
                    lines.append("| %s | %s | %s | %s | %s |" % (
                        peer, num(ratio(o["rss_median"], p["rss_median"])), num(ratio(o["rss_peak"], p["rss_peak"])),
                        num(ratio(o["cpu_cores"], p["cpu_cores"])),
                        num(ratio(o["bytes_per_sample"], p["bytes_per_sample"]))))
            lines += ["", "The issue's bars%s:" % ("" if res["n"] == 50000 else " (set for N=50,000; shown for reference)"),
                      "", "| bar | result | numbers |", "|---|---|---|"]
            lines += ["| %s | %s | %s |" % b for b in bars(res)]
        lines += ["", "![RSS and CPU over time, N=%d](%s)" % (res["n"], plots[res["n"]]), ""]
    return "\n".join(lines) + "\n"


def meminfo_total():
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        return "%.0f GiB RAM" % (kb / 1048576)
    except (OSError, ValueError, IndexError):
        return "unknown RAM"


# ---------------------------------------------------------------- main

def build_outpost(args):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        log("building outpost and outpostc (release)")
        rc = subprocess.call(["cargo", "build", "--release", "-p", "outpost-agent", "-p", "outpost-compiler"],
                             cwd=ROOT)
        if rc != 0:
            raise SystemExit("cargo build failed (exit %d)" % rc)
    args.outpost_bin = args.outpost_bin or os.path.join(target, "release", "outpost")
    args.outpostc_bin = args.outpostc_bin or os.path.join(target, "release", "outpostc")
    for path in (args.outpost_bin, args.outpostc_bin):
        if not os.access(path, os.X_OK):
            raise SystemExit("%s is missing; build it or pass --outpost-bin/--outpostc-bin" % path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="<= 3 minutes: N=10000, only checks delivery")
    p.add_argument("--series", default="10000,50000,200000", help="comma-separated series counts")
    p.add_argument("--interval", type=parse_duration, default=None, help="scrape interval (default 15s, quick 5s)")
    p.add_argument("--duration", type=parse_duration, default=None, help="steady run (default 5m, quick 60s)")
    p.add_argument("--outage", type=parse_duration, default=None, help="receiver outage (default 10m, quick 30s)")
    p.add_argument("--agents", default=",".join(AGENTS), help="which agents to run (default all three)")
    p.add_argument("--wal-mode", default="spill", choices=("spill", "append"),
                   help="outpost's wal.mode (default spill: written only what the receiver has not taken in time)")
    p.add_argument("--no-build", action="store_true", help="do not run cargo build; use existing binaries")
    p.add_argument("--outpost-bin", default=None)
    p.add_argument("--outpostc-bin", default=None)
    p.add_argument("--results", default=os.path.join(HERE, "results"), help="directory for the .md and .svg")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories (logs, data)")
    args = p.parse_args()
    args.agents = [a for a in args.agents.split(",") if a]
    unknown = set(args.agents) - set(AGENTS)
    if unknown:
        p.error("unknown agents: %s" % ", ".join(sorted(unknown)))
    if args.quick:
        series = [10000]
        args.interval = args.interval or 5.0
        args.duration = args.duration or 60.0
        args.outage = 30.0 if args.outage is None else args.outage
    else:
        series = [int(s) for s in args.series.split(",") if s]
        args.interval = args.interval or 15.0
        args.duration = args.duration or 300.0
        args.outage = 600.0 if args.outage is None else args.outage
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if "outpost" in args.agents:
        build_outpost(args)

    workroot = tempfile.mkdtemp(prefix="outpost-bench-")
    results, failures = [], []
    try:
        for n in series:
            res = Scenario(n, args, workroot).run()
            results.append(res)
            for name, row in res["rows"].items():
                final = row["final"]
                if final["delivered"] <= 0 or final["scrapes"] == 0:
                    failures.append("N=%d: %s delivered nothing (scrapes served %d)" % (n, name, final["scrapes"]))
                if row["exit_code"] is not None:
                    failures.append("N=%d: %s exited early with code %s" % (n, name, row["exit_code"]))
    finally:
        PROCS.stop_all()
        if args.keep:
            log("work files kept in %s" % workroot)
        else:
            shutil.rmtree(workroot, ignore_errors=True)

    os.makedirs(args.results, exist_ok=True)
    stem = datetime.date.today().isoformat() + ("-quick" if args.quick else "")
    plots = {}
    for res in results:
        plots[res["n"]] = "%s-n%d.svg" % (stem, res["n"])
        render_svg(res, os.path.join(args.results, plots[res["n"]]))
    md = os.path.join(args.results, stem + ".md")
    write_file(md, render_markdown(results, args, plots))
    raw = {str(r["n"]): {k: v for k, v in r.items() if k != "samples"} for r in results}
    write_file(os.path.join(args.results, stem + ".json"), json.dumps(raw, indent=1, sort_keys=True) + "\n")
    print(open(md).read())
    log("wrote %s" % md)
    if failures:
        for f in failures:
            log("FAIL: " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
