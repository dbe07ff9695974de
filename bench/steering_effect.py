"""Steering-effect score on topic features of a MiniLM SAE (docs/benchmarks.md, "Steering").

    python bench/steering_effect.py --atlas ATLAS --run RUN [--features 20] [--text "..."]

Topic features: those whose top pool documents (where they fire most) mostly come from one standard-
library module (at least 7 of their 10, by the module in the document's source). For each, the text is
steered at α = 0.25 … 4 (units of the layer's median activation norm) and the effect (the target
documents' rise in percentile rank) is compared with 32 random directions of the same norm.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import numpy as np

from latentatlas.atlas import Atlas
from latentatlas.labs.sae.explore import SAEExplorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--text", default="Open the file and read its lines.")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    x = SAEExplorer(Atlas(args.atlas).run(args.run))
    index = x.corpus_index()
    module = [s.split(":")[0].split(".")[0] for s in index["source"]]
    picks = []
    for f in range(x.d_sae):
        acts, docs = index["top_acts"][f], index["top_docs"][f]
        keep = acts > 0.25 * acts.max(initial=0.0)
        docs = docs[keep][:10]
        if len(docs) < 10:
            continue
        top, count = collections.Counter(module[d] for d in docs).most_common(1)[0]
        if count >= 7:
            picks.append((count, f, top))
    picks.sort(reverse=True)
    rng = np.random.default_rng(0)
    chosen = [picks[i] for i in sorted(rng.choice(len(picks), size=min(args.features, len(picks)), replace=False))]
    rows = []
    t0 = time.perf_counter()
    for count, f, top in chosen:
        res = x.steer(args.text, alpha=1.0, feature=f)
        for d in res["dose"]:
            rows.append({"feature": f, "module": top, "share": count / 10, **{k: d.get(k) for k in
                         ("alpha", "cos", "control_cos", "effect", "control_mean", "control_low", "control_high", "p")}})
    seconds = time.perf_counter() - t0
    print(f"{len(picks)} topic features of {x.d_sae}; {len(chosen)} steered in {seconds:.1f} s ({seconds / max(1, len(chosen)):.2f} s each)")
    print("alpha  cos   rand_cos  effect(pp)  control mean [95%] (pp)  beats control  p<0.05")
    for a in sorted({r["alpha"] for r in rows}):
        rs = [r for r in rows if r["alpha"] == a]
        eff = np.array([r["effect"] for r in rs])
        beats = sum(r["effect"] > r["control_high"] for r in rs)
        sig = sum(r["p"] < 0.05 for r in rs)
        print(f"{a:5.2f}  {np.median([r['cos'] for r in rs]):.3f}  {np.median([r['control_cos'] for r in rs]):.3f}     "
              f"{100 * np.median(eff):6.1f}      {100 * np.median([r['control_mean'] for r in rs]):5.1f} "
              f"[{100 * np.median([r['control_low'] for r in rs]):5.1f}, {100 * np.median([r['control_high'] for r in rs]):5.1f}]"
              f"        {beats}/{len(rs)}        {sig}/{len(rs)}")
    for r in rows:
        if r["alpha"] == 1.0:
            print(f"  feature {r['feature']:5d} ({r['module']}, {r['share']:.0%} of top docs): effect {100 * r['effect']:6.1f} pp, "
                  f"control {100 * r['control_mean']:5.1f} [{100 * r['control_low']:5.1f}, {100 * r['control_high']:5.1f}], p {r['p']:.3f}, cos {r['cos']:.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
