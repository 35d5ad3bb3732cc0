"""Where the product's server CPU goes per message, per component: py-spy against ``make run``'s servers.

    make bench-profile                    # installs py-spy into var/pyspy-venv (its own venv), then runs this
    python -m bench.profile [--concurrency 50] [--seconds 30] [--rate 50] [--script typed|buttons] [--py-spy PATH]

Starts the product as ``bench.run`` does (``make run`` in a throw-away copy, ``bench/stack.py``), warms it
up, drives ``--concurrency`` closed-loop conversations while ``py-spy record --threads --subprocesses``
samples every Rasa server process and the action server (py-spy's raw "collapsed stack" format: feed
it to flamegraph.pl or speedscope), then prints milliseconds of busy samples per answered message,
per component. Each sample is counted once, in the first component (``RASA_COMPONENTS`` /
``ACTION_COMPONENTS``, in that order) with a marker (``function (module path``) somewhere on its
stack; ``bench/README.md`` lists the mapping. Idle threads (waiting in the event loop's selector or a
thread pool's queue) are not sampled (py-spy's idle detection, plus ``IDLE_LEAVES``).

Output: ``var/bench/profile/{rasa,actions}.txt`` and ``summary.txt``. Sampling (blocking by default:
py-spy pauses the process for each sample) costs CPU too: the load figures printed here are not
benchmark figures; the split, and the ms/msg per component relative to each other, are.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bench import load, run, scripts, stack
from tests.bank_sites import FakeBankSite

OUT = run.BENCH_VAR / "profile"
PYSPY_VENV = run.ROOT / "var" / "pyspy-venv"

# Leaf frames of a thread that is waiting, not working (py-spy's idle detection misses these).
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:81)", "serve (sanic/server/runners.py:155)")

NLU = "NLU (spaCy, featurizers, DIET, our extractors)"
POLICIES = "policies (RulePolicy, TED)"
TRACKER_LOAD = "tracker load (SELECT events, deserialize, replay)"
TRACKER_SAVE = "tracker save (new events, redaction, INSERT, COMMIT)"
ACTION_CALL = "action call, Rasa side (tracker JSON, HTTP round trip, response validation)"
HANDOFF_RADAR = "hand-off and radar bookkeeping"
LOCKS = "lock store"
OTHER_RASA = "other dialogue processing (Rasa processor, utterances, events)"
HTTP = "HTTP server, channels, JSON"
LOGGING = "logging"

# (component, markers): a Rasa-server sample belongs to the first component with a marker on its stack.
# Order matters: the hand-off router wraps the whole message (route -> handle_message), so it comes
# after the processor's parts; what is left in route() itself is its own bookkeeping.
RASA_COMPONENTS: List[Tuple[str, Sequence[str]]] = [
    (LOGGING, ["(logging/__init__.py"]),
    (
        TRACKER_LOAD,
        [
            "retrieve (rasa/core/tracker_store.py",
            "retrieve_full_tracker (rasa/core/tracker_store.py",
            "retrieve (bot/server/stores/",
            "retrieve_full_tracker (bot/server/stores/",
        ],
    ),
    (
        TRACKER_SAVE,
        [
            "save (rasa/core/tracker_store.py",
            "save (bot/server/stores/",
            "_append (bot/server/stores/",
            "redact_tracker (bot/server/stores/",
            "do_commit (sqlalchemy/engine/default.py",
        ],
    ),
    (LOCKS, ["(rasa/core/lock_store.py", "(rasa/core/lock.py"]),
    (NLU, ["parse_message (rasa/core/processor.py"]),
    (
        POLICIES,
        [
            "_predict_next_with_tracker (rasa/core/processor.py",
            "predict_next_with_tracker_if_should (rasa/core/processor.py",
        ],
    ),
    (
        ACTION_CALL,
        [
            "(rasa/utils/endpoints.py",
            "_validate_action_result (rasa/core/actions/action.py",
            "_action_call_format (rasa/core/actions/action.py",
            "(aiohttp/",
        ],
    ),
    (HANDOFF_RADAR, ["(bot/outages/", "(bot/handoff/", "open_ticket_for ("]),
    (OTHER_RASA, ["(rasa/core/processor.py", "(rasa/core/actions/", "(rasa/shared/core/", "(rasa/core/agent.py"]),
    (HANDOFF_RADAR + " ", ["route (bot/server/handoff.py", "(bot/server/channels/routing.py"]),
    (HTTP, ["(sanic", "(rasa/core/channels/", "(bot/server/channels/", "(httptools", "(sanic_cors", "(json/", "(ujson"]),
]
ACTION_COMPONENTS: List[Tuple[str, Sequence[str]]] = [
    (LOGGING, ["(logging/__init__.py"]),
    (HANDOFF_RADAR, ["(bot/outages/", "(bot/handoff/"]),
    ("bank-site check (HTTP to the bank site)", ["(bot/banks/site_prober.py"]),
    ("our actions (actions/, bot/troubleshooting/)", ["(actions/", "(bot/"]),
    ("rasa_sdk: request parsing, Tracker.from_dict, dispatch", ["(rasa_sdk/"]),
    (HTTP, ["(sanic", "(json/", "(ujson"]),
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
        head = [f for f in frames[:2] if f.startswith("thread ") or f.startswith("process ")]
        joined = ";".join(frames[len(head) :])
        area = next((name.strip() for name, markers in areas if any(m in joined for m in markers)), "other")
        (main if any("MainThread" in f for f in head) else workers)[area] += n
    return main, workers, idle


def top_functions(stacks: List[Tuple[List[str], int]], n: int = 15) -> List[Tuple[str, int]]:
    counter: Dict[str, int] = collections.Counter()
    for frames, c in stacks:
        if frames[-1] not in IDLE_LEAVES and any("MainThread" in f for f in frames[:2]):
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
        "--subprocesses",
        "--format",
        "raw",
        "--output",
        str(out),
    ] + (["--nonblocking"] if nonblocking else [])
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _per_msg(samples: int, rate: int, messages: int) -> float:
    return samples / rate * 1000.0 / max(1, messages)


def component_table(rasa_stacks, action_stacks, rate: int, messages: int, measured: Optional[Tuple[float, float]] = None) -> str:
    """ms per answered message, per component: Rasa server(s) (event loop + worker threads), the action
    server, and both. py-spy counts a thread as busy while it is runnable, also when the shared cores
    are running something else, so on a loaded machine busy time exceeds CPU time: with ``measured``
    (each server's CPU ms per message in the window, from /proc) each server's components are scaled
    so that they add up to its measured CPU; the unscaled busy ms are in the last column."""
    r_main, r_workers, _ = split(rasa_stacks, RASA_COMPONENTS)
    a_main, a_workers, _ = split(action_stacks, ACTION_COMPONENTS)
    rasa = collections.Counter(r_main) + collections.Counter(r_workers)
    actions = collections.Counter(a_main) + collections.Counter(a_workers)
    total_r, total_a = sum(rasa.values()), sum(actions.values())
    fr = fa = 1.0
    if measured:
        fr = measured[0] / _per_msg(total_r, rate, messages) if total_r else 1.0
        fa = measured[1] / _per_msg(total_a, rate, messages) if total_a else 1.0
    # the action server's own work is part of the action call, except its hand-off / radar bookkeeping
    action_own = sum(n for area, n in actions.items() if area != HANDOFF_RADAR)
    areas = list(dict.fromkeys(name.strip() for name, _ in RASA_COMPONENTS)) + ["other"]
    rows = []
    for area in areas:
        a = action_own if area == ACTION_CALL else actions.get(HANDOFF_RADAR, 0) if area == HANDOFF_RADAR else 0
        r_ms, a_ms = _per_msg(rasa.get(area, 0), rate, messages), _per_msg(a, rate, messages)
        rows.append((area, r_ms * fr, a_ms * fa, r_ms + a_ms))
    what = "CPU ms per message, scaled to the measured CPU" if measured else "busy ms per message (py-spy samples)"
    lines = [f"   {'rasa':>7} {'actions':>8} {'total':>7} {'busy':>7}  component ({what})"]
    for area, r, a, busy in sorted(rows, key=lambda row: -(row[1] + row[2])):
        if r or a:
            lines.append(f"   {r:7.2f} {a:8.2f} {r + a:7.2f} {busy:7.2f}  {area}")
    busy_r, busy_a = _per_msg(total_r, rate, messages), _per_msg(total_a, rate, messages)
    lines.append(
        f"   {busy_r * fr:7.2f} {busy_a * fa:8.2f} {busy_r * fr + busy_a * fa:7.2f} {busy_r + busy_a:7.2f}  all "
        f"(Rasa event loop {_per_msg(sum(r_main.values()), rate, messages) * fr:.2f} + its worker threads "
        f"{_per_msg(sum(r_workers.values()), rate, messages) * fr:.2f})"
    )
    lines.append("   the action server's own part of the action call:")
    for area, n in sorted(actions.items(), key=lambda kv: -kv[1]):
        if area != HANDOFF_RADAR:
            lines.append(f"   {'':7} {_per_msg(n, rate, messages) * fa:8.2f} {'':7}  {area}")
    return "\n".join(lines)


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """user+system CPU of these processes and all their descendants (from /proc)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / load._TICKS)
    wanted, total = set(pids), 0.0
    changed = True
    while changed:  # descendants
        changed = False
        for pid, (ppid, _) in stats.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    for pid in wanted:
        total += stats.get(pid, (0, 0.0))[1]
    return total


def summarize(name: str, stacks, rate: int) -> str:
    lines = [f"   top functions by own time on the {name} event loop (samples):"]
    for f, n in top_functions(stacks, 12):
        lines.append(f"   {n:7d}  {f}")
    return "\n".join(lines)


def _ppid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
        return int(raw[raw.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError):
        return None


def top_level(pids: Sequence[int]) -> List[int]:
    """The pids whose parent is not in ``pids`` (py-spy --subprocesses covers the children)."""
    return [p for p in pids if _ppid(p) not in pids]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--script", choices=("typed", "buttons"), default="typed", help="the conversation (bench/scripts.py)")
    parser.add_argument("--make-run-args", default="", help="extra arguments for `make run` (e.g. 'WORKERS=2')")
    default_spy = PYSPY_VENV / "bin" / "py-spy"
    parser.add_argument(
        "--py-spy",
        default=str(default_spy) if default_spy.exists() else (shutil.which("py-spy") or str(run.servers.VENV_BIN / "py-spy")),
    )
    parser.add_argument(
        "--nonblocking", action="store_true", help="don't pause the process per sample (less overhead, rougher stacks)"
    )
    args = parser.parse_args(argv)
    if not (Path(args.py_spy).exists() or shutil.which(args.py_spy)):
        print("py-spy not found: `make bench-profile` installs it into var/pyspy-venv, or pass --py-spy", file=sys.stderr)
        return 2
    script = scripts.TYPED if args.script == "typed" else scripts.BUTTONS
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.txt"):
        old.unlink()
    run.LOG_DIR.mkdir(parents=True, exist_ok=True)
    finish_times: List[float] = []
    result: Dict[str, object] = {}
    run_id = "profile-" + time.strftime("%Y%m%d%H%M%S")
    with FakeBankSite() as site:
        product = stack.start_product(site, run_id, run.LOG_DIR / "profile-make-run.log", args.make_run_args.split())
        try:
            load.warm_up(product.url, script, "profile-warmup", sessions=True)
            targets = [("rasa", pid) for pid in top_level(product.pids("bot.server.serve"))]
            targets += [("actions", pid) for pid in top_level(product.pids("bot.server.action_server"))]
            driver = threading.Thread(
                target=lambda: result.update(
                    load.run_level(
                        product.url,
                        script,
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
            rasa_pids = [pid for name, pid in targets if name == "rasa"]
            action_pids = [pid for name, pid in targets if name == "actions"]
            cpu_before = (tree_cpu_seconds(rasa_pids), tree_cpu_seconds(action_pids))
            window_start = time.monotonic()
            procs = [
                (f"{name}-{pid}", record(args.py_spy, pid, args.seconds, OUT / f"{name}-{pid}.txt", args.rate, args.nonblocking))
                for name, pid in targets
            ]
            for name, p in procs:
                _, err = p.communicate(timeout=args.seconds + 120)
                if p.returncode != 0:
                    print(f"py-spy ({name}) failed: {err.decode(errors='replace')[-800:]}", file=sys.stderr)
            window_end = window_start + args.seconds
            cpu_after = (tree_cpu_seconds(rasa_pids), tree_cpu_seconds(action_pids))
            driver.join()
        finally:
            product.stop()
    messages = sum(1 for t in finish_times if window_start <= t <= window_end)
    # the CPU the servers used while py-spy sampled (py-spy's own pauses included), per message
    measured = tuple((after - before) * 1000.0 / max(1, messages) for before, after in zip(cpu_before, cpu_after))
    rasa_stacks = [s for f in sorted(OUT.glob("rasa-*.txt")) for s in read_collapsed(f)]
    action_stacks = [s for f in sorted(OUT.glob("actions-*.txt")) for s in read_collapsed(f)]
    parts = [
        f"load while sampling ({args.concurrency} {args.script} conversations, py-spy overhead included, not a "
        f"benchmark figure): {run.report.level_line(result)}",
        f"sampled: {', '.join(f'{n} (pid {p})' for n, p in targets)}; {messages} messages answered in the "
        f"{args.seconds} s window; {args.rate} samples/s",
        "",
        f"measured CPU per message in the window (/proc): Rasa {measured[0]:.2f} ms, action server {measured[1]:.2f} ms",
        component_table(rasa_stacks, action_stacks, args.rate, messages, measured),
        "",
        summarize("Rasa server", rasa_stacks, args.rate),
        "",
        f"raw collapsed stacks: {OUT}/rasa-*.txt, {OUT}/actions-*.txt",
    ]
    text = "\n".join(parts)
    (OUT / "summary.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
