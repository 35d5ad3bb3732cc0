"""``make bench``: the product against a stock ``rasa init`` starter bot, same Rasa, same load.

    python -m bench.run            # 20 s per concurrency level, training timed
    python -m bench.run --quick    # 5 s per level, training not re-timed

Order (one after the other, so the two never compete for the CPU):

1. training time: a full ``rasa train --force`` (training cache off) of the product and of the
   starter, each into a throw-away directory under ``var/bench/train/`` (``models/`` is untouched);
2. the product, started as ``scripts/run.sh`` starts it (action server + ``rasa run`` with the REST
   and other production channels, the HTTP API behind a token, CORS), but on free ports, with the
   bank directory pointing at a local fake bank site (``tests.bank_sites``) and the SQLite tracker
   and hand-off databases in a temporary directory: idle NLU parse time, then the load levels;
3. the starter (``rasa run``, in-memory tracker store, no action server: it has no custom actions):
   the same measurements;
4. tables on stdout, ``reports/bench.json`` and ``reports/bench.png``.

Nothing here asserts anything about timings: the figures are printed and written, that's all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import yaml

from bench import load, report, starter
from bot.server.stores import worker_endpoints
from tests import servers
from tests.bank_sites import FakeBankSite

ROOT = servers.ROOT
BENCH_VAR = ROOT / "var" / "bench"
LOG_DIR = BENCH_VAR / "logs"

LEVELS = (1, 20, 50)
PRODUCT_PARSE_TEXTS = [
    "getting error 102 on my chase account",
    "bank feed stuck since tuesday, says error 105 on bofa",
    "it still fails",
    "yes",
    "i changed my password last week",
    "can i talk to a real person",
]
STARTER_PARSE_TEXTS = ["hi", "I'm sad", "yes", "bye", "I am feeling great", "are you a bot?"]


class Stack:
    """Running server processes of one bot, and what the load generator needs to know."""

    def __init__(self, name: str, url: str, token: str, processes: Dict[str, servers.Process]):
        self.name, self.url, self.token, self.processes = name, url, token, processes

    @property
    def sessions(self) -> Dict[str, int]:
        # every server is started in a new session (tests.servers.Process): session id == its pid
        return {role: p.proc.pid for role, p in self.processes.items()}

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()


# --------------------------------------------------------------------------- starting the bots


# what `make run WORKERS=2` uses: the file lock store, or Redis with LOCK_STORE=redis
_LOCK_STORE = worker_endpoints.lock_store_from_env(os.environ)


def lock_store_reachable(store=_LOCK_STORE) -> bool:
    """The file lock store is always there; a Redis one only when its port answers."""
    import socket

    if store["type"] != worker_endpoints.REDIS_LOCK_STORE_TYPE:
        return True
    try:
        with socket.create_connection((store["url"], store["port"]), timeout=1):
            return True
    except OSError:
        return False


def start_product(site: FakeBankSite, workdir: Path, workers: int = 1) -> Stack:
    """Action server + Rasa server as ``scripts/run.sh`` runs them, against the local fake banks.

    ``workers`` > 1: ``rasa run`` with that many Sanic worker processes on one port, as
    ``make run WORKERS=2`` runs it; Rasa requires a shared lock store for that (ours: the file lock
    store, or Redis with LOCK_STORE=redis)."""
    directory = servers.write_test_directory(workdir / "banks.yml", site.base_url)
    production_probe = yaml.safe_load((ROOT / "bankfeed.yml").read_text())["site_probe"]
    # production probe timeouts; the canary is local; the outage radar's thresholds are out of reach
    # so that thousands of scripted "chase is down" reports don't turn into a suspected outage and
    # change the script's path (the radar's reads and writes still happen on every report).
    keep = {k: production_probe[k] for k in ("budget", "connect_timeout", "read_timeout") if k in production_probe}
    settings = servers.write_test_settings(workdir / "bankfeed.yml", site.url("/canary/healthy"), **keep)
    env = servers.base_env(
        {
            "BANK_DIRECTORY_PATH": str(directory),
            "BANKFEED_SETTINGS": str(settings),
            "HANDOFF_DB_URL": f"sqlite:///{workdir / 'handoff.db'}",
        }
    )
    # like scripts/run.sh: the hand-off schema first
    subprocess.run(
        [str(servers.VENV_BIN / "python"), "-m", "bot.handoff.cli", "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    action_port, rasa_port = servers.free_port(), servers.free_port()
    actions = servers.start_action_server(action_port, LOG_DIR / "product-actions.log", env)
    try:
        lock_store = None
        if workers > 1:
            lock_store = dict(_LOCK_STORE, key_prefix=f"bench{workdir.name}")
            env = {**env, "SANIC_WORKERS": str(workers)}
        endpoints = servers.write_endpoints(workdir / "endpoints.yml", action_port, workdir / "tracker.db", lock_store=lock_store)
        token = secrets.token_urlsafe(24)
        # as scripts/run.sh starts it: the token in the environment, the CORS policy the product's own
        rasa = servers.start_rasa_server(rasa_port, endpoints, token, LOG_DIR / "product-rasa.log", env)
    except BaseException:
        actions.stop()
        raise
    return Stack("product", f"http://127.0.0.1:{rasa_port}", token, {"rasa": rasa, "actions": actions})


def start_starter(model: Path) -> Stack:
    """``rasa run`` in the starter's directory: its own endpoints (in-memory trackers) and credentials."""
    env = servers.base_env()
    processes: Dict[str, servers.Process] = {}
    if starter.has_custom_actions():
        port = servers.free_port()
        actions = servers.Process(
            [str(servers.VENV_BIN / "rasa"), "run", "actions", "--port", str(port)],
            LOG_DIR / "starter-actions.log",
            env,
            cwd=starter.STARTER_DIR,
        )
        actions.wait_http(f"http://127.0.0.1:{port}/health")
        processes["actions"] = actions
    rasa_port = servers.free_port()
    token = secrets.token_urlsafe(24)
    rasa = servers.Process(
        [
            str(servers.VENV_BIN / "rasa"),
            "run",
            "--model",
            str(model),
            "--endpoints",
            "endpoints.yml",
            "--credentials",
            "credentials.yml",
            "--port",
            str(rasa_port),
            "--enable-api",
            f"--auth-token={token}",
            "--cors",
            "*",
        ],
        LOG_DIR / "starter-rasa.log",
        env,
        cwd=starter.STARTER_DIR,
    )
    rasa.wait_http(f"http://127.0.0.1:{rasa_port}/", timeout=240)
    processes = {"rasa": rasa, **processes}
    return Stack("starter", f"http://127.0.0.1:{rasa_port}", token, processes)


# --------------------------------------------------------------------------- measuring one bot


def measure(
    stack: Stack,
    script: Sequence[str],
    parse_texts: Sequence[str],
    levels: Sequence[int],
    duration: float,
    parse_rounds: int,
    run_id: str,
    startup_s: float,
) -> Dict[str, object]:
    result: Dict[str, object] = {"url": stack.url, "startup_s": round(startup_s, 1), "script": list(script)}
    with load.ProcessSampler(stack.sessions) as sampler:
        time.sleep(0.5)
        result["rss_after_start_mb"] = sampler.mark()
        issued = stack.name == "product"  # the product's REST senders are server-issued; the starter has none
        load.warm_up(stack.url, script, f"{run_id}-{stack.name}-warmup", sessions=issued)
        time.sleep(0.5)
        result["rss_idle_mb"] = sampler.mark()
        print(f"[bench] {stack.name}: NLU parse time (POST /model/parse, one at a time)", flush=True)
        result["nlu_parse"] = load.parse_timings(stack.url, stack.token, parse_texts, parse_rounds)
        sampler.mark()
        levels_out: List[Dict[str, object]] = []
        for n in levels:
            print(f"[bench] {stack.name}: {n} concurrent conversation(s) for {duration:g} s", flush=True)
            cpu_before, load_before = sampler.cpu_seconds(), load.load_average()
            level = load.run_level(stack.url, script, n, duration, f"{run_id}-{stack.name}-c{n}", sessions=issued)
            cpu = sampler.cpu_seconds() - cpu_before
            level["server_cpu_s"] = round(cpu, 2)
            level["server_cpu_ms_per_msg"] = round(cpu * 1000 / level["ok"], 2) if level["ok"] else None
            level["server_cpu_util"] = round(cpu / level["duration_s"], 2) if level["duration_s"] else None
            level["peak_rss_mb"] = sampler.mark()
            level["loadavg_before"], level["loadavg_after"] = load_before, load.load_average()
            levels_out.append(level)
            print("         " + report.level_line(level), flush=True)
            time.sleep(1.0)
        result["levels"] = levels_out
        result["peak_rss_mb"] = sampler.peak()
    return result


def timed(fn: Callable[[], Stack]) -> tuple:
    started = time.perf_counter()
    stack = fn()
    return stack, time.perf_counter() - started


# --------------------------------------------------------------------------- main


def machine_info() -> Dict[str, object]:
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) / 1e6, 1)
    except (OSError, StopIteration):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_gb": mem_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> Dict[str, str]:
    out = {}
    for name in ("rasa", "rasa_sdk", "spacy", "tensorflow", "sanic", "SQLAlchemy", "httpx"):
        try:
            from importlib.metadata import version

            out[name] = version(name)
        except Exception:
            pass
    return out


def git_state() -> Dict[str, object]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per level, fewer parse rounds, no training timing")
    parser.add_argument("--duration", type=float, help="seconds per concurrency level (default 20, --quick 5)")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="concurrency levels, e.g. 1,20,50")
    parser.add_argument(
        "--train", dest="train", action="store_true", default=None, help="time the training (default unless --quick)"
    )
    parser.add_argument("--no-train", dest="train", action="store_false", help="don't time the training")
    parser.add_argument("--only", choices=("product", "starter"), help="benchmark one bot only")
    parser.add_argument("--out", default=str(ROOT / "reports"), help="where bench.json and bench.png go")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="Sanic worker processes of the product's Rasa server (default: one per CPU; "
        "the processes share the file lock store; with LOCK_STORE=redis, 1 if Redis does not answer)",
    )
    args = parser.parse_args(argv)

    duration = args.duration or (5.0 if args.quick else 20.0)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    do_train = (not args.quick) if args.train is None else args.train
    parse_rounds = 3 if args.quick else 10
    run_id = time.strftime("%Y%m%d%H%M%S")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old_log in LOG_DIR.glob("*.log"):  # the server helpers append: start each run with fresh logs
        if old_log.name != "starter-init.log":
            old_log.unlink()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    if not servers.MODEL.exists():
        print(f"{servers.MODEL} is missing: run `make model` first (make bench does).", file=sys.stderr)
        return 2

    results: Dict[str, object] = {
        "run_id": run_id,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "duration_s_per_level": duration,
            "levels": levels,
            "quick": args.quick,
            "parse_rounds": parse_rounds,
            "transport": "REST channel, POST /webhooks/rest/webhook",
        },
        "machine": machine_info(),
        "versions": versions(),
        "git": git_state(),
        "loadavg_at_start": load.load_average(),
        "bots": {},
    }

    starter_info = starter.ensure_starter(LOG_DIR / "starter-init.log")
    results["starter_project"] = {k: v for k, v in starter_info.items() if k != "model"} | {
        "model": str(Path(str(starter_info["model"])).relative_to(ROOT))
    }

    training: Dict[str, object] = {}
    if do_train:
        train_dir = BENCH_VAR / "train"
        if args.only in (None, "product"):
            print("[bench] timing a full training of the product (rasa train --force, cache off)", flush=True)
            training["product"] = starter.timed_training(
                ROOT, "config.yml", "domain.yml", "data", train_dir / "product", LOG_DIR / "train-product.log"
            )
            print(f"         {training['product']['seconds']} s", flush=True)
        if args.only in (None, "starter"):
            print("[bench] timing a full training of the starter (rasa train --force, cache off)", flush=True)
            training["starter"] = starter.timed_training(
                starter.STARTER_DIR, "config.yml", "domain.yml", "data", train_dir / "starter", LOG_DIR / "train-starter.log"
            )
            print(f"         {training['starter']['seconds']} s", flush=True)
    else:  # not timed in this run: the previous run's figures, labelled as such
        previous = out_dir / "bench.json"
        try:
            old = json.loads(previous.read_text()) if previous.exists() else {}
        except ValueError:
            old = {}
        for name, figures in (old.get("training") or {}).items():
            if isinstance(figures, dict) and figures.get("seconds") is not None:
                training[name] = {**figures, "from_run": figures.get("from_run") or old.get("run_id")}
        if "starter" not in training and starter_info.get("init_seconds"):
            training["starter"] = {
                "seconds": starter_info["init_seconds"],
                "ok": True,
                "note": "rasa init --no-prompt (copy + train) when the starter was created",
            }
    results["training"] = training

    workers = max(1, args.workers)
    if workers > 1 and not lock_store_reachable():
        print(
            f"[bench] Redis is not reachable on {_LOCK_STORE['url']}:{_LOCK_STORE['port']}: the product runs with 1 worker",
            flush=True,
        )
        workers = 1
    results["settings"]["product_workers"] = workers

    bots = results["bots"]
    if args.only in (None, "product"):
        with ExitStack() as stack_ctx:
            site = stack_ctx.enter_context(FakeBankSite())
            workdir = Path(stack_ctx.enter_context(tempfile.TemporaryDirectory(prefix="bench-product-")))
            print(
                f"[bench] starting the product (action server + rasa run with {workers} worker(s), SQLite trackers "
                "in a temp dir)",
                flush=True,
            )
            product, startup = timed(lambda: start_product(site, workdir, workers))
            try:
                bots["product"] = measure(
                    product, load.PRODUCT_SCRIPT, PRODUCT_PARSE_TEXTS, levels, duration, parse_rounds, run_id, startup
                )
                bots["product"]["bank_site_requests"] = site.total_hits()
            finally:
                product.stop()
        time.sleep(2.0)

    if args.only in (None, "starter"):
        print("[bench] starting the starter (rasa run, in-memory trackers)", flush=True)
        starter_stack, startup = timed(lambda: start_starter(Path(str(starter_info["model"]))))
        try:
            bots["starter"] = measure(
                starter_stack, load.STARTER_SCRIPT, STARTER_PARSE_TEXTS, levels, duration, parse_rounds, run_id, startup
            )
        finally:
            starter_stack.stop()

    results["loadavg_at_end"] = load.load_average()
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results["comparison"] = report.compare(results)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2))
    print()
    print(report.render(results))
    png = report.plot(results, out_dir / "bench.png")
    print(f"\nwritten: {out_dir / 'bench.json'}" + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
