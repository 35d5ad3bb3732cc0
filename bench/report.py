"""Tables and the plot for ``reports/bench.json`` (``python -m bench.report`` re-renders a saved run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

# What the issues ask of the product (printed for information; a benchmark asserts nothing).
TARGET_THROUGHPUT_RATIO_AT_50 = 4.0  # x the starter's msg/s, 50 typed conversations (issue 16)
TARGET_P95_MS_AT_50 = 500.0
TARGET_IDLE_P50_MS = 40.0
TARGET_CPU_MS_PER_MSG = 12.0
TARGET_OPEN_P95_MS = 500.0
TARGET_OPEN_RSS_MB = 1500.0


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b in (None, 0):
        return None
    return round(a / b, 2)


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def level_line(level: Dict[str, Any]) -> str:
    return (
        f"{level['msgs_per_s']} msg/s, p50 {level['p50_ms']} ms, p95 {level['p95_ms']} ms, "
        f"p99 {level['p99_ms']} ms, {level['errors']} errors, {level['ok']} ok"
        + (f", server CPU {level['server_cpu_ms_per_msg']} ms/msg" if level.get("server_cpu_ms_per_msg") is not None else "")
    )


def open_line(o: Dict[str, Any]) -> str:
    return (
        f"{o['connected']}/{o['conversations']} connected, sent {o['sent_per_s']} msg/s (offered "
        f"{o['offered_msgs_per_s']}), answered {o['msgs_per_s']} msg/s, p50 {o['p50_ms']} ms, p95 {o['p95_ms']} ms, "
        f"p99 {o['p99_ms']} ms, {o['errors']} errors, {o['lost']} lost, server CPU {o.get('server_cpu_ms_per_msg')} ms/msg, "
        f"peak RSS {(o.get('peak_rss_mb') or {}).get('total')} MB"
    )


def growth_line(g: Dict[str, Any]) -> str:
    blocks = ", ".join(f"turns {b['turns']}: {b['server_cpu_ms_per_msg']} ms" for b in g["blocks"])
    return (
        f"{g['turns']} turns: server CPU {g['server_cpu_ms_per_msg_whole_conversation']} ms/msg over the conversation "
        f"({blocks}); {g['off_path']} off the path"
    )


def _levels(bot: Optional[Dict[str, Any]], key: str = "levels") -> Dict[int, Dict[str, Any]]:
    return {lv["concurrency"]: lv for lv in (bot or {}).get(key, [])}


#: the rows of the load table: (label, bot, levels key)
SERIES = (
    ("product buttons", "product", "levels"),
    ("product typed", "product", "typed_levels"),
    ("starter", "starter", "levels"),
)


#: a replica's event loop kept below this share of its core, so that queues (and p95) stay short
REPLICA_UTILISATION = 0.7


def capacity(results: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """What N single-process replicas behind nginx would serve, from the measured CPU per message.

    Each Rasa replica is one event loop (one core at most); the figure used is the whole product
    tree's CPU per message (Rasa + action server + hand-off / radar bookkeeping) at 50 typed
    conversations, so one message needs ``cpu_ms`` of a core somewhere. N replicas on N free cores
    serve at most ``N * 1000 / cpu_ms`` msg/s; kept at REPLICA_UTILISATION for short queues,
    ``N * 1000 * 0.7 / cpu_ms``. Cores needed for the open-loop offered rate: ``rate * cpu_ms / 1000 / 0.7``.
    """
    product = (results.get("bots") or {}).get("product") or {}
    typed = _levels(product, "typed_levels")
    level = typed.get(50) or (typed[max(typed)] if typed else None)
    if not level or not level.get("server_cpu_ms_per_msg"):
        return None
    cpu = level["server_cpu_ms_per_msg"]
    per_core = 1000.0 / cpu
    out: Dict[str, Any] = {
        "from": f"server CPU {cpu} ms/msg, {level['concurrency']} typed conversations",
        "msgs_per_s_per_core_at_100pct": round(per_core, 1),
        "msgs_per_s_per_replica_at_70pct": round(per_core * REPLICA_UTILISATION, 1),
        "replicas": {str(n): round(n * per_core * REPLICA_UTILISATION, 1) for n in (1, 2, 4, 8)},
    }
    o = product.get("open_loop")
    if o:
        rate = o["offered_msgs_per_s"]
        out["open_loop_offered_msgs_per_s"] = rate
        out["cores_needed_for_open_loop_at_70pct"] = round(rate * cpu / 1000.0 / REPLICA_UTILISATION, 1)
        if o.get("server_cpu_ms_per_msg"):
            out["cores_needed_at_open_loop_cpu_per_msg"] = round(
                rate * o["server_cpu_ms_per_msg"] / 1000.0 / REPLICA_UTILISATION, 1
            )
    return out


def _level_ratios(p: Dict[str, Any], s: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "msgs_per_s_ratio": _ratio(p["msgs_per_s"], s["msgs_per_s"]),
        "p50_ratio": _ratio(p["p50_ms"], s["p50_ms"]),
        "p95_ratio": _ratio(p["p95_ms"], s["p95_ms"]),
        "p99_ratio": _ratio(p["p99_ms"], s["p99_ms"]),
        "server_cpu_per_msg_ratio": _ratio(p.get("server_cpu_ms_per_msg"), s.get("server_cpu_ms_per_msg")),
        "peak_rss_ratio": _ratio((p.get("peak_rss_mb") or {}).get("total"), (s.get("peak_rss_mb") or {}).get("total")),
    }


def _met(measured: Any, ok: bool) -> Optional[bool]:
    return None if measured is None else ok


def compare(results: Dict[str, Any]) -> Dict[str, Any]:
    bots = results.get("bots", {})
    product, starter = bots.get("product"), bots.get("starter")
    s_levels = _levels(starter)
    out: Dict[str, Any] = {"levels": {}, "typed_levels": {}, "note": "ratios are product / starter"}
    for key in ("levels", "typed_levels"):
        p_levels = _levels(product, key)
        for n in sorted(set(p_levels) & set(s_levels)):
            out[key][str(n)] = _level_ratios(p_levels[n], s_levels[n])
    if product and starter:
        out["peak_rss_ratio"] = _ratio(product["peak_rss_mb"].get("total"), starter["peak_rss_mb"].get("total"))
        out["nlu_parse_p50_ratio"] = _ratio(product["nlu_parse"]["p50_ms"], starter["nlu_parse"]["p50_ms"])
    training = results.get("training") or {}
    if "product" in training and "starter" in training:
        out["training_ratio"] = _ratio(training["product"].get("seconds"), training["starter"].get("seconds"))

    targets: Dict[str, Any] = {}
    typed = _levels(product, "typed_levels")
    if 50 in typed:
        t50 = typed[50]
        ratio = out["typed_levels"].get("50", {}).get("msgs_per_s_ratio")
        targets["typed_throughput_at_50_vs_starter"] = {
            "target": f">= {TARGET_THROUGHPUT_RATIO_AT_50:g}x",
            "measured": ratio,
            "met": _met(ratio, ratio is not None and ratio >= TARGET_THROUGHPUT_RATIO_AT_50),
        }
        targets["typed_p95_at_50_ms"] = {
            "target": f"< {TARGET_P95_MS_AT_50:g}",
            "measured": t50["p95_ms"],
            "met": _met(t50["p95_ms"], t50["p95_ms"] is not None and t50["p95_ms"] < TARGET_P95_MS_AT_50),
        }
        targets["typed_errors_at_50"] = {"target": 0, "measured": t50["errors"], "met": t50["errors"] == 0}
        cpu = t50.get("server_cpu_ms_per_msg")
        targets["typed_server_cpu_ms_per_msg_at_50"] = {
            "target": f"< {TARGET_CPU_MS_PER_MSG:g}",
            "measured": cpu,
            "met": _met(cpu, cpu is not None and cpu < TARGET_CPU_MS_PER_MSG),
        }
    p_levels = _levels(product)
    if 1 in p_levels:
        p1 = p_levels[1]
        targets["idle_single_conversation_p50_ms"] = {
            "target": f"< {TARGET_IDLE_P50_MS:g}",
            "measured": p1["p50_ms"],
            "met": p1["p50_ms"] is not None and p1["p50_ms"] < TARGET_IDLE_P50_MS,
        }
    o = (product or {}).get("open_loop")
    if o:
        targets["open_loop_p95_ms"] = {
            "target": f"< {TARGET_OPEN_P95_MS:g}",
            "measured": o["p95_ms"],
            "met": _met(o["p95_ms"], o["p95_ms"] is not None and o["p95_ms"] < TARGET_OPEN_P95_MS),
        }
        bad = o["errors"] + o["lost"] + o["connect_failures"]
        targets["open_loop_errors_lost"] = {"target": 0, "measured": bad, "met": bad == 0}
        rss = (o.get("peak_rss_mb") or {}).get("total")
        targets["open_loop_peak_rss_mb"] = {
            "target": f"< {TARGET_OPEN_RSS_MB:g}",
            "measured": rss,
            "met": _met(rss, rss is not None and rss < TARGET_OPEN_RSS_MB),
        }
    out["targets"] = targets
    out["capacity"] = capacity(results)
    return out


def _table(headers: List[str], rows: List[List[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def render(results: Dict[str, Any]) -> str:
    bots = results.get("bots", {})
    comparison = results.get("comparison") or compare(results)
    settings = results.get("settings", {})
    machine = results.get("machine", {})
    parts: List[str] = []
    parts.append(
        f"Bench {results.get('run_id')}: {machine.get('cpus')} CPUs ({machine.get('cpu_model')}), "
        f"load average at start {results.get('loadavg_at_start')} / end {results.get('loadavg_at_end')}; "
        f"closed loop over the REST channel, {settings.get('duration_s_per_level')} s per level. "
        f"Product started by: {settings.get('product_started_by', 'the bench itself')}."
    )
    parts.append("Shared machine: other jobs on these cores make the figures noisy; compare runs, not single numbers.")

    rows = []
    names = [n for n in ("product", "starter") if n in bots]
    series = [(label, bot, key) for label, bot, key in SERIES if bot in bots and bots[bot].get(key)]
    all_levels = sorted({lv for _, bot, key in series for lv in _levels(bots[bot], key)})
    for n in all_levels:
        for label, bot, key in series:
            lv = _levels(bots[bot], key).get(n)
            if lv is None:
                continue
            rows.append(
                [
                    f"{n:>3} {label}",
                    lv["msgs_per_s"],
                    lv["p50_ms"],
                    lv["p95_ms"],
                    lv["p99_ms"],
                    lv["ok"],
                    lv["errors"],
                    lv.get("server_cpu_ms_per_msg"),
                    lv.get("server_cpu_util"),
                    lv.get("loadgen_cpu_ms_per_msg"),
                    (lv.get("peak_rss_mb") or {}).get("total"),
                    "/".join(str(x) for x in (lv.get("loadavg_after") or [])[:1]),
                ]
            )
        for key, label in (("levels", "buttons/starter"), ("typed_levels", "typed/starter")):
            c = comparison.get(key, {}).get(str(n))
            if c:
                rows.append(
                    [
                        f"{n:>3} {label}",
                        c["msgs_per_s_ratio"],
                        c["p50_ratio"],
                        c["p95_ratio"],
                        c["p99_ratio"],
                        "",
                        "",
                        c["server_cpu_per_msg_ratio"],
                        "",
                        "",
                        c["peak_rss_ratio"],
                        "",
                    ]
                )
    if rows:
        parts.append(
            "\nClosed loop over the REST channel (concurrent conversations; errors include replies off the script's path)"
        )
        parts.append(
            _table(
                [
                    "conc bot",
                    "msg/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "ok",
                    "errors",
                    "srv CPU ms/msg",
                    "srv cores",
                    "loadgen CPU ms/msg",
                    "peak RSS MB",
                    "loadavg",
                ],
                rows,
            )
        )

    product = bots.get("product") or {}
    if product.get("growth"):
        rows = []
        for g in product["growth"]:
            rows.append(
                [g["turns"], g["conversations"], g["server_cpu_ms_per_msg_whole_conversation"], g["off_path"]]
                + [f"{b['server_cpu_ms_per_msg']} ({b['turns']})" for b in g["blocks"]]
            )
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        headers = ["turns", "convs", "srv CPU ms/msg (whole conv.)", "off path"] + [
            f"ms/msg block {i + 1}" for i in range(width - 4)
        ]
        parts.append("\nCost per message as a conversation grows (typed, one message at a time; block = 10 turns)")
        parts.append(_table(headers, rows))
    open_levels = product.get("open_loop_levels") or ([product["open_loop"]] if product.get("open_loop") else [])
    if open_levels:
        o = open_levels[-1]
        parts.append(
            f"\nOpen loop over the widget socket (Socket.IO): one message per {o['mean_interval_s']:g} s per conversation "
            f"on average (Poisson), {o['duration_s']:g} s measured after the ramp; lost = no reply within "
            f"{o['lost_after_s']:g} s; latency = message sent -> first bot_uttered event"
        )
        rows = [
            [
                o["conversations"],
                o["ramp_s"],
                o["connected"],
                o["offered_msgs_per_s"],
                o["sent_per_s"],
                o["msgs_per_s"],
                o["p50_ms"],
                o["p95_ms"],
                o["p99_ms"],
                o["errors"],
                o["lost"],
                o.get("server_cpu_ms_per_msg"),
                o.get("server_cpu_util"),
                (o.get("peak_rss_mb") or {}).get("total"),
            ]
            for o in open_levels
        ]
        headers = ["convs", "ramp s", "connected", "offered msg/s", "sent msg/s", "answered msg/s", "p50 ms", "p95 ms"]
        headers += ["p99 ms", "errors", "lost", "srv CPU ms/msg", "srv cores", "peak RSS MB"]
        parts.append(_table(headers, rows))
        for o in open_levels:
            if o.get("error_kinds"):
                parts.append(f"errors at {o['conversations']}: {o['error_kinds']}")

    rows = []
    for name in names:
        b = bots[name]
        roles = [k for k in b["peak_rss_mb"] if k != "total"]
        detail = ", ".join(f"{r} {b['peak_rss_mb'][r]:.0f}" for r in roles)
        rows.append([name, b.get("startup_s"), (b.get("rss_idle_mb") or {}).get("total"), b["peak_rss_mb"].get("total"), detail])
    if "peak_rss_ratio" in comparison:
        rows.append(["ratio p/s", "", "", comparison["peak_rss_ratio"], ""])
    parts.append("\nMemory (RSS of the server process trees, /proc every 0.2 s)")
    parts.append(_table(["bot", "startup s", "idle RSS MB", "peak RSS MB", "peak per process tree (MB)"], rows))

    training = results.get("training") or {}
    rows = []
    for name in ("product", "starter"):
        t = training.get(name) or {}
        parse = (bots.get(name) or {}).get("nlu_parse") or {}
        note = t.get("note") or (
            f"from run {t['from_run']}" if t.get("from_run") else ("full rasa train --force" if t else "not timed")
        )
        rows.append([name, t.get("seconds"), parse.get("p50_ms"), parse.get("p95_ms"), parse.get("mean_ms"), note])
    rows.append(["ratio p/s", comparison.get("training_ratio"), comparison.get("nlu_parse_p50_ratio"), "", "", ""])
    parts.append("\nTraining time and NLU parse time (POST /model/parse with the token, idle server, one at a time)")
    parts.append(_table(["bot", "training s", "parse p50 ms", "parse p95 ms", "parse mean ms", "training measured by"], rows))

    cap = capacity(results)
    if cap:
        parts.append(
            f"\nCapacity of N replicas behind nginx, computed (not measured) from the {cap['from']}: "
            f"{cap['msgs_per_s_per_core_at_100pct']} msg/s per core fully busy, "
            f"{cap['msgs_per_s_per_replica_at_70pct']} msg/s per replica at {REPLICA_UTILISATION:.0%} of a core; "
            + ", ".join(f"{n} replica(s) {v} msg/s" for n, v in cap["replicas"].items())
            + (
                f"; the open loop's {cap['open_loop_offered_msgs_per_s']} msg/s needs "
                f"{cap['cores_needed_for_open_loop_at_70pct']} cores"
                + (
                    f" ({cap['cores_needed_at_open_loop_cpu_per_msg']} at the open loop's own CPU per message)"
                    if cap.get("cores_needed_at_open_loop_cpu_per_msg")
                    else ""
                )
                if "open_loop_offered_msgs_per_s" in cap
                else ""
            )
            + " (one core per replica, the action server's share included in the CPU per message)."
        )

    targets = comparison.get("targets") or {}
    if targets:
        rows = [[k, v["target"], v["measured"], {True: "met", False: "NOT met", None: "-"}[v["met"]]] for k, v in targets.items()]
        parts.append("\nProduct targets from the issue (information only)")
        parts.append(_table(["target", "wanted", "measured", ""], rows))
    return "\n".join(parts)


def plot(results: Dict[str, Any], path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:  # the plot is a nice-to-have; the JSON and the tables are the record
        print(f"(no plot: {exc})")
        return None
    bots = results.get("bots", {})
    colors = {"product": "tab:blue", "starter": "tab:orange"}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (ax_lat, ax_tp), (ax_mem, ax_misc) = axes

    for name, bot in bots.items():
        lv = sorted(bot.get("levels", []), key=lambda x: x["concurrency"])
        xs = [x["concurrency"] for x in lv]
        for key, style in (("p50_ms", "-o"), ("p95_ms", "--s"), ("p99_ms", ":^")):
            ax_lat.plot(xs, [x[key] for x in lv], style, color=colors.get(name), label=f"{name} {key[:3]}")
        ax_tp.plot(xs, [x["msgs_per_s"] for x in lv], "-o", color=colors.get(name), label=name)
        ax_mem.plot(xs, [(x.get("peak_rss_mb") or {}).get("total") for x in lv], "-o", color=colors.get(name), label=name)
    ax_lat.set(title="Latency per message", xlabel="concurrent conversations", ylabel="ms", yscale="log")
    ax_lat.axhline(TARGET_P95_MS_AT_50, color="grey", lw=0.8, ls="--")
    ax_lat.legend(fontsize=7, ncol=2)
    ax_tp.set(title="Throughput", xlabel="concurrent conversations", ylabel="messages / s")
    ax_tp.set_ylim(bottom=0)
    ax_tp.legend()
    ax_mem.set(title="Peak RSS of the server process trees", xlabel="concurrent conversations", ylabel="MB")
    ax_mem.set_ylim(bottom=0)
    ax_mem.legend()

    training = results.get("training") or {}
    names = list(bots) or ["product", "starter"]
    width = 0.38
    xs = range(len(names))
    tr = [(training.get(n) or {}).get("seconds") or 0 for n in names]
    parse = [((bots.get(n) or {}).get("nlu_parse") or {}).get("p50_ms") or 0 for n in names]
    ax_misc.bar([x - width / 2 for x in xs], tr, width, color="tab:green", label="training s")
    ax2 = ax_misc.twinx()
    ax2.bar([x + width / 2 for x in xs], parse, width, color="tab:purple", label="NLU parse p50 ms")
    ax_misc.set_xticks(list(xs))
    ax_misc.set_xticklabels(names)
    ax_misc.set(title="Training time (s, left) and NLU parse p50 (ms, right)", ylabel="s")
    ax2.set_ylabel("ms")
    h1, l1 = ax_misc.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax_misc.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, -0.32), ncol=2)

    machine = results.get("machine", {})
    fig.suptitle(
        f"make bench {results.get('run_id')}: product vs rasa init starter, {machine.get('cpus')} CPUs, shared machine (noisy)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bench.json")
    data = json.loads(src.read_text())
    print(render(data))
    plot(data, src.with_suffix(".png"))
