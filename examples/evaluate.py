"""Generate held-out synthetic videos, run the bundled demo model over them and evaluate (YouTube-VIS AP).

python examples/evaluate.py [--videos 20] [--seed 31337] [--work eval_demo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ifc_sdk.data.synthetic import generate_dataset
from ifc_sdk.evaluation import predict_dataset
from ifc_sdk.evaluation.ytvis import evaluate_ytvis, format_table

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--videos", type=int, default=20)
parser.add_argument("--seed", type=int, default=31337, help="generator seed (the demo model never saw 31337)")
parser.add_argument("--work", type=Path, default=Path("eval_demo"))
parser.add_argument("--model", default="shapes-demo")
args = parser.parse_args()

data = args.work / "data"
annotations = data / "annotations.json"
if not annotations.exists():
    annotations = generate_dataset(data, num_videos=args.videos, seed=args.seed)
results = predict_dataset(data, args.work / "results.json", model=args.model)
print(format_table(evaluate_ytvis(annotations, results)))
