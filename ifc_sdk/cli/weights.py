"""``ifc-sdk weights list|download|verify|convert`` and the ``ifc-sdk convert`` shortcut."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``weights`` command group and the top-level ``convert`` alias."""
    parser = subparsers.add_parser(
        "weights",
        help="list, download, verify and convert pretrained weights",
        description="Manage pretrained IFC weights. The cache is $IFC_SDK_CACHE (default ~/.cache/ifc_sdk); "
        "HF_HUB_OFFLINE=1 or IFC_SDK_OFFLINE=1 disables downloads.",
    )
    sub = parser.add_subparsers(dest="weights_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("list", help="show the models of the manifest and what is cached")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_list)

    p = sub.add_parser(
        "download",
        help="download, verify and convert a model into the cache",
        description="Fetch a model of the manifest (or import a file fetched by hand with --from), verify it "
        "and store it converted in the cache; prints the path of its model.safetensors.",
    )
    p.add_argument("name", help="model name or alias (see `ifc-sdk weights list`)")
    p.add_argument(
        "--force",
        action="store_true",
        help="fetch again even if cached (a good copy is kept if the new download fails)",
    )
    p.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        type=Path,
        help="use this local checkpoint (.pth or .safetensors) instead of downloading",
    )
    p.add_argument(
        "--trusted",
        action="store_true",
        help="with --from: allow a full (code-executing) unpickle of that file, only if you trust its origin",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_download)

    p = sub.add_parser("verify", help="re-check a cached model's hashes and architecture")
    p.add_argument("name", help="model name or alias")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("convert", help="convert a reference .pth into this SDK's safetensors folder")
    _convert_arguments(p)

    p = subparsers.add_parser(
        "convert",
        help="convert a reference .pth into this SDK's safetensors folder (= weights convert)",
        description="Convert a reference (detectron2) IFC checkpoint into a folder with model.safetensors and "
        "config.json: the Hugging Face Hub layout, ready for `hf upload OWNER/REPO OUT .`.",
    )
    _convert_arguments(p)


def _convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pth", type=Path, metavar="PTH", help="reference checkpoint (.pth)")
    p.add_argument(
        "out",
        type=Path,
        metavar="OUT",
        help="output folder (created if needed); only model.safetensors and config.json are written in it",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model.safetensors/config.json already in OUT (other files are never touched)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--preset",
        choices=("r50", "r101"),
        help="input convention of the weights (default: from the depth found in them)",
    )
    group.add_argument(
        "--name",
        help="take architecture, categories and input convention from this manifest "
        "model and require the weights to match it exactly",
    )
    p.add_argument(
        "--trusted",
        action="store_true",
        help="allow a full (code-executing) unpickle: only for files whose origin you trust",
    )
    p.set_defaults(func=run_convert)


def run_list(args: argparse.Namespace) -> int:
    from ifc_sdk import hub
    from ifc_sdk.weights import cache_root, list_models

    models = list_models()
    if args.json:
        rows = [
            {
                "name": m.name,
                "aliases": list(m.aliases),
                "preset": m.preset,
                "num_classes": m.num_classes,
                "sources": list(m.sources),
                "status": m.status,
                "cached": m.cached,
                "cache_path": str(m.cache_path),
                "description": m.description,
            }
            for m in models
        ]
        print(json.dumps(rows, indent=2))
        return 0
    offline = hub.offline_reason()
    print(
        f"cache: {cache_root()}  (set IFC_SDK_CACHE to move it)"
        + (f"; downloads disabled ({offline})" if offline else "")
    )
    header = ("NAME", "ALIASES", "PRESET", "CLASSES", "SOURCES", "STATUS")
    rows = [
        (
            m.name,
            ", ".join(m.aliases) or "-",
            m.preset,
            str(m.num_classes),
            ", ".join(m.sources) or "none",
            m.status,
        )
        for m in models
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def run_download(args: argparse.Namespace) -> int:
    from ifc_sdk.weights import fetch

    path = fetch(
        args.name, force=args.force, progress=not args.quiet, from_file=args.from_file, trusted=args.trusted
    )
    print(path)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ifc_sdk.weights import verify

    report = verify(args.name)
    print(f"ok: {report['model']}: {report['path']}")
    print(f"  sha256 {report['sha256']} (matches the recorded hash; keys and shapes match the architecture)")
    if report["original"]:
        original = report["original"]
        print(
            f"  converted from {original['filename']} sha256 {original['sha256']}, verified by "
            f"{original['verified_by']}"
        )
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ifc_sdk.checkpoint import (
        CONFIG_NAME,
        WEIGHTS_NAME,
        check_output_folder,
        convert_checkpoint,
        convert_reference_state_dict,
        read_pth,
        save_pretrained,
    )
    from ifc_sdk.weights import build_checked, get_model_entry
    from ifc_sdk.weights.cache import sha256_file

    if args.name:
        entry = get_model_entry(args.name)
        check_output_folder(args.out, overwrite=args.overwrite)  # before the conversion: fail fast
        state = convert_reference_state_dict(read_pth(args.pth, trusted=args.trusted))
        out = save_pretrained(build_checked(entry, state, args.pth), args.out, overwrite=args.overwrite)
    else:
        out = convert_checkpoint(
            args.pth, args.out, preset=args.preset, trusted=args.trusted, overwrite=args.overwrite
        )
    print(out)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        print(f"  {name}  sha256 {sha256_file(out / name)}")
    print(f"publish with: hf upload OWNER/REPO {out} .   (then load with hf://OWNER/REPO)")
    return 0
