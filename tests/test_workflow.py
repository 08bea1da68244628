"""The Snakemake workflow: the plan of jobs, the cluster profile's DAG, seeds in the tables, progress lines."""

import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from signed_saliency import paths, progress, readme, records, reproduce, workflow
from signed_saliency.controls import CLAIMS, across_seeds, seed_verdicts
from signed_saliency.profiles import get_profile
from signed_saliency.records import seed_records, write_record
from signed_saliency.report import write_summary
from signed_saliency.tables import assemble

SLURM = paths.REPO_ROOT / "workflow" / "profiles" / "slurm"


def test_a_plan_has_one_run_per_column_and_seed_with_its_own_folders(tmp_path):
    chosen = workflow.plan("quick", "cifar10/cnn,cifar10/resnet18", "42,43", figures_dir=tmp_path / "f",
                           build_dir=tmp_path / "b")  # fmt: skip
    assert [r.id for r in chosen.runs] == ["cifar10_cnn_s42", "cifar10_cnn_s43", "cifar10_resnet18_s42",
                                           "cifar10_resnet18_s43"]  # fmt: skip
    own, other = chosen.runs[0], chosen.runs[1]
    assert own.figures == tmp_path / "f" and own.build == tmp_path / "b"  # the profile's seed: where it always was
    assert other.figures == tmp_path / "f" / "seed43" and other.record("train").parent == tmp_path / "f/seed43/results"
    assert other.parameters()["seed"] == 43 and other.parameters()["cache_dir"] == str(tmp_path / "b/seed43/cache")
    assert own.checkpoint != other.checkpoint and "_s43_" in other.checkpoint.name
    assert chosen.notebooks == list(workflow.NOTEBOOKS) and chosen.summary == tmp_path / "f" / "README.md"
    assert [r.seed for r in workflow.plan("smoke", "cifar10/cnn").runs] == [42]


@pytest.mark.parametrize(
    "seeds, message",
    [("42,x", "integers separated by commas"), ("42,42", "listed twice"), ("-1", "non-negative")],
)
def test_bad_seeds_are_refused_with_what_to_write(seeds, message):
    with pytest.raises(ValueError, match=message):
        workflow.plan("smoke", "cifar10/cnn", seeds)


def test_jobs_share_the_cores_without_oversubscribing_them():
    assert reproduce.threads_per_job(1, 2) == 2 and reproduce.threads_per_job(2, 2) == 1
    assert reproduce.threads_per_job(4, 2) == 1 and reproduce.threads_per_job(3, 16) == 5
    with pytest.raises(ValueError, match="jobs must be a positive int"):
        reproduce.threads_per_job(0)


def test_side_by_side_jobs_train_on_every_core_and_run_the_longest_notebooks_first(tmp_path, monkeypatch):
    """A dry run of the quick profile with JOBS=2: a training gets all the cores (its gradients depend on the
    thread count, so a checkpoint must not depend on JOBS), a notebook one share, and the schedule's priorities
    put a training above any one notebook and notebook 08 (the longest) before 02 (the shortest)."""
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "checkpoints"))  # none trained: a training job too
    chosen = workflow.plan("quick", "cifar10/cnn", figures_dir=tmp_path / "f", build_dir=tmp_path / "b")
    command = reproduce.snakemake_command(chosen, jobs=2, dry_run=True, extra=["--printshellcmds"])
    config = dict(item.split("=", 1) for item in command[command.index("--config") + 1 :] if "=" in item)
    cores = int(command[command.index("--cores") + 1])
    assert config["train_threads"] == str(cores) and config["threads"] == str(reproduce.threads_per_job(2))
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]

    def job(rule):
        return log.split(f"rule {rule}:")[1].split("rule ")[0]

    train, longest, shortest = (
        job("train_cifar10_cnn_s42"),
        job("08_metric_controls_cifar10_cnn_s42"),
        job("02_qualitative_cifar10_cnn_s42"),
    )
    assert f"--threads {cores}" in train and "priority: 10" in train
    assert f"--threads {config['threads']}" in longest and "priority: 6" in longest and "priority: 1" in shortest
    assert workflow.PRIORITY["train"] > max(workflow.PRIORITY[n] for n in workflow.NOTEBOOKS)


def test_the_slurm_profile_is_valid_and_asks_one_gpu_per_job(tmp_path):
    """A dry run of the cluster profile: Snakemake loads the SLURM executor plugin and its settings and builds the
    DAG of the paper profile's CIFAR-10 CNN with three seeds; nothing is submitted (there is no cluster here)."""
    settings = yaml.safe_load((SLURM / "config.yaml").read_text())
    assert settings["executor"] == "slurm" and settings["default-resources"]["cpus_per_task"] >= 1
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(workflow.SNAKEFILE), "--profile", str(SLURM),
               "--directory", str(tmp_path), "--dry-run", "--config", "profile=paper", "only=cifar10/cnn",
               "seeds=42,43,44", "device=cuda", "threads=8", f"figures_dir={tmp_path / 'f'}",
               f"build_dir={tmp_path / 'b'}"]  # fmt: skip
    # Checkpoints of its own: a checkout that has run the paper column already has seed 42's.
    environment = {**os.environ, paths.CHECKPOINTS_ENV: str(tmp_path / "checkpoints")}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    jobs = reproduce.dry_run_jobs(log)
    for seed in (42, 43, 44):
        assert jobs[f"train_cifar10_cnn_s{seed}"] == 1 and jobs[f"record_cifar10_cnn_s{seed}"] == 1
        assert all(jobs[f"{notebook}_cifar10_cnn_s{seed}"] == 1 for notebook in workflow.NOTEBOOKS)
    assert jobs["tables"] == 1 and sum(jobs.values()) == 3 * (len(workflow.NOTEBOOKS) + 2) + 2
    train = log.split("rule train_cifar10_cnn_s43:")[1].split("rule ")[0]
    assert "gpu=1" in train and "slurm_partition=gpu" in train and "cpus_per_task=8" in train


def _seeded_records(figures, accuracies, differences):
    """Train, deletion and controls records of cifar10/cnn for seeds 42 (the profile's), 43, 44 …"""
    for i, (accuracy, difference) in enumerate(zip(accuracies, differences)):
        folder = figures if i == 0 else figures / f"seed{42 + i}"
        train = {
            "test_accuracy": accuracy,
            "epochs": 10,
            "train_images": 50000,
            "test_images": 10000,
            "data_source": "offline lossless",
        }
        write_record(folder, "train", "cifar10_cnn", train)
        curves = {f"{fill}/{kind}": {"auc": 0.2 + difference * (kind != "original"), "deleted": [0.0]}
                  for fill, kinds in (("black", ("original", "positive", "active")),
                                      ("white", ("original", "negative", "inactive"))) for kind in kinds}  # fmt: skip
        write_record(folder, "deletion_test", "cifar10_cnn", {"images": 100, "fractions": [0.0], "curves": curves})
        interval = [difference, difference - 0.02, difference + 0.02]
        intervals = {f"diff {k}-{other}/{f}": interval for f, k in CLAIMS for other in ("original", "matched")}
        intervals |= {f"auc paper/{key}": [curve["auc"], 0.0, 0.5] for key, curve in curves.items()}
        verdict = {
            "resolved": difference + 0.02 < 0,
            "beats_matched_random": True,
            "survives_imputation_srg": None,
        }
        verdicts = {f"{f}/{k}": verdict for f, k in CLAIMS}
        write_record(folder, "controls", "cifar10_cnn", {"intervals": intervals, "verdicts": verdicts, "random": {},
                                                         "leakage": {}, "images": 100, "train_images": 100,
                                                         "resamples": 10, "seeds": [0]})  # fmt: skip


def test_tables_show_the_spread_across_training_seeds(tmp_path):
    _seeded_records(tmp_path, [0.60, 0.62, 0.64], [-0.10, -0.12, -0.08])
    (tmp_path / "seed7x").mkdir()  # not a seed folder: ignored
    assert [r["test_accuracy"] for r in seed_records(tmp_path, "train", "cifar10_cnn")] == [0.60, 0.62, 0.64]
    profile = get_profile("quick")
    assemble(profile, tmp_path)
    table1 = (tmp_path / "tables" / "table1_test_accuracy.md").read_text()
    # 0.62 ± 0.02: the sample sd of 0.60, 0.62, 0.64, computed by hand
    assert "| test accuracy (mean ± sd over training seeds) | 0.620 ± 0.020 (3 seeds) |" in table1
    assert "| training seeds | 3 |" in table1
    table2 = (tmp_path / "tables" / "table2_black_deletion_auc.md").read_text()
    assert "| black/positive (mean ± sd over training seeds) | 0.100 ± 0.020 (3 seeds) |" in table2
    assert "| black/original (mean ± sd over training seeds) | 0.200 ± 0.000 (3 seeds) |" in table2
    table_c = (tmp_path / "tables" / "tableC_metric_controls.md").read_text()
    assert "| diff positive-original/black (mean ± sd over training seeds) | -0.100 ± 0.020 (3 seeds) |" in table_c
    summary = write_summary(profile, tmp_path).read_text()
    # Every seed's interval (difference ± 0.02) lies below 0, and -0.100 + 2 × 0.020 < 0 …
    assert "**Across 3 training seeds**" in summary
    assert "black deletion, positive: AUC(positive) − AUC(original) -0.100 ± 0.020 (3 seeds), resolved in 3 of 3 " \
           "(n ≥ 100 each): holds across seeds." in summary  # fmt: skip
    # … while a spread that reaches 0 does not hold, even where every seed's own bootstrap resolves it.
    _seeded_records(tmp_path, [0.60, 0.62, 0.64], [-0.10, -0.03, -0.08])
    verdicts = seed_verdicts(seed_records(tmp_path, "controls", "cifar10_cnn"))
    spread = across_seeds([-0.10, -0.03, -0.08])
    assert verdicts["black/positive"]["difference"] == spread and spread["mean"] + 2 * spread["sd"] > 0
    assert verdicts["black/positive"]["resolved_in"] == 3 and not verdicts["black/positive"]["holds"]
    assert seed_verdicts(seed_records(tmp_path, "controls", "cifar10_cnn")[:1]) == {}


def test_the_readme_gives_the_invocation_wall_time_beside_the_summed_job_time(tmp_path):
    """Two jobs side by side: 600 s of job time in 420 s of wall time. The README must give both, each named."""
    _seeded_records(tmp_path, [0.60], [-0.10])
    chosen = workflow.plan("quick", "cifar10/cnn", figures_dir=tmp_path, build_dir=tmp_path / "b")
    started = workflow.invocation(chosen, 2)
    notebooks = {
        "01_train": {"seconds": 400.0, "device": "cpu"},
        "03_quantitative": {"seconds": 200.0, "device": "cpu"},
    }
    write_record(tmp_path, "run", "cifar10_cnn", {"wall_seconds": 600.0, "device": "cpu", "notebooks": notebooks})
    path = records.write_wall_time(tmp_path, workflow.wall_time(started, 420.04))
    record = json.loads(path.read_text())
    assert record["wall_seconds"] == 420.0 and record["jobs_at_once"] == 2
    assert record["runs"] == ["cifar10/cnn seed 42"] and record["notebooks"] == list(workflow.NOTEBOOKS)
    summary = write_summary(get_profile("quick"), tmp_path).read_text()
    assert "The last `reproduce` run took **7.0 minutes** of wall time, 2 jobs at once (`JOBS=2`), for " \
           "cifar10/cnn seed 42" in summary  # fmt: skip
    assert "Job time: 10.0 minutes for the notebooks of 1 column in their last runs" in summary
    assert "jobs that ran side by side shared the cores, so this sum exceeds the wall time above" in summary
    assert "- Job time of this column's notebooks in the last run: 600 s" in summary
    # One job at a time, the sum is the wall time less the workflow's overhead; with no wall-time record,
    # the README claims neither.
    records.write_wall_time(tmp_path, workflow.wall_time({**started, "jobs_at_once": 1}, 610.0))
    summary = write_summary(get_profile("quick"), tmp_path).read_text()
    assert "1 job at once (`JOBS=1`)" in summary and "exceeds the wall time" not in summary
    assert "the jobs ran one at a time, so this sum is the wall time above less the workflow's own overhead" in summary
    records.wall_time_record(tmp_path).unlink()
    summary = write_summary(get_profile("quick"), tmp_path).read_text()
    assert "The last `reproduce` run took" not in summary and "wall time above" not in summary
    assert "(each job's own time, its training included in 01_train)." in summary


def test_a_rerun_of_some_columns_keeps_the_last_full_run_time(tmp_path):
    """ONLY=imagenette/resnet18 after a full run: its wall time names that column alone, and the full run's time
    stays on record for the README, the profile's README and the next run's estimate."""
    quick = get_profile("quick")

    def ran(only, seconds):  # an invocation whose jobs wrote their columns' run records
        started = workflow.invocation(workflow.plan("quick", only, figures_dir=tmp_path), 2)
        for column in quick.select(only.split(",") if only else None):
            write_record(tmp_path, "run", column.id, {"wall_seconds": seconds, "device": "cpu", "notebooks": {}})
        return workflow.wall_time(started, seconds)

    full = ran(None, 4915.4)
    assert records.covers(full, quick.columns) and records.with_last_complete(full, None, quick.columns) == full
    records.write_wall_time(tmp_path, full)
    partial = ran("imagenette/resnet18", 2400.0)
    assert partial["runs"] == ["imagenette/resnet18 seed 42"] and not records.covers(partial, quick.columns)
    kept = records.with_last_complete(partial, records.read_wall_time(tmp_path), quick.columns)
    assert kept["last_complete"] == full and kept["wall_seconds"] == 2400.0
    # A second partial rerun carries the same full run along; a full run drops it.
    again = records.with_last_complete({**partial, "wall_seconds": 60.0}, kept, quick.columns)
    assert again["last_complete"] == full
    assert "last_complete" not in records.with_last_complete(full, again, quick.columns)
    records.write_wall_time(tmp_path, again)
    (line,) = readme.runtime_block("quick", tmp_path)
    assert line.startswith("`make reproduce` (the `quick` profile, cifar10/cnn seed 42, cifar10/resnet18 seed 42, "
                           "imagenette/cnn seed 42, imagenette/resnet18 seed 42) took **81.9 min** of wall time "
                           "when last run in full, 2 jobs at once")  # fmt: skip
    assert "since then imagenette/resnet18 seed 42 alone ran in 1.0 min" in line
    chosen = workflow.plan("quick", figures_dir=tmp_path, build_dir=tmp_path / "b")
    assert reproduce.announcement(chosen, 2, "fast")[1].startswith(
        "wall time: the last recorded run of this profile took 81.9 min with JOBS=2 for cifar10/cnn seed 42, "
    )
    summary = write_summary(quick, tmp_path).read_text()
    assert "The last `reproduce` run took **1.0 minutes** of wall time, 2 jobs at once (`JOBS=2`), for " \
           "imagenette/resnet18 seed 42" in summary  # fmt: skip
    assert "The last run of every column before it took **81.9 minutes**, 2 jobs at once, for cifar10/cnn" in summary
    records.write_wall_time(tmp_path, partial)  # no full run on record
    assert readme.runtime_block("quick", tmp_path)[0].startswith(
        "`make reproduce` of `quick` has not run in full on record: imagenette/resnet18 seed 42 alone ran in 40.0 min"
    )


def test_a_training_time_of_another_checkpoint_is_not_counted(tmp_path, monkeypatch):
    """A checkpoint extended outside the workflow (say 8 epochs to 10 by ``python -m signed_saliency.training``)
    leaves the 8-epoch job's time behind: the run record must not give it as this checkpoint's."""
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "checkpoints"))
    (run,) = workflow.plan("quick", "cifar10/cnn", figures_dir=tmp_path / "f", build_dir=tmp_path / "b").runs
    run.timing("01_train").parent.mkdir(parents=True)
    run.timing("01_train").write_text(json.dumps({"seconds": 6.0, "threads": 1, "numerics": "reproducible"}))
    shorter = run.checkpoint.name.replace("_e10_", "_e8_")  # the job timed an 8-epoch run
    run.timing("train").write_text(json.dumps({"seconds": 1000.0, "checkpoint": shorter}))
    run.checkpoint.parent.mkdir(parents=True)
    run.checkpoint.write_bytes(b"weights")
    record = json.loads(workflow.record_job(run, "cpu").read_text())
    assert record["notebooks"]["01_train"]["seconds"] == 6.0 and record["training_untimed"] is True
    assert ("its training included in 01_train, but for cifar10/cnn, whose checkpoint no timed training job of this "
            "folder made") in write_summary(get_profile("quick"), tmp_path / "f").read_text()  # fmt: skip
    run.timing("train").write_text(json.dumps({"seconds": 1000.0, "checkpoint": run.checkpoint.name}))
    record = json.loads(workflow.record_job(run, "cpu").read_text())
    assert record["notebooks"]["01_train"]["seconds"] == 1006.0 and "training_untimed" not in record


def test_progress_lines_are_whole_labelled_lines(tmp_path, monkeypatch):
    log = tmp_path / "job.log"
    shown = io.StringIO()
    with progress.follow(log, "cifar10/cnn seed 42 · 03_quantitative", stream=shown, poll=0.05):
        bar = progress.progress(range(3), desc="deletion curves", mininterval=0)
        for _ in bar:
            time.sleep(0.01)
        bar.close()
        time.sleep(0.1)
    lines = shown.getvalue().splitlines()
    assert lines and all(line.startswith("[cifar10/cnn seed 42 · 03_quantitative] deletion curves:") for line in lines)
    assert "\r" not in shown.getvalue() and "3/3" in lines[-1]
    assert progress.PROGRESS_ENV not in __import__("os").environ  # restored after the block
    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "other.log"))
    assert progress.seen() and progress.wanted(None, progress.AFTER_PASSES) and not progress.wanted(False, 10**6)


def test_a_notebook_job_runs_its_kernel_over_ipc_and_writes_its_time(tmp_path):
    import nbformat

    source = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os\nprint(os.environ['OMP_NUM_THREADS'], os.environ.get('SIGNED_SALIENCY_PROGRESS', '')[-4:])")]),
        source)  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "signed_saliency.workflow", "notebook", "--source", str(source),
                           "--output", str(tmp_path / "out.ipynb"), "--timing", str(tmp_path / "t.json"),
                           "--parameters", "{}", "--label", "tiny", "--threads", "1"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "without encryption" not in done.stderr
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    assert outputs[0]["text"] == "1 .log\n"  # one thread, and the bars go to the job's log
    assert json.loads((tmp_path / "t.json").read_text())["seconds"] > 0


def test_follow_prints_lines_written_while_it_runs(tmp_path):
    shown = io.StringIO()
    with progress.follow(tmp_path / "a.log", "job", stream=shown, poll=0.02) as log:
        writer = threading.Thread(target=lambda: progress._Lines(str(log)).write("\rstep 1\rstep 1\rstep 2\n"))
        writer.start()
        writer.join()
    assert shown.getvalue() == "[job] step 1\n[job] step 2\n"  # redraws of the same state are shown once


def test_a_run_announces_its_runs_its_expected_time_and_what_it_overwrites(tmp_path):
    chosen = workflow.plan("quick", "cifar10/cnn", figures_dir=tmp_path / "f", build_dir=tmp_path / "b")
    lines = reproduce.announcement(chosen, 2, "reproducible")
    assert lines[0] == "quick: cifar10/cnn seed 42; 2 jobs at once, numerics reproducible"
    assert lines[1].startswith("wall time: no recorded run of this profile to estimate it from")
    assert (
        lines[2]
        == f"writes {tmp_path / 'f'}/ (figures, tables, README), replacing what is there, and {tmp_path / 'b'}/"
    )
    started = workflow.invocation(chosen, 2)
    write_record(tmp_path / "f", "run", "cifar10_cnn", {"wall_seconds": 300.0})
    write_record(tmp_path / "f", "run", "imagenette_cnn", {"wall_seconds": 180.0})
    assert "job times, on the machines that ran them, add up to 8.0 min" in reproduce.announcement(chosen, 1, "fast")[1]
    records.write_wall_time(tmp_path / "f", workflow.wall_time(started, 4014.3))
    assert reproduce.announcement(chosen, 2, "fast")[1].startswith(
        "wall time: the last recorded run of this profile took 66.9 min with JOBS=2 for cifar10/cnn seed 42"
    )


def test_the_wall_time_names_only_the_runs_that_ran_and_the_job_time_every_seed(tmp_path):
    """SEEDS=42,43 with seed 42 already done: the invocation ran seed 43's jobs alone, and the job time covers
    both seeds' records."""
    _seeded_records(tmp_path, [0.60, 0.62], [-0.10, -0.12])
    chosen = workflow.plan("quick", "cifar10/cnn", "42,43", figures_dir=tmp_path, build_dir=tmp_path / "b")
    notebooks = {"01_train": {"seconds": 300.0, "device": "cpu"}}
    write_record(tmp_path, "run", "cifar10_cnn", {"wall_seconds": 300.0, "device": "cpu", "notebooks": notebooks})
    started = workflow.invocation(chosen, 2)
    seed43 = {"wall_seconds": 210.0, "device": "cpu", "notebooks": {"01_train": {"seconds": 210.0, "device": "cpu"}}}
    write_record(tmp_path / "seed43", "run", "cifar10_cnn", seed43)
    record = workflow.wall_time(started, 215.0)
    assert record["runs"] == ["cifar10/cnn seed 43"]
    records.write_wall_time(tmp_path, record)
    summary = write_summary(get_profile("quick"), tmp_path).read_text()
    assert "2 jobs at once (`JOBS=2`), for cifar10/cnn seed 43 (notebooks" in summary
    assert (
        "Job time: 8.5 minutes for the notebooks of 1 column (2 runs, every training seed's) in their last runs"
        in summary
    )
    assert "cifar10/cnn 5.0 (+ 1 more seeds, 3.5) min" in summary
    # Nothing ran (every output up to date): the record says so rather than naming runs it did not run.
    later = workflow.invocation(chosen, 2)
    records.write_wall_time(tmp_path, workflow.wall_time(later, 3.0))
    assert "for no run: every output was up to date" in write_summary(get_profile("quick"), tmp_path).read_text()
    # … and such a record is no estimate of a run's time: the announcement falls back to the job times.
    assert "job times, on the machines that ran them, add up to 5.0 min" in reproduce.announcement(chosen, 2, "fast")[1]


@pytest.mark.data
def test_missing_data_is_refused_in_one_line_before_any_job(tmp_path, monkeypatch, capsys, data_root):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv(paths.ARCHIVES_ENV, str(tmp_path / "no-archives"))
    started = time.perf_counter()
    assert reproduce.main(["--profile", "smoke", "--only", "cifar10/cnn", "--figures-dir", str(tmp_path / "f"),
                           "--build-dir", str(tmp_path / "b")]) == 1  # fmt: skip
    said = capsys.readouterr()
    assert time.perf_counter() - started < 10 and not (tmp_path / "b" / reproduce.LOG_NAME).exists()
    line = said.err.strip().splitlines()[-1]
    assert line.startswith(f"error: no cifar10 in the data root {tmp_path / 'empty'}: the offline archives are not in ")
    assert "set SIGNED_SALIENCY_ARCHIVES to the folder that holds MANIFEST.json" in line and "--download" in line
    # With the archives where they are, the line names the command that fills the data root.
    monkeypatch.delenv(paths.ARCHIVES_ENV)
    from signed_saliency.data import missing_data

    if (paths.archives_dir() / "materialize.py").exists():
        text = missing_data(["cifar10", "imagenette"])
        assert text.startswith(f"no cifar10 or imagenette in the data root {tmp_path / 'empty'}: fill it with `make "
                               f"data` (that is: python {paths.archives_dir() / 'materialize.py'}")  # fmt: skip
    assert missing_data(["cifar10", "imagenette"], data_root) is None  # the real data root: nothing missing


def test_jobs_below_one_are_refused_by_the_argument_parser(capsys):
    with pytest.raises(SystemExit) as stopped:
        reproduce.main(["--profile", "smoke", "--jobs", "0"])
    assert stopped.value.code == 2 and "must be a whole number of at least 1, got '0'" in capsys.readouterr().err


def test_an_installed_package_without_the_workflow_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "SNAKEFILE", tmp_path / "Snakefile")
    assert reproduce.main(["--profile", "smoke"]) == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("error: the workflow") and "Clone the repository" in said[0]
