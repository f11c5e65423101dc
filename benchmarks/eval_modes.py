"""Score vs generate evaluation on the offline default: agreement, accuracy and seconds per pass, side by
side.

Fine-tunes the default's student on its seed set once (the default run's iteration 0), then evaluates
the test examples (`data.test_limit` of them) and the seed set in both modes with the same weights: the
first pass of each mode (compilation included) and the median of --repeats more. The base model
(no fine-tune) is measured the same way, as a second, weaker student.

  python benchmarks/eval_modes.py [--repeats 3] [--limit 200] [--no-finetune] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODES = ("generate", "score")


def timed_passes(
    predictor, task, examples, config, mode: str, repeats: int
) -> tuple[list[dict], float, float]:
    """(rows, first pass seconds, median seconds of the next `repeats` passes)."""
    times, rows = [], None
    for _ in range(1 + repeats):
        start = time.perf_counter()
        rows = predictor.evaluate(
            task, examples, config.data.max_length, config.eval.max_new_tokens, mode=mode
        )
        times.append(time.perf_counter() - start)
    return rows, times[0], statistics.median(times[1:]) if repeats else times[0]


def compare(name: str, predictor, task, examples, config, repeats: int) -> dict:
    out = {}
    for mode in MODES:
        rows, first, median = timed_passes(predictor, task, examples, config, mode, repeats)
        out[mode] = {
            "rows": rows,
            "accuracy": sum(r["correct"] for r in rows) / len(rows),
            "first_s": first,
            "median_s": median,
            "unparsed": sum(r["prediction"] is None for r in rows),
        }
    gen, score = out["generate"]["rows"], out["score"]["rows"]
    agree = sum(g["prediction"] == s["prediction"] for g, s in zip(gen, score)) / len(gen)
    parsed = [(g, s) for g, s in zip(gen, score) if g["prediction"] is not None]
    agree_parsed = sum(g["prediction"] == s["prediction"] for g, s in parsed) / max(1, len(parsed))
    summary = {
        "examples": len(examples),
        "agreement": agree,
        "agreement_where_generate_parsed": agree_parsed,
        **{mode: {k: v for k, v in out[mode].items() if k != "rows"} for mode in MODES},
    }
    print(f"\n{name}: {len(examples)} examples", flush=True)
    print(f"{'mode':>9} {'accuracy':>9} {'unparsed':>9} {'first pass':>11} {'median pass':>12}")
    for mode in MODES:
        m = summary[mode]
        print(
            f"{mode:>9} {m['accuracy']:>9.1%} {m['unparsed']:>9} {m['first_s']:>10.2f}s "
            f"{m['median_s']:>11.2f}s"
        )
    print(
        f"agreement {agree:.1%} ({agree_parsed:.1%} where generate's answer parsed); score pass "
        f"{out['generate']['median_s'] / out['score']['median_s']:.2f}x faster",
        flush=True,
    )
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--limit", type=int, default=0, help="test examples (default: the config's data.test_limit)"
    )
    ap.add_argument("--no-finetune", action="store_true", help="the base model only")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    from configs.default import get_config
    from llm2llm_jax.data.sources import seed_and_test_sets
    from llm2llm_jax.run.controller import Llm2llmRun
    from llm2llm_jax.student.predict import Predictor

    config = get_config()
    config.progress = False
    with tempfile.TemporaryDirectory() as tmp:
        config.workdir = tmp
        run = Llm2llmRun(config)
        seed_set, test = seed_and_test_sets(config.data, run.task, config.seed)[:2]
        test = test[: args.limit or config.data.test_limit]
        cfg, base_params, tok = run.student.model()
        results = {}
        base = Predictor(cfg, base_params, tok, config.eval.batch_size, mesh=run.student.mesh())
        results["base_test"] = compare("base model, test set", base, run.task, test, config, args.repeats)
        if args.no_finetune:
            return finish(results, args.json)
        start = time.perf_counter()
        params, _ = run.train(0, seed_set)
        print(
            f"\nfine-tuned on {len(seed_set)} seed examples in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        tuned = Predictor(cfg, params, tok, config.eval.batch_size, mesh=run.student.mesh())
        results["finetuned_test"] = compare(
            "fine-tuned (iteration 0), test set", tuned, run.task, test, config, args.repeats
        )
        results["finetuned_seed"] = compare(
            "fine-tuned (iteration 0), seed set", tuned, run.task, seed_set, config, args.repeats
        )
    return finish(results, args.json)


def finish(results: dict, json_path: str) -> int:
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
