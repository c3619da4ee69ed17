"""scripts/benchmarks/peak_lr_grid.py: the plan it would run and the summary it writes, on a small
synthetic layout in the formats `ftrecipes sweep` writes (trials.csv, sweep.json, each trial's
trainer_state.json). Nothing trains."""

import csv
import importlib.util
import json
import sys

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def grid():
    spec = importlib.util.spec_from_file_location("peak_lr_grid", REPO / "scripts" / "benchmarks" / "peak_lr_grid.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["peak_lr_grid"] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("peak_lr_grid", None)


def _write_sweep(root, block, seed, points, default_lr=5e-5, metric="eval_accuracy", total_steps=150, name=None):
    """One sweep folder as `ftrecipes sweep --seeds 1 --seed SEED` leaves it. ``points``: (peak, final
    metric, [(step, metric), ...] or None for a point still running)."""
    folder = root / block / (name or f"seed-{seed}")
    folder.mkdir(parents=True)
    rows = []
    for i, (peak, final, curve) in enumerate(points):
        trial_dir = folder / "trials" / f"lr-{i:03d}"
        run = trial_dir / f"seed-{seed}"
        run.mkdir(parents=True)
        status = "complete" if curve is not None else "running"
        if curve is not None:
            history = [{"loss": 1.0, "grad_norm": 0.5, "learning_rate": peak, "epoch": 0.1, "step": 5}]
            history += [{metric: v, "eval_loss": 0.9, "epoch": s / total_steps * 2, "step": s} for s, v in curve]
            history.append({"train_runtime": 100.0, "epoch": 2.0, "step": total_steps})
            (run / "trainer_state.json").write_text(json.dumps({"global_step": total_steps, "log_history": history}))
            (run / "eval_results.json").write_text(json.dumps({metric: final}))
        # trial output_dir as the sweep records it: relative to where the sweep ran
        rows.append(
            [
                "lr",
                i,
                f"{peak:.6g}",
                "5%",
                final if curve is not None else "",
                0.0 if curve is not None else "",
                f"{final:.4f}" if curve is not None else "",
                "120.0" if curve is not None else "0.0",
                status,
                f"runs/grid/{block}/seed-{seed}/trials/lr-{i:03d}",
            ]
        )
    with open(folder / "trials.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "stage",
                "trial",
                "learning_rate",
                "warmup",
                f"{metric}_mean",
                f"{metric}_std",
                "values",
                "seconds",
                "status",
                "output_dir",
            ]
        )
        w.writerows(rows)
    (folder / "sweep.json").write_text(
        json.dumps(
            {"study": "sweep-cls", "metric": metric, "seeds": [seed], "recipe_default_lr": default_lr, "trials": []}
        )
    )


def test_dry_run_prints_one_sweep_per_point_in_priority_order(grid, capsys):
    assert (
        grid.main(["--dry-run", "--only", "tweets-minilm,bbc-minilm,tweets-minilm-hf", "--output_root", "runs/g"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 * (6 + 5) + 3  # 2 grids x 3 seeds, then the HF-defaults block x 3 seeds
    assert lines[0] == (
        "ftrecipes sweep --card tweets-minilm --lr 2e-4 --seeds 1 --seed 42 --pruner none "
        "--cpu_threads 1 --eval_strategy steps --eval_steps 0.1 --output_dir runs/g/tweets-minilm/seed-42-lr-2e-4"
    )
    first_seed = [line.split("--output_dir runs/g/")[1] for line in lines[:11]]
    # nearest the earlier sweeps' best first (tweets 2e-4, BBC 1e-4), blocks interleaved, tails last
    assert first_seed[:5] == [
        "tweets-minilm/seed-42-lr-2e-4",
        "bbc-minilm/seed-42-lr-1e-4",
        "tweets-minilm/seed-42-lr-1e-4",
        "bbc-minilm/seed-42-lr-2e-4",
        "tweets-minilm/seed-42-lr-5e-4",
    ]
    assert first_seed[-1] == "tweets-minilm/seed-42-lr-1e-5" and "seed-43" in lines[11]
    hf = lines[-3]
    assert (
        "--lr 5e-5 " in hf
        and "--warmup 0 " in hf
        and "--lr_scheduler_type linear --min_lr_rate 0 --weight_decay 0" in hf
    )
    assert all("--eval_strategy steps --eval_steps 0.1" in line for line in lines)


def test_a_point_done_in_any_layout_is_skipped(grid, tmp_path):
    root = tmp_path / "runs"
    _write_sweep(
        root, "bbc-minilm", 42, [(1e-5, 0.7, [(12, 0.3), (120, 0.7)]), (2e-5, 0.0, None)]
    )  # a whole-grid sweep
    _write_sweep(root, "bbc-minilm", 43, [(1e-4, 0.99, [(120, 0.99)])], name="seed-43-lr-1e-4")  # one point per sweep
    units = {
        (u.seed, u.peak): u
        for u in grid.units_in_order([b for b in grid.plan_blocks(root) if b.name == "bbc-minilm"], root)
    }
    assert grid.unit_done(units[(42, "1e-5")], root) and grid.unit_done(units[(43, "1e-4")], root)
    assert not grid.unit_done(units[(42, "2e-5")], root)  # still running there
    # the worker was stopped after the run's final evaluation but before the sweep recorded it
    (root / "bbc-minilm" / "seed-42" / "trials" / "lr-001" / "seed-42" / "eval_results.json").write_text(
        json.dumps({"eval_accuracy": 0.9})
    )
    assert grid.unit_done(units[(42, "2e-5")], root)
    assert not grid.unit_done(units[(44, "1e-4")], root)


def test_dry_run_lists_only_the_points_a_run_would_start(grid, tmp_path, capsys):
    root = tmp_path / "runs"
    _write_sweep(root, "bbc-mpnet-hf", 42, [(5e-5, 0.99, [(120, 0.99)])], name="seed-42-lr-5e-5")  # finished here
    _write_sweep(root, "bbc-mpnet-hf", 43, [(5e-5, 0.0, None)], name="seed-43-lr-5e-5")  # still running
    assert grid.main(["--dry-run", "--only", "bbc-mpnet-hf", "--output_root", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("--seed ")[1].split()[0] for line in lines] == ["43", "44"]


def test_dry_run_of_the_truncated_model_passes_its_folder(grid, capsys):
    assert grid.main(["--dry-run", "--only", "bbc-minilm-l3", "--threads", "2"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "--cpu_threads 2 " in first and "--model_name_or_path runs/grid/models/minilm-l3 " in first


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--only", "tweets"], "--only: 'tweets' is not a block"),
        (["--workers", "0"], "--workers=0"),
        (["--threads", "x"], "--threads"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(grid, capsys, argv, field):
    assert grid.main(argv + ["--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and field in err and "Traceback" not in err


def test_bad_picks_file(grid, tmp_path, capsys):
    bad = tmp_path / "picks.json"
    bad.write_text(json.dumps({"tweets-minilm": {"rule": -1}}))
    assert grid.main(["--summarize", "--no-refresh", "--picks", str(bad), "--output_root", str(tmp_path)]) == 2
    assert "--picks: tweets-minilm.rule=-1" in capsys.readouterr().err
    bad.write_text("{")
    assert grid.main(["--summarize", "--picks", str(bad)]) == 2


def test_summary_reads_the_sweeps(grid, tmp_path):
    root = tmp_path / "runs"
    # tweets: 2e-4 is best (0.72, 0.72); the target is 0.715. 5e-5 (the old default) never gets there.
    for seed, bump in ((42, 0.0), (43, 0.01)):
        _write_sweep(
            root,
            "tweets-minilm",
            seed,
            [
                (5e-5, 0.66 + bump, [(15, 0.5), (75, 0.62 + bump), (150, 0.66 + bump)]),
                (1e-4, 0.70 + bump, [(15, 0.55), (75, 0.69), (150, 0.70 + bump)]),
                (2e-4, 0.72 - bump, [(15, 0.6), (75, 0.716 + bump), (150, 0.72 - bump)]),
            ],
        )
        _write_sweep(root, "tweets-minilm-hf", seed, [(5e-5, 0.65, [(15, 0.45), (150, 0.65)])])
    _write_sweep(
        root, "tweets-minilm", 44, [(5e-5, 0.67, [(15, 0.5), (150, 0.67)]), (2e-4, 0.0, None)]
    )  # seed 44 partial
    picks = tmp_path / "picks.json"
    picks.write_text(json.dumps({"tweets-minilm": {"rule": 2e-4, "finder_raw": 5.55e-5}}))
    out = tmp_path / "docs" / "grid.md"
    code = grid.main(
        [
            "--summarize",
            "--no-refresh",
            "--only",
            "tweets-minilm,tweets-minilm-hf",
            "--output_root",
            str(root),
            "--picks",
            str(picks),
            "--results",
            str(out),
        ]
    )
    assert code == 0
    text = out.read_text()
    assert "| tweets-minilm | MiniLM-L6 (h384, 6 layers) | 6 | 42, 43, 44 | 7 / 18 | partial |" in text
    # compared on the seeds every peak with results has (42, 43): 2e-4 is best; seed 44 is still running
    assert "| 2e-4 | 42, 43 | **0.7150 ± 0.0071** | +0.0 points | 75 (seeds: 75, 75) |" in text
    assert "over seeds 42, 43, compared on the seeds finished at every peak with results" in text
    assert "Old default 5e-5 (the recipe's peak before the width rule): -5.0 points, 0.25x the best LR." in text
    assert "The best is at the grid's edge" not in text  # 5e-4 is on the plan's grid
    assert "Old default 5e-5" in text
    assert "finder clipped pick" in text and "— (not given)" in text
    assert "2e-4 = " in text  # the rule's pick placed against the grid
    assert "Other sessions' test suites and development ran beside" in text
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert {r["block"] for r in rows} == {"tweets-minilm", "tweets-minilm-hf"}
    assert any(r["status"] == "running" for r in rows)
    assert out.with_suffix(".png").is_file()


def test_best_and_steps_to_target(grid, tmp_path):
    root = tmp_path / "runs"
    for seed in (42, 43):
        _write_sweep(
            root,
            "bbc-minilm",
            seed,
            [
                (5e-5, 0.981, [(12, 0.5), (60, 0.97), (120, 0.981)]),
                (1e-4, 0.988, [(12, 0.6), (60, 0.985), (120, 0.988)]),
            ],
        )
        _write_sweep(root, "bbc-minilm-hf", seed, [(5e-5, 0.975, [(12, 0.4), (120, 0.975)])])
    by = {b.name: b for b in grid.plan_blocks(root)}
    s = grid.summarize_block(by["bbc-minilm"], root, by, {}, {})
    best = grid.grid_best(s)
    assert best[0] == 1e-4 and best[1] == pytest.approx(0.988)
    target = best[1] - grid.TARGET_GAP  # 0.983
    txt, steps = grid.steps_cell(s["peaks"][1e-4], target)
    assert steps == 60 and txt == "60 (seeds: 60, 60)"
    txt, steps = grid.steps_cell(s["peaks"][5e-5], target)
    assert steps is None and txt.startswith(">120")
    out = tmp_path / "r.md"
    grid.summarize(root, [by["bbc-minilm"], by["bbc-minilm-hf"]], {}, out, "test", with_plot=False)  # one test plots
    text = out.read_text()
    assert "| bbc-minilm-hf | bbc-minilm | 0.9830 |" in text and "60 (seeds: 60, 60) (at 1e-4)" in text
    assert "Old default 5e-5 (the recipe's peak before the width rule): -0.7 points, 0.50x the best LR." in text
    assert "| not given | — |" in text  # no --picks: the new default's steps are not guessed
    # the new default (the rule's pick) against Trainer's defaults, which never reach the target in 120 steps
    picks = {"bbc-minilm": {"rule": 1e-4}}
    grid.summarize(root, [by["bbc-minilm"], by["bbc-minilm-hf"]], picks, out, "test", with_plot=False)
    assert "| >120 (seeds: —, —) | 60 (seeds: 60, 60) (at 1e-4) | < 0.50x |" in out.read_text()
    # both reach it: the ratio of the two seed-mean figures; a pick off the grid has no curve to read
    assert grid._rule_steps_cells(1e-4, s, target, 96, "96 (seeds: 96, 96)")[1] == "0.62x"
    assert grid._rule_steps_cells(3e-4, s, target, 96, "96")[0] == "3e-4: not on the grid"


def test_the_mpnet_blocks_run_last_nearest_bert_bases_range_first(grid, capsys):
    assert grid.main(["--dry-run", "--only", "tweets-mpnet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 15 and "--model_name_or_path runs/grid/models/all-mpnet-base-v2 " in lines[0]
    assert "--lr 5e-5 " in lines[0]  # nearest BERT-base's published range first
    assert grid.main(["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(lines) if "mpnet" in line)
    assert first > 0 and all("mpnet" in line for line in lines[first:])  # the costliest blocks after every other
    # Trainer's defaults on all-mpnet-base-v2 come after the grid they are measured against
    hf = [i for i, line in enumerate(lines) if "mpnet-hf/" in line]
    assert len(hf) == 6 and hf == list(range(len(lines) - 6, len(lines)))
    assert all(
        "--lr 5e-5 " in lines[i] and "--warmup 0 " in lines[i] and "--lr_scheduler_type linear" in lines[i] for i in hf
    )


FAKE_SWEEP = r"""
import csv, json, sys
from pathlib import Path
argv = sys.argv[1:]
get = lambda flag: argv[argv.index(flag) + 1]
out, lr, seed = Path(get("--output_dir")), float(get("--lr")), int(get("--seed"))
run = out / "trials" / "lr-000" / f"seed-{seed}"
run.mkdir(parents=True)
(run / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.9}))
(run / "trainer_state.json").write_text(json.dumps({"log_history": [{"eval_accuracy": 0.9, "step": 12}]}))
with open(out / "trials.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(
        [
            "stage", "trial", "learning_rate", "warmup", "eval_accuracy_mean", "eval_accuracy_std", "values",
            "seconds", "status", "output_dir",
        ]
    )
    w.writerow(["lr", 0, f"{lr:.6g}", "0", 0.9, 0.0, "0.9000", "1.0", "complete", str(out / "trials" / "lr-000")])
(out / "sweep.json").write_text(json.dumps({"seeds": [seed], "recipe_default_lr": 5e-5}))
"""


def test_the_driver_runs_every_point_once_and_resumes(grid, tmp_path, monkeypatch, capsys):
    fake = tmp_path / "fake_sweep.py"
    fake.write_text(FAKE_SWEEP)
    monkeypatch.setattr(grid, "ftrecipes_command", lambda: [sys.executable, str(fake)])
    monkeypatch.setattr(grid.time, "sleep", lambda s: None)
    root = tmp_path / "runs"
    blocks = [b for b in grid.plan_blocks(root) if b.name == "bbc-minilm-hf"]
    units = grid.units_in_order(blocks, root)
    # a finished run of another point in the block's folder (an earlier layout) is not one of these units
    other = root / "bbc-minilm-hf" / "earlier" / "trials" / "lr-000" / "seed-7"
    other.mkdir(parents=True)
    (other / "eval_results.json").write_text("{}")
    assert grid.run_units(units, workers=2, threads=1, root=root, poll_s=0.01) == 0
    out = capsys.readouterr().out
    assert out.count("[grid] start ") == 3 and "0/3 runs finished" in out and "3/3 runs finished" in out
    assert all(grid.unit_done(u, root) for u in units)
    assert grid.run_units(units, workers=2, threads=1, root=root, poll_s=0.01) == 0  # resume: nothing left
    assert "[grid] start " not in capsys.readouterr().out


OLD_CSV_COLUMNS = [  # a results CSV as --summarize wrote it before the source column
    "block",
    "size",
    "card",
    "kind",
    "peak",
    "seed",
    "status",
    "metric",
    "value",
    "seconds",
    "steps_to_target",
    "target",
    "run_dir",
]


def _write_prior(path, rows):
    """A results CSV of another machine: ``rows`` of (block, peak, seed, status, value, steps, target)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(OLD_CSV_COLUMNS)
        for block, peak, seed, status, value, steps, target in rows:
            run_dir = f"/elsewhere/runs/grid/{block}/seed-{seed}-lr-{peak}/trials/lr-000/seed-{seed}"
            w.writerow(
                [
                    block,
                    "size",
                    "card",
                    "grid",
                    peak,
                    seed,
                    status,
                    "eval_accuracy",
                    value,
                    300.0,
                    steps,
                    target,
                    run_dir,
                ]
            )
    return path


def test_points_finished_in_a_prior_csv_are_not_run_again(grid, tmp_path, monkeypatch, capsys):
    prior = _write_prior(
        tmp_path / "prior.csv",
        [
            ("bbc-minilm-hf", 5e-05, 42, "complete", 0.9765, "", 0.9809),
            ("bbc-minilm-hf", 5e-05, 43, "running", "", "", 0.9809),  # not final: runs here
            ("bbc-minilm-hf", 5e-05, 44, "diverged", "", "", 0.9809),
        ],
    )
    root = tmp_path / "runs"
    argv = ["--only", "bbc-minilm-hf", "--output_root", str(root), "--prior", str(prior)]
    assert grid.main([*argv, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "--seed 43 " in lines[0]
    fake = tmp_path / "fake_sweep.py"
    fake.write_text(FAKE_SWEEP)
    monkeypatch.setattr(grid, "ftrecipes_command", lambda: [sys.executable, str(fake)])
    monkeypatch.setattr(grid.time, "sleep", lambda s: None)
    assert grid.main(argv) == 0
    out = capsys.readouterr().out
    assert "2 of 3 points finished in --prior" in out
    assert out.count("[grid] start ") == 1 and "start bbc-minilm-hf seed 43 peak 5e-5" in out
    assert sorted(p.name for p in (root / "bbc-minilm-hf").iterdir()) == ["seed-43-lr-5e-5"]


def test_summary_merges_prior_rows_with_the_runs_here(grid, tmp_path):
    root = tmp_path / "runs"
    # Here: seed 42 at 5e-5 and 1e-4, seed 44 at 1e-4 still running. With the prior rows the best is 1e-4 on
    # seeds 42, 43 (0.988 here, 0.99 there: 0.989), so the target is 0.984.
    _write_sweep(
        root,
        "bbc-minilm",
        42,
        [(5e-5, 0.981, [(12, 0.5), (60, 0.97), (120, 0.981)]), (1e-4, 0.988, [(12, 0.6), (60, 0.985), (120, 0.988)])],
    )
    _write_sweep(root, "bbc-minilm", 44, [(1e-4, 0.0, None)])
    prior = _write_prior(
        tmp_path / "prior.csv",
        [
            ("bbc-minilm", 0.0001, 42, "complete", 0.5, 12, 0.4),  # the same point as here: the run here wins
            ("bbc-minilm", 0.0001, 43, "complete", 0.99, 48, 0.984),  # the target this summary has
            ("bbc-minilm", 5e-05, 43, "complete", 0.97, 96, 0.95),  # counted to another target
            ("bbc-minilm", 0.0001, 44, "complete", 0.986, "", 0.984),  # complete there, still running here
        ],
    )
    by = {b.name: b for b in grid.plan_blocks(root)}
    runs = grid.load_prior([str(prior)], list(by.values()))
    out = tmp_path / "r.md"
    grid.summarize(root, [by["bbc-minilm"]], {}, out, "test", with_plot=False, prior=runs)
    text = out.read_text()
    rows = {(r["peak"], r["seed"]): r for r in csv.DictReader(open(out.with_suffix(".csv")))}
    assert set(rows) == {("5e-05", "42"), ("5e-05", "43"), ("0.0001", "42"), ("0.0001", "43"), ("0.0001", "44")}
    here, carried = rows[("0.0001", "42")], rows[("0.0001", "43")]
    assert here["value"] == "0.988" and here["source"] == "sweep" and here["steps_to_target"] == "60"
    assert str(root) in here["run_dir"]
    assert carried["value"] == "0.99" and carried["source"] == str(prior) and carried["steps_to_target"] == "48"
    assert carried["run_dir"].startswith("/elsewhere/")
    assert rows[("5e-05", "43")]["target"] == "0.95"  # a carried row keeps the target its steps were counted to
    assert rows[("0.0001", "44")]["status"] == "complete" and rows[("0.0001", "44")]["source"] == str(prior)
    # no seed-mean curve where a seed came from the prior CSV; its own steps are the CSV's, marked
    assert "| 1e-4 | 42, 43, 44 | **0.9880 ± 0.0020** |" in text
    assert "Grid best: **1e-4** (0.9890 ± 0.0014 over seeds 42, 43," in text
    assert "| incomplete: seed(s) 43, 44 from --prior (seeds: 60, 48*, —*) |" in text
    assert "| incomplete: seed(s) 43 from --prior (seeds: —, ?*) |" in text
    assert "3 of the runs below are rows of a `--prior` CSV" in text  # its seed 42 at 1e-4 lost to the run here
    assert f"--summarize --prior {prior}" in text and f"and the rows of `{prior}`" in text
    assert "Old default 5e-5" in text  # the sweep.json here still gives it

    # The next machine chains from that CSV (it has the source column now): same rows, nothing here.
    nothing = tmp_path / "fresh"
    again = tmp_path / "again.md"
    chained = grid.load_prior([str(out.with_suffix(".csv"))], list(by.values()))
    grid.summarize(nothing, [by["bbc-minilm"]], {}, again, "test", with_plot=False, prior=chained)
    rows_again = list(csv.DictReader(open(again.with_suffix(".csv"))))

    def without_source(rs):
        return [{k: v for k, v in r.items() if k != "source"} for r in rs]

    first = list(csv.DictReader(open(out.with_suffix(".csv"))))
    # the runs read here the first time are carried now: their steps and target as that summary wrote them
    assert without_source(rows_again) == without_source(first)
    assert {r["source"] for r in rows_again} == {str(out.with_suffix(".csv"))}
    assert "Old default 5e-5 (the recipe's peak before the width rule)" in again.read_text()  # a property of the block


@pytest.mark.parametrize(
    "content, field",
    [
        (None, "is not a file"),
        ("block,peak\nbbc-minilm,1e-4\n", "lacks the column(s) seed, status"),
        ("\n".join([",".join(OLD_CSV_COLUMNS), "bbc,s,c,grid,1e-4,42,complete,m,0.9,1,,0.9,d"]), "'bbc' is not in"),
        ("\n".join([",".join(OLD_CSV_COLUMNS), "bbc-minilm,s,c,grid,3e-3,42,complete,m,0.9,1,,,d"]), "peak 3e-3"),
        ("\n".join([",".join(OLD_CSV_COLUMNS), "bbc-minilm,s,c,grid,1e-4,x,complete,m,0.9,1,,,d"]), "line 2"),
    ],
)
def test_a_bad_prior_csv_is_one_line_and_writes_nothing(grid, tmp_path, capsys, content, field):
    path = tmp_path / "prior.csv"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "r.md"
    argv = ["--summarize", "--no-refresh", "--output_root", str(tmp_path / "runs"), "--results", str(out)]
    assert grid.main([*argv, "--prior", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("peak_lr_grid.py: error: --prior: ") and field in err
    assert "Traceback" not in err and not out.exists() and not out.with_suffix(".csv").exists()


def test_runs_of_a_block_without_a_best_stay_in_the_csv(grid, tmp_path):
    root = tmp_path / "runs"
    _write_sweep(root, "bbc-minilm-l3", 42, [(1e-4, 0.0, None)])  # running here
    prior = _write_prior(
        tmp_path / "prior.csv",
        [
            ("bbc-minilm-l3", 2e-4, 43, "diverged", "", "", ""),  # finished: the next machine must not rerun it
            ("bbc-minilm-l3-hf", 5e-05, 42, "complete", 0.97, "", ""),  # its grid has no finished run
        ],
    )
    by = {b.name: b for b in grid.plan_blocks(root)}
    out = tmp_path / "r.md"
    blocks = [by["bbc-minilm-l3"], by["bbc-minilm-l3-hf"]]
    grid.summarize(
        root, blocks, {}, out, "test", with_plot=False, prior=grid.load_prior([str(prior)], list(by.values()))
    )
    rows = {(r["block"], r["seed"]): r for r in csv.DictReader(open(out.with_suffix(".csv")))}
    assert set(rows) == {("bbc-minilm-l3", "42"), ("bbc-minilm-l3", "43"), ("bbc-minilm-l3-hf", "42")}
    assert rows[("bbc-minilm-l3", "43")]["status"] == "diverged" and rows[("bbc-minilm-l3", "42")]["source"] == "sweep"
    assert rows[("bbc-minilm-l3-hf", "42")]["value"] == "0.97" and rows[("bbc-minilm-l3-hf", "42")]["target"] == ""
