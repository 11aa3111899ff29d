"""A benchmark report as files: ``results.json`` (the raw report), ``results.md`` (tables) and the sweep plot.

The report is a dict: ``env`` (`environment.environment`), ``command``, ``config``, ``models``, ``rows`` (one
entry per row, video, precision and mode with ``name``, ``fps``, ``baseline_fps``, ``speedup``,
``precision``, ``device`` and the details), and the optional ``memory``, ``ablation``, ``precision_iou``,
``decode_fps`` and ``sweep`` sections. ``results.md`` is a function of ``results.json`` alone, so a committed
result can be re-rendered.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from benchmarks.harness import STAGES
from benchmarks.rows import row_label


def _fmt(v, nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _mode(e: dict) -> str:
    return "end-to-end" if e["mode"] == "e2e" else "compute-only"


def _main_table(report: dict) -> list[str]:
    env, cfg = report["env"], report["config"]
    lines = [
        f"# IFC FPS benchmark ({env['device_name']})",
        "",
        f"torch {env['torch']}, python {env['python']}"
        + (f", CUDA {env.get('cuda')}, driver {env.get('driver')}" if env.get("cuda") else "")
        + f"; {cfg['frames']} frames {cfg['height']}x{cfg['width']}, short side {cfg['size']}; median of "
        f"{cfg['repeats']} interleaved runs [min-max]; load average at start {env['loadavg_start']}, end "
        f"{env.get('loadavg_end', '-')}; {env['time']}",
        "",
        "| row | video | mode | precision | ifc_sdk FPS | reference-style FPS | speed-up (medians) "
        "| speed-up paired [range] | speed-up CPU time | paper FPS | peak RSS ours / base (GB) | outputs equal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in report["rows"]:
        ours = f"{_fmt(e['fps'])} [{_fmt(e['fps_min'])}-{_fmt(e['fps_max'])}]"
        base = (
            "-"
            if e.get("baseline_fps") is None
            else f"{_fmt(e['baseline_fps'])} [{_fmt(e['baseline_fps_min'])}-{_fmt(e['baseline_fps_max'])}]"
        )
        speed = "-" if e.get("speedup") is None else f"{e['speedup']:.2f}x"
        paired = (
            "-"
            if e.get("speedup_paired_median") is None
            else f"{e['speedup_paired_median']:.2f}x [{e['speedup_range'][0]:.2f}-{e['speedup_range'][1]:.2f}]"
        )
        cpu = "-" if e.get("speedup_cpu_time") is None else f"{e['speedup_cpu_time']:.2f}x"
        mem = f"{_fmt(e['peak_rss_gb'])} / {_fmt(e.get('baseline_peak_rss_gb'))}"
        if e["device"].startswith("cuda"):
            mem += f" (CUDA {_fmt(e.get('peak_cuda_gb'))} / {_fmt(e.get('baseline_peak_cuda_gb'))})"
        eq = e.get("outputs", {})
        equal = (
            "-"
            if not eq
            else eq["note"]
            if "note" in eq
            else ("yes" if eq.get("equal") else "NO")
            + f" ({eq.get('tracks', '?')} tracks, {eq.get('outputs', '?')} outputs, "
            f"{eq.get('mask_pixels_differing', '?')} px differ)"
        )
        lines.append(
            f"| {row_label(e['row'])} | {e['video']} | {_mode(e)} | {e['precision']} | {ours} | {base} | {speed} "
            f"| {paired} | {cpu} | {_fmt(e['paper_fps'], 1)} | {mem} | {equal} |"
        )
    return lines


def _breakdown(report: dict) -> list[str]:
    entries = [e for e in report["rows"] if "breakdown_s" in e]
    if not entries:
        return []
    lines = [
        "",
        "Breakdown, seconds per video (ifc_sdk: one extra instrumented run; reference-style: median of the "
        "timed runs). ifc_sdk decodes in a background thread: its `decode` is only the time compute waited "
        "for frames.",
        "",
        "| row | video | mode | precision | side | " + " | ".join(STAGES) + " | total |",
        "|---|---|---|---|---|" + "---|" * (len(STAGES) + 1),
    ]
    for e in entries:
        head = f"| {row_label(e['row'])} | {e['video']} | {_mode(e)} | {e['precision']} "
        sides = [("ifc_sdk", e["breakdown_s"], e["breakdown_total_s"])]
        if e.get("baseline_breakdown_s"):
            b = e["baseline_breakdown_s"]
            sides.append(("reference-style", b, sum(b.values())))
        for side, stages, total in sides:
            lines.append(
                f"{head}| {side} | " + " | ".join(_fmt(stages[k]) for k in STAGES) + f" | {_fmt(total)} |"
            )
    return lines


def _ablation(report: dict) -> list[str]:
    if not report.get("ablation"):
        return []
    lines = [
        "",
        "Speed-up steps (end-to-end from the mp4, first video; median [min-max] of interleaved runs)",
        "",
        "| row | variant | FPS | vs reference-style | peak RSS (GB) |",
        "|---|---|---|---|---|",
    ]
    for e in report["ablation"]:
        lines.append(
            f"| {row_label(e['row'])} | {e['description']} | {_fmt(e['fps'], 3)} [{_fmt(e['fps_min'], 3)}-"
            f"{_fmt(e['fps_max'], 3)}] | {e['speedup_vs_baseline']:.2f}x | {_fmt(e['peak_rss_gb'])} |"
        )
    return lines


def _memory(report: dict) -> list[str]:
    if not report.get("memory"):
        return []
    lines = [
        "",
        "Peak resident memory of one end-to-end run, each in a fresh process (model and interpreter included)",
        "",
        "| row | video | side | peak RSS (GB) | RSS before the run (GB) | run time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for e in report["memory"]:
        side = "ifc_sdk" if e["side"] == "ours" else "reference-style"
        lines.append(
            f"| {row_label(e['row'])} | {e['video']} | {side} | {_fmt(e.get('peak_rss_gb'))} | "
            f"{_fmt(e.get('rss_before_run_gb'))} | {_fmt(e['seconds'], 1)} |"
        )
    return lines


def _precision_iou(report: dict) -> list[str]:
    if not report.get("precision_iou"):
        return []
    lines = [
        "",
        "Reduced precision against fp32 (video mask IoU, tracks paired by Hungarian matching)",
        "",
        "| row | video | precision | mask IoU (area-weighted) | mean IoU | tracks fp32 / reduced |",
        "|---|---|---|---|---|---|",
    ]
    for e in report["precision_iou"]:
        lines.append(
            f"| {e['row']} | {e['video']} | {e['precision']} | {e['mask_iou']:.4f} | "
            f"{e['mask_iou_mean']:.4f} | {e['tracks']} / {e['other_tracks']} |"
        )
    return lines


def _decode_fps(report: dict) -> list[str]:
    if not report.get("decode_fps"):
        return []
    return [
        "",
        "Decode only (threaded PyAV, RGB conversion): "
        + ", ".join(f"{k} {v:.0f} FPS" for k, v in report["decode_fps"].items()),
    ]


def _sweep(report: dict) -> list[str]:
    if not report.get("sweep"):
        return []
    lines = [
        "",
        f"FPS against window length and stride (end-to-end; {report.get('sweep_info')}; plot: "
        f"{report.get('sweep_plot')})",
        "",
        "| T | S | ifc_sdk FPS | reference-style FPS |",
        "|---|---|---|---|",
    ]
    for e in report["sweep"]:
        lines.append(f"| {e['window']} | {e['stride']} | {_fmt(e['fps'])} | {_fmt(e.get('baseline_fps'))} |")
    return lines


SECTIONS = (_main_table, _breakdown, _ablation, _memory, _precision_iou, _decode_fps, _sweep)


def markdown(report: dict, extra_sections: Iterable[Callable[[dict], list[str]]] = ()) -> str:
    """``results.md``: the main table, then every section the report has (extra ones before the footer)."""
    lines = [line for section in (*SECTIONS, *extra_sections) for line in section(report)]
    lines += ["", f"Models: {json.dumps(report['models'])}", "", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def _json_default(o):
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    return str(o)


def write(report: dict, out_dir: Path, extra_sections: Iterable[Callable[[dict], list[str]]] = ()) -> None:
    """``results.json`` (atomically: an interrupted run keeps the last complete report) and ``results.md``."""
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=_json_default))
    tmp.replace(out_dir / "results.json")
    (out_dir / "results.md").write_text(markdown(report, extra_sections))


def plot_sweep(sweep: list[dict], path: Path, title: str) -> Path | None:
    """FPS against window length, one line per stride rule (baseline lines where measured); None without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for rule, style in (("1", "o-"), ("half", "s--"), ("T", "^:")):
        pts = sorted(
            (e["window"], e["fps"], e.get("baseline_fps")) for e in sweep if e["stride_rule"] == rule
        )
        if not pts:
            continue
        label = {"1": "stride 1", "half": "stride T/2", "T": "stride T"}[rule]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"ifc_sdk, {label}")
        if all(p[2] for p in pts):
            ax.plot(
                [p[0] for p in pts], [p[2] for p in pts], style, alpha=0.4, label=f"reference-style, {label}"
            )
    ax.set_xlabel("window length T (frames)")
    ax.set_ylabel("end-to-end FPS")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
