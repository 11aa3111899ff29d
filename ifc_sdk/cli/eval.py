"""``ifc-sdk eval``: score YouTube-VIS results against ground truth with the official video AP/AR."""

from __future__ import annotations

import argparse
import json

from ifc_sdk.evaluation.ytvis import evaluate_ytvis, format_table
from ifc_sdk.io.atomic import atomic_write_text, ensure_file_target


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` command."""
    parser = subparsers.add_parser(
        "eval",
        help="compute YouTube-VIS AP/AR of a results file",
        description="Compute the 12 official YouTube-VIS stats (AP, AP50, ..., ARl) of a results JSON "
        "against a ground-truth JSON (YouTube-VIS 2019/2021 format) and print them as the official "
        "evaluator does.",
    )
    parser.add_argument("--gt", required=True, metavar="GT.json", help="ground-truth annotation file")
    parser.add_argument("--results", required=True, metavar="RESULTS.json", help="results file")
    parser.add_argument(
        "--output", metavar="METRICS.json", help="also write the 12 stats keyed by name to this JSON file"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table and optionally write the metrics; returns the exit code."""
    if args.output:
        ensure_file_target(args.output, "metrics file")  # a folder there fails before the evaluation runs
    metrics = evaluate_ytvis(args.gt, args.results)
    print(format_table(metrics))
    if args.output:
        atomic_write_text(args.output, json.dumps(metrics, indent=2) + "\n")
    return 0
