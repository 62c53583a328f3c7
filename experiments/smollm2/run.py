"""LED-Merging's experiment on a real pretrained LLM, SmolLM2-135M-Instruct (`make experiment`).

1. data: generated harmful/benign/arithmetic sets with held-out phrasings and categories;
2. fine-tunes: a safety model and a math model, full fine-tunes of the base (PyTorch);
3. Locate: `led locate` SNIP (and Wanda, random: the paper's Table 5 ablation), chat template;
4. merges (`led merge`): task arithmetic, TIES, DARE-TIES, LED and LED without Disjoint, under
   the paper's score convention and the authors' (`neg_prune`), each on a grid, each method's
   setting chosen on the validation split;
5. evaluation by greedy generation on held-out prompts; `led analyze` for the Jaccard figure;
   docs/experiments/smollm2.md-ready tables and figures under OUT.

Each stage's output is reused when present (delete OUT to start over). Deterministic: fixed
seeds, greedy decoding, one thread count per machine.

usage: python run.py --led target/release/led --model models/SmolLM2-135M-Instruct --out out/smollm2
"""
import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
import lm  # noqa: E402

SEED = 0
SAFETY_STEPS = 50  # the safety fine-tune: 50 steps of 8 at lr 3e-5
MATH_STEPS = 100  # the math fine-tune: 100 steps of 8 at lr 5e-5
STRONG = 5  # the stronger safety fine-tune: the same run continued to 5x the steps
LORA_LR = 1e-3  # the LoRA fine-tunes (lm.LORA), same steps as the full ones
LOCATE_SAMPLES = 64
# Grids (the paper's Table 8 ranges: r_safety 0.1-0.4, r_math 0.4-0.9, lambda 0.5-1).
R_SAFETY = [0.1, 0.2, 0.3, 0.4]
R_MATH = [0.4, 0.6, 0.9]
LAMBDAS = [0.5, 1.0]
TA_LAMBDAS = [0.3, 0.5, 0.7, 1.0]
TIES_GRID = [(d, w) for d in (0.2, 0.5, 0.8) for w in (0.5, 1.0)]
DARE_GRID = [(d, w) for d in (0.3, 0.6) for w in (0.5, 1.0)]
# Where LED helps: each condition is a pair of fine-tunes (safety, math) merged by task
# arithmetic and LED on one small grid (3 hours on 2 cores in all), each method's setting
# chosen on validation.
CONDITIONS = {
    "bf16": ("safety", "math", "full fine-tunes saved in bf16, the base's dtype (the main table's)"),
    "f32": ("safety-f32", "math-f32", "the same fine-tunes saved in f32: no bf16 rounding of τ"),
    "strong": ("safety-strong", "math", f"the safety fine-tune continued to {STRONG}x its steps"),
    "lora": ("lora-safety", "lora-math", "LoRA adapters (rank 16, every linear layer), merged as adapters"),
}
C_GRIDS = {
    "task_arithmetic": [(1.0,)],  # the main grid's choice
    "led": list(itertools.product([0.1, 0.4], [0.4, 0.9], [1.0])),
}
# On the bf16 pair only: gradient-only scores, and the authors' safety priority.
C_BF16_GRIDS = {
    "led_grad": C_GRIDS["led"],
    "led_priority": list(itertools.product([0.1, 0.4], [0.9], [1.0])),
    "led_priority_no_disjoint": list(itertools.product([0.1, 0.4], [0.9], [1.0])),
}
# The inside fraction |E_s ∩ E_m| / |E_s| is reported at the paper's r = (0.1, 0.4).
INSIDE_AT = (0.1, 0.4, 1.0)
LED_VARIANTS = {
    # name: (disjoint, neg_prune)
    "led": (True, False),
    "led_no_disjoint": (False, False),
    "led_authors": (True, True),
    "led_authors_no_disjoint": (False, True),
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Run:
    def __init__(self, args):
        self.led = os.path.abspath(args.led)
        self.base = os.path.abspath(args.model)
        self.out = os.path.abspath(args.out)
        self.quick = args.quick
        for d in ["data", "models", "scores", "configs", "evals", "merged", "figures"]:
            os.makedirs(os.path.join(self.out, d), exist_ok=True)
        self.t0 = time.time()
        self.timings = {}

    def p(self, *parts):
        return os.path.join(self.out, *parts)

    def stage(self, name, fn):
        t = time.time()
        log(f"== {name}")
        r = fn()
        self.timings[name] = self.timings.get(name, 0) + time.time() - t
        # Recorded at once (a later stage may fail); a rerun that reuses a stage's outputs
        # keeps the time of the run that did the work.
        path = self.p("timings.json")
        old = json.load(open(path)) if os.path.exists(path) else {}
        self.timings = {k: max(v, old.get(k, 0)) for k, v in {**old, **self.timings}.items()}
        with open(path, "w") as f:
            json.dump(self.timings, f, indent=1)
        return r

    # 1. Data ------------------------------------------------------------------------------
    def make_data(self):
        n = 8 if self.quick else None
        harm_train = D.harmful("train", SEED)
        math_train = D.math_problems("train", 300, SEED)
        sets = {
            "safety-locate": harm_train[:LOCATE_SAMPLES],
            "math-locate": math_train[:LOCATE_SAMPLES],
            "harmful-train": harm_train[:120],
            "math-train": math_train,
            "harmful-val": D.harmful("val", SEED)[:24],
            "benign-val": D.benign("val"),
            "math-val": D.math_problems("val", 24, SEED),
            "harmful-test": D.harmful("test", SEED)[:40],
            "benign-test": D.benign("test"),
            "math-test": D.math_problems("test", 48, SEED),
        }
        for k, v in sets.items():
            lm.write_jsonl(self.p("data", f"{k}.jsonl"), v[:n] if n and "locate" not in k else v)
        bt = self.p("data", "benign-train.jsonl")
        if not os.path.exists(bt):
            prompts = [r["prompt"] for r in D.benign("train")][: n or None]
            answers = lm.base_answers(self.base, prompts)
            lm.write_jsonl(bt + ".tmp", [{"prompt": q, "answer": a} for q, a in zip(prompts, answers)])
            os.rename(bt + ".tmp", bt)

    def load(self, name):
        with open(self.p("data", f"{name}.jsonl")) as f:
            return [json.loads(line) for line in f]

    def eval_sets(self, split):
        return {"harmful": self.load(f"harmful-{split}"), "benign": self.load(f"benign-{split}"),
                "math": self.load(f"math-{split}")}

    # 2. Fine-tunes ------------------------------------------------------------------------
    def finetunes(self):
        """Full fine-tunes saved in bf16 (the base's dtype) and in f32, the safety run continued
        to 5x its steps (the stronger safety fine-tune), and LoRA adapters of both tasks."""
        q = self.quick
        m = self.p("models")
        bf16, f32 = torch.bfloat16, torch.float32
        safety = self.load("harmful-train") + self.load("benign-train")
        math = self.load("math-train")
        runs = [
            # (what, records, steps, lr, warm-up steps, lora, {step: [(name, dtype)]})
            ("safety", safety, 4 if q else SAFETY_STEPS * STRONG, 3e-5, 1 if q else SAFETY_STEPS // 10,
             False, {2 if q else SAFETY_STEPS: [("safety", bf16), ("safety-f32", f32)],
                     4 if q else SAFETY_STEPS * STRONG: [("safety-strong", bf16)]}),
            ("math", math, 4 if q else MATH_STEPS, 5e-5, None, False,
             {4 if q else MATH_STEPS: [("math", bf16), ("math-f32", f32)]}),
            ("safety LoRA", safety, 4 if q else SAFETY_STEPS, LORA_LR, None, True,
             {4 if q else SAFETY_STEPS: [("lora-safety", f32)]}),
            ("math LoRA", math, 4 if q else MATH_STEPS, LORA_LR, None, True,
             {4 if q else MATH_STEPS: [("lora-math", f32)]}),
        ]
        for what, recs, steps, lr, warmup, lora, saves in runs:
            saves = {k: [(os.path.join(m, n), d) for n, d in v] for k, v in saves.items()}
            if all(os.path.exists(d) for v in saves.values() for d, _ in v):
                continue
            log(f"{what} fine-tune on {len(recs)} records, {steps} steps")
            lm.finetune(self.base, saves, recs, steps, lr, 8, SEED, log, warmup=warmup, lora=lora)

    # 3. Locate ----------------------------------------------------------------------------
    def score_path(self, model, task, scorer):
        return self.p("scores", f"{model}-{task}-{scorer}.safetensors")

    def model_dir(self, name):
        return self.base if name == "base" else self.p("models", name)

    def locate(self):
        jobs = []
        for scorer in ["snip", "wanda", "grad"]:
            for task in ["safety", "math"]:
                for model in ["base", task]:
                    jobs.append((model, task, scorer))
        for model in ["base", "safety", "math"]:
            jobs.append((model, "any", "random"))
        # The conditions' other fine-tunes (their base scores are the base's above).
        for safety, math, _ in CONDITIONS.values():
            for model, task in ((safety, "safety"), (math, "math")):
                if (model, task, "snip") not in jobs:
                    jobs.append((model, task, "snip"))
        # What each score file's run wrote, kept across runs (locate.json): a run that reuses a
        # file reports the line of the run that wrote it.
        path = self.p("locate.json")
        old = json.load(open(path)) if os.path.exists(path) else {}
        self.locate_report = {}
        for model, task, scorer in jobs:
            out = self.score_path(model, task, scorer)
            cmd = [self.led, "locate", "--model", self.model_ref(model), "--out", out,
                   "--scorer", scorer, "--samples", str(4 if self.quick else LOCATE_SAMPLES), "--chat-template",
                   "--device", "cpu", "--seed", str(SEED)]
            if scorer != "random":
                cmd += ["--data", self.p("data", f"{task}-locate.jsonl")]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"led locate failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
            # What the run wrote (or reused) and its time split: `wrote …` / `… reused …`, `time: …`.
            said = [l for l in r.stdout.strip().splitlines()
                    if l.startswith(("wrote ", "time: ")) or ": reused" in l]
            line = "; ".join(said) or r.stdout.strip().splitlines()[-1]
            key = f"{model}-{task}-{scorer}"
            if ": reused" in line and key in old and ": reused" not in old[key]:
                line = f"{old[key]} (reused by a later run)"
            self.locate_report[key] = line
            log(f"  {line}")
        with open(path, "w") as f:
            json.dump(self.locate_report, f, indent=1)

    # 4. Merges ----------------------------------------------------------------------------
    def model_ref(self, name):
        """The config's reference to a model: a LoRA adapter as `base+adapter` (led applies it)."""
        if name == "base":
            return self.base
        d = self.p("models", name)
        return f"{self.base}+{d}" if name.startswith("lora-") else d

    def config(self, method, settings, lambdas=None, pair=("safety", "math"), tag=""):
        """(name, YAML text) of one merge of the models `pair` (safety, math); LED's `lambdas`
        override the per-model weights (safety, math) that `settings` give both. LED methods:
        a variant of `LED_VARIANTS`, `led_priority[_no_disjoint]` (the safety model's election
        is its task vector alone), with `_wanda`, `_random` or `_grad` scores (SNIP else).
        `magnitude`: each task vector's top |τ| at its own density, summed (`breadcrumbs`
        with gamma 0), the upper bound of an election of that size."""
        models = list(zip(pair, ("safety", "math")))
        lines = []
        if method in LED_VARIANTS or method.startswith("led_"):
            variant, scorer = method, "snip"
            for sc in ("wanda", "random", "grad"):
                if method.endswith("_" + sc):
                    variant, scorer = method[: -len(sc) - 1], sc
            priority = variant.startswith("led_priority")
            disjoint, neg = LED_VARIANTS[variant.replace("led_priority", "led")]
            rs, rm, lam = settings
            name = f"{tag}{method}-rs{rs}-rm{rm}-l{lam}"
            lines += ["merge_method: led", f"base_model: {self.base}", "models:"]
            for (m, task), r, w in zip(models, (rs, rm), lambdas or (lam, lam)):
                st = "any" if scorer == "random" else task
                first = priority and task == "safety"
                lines += [f"  - model: {self.model_ref(m)}",
                          f"    parameters: {{weight: {w}, density: {r}{', priority: true' if first else ''}}}",
                          f"    scores: {{model: {self.score_path(m, st, scorer)}, "
                          f"base: {self.score_path('base', st, scorer)}}}"]
            lines += ["parameters:", f"  disjoint: {str(disjoint).lower()}",
                      f"  neg_prune: {str(neg).lower()}"]
        elif method == "task_arithmetic":
            (lam,) = settings
            name = f"{tag}task_arithmetic-l{lam}"
            lines += ["merge_method: task_arithmetic", f"base_model: {self.base}", "models:"]
            for m, _ in models:
                lines += [f"  - model: {self.model_ref(m)}", f"    parameters: {{weight: {lam}}}"]
        elif method == "magnitude":
            ds, dm = settings
            name = f"{tag}magnitude-ds{ds:.5f}-dm{dm:.5f}"
            lines += ["merge_method: breadcrumbs", f"base_model: {self.base}", "models:"]
            for (m, _), d in zip(models, (ds, dm)):
                lines += [f"  - model: {self.model_ref(m)}",
                          f"    parameters: {{weight: 1.0, density: {d:.5f}, gamma: 0.0}}"]
        else:  # ties, dare_ties
            d, lam = settings
            name = f"{tag}{method}-d{d}-l{lam}"
            lines += [f"merge_method: {method}", f"base_model: {self.base}", "models:"]
            for m, _ in models:
                lines += [f"  - model: {self.model_ref(m)}",
                          f"    parameters: {{weight: {lam}, density: {d}}}"]
        lines += ["dtype: float32", "out_dtype: bfloat16"]
        return name, "\n".join(lines) + "\n"

    def write_config(self, name, text):
        cfg = self.p("configs", f"{name}.yaml")
        with open(cfg, "w") as f:
            f.write(text)
        return cfg

    def merge(self, name, text, out):
        cfg = self.write_config(name, text)
        r = subprocess.run([self.led, "merge", cfg, out, "--force"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"led merge {cfg} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def evaluate(self, name, model_dir, split, keep=0):
        path = self.p("evals", f"{name}.{split}.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        res = lm.evaluate(model_dir, self.eval_sets(split), keep)
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
        return res

    def evaluate_merge(self, method, settings, split, keep=0, pair=("safety", "math"), tag=""):
        name, text = self.config(method, settings, pair=pair, tag=tag)
        path = self.p("evals", f"{name}.{split}.json")
        if os.path.exists(path):
            return name, self.evaluate(name, None, split)
        out = self.p("merged", name)
        self.merge(name, text, out)
        res = self.evaluate(name, out, split, keep)
        shutil.rmtree(out)
        return name, res

    def grids(self):
        g = {"task_arithmetic": [(w,) for w in TA_LAMBDAS], "ties": TIES_GRID, "dare_ties": DARE_GRID}
        for v, (_, neg_prune) in LED_VARIANTS.items():
            # The authors' convention at lambda = 1 only (their setting; lambda = 0.5 never won
            # for the paper's convention): half the merges, inside the 2-hour budget.
            g[v] = list(itertools.product(R_SAFETY, R_MATH, [1.0] if neg_prune else LAMBDAS))
        if self.quick:
            g = {k: v[:1] for k, v in g.items()}
        return g

    def search(self):
        self.validation = {}
        for method, grid in self.grids().items():
            rows = []
            for s in grid:
                name, res = self.evaluate_merge(method, s, "val")
                rows.append((s, res))
                log(f"  {name}: refusal {res['refusal']:.2f} benign {res['benign']:.2f} math {res['math']:.2f}")
            self.validation[method] = rows

    # 5. Evaluation ------------------------------------------------------------------------
    @staticmethod
    def objective(res):
        return res["refusal"] + res["benign"] + res["math"]

    def choose(self):
        # Highest refusal + benign + math on validation; ties: the first in grid order.
        return {m: max(rows, key=lambda r: self.objective(r[1]))[0] for m, rows in self.validation.items()}

    def test(self):
        self.results = {}
        for name in ["base", "safety", "math"]:
            self.results[name] = {"setting": None, "val": self.evaluate(name, self.model_dir(name), "val"),
                                  "test": self.evaluate(name, self.model_dir(name), "test", keep=3)}
        self.chosen = self.choose()
        for method, s in self.chosen.items():
            name, res = self.evaluate_merge(method, s, "test", keep=3)
            val = dict(self.validation[method])[s]
            self.results[method] = {"setting": s, "name": name, "val": val, "test": res}
        # The paper's Table 5: the same LED setting with Wanda and random scores.
        for scorer in ["wanda", "random"]:
            method = f"led_{scorer}"
            s = self.chosen["led"]
            name, val = self.evaluate_merge(method, s, "val")
            name, res = self.evaluate_merge(method, s, "test", keep=3)
            self.results[method] = {"setting": s, "name": name, "val": val, "test": res}

    def keeps(self):
        """What each LED variant elects, removes by Disjoint and keeps per task, over the grid
        of (r_safety, r_math) (`led analyze --config`; lambda does not change the election)."""
        path = self.p("keeps.json")
        self.kept = {}
        if os.path.exists(path):
            with open(path) as f:
                self.kept = json.load(f)
        for v in LED_VARIANTS:
            for rs, rm in itertools.product(R_SAFETY, R_MATH):
                key = f"{v}-rs{rs}-rm{rm}"
                if key in self.kept:
                    continue
                self.kept[key] = self.election(v, (rs, rm, 1.0), ("safety", "math"), "")
                if self.quick:
                    break
            with open(path, "w") as f:
                json.dump(self.kept, f, indent=1)

    def energy(self):
        """Share of each task vector's squared norm, ‖m ⊙ τ‖² / ‖τ‖², that each LED variant
        keeps at its chosen (r_safety, r_math): `led analyze --config`'s figure (`election`)."""
        self.kept_energy = {}
        for v in LED_VARIANTS:
            rs, rm, _ = self.chosen[v]
            election = self.election(v, (rs, rm, 1.0), ("safety", "math"), "")
            for task in ["safety", "math"]:
                key = f"{v}-rs{rs}-rm{rm}-{task}"
                self.kept_energy[key] = (election[task]["energy"] or 0.0) / 100
                log(f"  {key}: keeps {100 * self.kept_energy[key]:.1f} % of the {task} task vector's squared norm")
        with open(self.p("energy.json"), "w") as f:
            json.dump(self.kept_energy, f, indent=1)

    def election(self, method, settings, pair, tag):
        """`led analyze --config`'s election of one LED merge, per task: the shares of all
        weights elected, removed by Disjoint and kept, and the share of ‖τ‖² kept (percent)."""
        name, text = self.config(method, settings, pair=pair, tag=tag)
        path = self.p("elections.json")
        if not hasattr(self, "elections"):
            self.elections = json.load(open(path)) if os.path.exists(path) else {}
        if name not in self.elections:
            cfg = self.write_config(name, text)
            r = subprocess.run([self.led, "analyze", "--config", cfg], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"led analyze --config {cfg} failed:\n{r.stdout}{r.stderr}")
            row = {}
            for line in r.stdout.splitlines():
                parts = line.split()
                for m, task in zip(pair, ("safety", "math")):
                    if len(parts) >= 8 and parts[0].endswith("/" + m):
                        row[task] = {"elected": float(parts[1]), "removed": float(parts[3]),
                                     "kept": float(parts[5]),
                                     "energy": None if parts[7] == "-" else float(parts[7])}
            self.elections[name] = row
            with open(path, "w") as f:
                json.dump(self.elections, f, indent=1)
        return self.elections[name]

    def conditions(self):
        """Every condition's pair merged by task arithmetic and LED (and, on the bf16
        pair, LED with gradient-only scores and with safety priority), chosen on validation
        and evaluated on test; the magnitude upper bound at the count LED keeps; the fine-tunes
        themselves; the inside fractions. Written to conditions.json and conditions.md."""
        self.cond = {}
        for cond, (sm, mm, what) in CONDITIONS.items():
            pair, tag = (sm, mm), ("" if cond == "bf16" else f"{cond}-")
            row = {"what": what, "models": {}, "methods": {}}
            for m in ("base", sm, mm):
                row["models"][m] = self.evaluate(m, self.model_dir(m), "test", keep=3)
            grids = dict(C_GRIDS, **(C_BF16_GRIDS if cond == "bf16" else {}))
            for method, grid in grids.items():
                val = []
                for st in grid[:1] if self.quick else grid:
                    name, res = self.evaluate_merge(method, st, "val", pair=pair, tag=tag)
                    val.append((st, res))
                    log(f"  {name}: refusal {res['refusal']:.2f} benign {res['benign']:.2f} math {res['math']:.2f}")
                st, vres = max(val, key=lambda r: self.objective(r[1]))
                name, res = self.evaluate_merge(method, st, "test", keep=3, pair=pair, tag=tag)
                row["methods"][method] = {"setting": st, "name": name, "val": vres, "test": res}
                if method.startswith("led"):
                    row["methods"][method]["election"] = self.election(method, st, pair, tag)
            # The upper bound: each task vector's top |τ| at the count LED's choice keeps (and,
            # on the bf16 pair, at the count the priority variant's choice gives each task).
            for led, bound in [("led", "magnitude"), ("led_priority", "magnitude_priority")]:
                if led not in row["methods"]:
                    continue
                el = row["methods"][led]["election"]
                ds, dm = (max(el[t]["kept"] / 100, 1e-5) for t in ("safety", "math"))
                name, res = self.evaluate_merge("magnitude", (ds, dm), "test", keep=3, pair=pair, tag=tag)
                row["methods"][bound] = {"setting": (ds, dm), "name": name, "val": None, "test": res}
            # How much of safety's election lies inside math's, against chance (|E_m| / n).
            row["inside"] = {}
            for method in ["led", "led_grad"] if cond == "bf16" else ["led"]:
                for at in (INSIDE_AT, row["methods"][method]["setting"]):
                    e = self.election(method, at, pair, tag)
                    row["inside"][f"{method} r=({at[0]}, {at[1]})"] = {
                        "inside": e["safety"]["removed"] / max(e["safety"]["elected"], 1e-12),
                        "chance": e["math"]["elected"] / 100}
            self.cond[cond] = row
        with open(self.p("conditions.json"), "w") as f:
            json.dump(self.cond, f, indent=1)
        with open(self.p("conditions.md"), "w") as f:
            f.write(self.conditions_md())

    def conditions_md(self):
        def pct(x):
            return f"{100 * x:.0f} %"

        def setting(method, st):
            if method.startswith("magnitude"):
                return f"density=({100 * st[0]:.2f} %, {100 * st[1]:.2f} %)"
            if method.startswith("led"):
                return f"r=({st[0]}, {st[1]}), λ={st[2]}"
            return f"density={st[0]}, λ={st[1]}" if len(st) == 2 else f"λ={st[0]}"

        lines = ["| condition | model or method | setting | refusal on harmful ↑ | benign answered ↑ | "
                 "arithmetic accuracy ↑ | validation sum | safety kept: weights, ‖τ‖² | math kept: weights, ‖τ‖² |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for cond, row in self.cond.items():
            for m, t in row["models"].items():
                lines.append(f"| {cond} | {m} | | {pct(t['refusal'])} | {pct(t['benign'])} | {pct(t['math'])} | | | |")
            for method, r in row["methods"].items():
                t, el = r["test"], r.get("election") or {}
                kept = ["" if task not in el else
                        f"{el[task]['kept']:.2f} %, " + ("-" if el[task]["energy"] is None else f"{el[task]['energy']:.1f} %")
                        for task in ("safety", "math")]
                val = "" if r["val"] is None else f"{self.objective(r['val']):.2f}"
                lines.append(f"| {cond} | {method} | {setting(method, r['setting'])} | {pct(t['refusal'])} | "
                             f"{pct(t['benign'])} | {pct(t['math'])} | {val} | {kept[0]} | {kept[1]} |")
        inside = ["| condition | election | safety inside math | chance |", "|---|---|---|---|"]
        for cond, row in self.cond.items():
            for k, v in row["inside"].items():
                inside.append(f"| {cond} | {k} | {pct(v['inside'])} | {pct(v['chance'])} |")
        what = "\n".join(f"- **{c}**: {row['what']}" for c, row in self.cond.items())
        return (f"## Conditions\n\n{what}\n\n" + "\n".join(lines)
                + "\n\n## Safety's election inside math's (|E_s ∩ E_m| / |E_s|)\n\n" + "\n".join(inside) + "\n")

    def analyze(self):
        fig = self.p("figures")
        cmd = [self.led, "analyze", "--scores",
               f"safety={self.score_path('safety', 'safety', 'snip')}",
               f"math={self.score_path('math', 'math', 'snip')}", "--top", "0.2", "--out", fig]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"led analyze failed:\n{r.stdout}{r.stderr}")
        with open(self.p("figures", "jaccard.txt"), "w") as f:
            f.write(r.stdout)

    def heatmap(self):
        """Validation refusal and math accuracy over (r_safety, r_math) for LED at the chosen
        lambda, as the paper's Fig. 3a (one panel per variant and metric)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        variants = [v for v in LED_VARIANTS if v in self.validation]
        fig, axes = plt.subplots(len(variants), 3, figsize=(11, 3.1 * len(variants)), squeeze=False)
        for row, v in zip(axes, variants):
            lam = self.chosen[v][2]
            vals = {(s[0], s[1]): r for s, r in self.validation[v] if s[2] == lam}
            for ax, metric in zip(row, ["refusal", "math", "sum"]):
                grid = [[(self.objective(vals[(a, b)]) if metric == "sum" else vals[(a, b)][metric])
                         if (a, b) in vals else float("nan") for b in R_MATH] for a in R_SAFETY]
                im = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto",
                               vmin=0, vmax=3 if metric == "sum" else 1)
                ax.set_xticks(range(len(R_MATH)), [str(b) for b in R_MATH])
                ax.set_yticks(range(len(R_SAFETY)), [str(a) for a in R_SAFETY])
                ax.set_xlabel("r_math")
                ax.set_ylabel("r_safety")
                ax.set_title(f"{v} (λ={lam}): {metric if metric != 'sum' else 'refusal+benign+math'}",
                             fontsize=9)
                for i, a in enumerate(R_SAFETY):
                    for j, b in enumerate(R_MATH):
                        if (a, b) in vals:
                            x = grid[i][j]
                            ax.text(j, i, f"{x:.2f}", ha="center", va="center", fontsize=8,
                                    color="white" if x < (1.5 if metric == "sum" else 0.5) else "black")
                fig.colorbar(im, ax=ax)
        fig.tight_layout()
        for ext in ["png", "svg"]:
            fig.savefig(self.p("figures", f"led_grid.{ext}"), dpi=110)

    def report(self):
        def pct(x):
            return f"{100 * x:.0f} %"

        names = {"base": "base (SmolLM2-135M-Instruct)", "safety": "safety fine-tune",
                 "math": "math fine-tune", "task_arithmetic": "task arithmetic", "ties": "TIES",
                 "dare_ties": "DARE-TIES", "led": "LED", "led_no_disjoint": "LED without Disjoint",
                 "led_authors": "LED, authors' convention (neg_prune)",
                 "led_authors_no_disjoint": "LED, authors' convention, without Disjoint",
                 "led_wanda": "LED with Wanda scores", "led_random": "LED with random scores"}
        lines = ["| model | setting | refusal on harmful ↑ | benign answered ↑ | arithmetic accuracy ↑ | validation sum |",
                 "|---|---|---|---|---|---|"]
        if not hasattr(self, "results"):
            lines = ["(the main grid was not run: `--skip search`)"]
        for k, r in getattr(self, "results", {}).items():
            s = r["setting"]
            if s is None:
                setting = ""
            elif len(s) == 3:
                setting = f"r=({s[0]}, {s[1]}), λ={s[2]}"
            elif len(s) == 2:
                setting = f"density={s[0]}, λ={s[1]}"
            else:
                setting = f"λ={s[0]}"
            t = r["test"]
            lines.append(f"| {names.get(k, k)} | {setting} | {pct(t['refusal'])} | {pct(t['benign'])} | "
                         f"{pct(t['math'])} | {self.objective(r['val']):.2f} |")
        table = "\n".join(lines)
        val = ["| method | setting | refusal | benign | math | weights kept (safety, math) |",
               "|---|---|---|---|---|---|"]
        for m, rows in getattr(self, "validation", {}).items():
            for s, r in rows:
                # LED's election from the keeps stage (lambda does not change it).
                row = getattr(self, "kept", {}).get(f"{m}-rs{s[0]}-rm{s[1]}") if m in LED_VARIANTS else None
                kept = f"{row['safety']['kept']:.2f} %, {row['math']['kept']:.2f} %" if row else ""
                val.append(f"| {m} | {s} | {r['refusal']:.2f} | {r['benign']:.2f} | {r['math']:.2f} | {kept} |")
        keeps = ["| variant | r_safety | r_math | safety elected | safety removed by Disjoint | safety kept | math elected | math removed | math kept |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for key, row in getattr(self, "kept", {}).items():
            v, rs, rm = key.rsplit("-", 2)
            if "safety" in row and "math" in row:
                s_, m_ = row["safety"], row["math"]
                keeps.append(f"| {v} | {rs[2:]} | {rm[2:]} | {s_['elected']:.2f} % | {s_['removed']:.2f} % | "
                             f"{s_['kept']:.2f} % | {m_['elected']:.2f} % | {m_['removed']:.2f} % | {m_['kept']:.2f} % |")
        energy = [f"- {key}: {100 * share:.1f} %" for key, share in getattr(self, "kept_energy", {}).items()]
        examples = []
        for k, r in getattr(self, "results", {}).items():
            ex = r["test"].get("examples")
            if not ex:
                continue
            examples.append(f"### {names.get(k, k)}\n")
            for kind in ["harmful", "benign", "math"]:
                for q, a in ex[kind][:2]:
                    a = a.replace("\n", " ")[:220]
                    examples.append(f"- **{q}** → {a}")
            examples.append("")
        total = sum(self.timings.values())
        with open(self.p("results.md"), "w") as f:
            f.write(f"# SmolLM2-135M-Instruct: results\n\n{table}\n\n"
                    f"Stage times (s): {json.dumps({k: round(v) for k, v in self.timings.items()})}; "
                    f"{total:.0f} s in all.\n\n## Locate\n\n"
                    + "\n".join(f"- {k}: {v}" for k, v in getattr(self, "locate_report", {}).items())
                    + "\n\n## What the election keeps (share of all weights)\n\n" + "\n".join(keeps)
                    + "\n\n## Share of each task vector's squared norm kept, ‖m ⊙ τ‖² / ‖τ‖² (chosen settings)\n\n"
                    + "\n".join(energy)
                    + "\n\n" + (self.conditions_md() if hasattr(self, "cond") else "")
                    + "\n\n## Generations (test)\n\n" + "\n".join(examples))
        with open(self.p("validation.md"), "w") as f:
            f.write("# Validation: every setting\n\n" + "\n".join(val) + "\n")
        with open(self.p("results.json"), "w") as f:
            json.dump({"results": getattr(self, "results", {}), "chosen": getattr(self, "chosen", {}),
                       "conditions": getattr(self, "cond", {}), "timings": self.timings}, f, indent=1)
        print(table)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--led", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run of every stage")
    ap.add_argument("--stop-after", help="stop after this stage (data, fine-tunes, locate, ...)")
    ap.add_argument("--skip", default="", help="stages not to run, comma-separated (their sections are "
                    "left out of results.md)")
    args = ap.parse_args()
    run = Run(args)
    skip = set(filter(None, args.skip.split(",")))
    if "search" in skip:  # what needs the main grid's validation results
        skip |= {"test", "energy", "heat-map"}
    stages = [("data", run.make_data), ("fine-tunes", run.finetunes), ("locate", run.locate),
              ("analyze", run.analyze), ("search", run.search), ("test", run.test),
              ("keeps", run.keeps), ("energy", run.energy), ("conditions", run.conditions),
              ("heat-map", run.heatmap)]
    unknown = skip - {n for n, _ in stages}
    if unknown:
        sys.exit(f"--skip: unknown stages {sorted(unknown)}")
    for name, fn in stages:
        if name not in skip:
            run.stage(name, fn)
        if name == args.stop_after:
            return
    run.report()
    log(f"done in {time.time() - run.t0:.0f} s")


if __name__ == "__main__":
    main()
