"""Speed benchmarks of ifc_sdk's video inference against a reference-style baseline (see README.md).

A package of a repository checkout, not of the installed wheel. Run it as ``python benchmarks/fps.py``,
``python -m benchmarks.fps`` or ``ifc-sdk bench`` (and ``long_video.py`` / ``ifc-sdk bench long-video``).

Modules, one idea each:

* `rows`: the rows of the paper's speed table and the precisions;
* `videos`: the benchmark videos (synthetic or real clips, written once as H.264 mp4);
* `models`: the benchmarked model (real weights, or random weights calibrated to a realistic workload);
* `hooks`: the only module that reaches into ifc_sdk's internals (calibration forward, ablation steps,
  per-stage timers);
* `harness`: one timed run of each side (ifc_sdk, the baseline) with its peak memory;
* `reference_style`: the baseline, the reference's execution strategy;
* `compare`: whether both sides gave the same outputs; mask IoU between precisions;
* `kinds`: what a kind of measurement is (`RowKind`) and the state it is given (`Bench`);
* `table`, `ablation`, `sweep`, `memory`: the kinds of measurement run for each row;
* `environment`: the machine and software versions;
* `reports`: ``results.json``, ``results.md`` and the sweep plot;
* `fps`, `long_video`: the command lines.
"""
