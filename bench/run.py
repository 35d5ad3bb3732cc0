"""``make bench``: the product as ``make run`` starts it, against a stock ``rasa init`` starter bot.

    python -m bench.run            # 20 s per closed-loop level, 60 s open loop, training timed
    python -m bench.run --quick    # 5 s per level, 20 s open loop with 200 conversations, no training

Order (one after the other, so the two never compete for the CPU):

1. training time: a full ``rasa train --force`` (training cache off) of the product and of the
   starter, each into a throw-away directory under ``var/bench/train/`` (``models/`` is untouched);
2. the product, started by ``make run`` itself in a throw-away copy of the tree under
   ``var/bench/run-<id>/`` (``bench/stack.py``: whatever ``scripts/run.sh`` starts is what is
   measured), with the bench-only settings in the environment variables the product reads (local
   fake bank site, rate limits off, the outage radar's thresholds out of reach): idle NLU parse time,
   the closed-loop levels with both scripts (buttons, typed text: ``bench/scripts.py``), the cost per
   message as a conversation grows (10, 30, 60 turns), then the open-loop level over the widget
   socket (``bench/openloop.py``);
3. the starter (``rasa run``, in-memory tracker store, no action server: it has no custom actions):
   idle parse time and the closed-loop levels with its own script;
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
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from bench import load, openloop, report, scripts, stack, starter
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


def closed_levels(
    stack, sampler: load.ProcessSampler, script, levels: Sequence[int], duration: float, prefix: str, issued: bool, label: str
) -> List[Dict[str, object]]:
    """The closed-loop levels of one script; server CPU and peak RSS of the process trees per level."""
    out: List[Dict[str, object]] = []
    for n in levels:
        print(f"[bench] {label}: {n} concurrent conversation(s) for {duration:g} s", flush=True)
        sampler.mark()
        cpu_before, load_before = sampler.cpu_seconds(), load.load_average()
        level = load.run_level(stack.url, script, n, duration, f"{prefix}-c{n}", sessions=issued)
        cpu = sampler.cpu_seconds() - cpu_before
        level["server_cpu_s"] = round(cpu, 2)
        level["server_cpu_ms_per_msg"] = round(cpu * 1000 / level["ok"], 2) if level["ok"] else None
        level["server_cpu_util"] = round(cpu / level["duration_s"], 2) if level["duration_s"] else None
        level["peak_rss_mb"] = sampler.mark()
        level["loadavg_before"], level["loadavg_after"] = load_before, load.load_average()
        out.append(level)
        print("         " + report.level_line(level), flush=True)
        time.sleep(1.0)
    return out


def growth(stack, sampler: load.ProcessSampler, turns: int, conversations: int, prefix: str) -> Dict[str, object]:
    """Cost per message as a conversation goes on: ``conversations`` conversations of ``turns`` turns
    (``scripts.long_conversation``), one message at a time (nothing else in flight, so the server CPU
    between sending a message and its answer is that message's), per block of 10 turns."""
    import httpx

    per_turn_cpu: List[List[float]] = [[] for _ in range(turns)]
    per_turn_ms: List[List[float]] = [[] for _ in range(turns)]
    wrong = 0
    script = scripts.long_conversation(turns)
    with httpx.Client(timeout=120, trust_env=False) as client:
        for _ in range(conversations):
            sender = client.post(f"{stack.url}/webhooks/rest/session").json()["sender"]
            for i, (text, expected) in enumerate(script):
                cpu0, t0 = sampler.cpu_seconds(), time.perf_counter()
                r = client.post(f"{stack.url}/webhooks/rest/webhook", json={"sender": sender, "message": text})
                elapsed = (time.perf_counter() - t0) * 1000.0
                time.sleep(0.05)  # the action server's and the worker threads' last bookkeeping
                cpu = sampler.cpu_seconds() - cpu0
                if r.status_code != 200 or not scripts.reply_matches(r.json(), expected):
                    wrong += 1
                    print(f"         {prefix}: turn {i + 1} {text!r} off the path: {r.text[:200]}", flush=True)
                    break
                per_turn_cpu[i].append(cpu * 1000.0)
                per_turn_ms[i].append(elapsed)
    blocks = []
    for start in range(0, turns, 10):
        cpu = [v for t in per_turn_cpu[start : start + 10] for v in t]
        ms = [v for t in per_turn_ms[start : start + 10] for v in t]
        if cpu:
            blocks.append(
                {
                    "turns": f"{start + 1}-{min(start + 10, turns)}",
                    "messages": len(cpu),
                    "server_cpu_ms_per_msg": round(sum(cpu) / len(cpu), 2),
                    "p50_ms": load.summarize_latencies(ms)["p50_ms"],
                }
            )
    everything = [v for t in per_turn_cpu for v in t]
    return {
        "turns": turns,
        "conversations": conversations,
        "off_path": wrong,
        "server_cpu_ms_per_msg_whole_conversation": round(sum(everything) / len(everything), 2) if everything else None,
        "blocks": blocks,
    }


def wait_idle(sampler: load.ProcessSampler, below_cores: float = 0.15, timeout: float = 300.0) -> float:
    """Waits until the process tree uses less than ``below_cores`` over 2 s; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        cpu0 = sampler.cpu_seconds()
        time.sleep(2.0)
        if (sampler.cpu_seconds() - cpu0) / 2.0 < below_cores:
            break
    return round(time.monotonic() - started, 1)


def open_level(stack, sampler: load.ProcessSampler, args, script, conversations: int) -> Dict[str, object]:
    origin = stack.url.replace("127.0.0.1", "localhost")  # run.sh's default CHAT_ALLOWED_ORIGINS
    counts = openloop.calibrate(stack.url, script, origin)
    print(
        f"[bench] product: open loop, {conversations} widget conversations (socket.io), one message per "
        f"{args.open_interval:g} s each on average, {args.open_duration:g} s after the ramp",
        flush=True,
    )
    marks: Dict[str, float] = {}

    def on_window(what: str) -> None:
        marks[what] = sampler.cpu_seconds()
        if what == "start":
            sampler.mark()
            marks["load_before"] = load.load_average()[0] if load.load_average() else None
        else:
            marks["rss"] = sampler.mark()

    result = openloop.run_open_loop(
        stack.url,
        script,
        counts,
        conversations=conversations,
        mean_interval=args.open_interval,
        duration=args.open_duration,
        ramp_per_s=args.open_ramp,
        lost_after=args.open_lost_after,
        origin=origin,
        on_window=on_window,
    )
    cpu = marks["end"] - marks["start"]
    result["events_per_message"] = counts
    result["server_cpu_s"] = round(cpu, 2)
    result["server_cpu_ms_per_msg"] = round(cpu * 1000 / result["answered"], 2) if result["answered"] else None
    result["server_cpu_ms_per_sent_msg"] = round(cpu * 1000 / result["sent"], 2) if result["sent"] else None
    result["server_cpu_util"] = round(cpu / args.open_duration, 2)
    result["peak_rss_mb"] = marks.get("rss")
    result["loadavg_after"] = load.load_average()
    print("         " + report.open_line(result), flush=True)
    return result


def measure(
    stack,
    script: Sequence[scripts.Turn],
    parse_texts: Sequence[str],
    levels: Sequence[int],
    duration: float,
    parse_rounds: int,
    run_id: str,
    startup_s: float,
    typed: Optional[Sequence[scripts.Turn]] = None,
    args=None,
) -> Dict[str, object]:
    result: Dict[str, object] = {"url": stack.url, "startup_s": round(startup_s, 1), "script": [t for t, _ in script]}
    product = stack.name == "product"
    with load.ProcessSampler(stack.sessions) as sampler:
        time.sleep(0.5)
        result["rss_after_start_mb"] = sampler.mark()
        issued = product  # the product's REST senders are server-issued; the starter has none
        load.warm_up(stack.url, script, f"{run_id}-{stack.name}-warmup", sessions=issued)
        if typed:
            load.warm_up(stack.url, typed, f"{run_id}-{stack.name}-warmup-typed", sessions=issued)
        time.sleep(0.5)
        result["rss_idle_mb"] = sampler.mark()
        print(f"[bench] {stack.name}: NLU parse time (POST /model/parse, one at a time)", flush=True)
        result["nlu_parse"] = load.parse_timings(stack.url, stack.token, parse_texts, parse_rounds)
        sampler.mark()
        label = f"{stack.name} ({'buttons' if product else 'its own script'})"
        result["levels"] = closed_levels(stack, sampler, script, levels, duration, f"{run_id}-{stack.name}", issued, label)
        if typed:
            result["script_typed"] = [t for t, _ in typed]
            result["typed_levels"] = closed_levels(
                stack, sampler, typed, levels, duration, f"{run_id}-{stack.name}-typed", issued, f"{stack.name} (typed)"
            )
        if product and args is not None and args.growth_turns:
            result["growth"] = []
            for turns in args.growth_turns:
                print(
                    f"[bench] product: {args.growth_conversations} conversation(s) of {turns} turns, one message at a time",
                    flush=True,
                )
                g = growth(stack, sampler, turns, args.growth_conversations, f"{run_id}-growth{turns}")
                result["growth"].append(g)
                print("         " + report.growth_line(g), flush=True)
        if product and args is not None and args.open_conversations:
            result["open_loop_levels"] = []
            for conversations in args.open_conversations:
                # an overloaded level leaves messages in the server after its sockets closed: start the next
                # one when the tree is idle again
                result.setdefault("idle_wait_s", []).append(wait_idle(sampler))
                result["open_loop_levels"].append(open_level(stack, sampler, args, typed or script, conversations))
            result["open_loop"] = result["open_loop_levels"][-1]  # the level (the targets)
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
        "--make-run-args",
        default="",
        help="extra arguments for the product's `make run` (e.g. 'WORKERS=2'); default none: `make run` as the README",
    )
    parser.add_argument(
        "--growth-turns",
        default="10,30,60",
        help="conversation lengths for the cost-per-message growth measurement ('' to skip)",
    )
    parser.add_argument("--growth-conversations", type=int, help="conversations per length (default 3, --quick 1)")
    parser.add_argument(
        "--open-conversations",
        help="open loop: widget conversations per level, e.g. 200,1000 (default 200,1000, --quick 200; '' or 0 to skip)",
    )
    parser.add_argument(
        "--open-interval", type=float, default=10.0, help="open loop: mean seconds between a conversation's messages"
    )
    parser.add_argument("--open-duration", type=float, help="open loop: seconds measured after the ramp (default 60, --quick 20)")
    parser.add_argument("--open-ramp", type=float, default=20.0, help="open loop: new connections per second while ramping")
    parser.add_argument(
        "--open-lost-after", type=float, default=30.0, help="open loop: a message with no reply after this is lost"
    )
    args = parser.parse_args(argv)
    args.growth_turns = [int(x) for x in args.growth_turns.split(",") if x.strip()]
    if args.growth_conversations is None:
        args.growth_conversations = 1 if args.quick else 3
    raw_open = args.open_conversations if args.open_conversations is not None else ("200" if args.quick else "200,1000")
    args.open_conversations = [int(x) for x in raw_open.split(",") if x.strip() and int(x) > 0]
    if args.open_duration is None:
        args.open_duration = 20.0 if args.quick else 60.0

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

    make_args = args.make_run_args.split()
    results["settings"].update(
        {
            "product_started_by": " ".join(["make run", *make_args]) + " (in a copy of the tree, bench/stack.py)",
            "bench_env": sorted(stack.BENCH_ENV_NAMES),
            "growth_turns": args.growth_turns,
            "growth_conversations": args.growth_conversations,
            "open_loop": {
                "conversations": args.open_conversations,
                "mean_interval_s": args.open_interval,
                "duration_s": args.open_duration,
                "ramp_per_s": args.open_ramp,
                "lost_after_s": args.open_lost_after,
                "transport": "widget socket (Engine.IO v4 / Socket.IO over websocket)",
            },
        }
    )

    bots = results["bots"]
    if args.only in (None, "product"):
        with FakeBankSite() as site:
            print(f"[bench] starting the product: make run {' '.join(make_args)} in var/bench/run-{run_id}/", flush=True)
            product, startup = timed(lambda: stack.start_product(site, run_id, LOG_DIR / "product-make-run.log", make_args))
            try:
                bots["product"] = measure(
                    product,
                    scripts.BUTTONS,
                    PRODUCT_PARSE_TEXTS,
                    levels,
                    duration,
                    parse_rounds,
                    run_id,
                    startup,
                    typed=scripts.TYPED,
                    args=args,
                )
                bots["product"]["processes"] = [p["cmd"] for p in product.processes_now()]
                bots["product"]["bank_site_requests"] = site.total_hits()
            finally:
                product.stop()
        time.sleep(2.0)

    if args.only in (None, "starter"):
        print("[bench] starting the starter (rasa run, in-memory trackers)", flush=True)
        starter_stack, startup = timed(lambda: start_starter(Path(str(starter_info["model"]))))
        try:
            bots["starter"] = measure(
                starter_stack, scripts.STARTER, STARTER_PARSE_TEXTS, levels, duration, parse_rounds, run_id, startup
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
