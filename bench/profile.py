"""Where the product's server time goes under load: py-spy against the running servers.

    .venv/bin/pip install py-spy          # or any py-spy on PATH, or --py-spy /path/to/py-spy
    python -m bench.profile [--concurrency 50] [--seconds 30] [--rate 50]

Starts the product as ``bench.run`` does, warms it up, drives ``--concurrency`` conversations while
``py-spy record --threads`` samples the Rasa server and the action server (py-spy's raw "collapsed
stack" format: feed it to flamegraph.pl or speedscope), then prints, per server, how much time per
message the event loop (the main thread: every request is served there, one at a time) and the
worker threads are busy, split into areas (each sample counted once, first matching area wins):
jsonschema validation, tracker store, NLU, policies, action call, hand-off router, logging, ...

Output: ``var/bench/profile/{rasa,actions}.txt`` and ``summary.txt``. Sampling (blocking by default:
py-spy pauses the process for each sample) costs CPU too: the load figures printed here are not
benchmark figures, only the split is.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bench import load, run
from tests.bank_sites import FakeBankSite

OUT = run.BENCH_VAR / "profile"

# Leaf frames of a thread that is waiting, not working (py-spy's idle detection misses these).
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:81)", "serve (sanic/server/runners.py:155)")

# (area, markers): a sample belongs to the first area with a marker somewhere on its stack.
RASA_AREAS: List[Tuple[str, Sequence[str]]] = [
    ("logging", ["(logging/__init__.py"]),
    (
        "our tracker-store redaction (bot.server.stores / bot.redaction)",
        ["redact_tracker (bot/server/stores", "(bot/redaction.py"],
    ),
    (
        "action response validation: jsonschema.validate() in RemoteAction._validate_action_result",
        ["_validate_action_result (rasa/core/actions/action.py"],
    ),
    ("tracker store save: SQLite COMMIT", ["do_commit (sqlalchemy/engine/default.py"]),
    ("tracker store save: find new events, serialize, INSERT", ["save (rasa/core/tracker_store.py"]),
    (
        "tracker store retrieve: SELECT all events, deserialize, replay",
        [
            "retrieve (rasa/core/tracker_store.py",
            "_retrieve (rasa/core/tracker_store.py",
            "retrieve_full_tracker (rasa/core/tracker_store.py",
        ],
    ),
    ("NLU parse (spaCy, featurizers, DIET, our components)", ["parse_message (rasa/core/processor.py"]),
    (
        "policy prediction (RulePolicy)",
        ["_predict_next_with_tracker (rasa/core/processor.py", "predict_next_with_tracker_if_should (rasa/core/processor.py"],
    ),
    ("action call: request, HTTP client, response events", ["run (rasa/core/actions/action.py"]),
    ("other dialogue processing (Rasa processor)", ["handle_message (rasa/core/processor.py"]),
    ("hand-off router: route() itself, on the loop", ["route (bot/server/handoff.py"]),
    ("hand-off router: open_ticket_for() DB lookup (worker thread)", ["open_ticket_for (bot/handoff/tickets.py"]),
    ("outage notifier (background task)", ["(bot/outages/"]),
    ("HTTP server, REST channel, CORS", ["(sanic", "(rasa/core/channels/", "(httptools", "(sanic_cors"]),
]
ACTION_AREAS: List[Tuple[str, Sequence[str]]] = [
    ("logging", ["(logging/__init__.py"]),
    ("outage radar / hand-off DB (bot.outages, bot.handoff; worker threads)", ["(bot/outages/", "(bot/handoff/"]),
    ("bank-site probe", ["(bot/banks/site_prober.py"]),
    ("our actions (actions/)", ["(actions/"]),
    ("rasa_sdk: request parsing, Tracker.from_dict, dispatch", ["(rasa_sdk/"]),
    ("Sanic, JSON", ["(sanic", "(json/", "(ujson"]),
]


def read_collapsed(path: Path) -> List[Tuple[List[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def _strip_line(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def split(stacks: List[Tuple[List[str], int]], areas: Sequence[Tuple[str, Sequence[str]]]):
    """(main-thread busy samples per area, worker-thread busy samples per area, idle samples)."""
    main: Dict[str, int] = collections.Counter()
    workers: Dict[str, int] = collections.Counter()
    idle = 0
    for frames, n in stacks:
        if frames[-1] in IDLE_LEAVES:
            idle += n
            continue
        joined = ";".join(frames[1:])
        area = next((name for name, markers in areas if any(m in joined for m in markers)), "other")
        (main if "MainThread" in frames[0] else workers)[area] += n
    return main, workers, idle


def top_functions(stacks: List[Tuple[List[str], int]], n: int = 15) -> List[Tuple[str, int]]:
    counter: Dict[str, int] = collections.Counter()
    for frames, c in stacks:
        if frames[-1] not in IDLE_LEAVES and "MainThread" in frames[0]:
            counter[_strip_line(frames[-1])] += c
    return counter.most_common(n)


def record(py_spy: str, pid: int, seconds: int, out: Path, rate: int, nonblocking: bool) -> subprocess.Popen:
    args = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--threads",
        "--format",
        "raw",
        "--output",
        str(out),
    ] + (["--nonblocking"] if nonblocking else [])
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarize(name: str, stacks, areas, rate: int, messages: int) -> str:
    main, workers, _ = split(stacks, areas)
    main_total, worker_total = sum(main.values()), sum(workers.values())
    per_msg = lambda n: n / rate * 1000.0 / max(1, messages)  # noqa: E731
    lines = [
        f"== {name} server: event loop busy {per_msg(main_total):.1f} ms per message, worker threads "
        f"{per_msg(worker_total):.1f} ms per message ({messages} messages answered while sampling)"
    ]
    lines.append(f"   {'ms/msg':>7} {'% loop':>7}  event loop (main thread)")
    for area, n in sorted(main.items(), key=lambda kv: -kv[1]):
        lines.append(f"   {per_msg(n):7.2f} {100.0 * n / max(1, main_total):6.1f}%  {area}")
    if worker_total:
        lines.append("   worker threads (asyncio.to_thread: hand-off / radar DB; they compete for the GIL):")
        for area, n in sorted(workers.items(), key=lambda kv: -kv[1]):
            lines.append(f"   {per_msg(n):7.2f}          {area}")
    lines.append("   top functions by own time on the event loop (samples):")
    for f, n in top_functions(stacks, 12):
        lines.append(f"   {n:7d}          {f}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or str(run.servers.VENV_BIN / "py-spy"))
    parser.add_argument(
        "--nonblocking", action="store_true", help="don't pause the process per sample (less overhead, rougher stacks)"
    )
    args = parser.parse_args(argv)
    if not (Path(args.py_spy).exists() or shutil.which(args.py_spy)):
        print("py-spy not found: `.venv/bin/pip install py-spy` or pass --py-spy", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    run.LOG_DIR.mkdir(parents=True, exist_ok=True)
    finish_times: List[float] = []
    result: Dict[str, object] = {}
    with FakeBankSite() as site, tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        stack = run.start_product(site, Path(tmp))
        try:
            load.warm_up(stack.url, load.PRODUCT_SCRIPT, "profile-warmup", sessions=True)
            driver = threading.Thread(
                target=lambda: result.update(
                    load.run_level(
                        stack.url,
                        load.PRODUCT_SCRIPT,
                        args.concurrency,
                        args.seconds + 6,
                        "profile",
                        finish_times=finish_times,
                        sessions=True,
                    )
                )
            )
            driver.start()
            time.sleep(2)  # let the load ramp up before sampling
            window_start = time.monotonic()
            procs = [
                (
                    name,
                    record(
                        args.py_spy,
                        stack.processes[name].proc.pid,
                        args.seconds,
                        OUT / f"{name}.txt",
                        args.rate,
                        args.nonblocking,
                    ),
                )
                for name in ("rasa", "actions")
            ]
            for name, p in procs:
                _, err = p.communicate(timeout=args.seconds + 120)
                if p.returncode != 0:
                    print(f"py-spy ({name}) failed: {err.decode(errors='replace')[-800:]}", file=sys.stderr)
            window_end = window_start + args.seconds
            driver.join()
        finally:
            stack.stop()
    messages = sum(1 for t in finish_times if window_start <= t <= window_end)
    parts = [
        f"load while sampling ({args.concurrency} conversations, py-spy overhead included, not a benchmark "
        f"figure): {run.report.level_line(result)}",
        "",
    ]
    for name, areas in (("rasa", RASA_AREAS), ("actions", ACTION_AREAS)):
        path = OUT / f"{name}.txt"
        if path.exists():
            parts.append(summarize(name, read_collapsed(path), areas, args.rate, messages))
            parts.append("")
    parts.append(f"raw collapsed stacks: {OUT}/rasa.txt, {OUT}/actions.txt")
    text = "\n".join(parts)
    (OUT / "summary.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
