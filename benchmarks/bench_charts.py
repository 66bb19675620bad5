"""The four evaluation charts of one stage drawn over their kept layers (logreg.charts, what a run does) against each
drawn in full on a new figure (what it did before), in one process, CPU time (`time.process_time`), interleaved
rounds, medians.

    python benchmarks/bench_charts.py [--rows 200] [--stages 20] [--rounds 5]

Each round draws `--stages` stages (the four charts of a stage's probabilities and labels, rows drawn afresh for each
stage, thresholds 0.5 and a tuned one in turn) both ways and times each. Only the drawing into RGB arrays is timed;
TensorBoard's PNG encoding of each image (about 20 ms) is the same both ways. Prints seconds per stage each way and
their ratio (kept / new).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="rows of a stage (the tiny test tables' 20 to 40)")
    parser.add_argument("--stages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import torch

    from logreg import charts

    generator = torch.Generator().manual_seed(0)

    def stage(n: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        probs = torch.rand(args.rows, generator=generator)
        return probs, (torch.rand(args.rows, generator=generator) < probs).float(), (0.5, 0.37)[n % 2]

    def kept(rows: list) -> None:
        for probs, labels, threshold in rows:
            charts.images(probs, labels, threshold)

    def new(rows: list) -> None:
        for probs, labels, threshold in rows:
            for kind in charts.KINDS:
                charts.Chart(charts.FILLS[kind]).image(probs, labels, threshold, fresh=True)

    new([stage(0)])  # imports and font caches, outside the rounds
    times: dict[str, list[float]] = {"kept": [], "new": []}
    for _ in range(args.rounds):
        rows = [stage(n) for n in range(args.stages)]
        for name, draw in (("kept", kept), ("new", new)):
            start = time.process_time()
            draw(rows)
            times[name].append((time.process_time() - start) / args.stages)
    kept_s, new_s = median(times["kept"]), median(times["new"])
    stage_rows = f"per stage (4 charts, {args.rows} rows)"
    print(f"{stage_rows}: kept layers {kept_s * 1000:.1f} ms, new figures {new_s * 1000:.1f} ms")
    print(f"ratio kept / new: {kept_s / new_s:.3f}x")


if __name__ == "__main__":
    main()
