"""The notebook chain: the smoke profile end to end, failures, reruns, clean source notebooks."""

import ast
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import nbformat
import pytest
import torch

import signed_saliency
from signed_saliency import paths, reproduce, workflow
from signed_saliency.profiles import PROFILES, get_profile
from signed_saliency.records import FIGURES_BY_RECORD, missing_figures, write_record
from signed_saliency.tables import TABLES, assemble

NOTEBOOK_FILES = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
FIGURES_PER_COLUMN = tuple(stem for stems in FIGURES_BY_RECORD.values() for stem in stems)
MAP_GRIDS = ("fig_maps", "appendixA_maps", "fig_sanity_examples_class", "fig_sanity_examples_randomized")


def finite_in_range(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high


def parameters_cell(notebook):
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged parameters"
    return cells[0]


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_source_notebooks_are_clean_with_one_literal_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs: strip them"
    values = {}
    for statement in ast.parse(parameters_cell(notebook).source).body:
        assert isinstance(statement, ast.AnnAssign | ast.Assign), ast.dump(statement)
        target = statement.target if isinstance(statement, ast.AnnAssign) else statement.targets[0]
        values[target.id] = ast.literal_eval(statement.value)  # raises unless a literal
    if path.stem in reproduce.NOTEBOOKS:  # the chain's notebooks default to the smoke CIFAR-10 column
        smoke_cifar = get_profile("smoke").columns[0]
        assert {k: values[k] for k in smoke_cifar.parameters()} == smoke_cifar.parameters()
        assert values["profile"] == "smoke"


def test_the_chain_is_every_notebook_but_the_explorer():
    assert [p.stem for p in NOTEBOOK_FILES if p.stem != "05_explore"] == list(reproduce.NOTEBOOKS)
    with pytest.raises(ValueError, match="unknown notebooks"):
        reproduce.run("smoke", notebooks=["08_nothing"])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke profile run once through the Snakemake workflow from the command line, as a user would, with
    a copy of the source notebooks (so that a test can edit one)."""
    root = tmp_path_factory.mktemp("smoke")
    figures, build, sources = root / "figures", root / "build", root / "notebooks"
    shutil.copytree(paths.NOTEBOOKS_DIR, sources)
    command = [sys.executable, "-m", "signed_saliency.reproduce", "--profile", "smoke", "--figures-dir", str(figures),
               "--build-dir", str(build), "--notebooks-dir", str(sources), "--jobs", "2"]  # fmt: skip
    # Checkpoints of its own: trained by this run, under this code's numerics, whatever an earlier run left.
    environment = {**os.environ, paths.CHECKPOINTS_ENV: str(root / "checkpoints")}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return SimpleNamespace(figures=figures, build=build, sources=sources, command=command, environment=environment,
                           checkpoints=root / "checkpoints", seconds=time.perf_counter() - started,
                           output=done.stdout + done.stderr)  # fmt: skip


@pytest.mark.data
def test_the_demo_shows_the_papers_direction(tmp_path):
    """`make demo`, as a newcomer runs it: one trained column, its maps, deletion curves and controls, and
    in its records the paper's four claims going the paper's way, each resolved on at least 30 images."""
    from signed_saliency.controls import CLAIMS, verdicts

    figures = tmp_path / "figures"
    command = [sys.executable, "-m", "signed_saliency.reproduce", "--profile", "demo", "--figures-dir", str(figures),
               "--build-dir", str(tmp_path / "build"), "--jobs", "2"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    print(f"demo: {time.perf_counter() - started:.0f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (done.stdout + done.stderr).startswith("demo: cifar10/cnn seed 42; 2 jobs at once, numerics reproducible")

    def record(kind):
        return json.loads((figures / "results" / f"{kind}_cifar10_cnn.json").read_text())

    assert record("train")["test_accuracy"] > 0.40
    curves, controls = record("deletion_test")["curves"], record("controls")
    assert record("deletion_test")["images"] == 500 and controls["images"] == 200
    for fill, kind in CLAIMS:
        assert curves[f"{fill}/{kind}"]["auc"] < curves[f"{fill}/original"]["auc"], (fill, kind)
        assert verdicts(controls)[f"{fill}/{kind}"]["resolved"] is True, (fill, kind)
    for stem in ("fig_maps_cifar10_cnn.jpg", "fig_deletion_black_test_cifar10_cnn.png",
                 "fig_controls_curves_cifar10_cnn.png", "README.md"):  # fmt: skip
        assert (figures / stem).exists(), stem
    assert not (figures / "fig_sanity_class_sensitivity_cifar10_cnn.png").exists()  # 06 is not the demo's
    # Its last lines say what it found, claim by claim, so that a newcomer sees the effect without opening a file.
    said = done.stdout.splitlines()
    assert said[-6] == "cifar10/cnn:" and said[-1].endswith(str(figures / "README.md"))
    assert all("(lower, as the paper claims); difference" in line and line.endswith("resolved at 95 %")
               for line in said[-5:-1])  # fmt: skip


@pytest.mark.data
def test_smoke_profile_runs_the_whole_chain_through_snakemake(smoke_run):
    figures, build = smoke_run.figures, smoke_run.build
    profile = get_profile("smoke")
    ran = [c for c in profile.columns if not c.pretrained]
    for column in profile.columns:
        if column.pretrained:  # no ImageNet weights here: skipped, with the file named
            assert f"skipping {column.label}: its ImageNet weights cannot be loaded" in smoke_run.output
            assert "resnet18-f37072fd.pth" in smoke_run.output
            assert "Downloading:" not in smoke_run.output  # offline: the reason at once, no download attempt
    for column in ran:
        for stem in FIGURES_PER_COLUMN:
            for suffix in (".jpg",) if stem in MAP_GRIDS else (".png", ".pdf"):
                assert (figures / f"{stem}_{column.id}{suffix}").stat().st_size > 1000, (stem, column.id)
            other = (".png", ".pdf") if stem in MAP_GRIDS else (".jpg",)
            assert not any((figures / f"{stem}_{column.id}{suffix}").exists() for suffix in other), stem
        for notebook in reproduce.NOTEBOOKS:
            executed = nbformat.read(build / column.id / f"{notebook}.ipynb", as_version=4)
            assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
            # The notebook's bars reach the terminal as whole lines labelled with the job.
        assert f"[{column.label} seed 42 · 03_quantitative] deletion curves: 100%|" in smoke_run.output
        assert f"[{column.label} seed 42 · 08_metric_controls] metric controls: 100%|" in smoke_run.output
    # Quiet by default: a line per job started and finished and the jobs' own lines; Snakemake's whole output in
    # build/<profile>/reproduce.log.
    said = smoke_run.output.splitlines()
    jobs = len(ran) * (len(reproduce.NOTEBOOKS) + 2) + 2  # per run: training, notebooks, run record; tables, all
    assert sum(line.startswith("started ") for line in said) == jobs
    assert f"finished all ({jobs} of {jobs} jobs)" in said and len(said) < 20 * jobs
    assert "localrule" not in smoke_run.output and "jobid:" not in smoke_run.output
    assert "localrule tables:" in (build / reproduce.LOG_NAME).read_text()
    assert "without encryption" not in smoke_run.output  # the kernels run over IPC sockets
    assert "Kernel is running over TCP" not in smoke_run.output
    for stem in TABLES:
        for suffix in (".csv", ".md", ".tex"):
            assert (figures / "tables" / f"{stem}{suffix}").exists()
    check_tables(figures, ran)
    summary = (figures / "README.md").read_text()
    assert summary.splitlines()[2].startswith("**These models are untrained on purpose, and the numbers below mean")
    assert all(f"## {c.label}" in summary for c in profile.columns)
    assert "## Is the gain real? Controls for the deletion metric" in summary
    assert all(f"### {c.label}" in summary.split("## Is the gain real?")[1] for c in ran)
    for column in ran:  # where it ran, recorded by the workflow; "auto" is the CPU on a machine without CUDA
        run = json.loads((figures / "results" / f"run_{column.id}.json").read_text())
        expected = "NVIDIA" if torch.cuda.is_available() else "cpu: "
        assert run["device"].startswith(expected) and run["wall_seconds"] > 0 and run["torch"] == torch.__version__
        assert sorted(run["notebooks"]) == sorted(reproduce.NOTEBOOKS)
        assert f"s, on {run['device']}, torch {torch.__version__}" in summary
        # The jobs ran under the default numerics, set before their torch loaded, and their records say so.
        assert run["numerics"]["mode"] == "reproducible" and run["numerics"]["torch"] == torch.__version__
        assert {entry["numerics"] for entry in run["notebooks"].values()} == {"reproducible"}
        trained = json.loads((figures / "results" / f"train_{column.id}.json").read_text())["numerics"]
        assert trained["mode"] == "reproducible" and trained["capability"] == "AVX2" and trained["threads"] >= 1
    assert "Every model here was trained under the same numerics: reproducible, AVX2 kernels" in summary
    # The invocation's own wall time, measured by the front end: at most the fixture's, and in the README.
    invocation = json.loads((figures / "results" / "workflow.json").read_text())
    assert 0 < invocation["wall_seconds"] <= smoke_run.seconds and invocation["jobs_at_once"] == 2
    assert invocation["runs"] == [f"{c.label} seed 42" for c in ran]
    assert f"The last `reproduce` run took **{invocation['wall_seconds'] / 60:.1f} minutes** of wall time" in summary


def check_tables(figures, ran):
    def rows(stem):
        with open(figures / "tables" / f"{stem}.csv") as file:
            return {row["row"]: row for row in csv.DictReader(file)}

    table1 = rows("table1_test_accuracy")
    for column in ran:
        assert finite_in_range(float(table1["test accuracy"][column.label]), 0, 1)
        assert int(table1["epochs"][column.label]) == column.epochs
        for stem in ("table2_black_deletion_auc", "table3_white_deletion_auc", "tableB_train_deletion_auc"):
            table = rows(stem)
            aucs = [float(r[column.label]) for name, r in table.items() if "/" in name and "paper" not in name]
            assert aucs and all(finite_in_range(a, 0, 0.9) for a in aucs), stem
    assert rows("table2_black_deletion_auc")["black/positive (paper)"]["cifar10/cnn"] == "0.14"
    table_c = rows("tableC_metric_controls")
    for column in ran:  # Table C: every difference as "mean [low, high]" with low <= mean <= high, in range
        for name in ("diff positive-original/black", "diff inactive-matched/white", "srg imputation/active"):
            mean, low, high = (float(v) for v in table_c[name][column.label].replace("[", "").replace("]", "")
                               .replace(",", "").split())  # fmt: skip
            assert -0.9 <= low <= mean <= high <= 0.9, (name, column.label)
        assert int(table_c["images"][column.label]) == column.controls_images


@pytest.mark.data
def test_a_rerun_runs_no_job_and_an_edited_notebook_reruns_only_what_depends_on_it(smoke_run, monkeypatch):
    figures, build = smoke_run.figures, smoke_run.build
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(smoke_run.checkpoints))
    checkpoint = (
        smoke_run.checkpoints / json.loads((figures / "results" / "train_cifar10_cnn.json").read_text())["checkpoint"]
    )
    outputs = sorted([checkpoint, *(build / "cache").glob("*.pt"), *build.glob("*/*.ipynb"), figures / "README.md",
                      figures / "results" / "workflow.json"])  # fmt: skip
    before = {p: p.stat().st_mtime_ns for p in outputs}
    started = time.perf_counter()
    again = subprocess.run(smoke_run.command, capture_output=True, text=True, env=smoke_run.environment)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in outputs} == before  # no job ran: nothing was rewritten
    assert time.perf_counter() - started < 0.05 * smoke_run.seconds + 30
    dry = [*smoke_run.command, "--dry-run"]
    assert (
        subprocess.run(dry, capture_output=True, text=True, env=smoke_run.environment)
        .stdout.strip()
        .endswith("nothing to do: every output is up to date")
    )
    executed = nbformat.read(build / "cifar10_cnn" / "01_train.ipynb", as_version=4)
    assert "reused its checkpoint" in "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    # Editing one notebook reruns exactly its jobs (one per column), the run records and the tables.
    edited = smoke_run.sources / "03_quantitative.ipynb"
    notebook = nbformat.read(edited, as_version=4)
    notebook.cells.append(nbformat.v4.new_markdown_cell("An edit."))
    nbformat.write(notebook, edited)
    report = reproduce.run("smoke", figures_dir=figures, build_dir=build, notebooks_dir=smoke_run.sources, dry_run=True)
    assert report.jobs == {"03_quantitative_cifar10_cnn_s42": 1, "03_quantitative_imagenette_cnn_s42": 1, "all": 1,
                           "record_cifar10_cnn_s42": 1, "record_imagenette_cnn_s42": 1, "tables": 1}  # fmt: skip


def test_a_failing_notebook_is_named_with_its_cell(tmp_path):
    parameters = {**get_profile("smoke").columns[0].parameters(), "dataset": "mnist", "profile": "smoke",
                  "seed": 42, "device": "cpu", "figures_dir": str(tmp_path), "cache_dir": str(tmp_path)}  # fmt: skip
    output = tmp_path / "build" / "01_train.ipynb"
    failure = r"01_train.ipynb failed in cell \d+ \(In \[\d+\]: `from signed_saliency.chain import context`\)"
    with pytest.raises(workflow.NotebookFailed, match=failure + ".*unknown dataset"):
        workflow.execute(paths.NOTEBOOKS_DIR / "01_train.ipynb", output, parameters)
    assert not output.exists() and output.with_suffix(".failed.ipynb").exists()


def test_a_finished_notebook_is_not_interrupted_on_shutdown(tmp_path):
    # jupyter_client sends SIGINT to the kernel's process group before every shutdown; a kernel that is between
    # two messages then logs "ERROR | KeyboardInterrupt caught in kernel" in a successful job. A child process in
    # that group records whether the interrupt came.
    interrupted = tmp_path / "interrupted"
    child = ("import signal, time\n"
             f"signal.signal(signal.SIGINT, lambda *_: open({str(interrupted)!r}, 'w').close())\n"
             "print('ready', flush=True)\ntime.sleep(3)")  # fmt: skip
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            f"import subprocess, sys\nchild = subprocess.Popen([sys.executable, '-c', {child!r}],"
            " stdout=subprocess.PIPE)\nchild.stdout.readline()"
        ),  # fmt: skip
    ]
    nbformat.write(notebook, tmp_path / "child.ipynb")
    workflow.execute(tmp_path / "child.ipynb", tmp_path / "out.ipynb", {"x": 2})
    time.sleep(1)  # the child's handler
    assert (tmp_path / "out.ipynb").exists()
    assert not interrupted.exists()


def test_profiles_and_column_filter():
    assert set(PROFILES) == {"smoke", "demo", "quick", "paper"}
    demo = get_profile("demo")
    assert workflow.plan("demo").notebooks == ["01_train", "02_qualitative", "03_quantitative", "08_metric_controls"]
    assert workflow.plan("demo", notebooks="02_qualitative").notebooks == ["02_qualitative"]
    assert [c.label for c in demo.columns] == ["cifar10/cnn"] and demo.columns[0].controls_images >= 30
    paper = get_profile("paper")
    assert len(paper.columns) == 6 and all(c.epochs == 50 and c.train_size is None for c in paper.columns)
    assert all(c.deletion_images is None and c.appendix_images is None for c in paper.columns)
    assert [c.id for c in paper.select(["cifar10/cnn"])] == ["cifar10_cnn"]
    assert not any(c.pretrained for c in get_profile("quick").columns)
    with pytest.raises(ValueError, match="no column"):
        paper.select(["mnist/cnn"])
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("fast")


def test_tables_from_records(tmp_path):
    profile = get_profile("paper")
    write_record(tmp_path, "train", "cifar10_cnn", {"test_accuracy": 0.61234, "epochs": 50, "train_images": 50000,
                                                    "test_images": 10000, "data_source": "x"})  # fmt: skip
    curves = {k: {"auc": 0.1 + i / 100, "allegiance": [1.0], "deleted": [0.0]}
              for i, k in enumerate(["black/original", "black/positive", "black/active", "white/original",
                                     "white/negative", "white/inactive"])}  # fmt: skip
    write_record(tmp_path, "deletion_test", "cifar10_cnn", {"images": 10000, "fractions": [0.0], "curves": curves})
    assemble(profile, tmp_path)
    md = (tmp_path / "tables" / "table2_black_deletion_auc.md").read_text()
    assert "| black/positive | 0.110 |" in md and "| black/positive (paper) | 0.14 | 0.11 |" in md
    tex = (tmp_path / "tables" / "table1_test_accuracy.tex").read_text()
    assert r"test accuracy & 0.6123 &" in tex and r"\begin{tabular}{lrrrrrr}" in tex
    csv_text = (tmp_path / "tables" / "table1_test_accuracy.csv").read_text()
    assert csv_text.splitlines()[1].startswith("test accuracy,0.61234,,")
    assert reproduce.main(["--profile", "paper", "--tables-only", "--figures-dir", str(tmp_path)]) == 0
    summary = (tmp_path / "README.md").read_text()
    assert "positive: AUC 0.110 vs original 0.100" in summary and "not lower" in summary
    assert "Caution" not in summary
    write_record(tmp_path, "train", "cifar10_cnn", {"test_accuracy": 0.15, "epochs": 1, "train_images": 10,
                                                    "test_images": 10, "data_source": "x"})  # fmt: skip
    # Side by side with the paper, ours minus theirs; every map kind here is against the paper's direction.
    assert "| cifar10/cnn | 0.6123 | 0.6307 | −0.0184 |" in summary
    assert "| cifar10/cnn | positive | 0.110 (n = 10000) | 0.14 | −0.030 |" in summary
    assert "| cifar10/cnn | inactive | 0.150 (n = 10000) | 0.15 | +0.000 |" in summary
    assert "- cifar10/cnn, black deletion: the positive map's AUC 0.110 is not below the original's 0.100 " \
           "(paper: 0.14 vs 0.23)." in summary  # fmt: skip
    assert summary.count("is not below the original's") == 4 and "weaker model" not in summary
    write_record(tmp_path, "train", "cifar10_cnn", {"test_accuracy": 0.15, "epochs": 1, "train_images": 10,
                                                    "test_images": 10, "data_source": "x"})  # fmt: skip
    reproduce.main(["--profile", "paper", "--tables-only", "--figures-dir", str(tmp_path)])
    summary = (tmp_path / "README.md").read_text()
    assert "**Caution:** test accuracy 0.150 is less than twice chance" in summary
    assert "- cifar10/cnn: data: x, 10 training images; a weaker model than the paper's (accuracy 0.1500 vs " \
           "0.6307); a model barely above chance" in summary  # fmt: skip
    for i, key in enumerate(["black/positive", "black/active", "white/negative", "white/inactive"]):
        curves[key]["auc"] = 0.05 + i / 100
    write_record(tmp_path, "deletion_test", "cifar10_cnn", {"images": 10000, "fractions": [0.0], "curves": curves})
    reproduce.main(["--profile", "paper", "--tables-only", "--figures-dir", str(tmp_path)])
    assert "Nowhere: in all 4 comparisons of these 1 columns" in (tmp_path / "README.md").read_text()


def test_missing_figures_are_named_for_the_notebooks_that_ran(tmp_path):
    column = get_profile("paper").columns[0]
    write_record(tmp_path, "train", column.id, {"test_accuracy": 0.6})
    write_record(tmp_path, "deletion_test", column.id, {"images": 1})
    (tmp_path / "fig_training_cifar10_cnn.png").write_bytes(b"x")
    (tmp_path / "fig_maps_cifar10_cnn.jpg").write_bytes(b"x")
    assert missing_figures(tmp_path, column) == ["fig_deletion_black_test_cifar10_cnn",
                                                 "fig_deletion_white_test_cifar10_cnn"]  # fmt: skip


def test_undefined_values_are_empty_in_csv_and_na_in_markdown_and_latex(tmp_path):
    profile = get_profile("paper")
    sanity = {"images": 4, "class_sensitivity": {"rectgrad": {"positive": 0.9, "negative": float("nan")}},
              "randomization": {"rectgrad": [{"layers": 1, "spearman": {"positive": 0.3, "negative": None},
                                              "ssim": {"positive": 0.4, "negative": None}}]}}  # fmt: skip
    write_record(tmp_path, "sanity", "cifar10_cnn", sanity)
    assemble(profile, tmp_path)
    for suffix in (".csv", ".md", ".tex"):
        text = (tmp_path / "tables" / f"tableS_sanity_checks{suffix}").read_text()
        assert "nan" not in text.lower().replace("tanh", "") and "None" not in text
    with open(tmp_path / "tables" / "tableS_sanity_checks.csv") as file:
        rows = {row["row"]: row for row in csv.DictReader(file)}
    assert rows["rectgrad/negative class sensitivity"]["cifar10/cnn"] == ""
    assert rows["rectgrad/negative randomised"]["cifar10/cnn"] == ""
    assert rows["rectgrad/positive class sensitivity"]["cifar10/cnn"] == "0.9"
    md = (tmp_path / "tables" / "tableS_sanity_checks.md").read_text()
    assert "| rectgrad/negative class sensitivity | n/a | n/a |" in md
    tex = (tmp_path / "tables" / "tableS_sanity_checks.tex").read_text()
    assert r"rectgrad/negative randomised & n/a & n/a" in tex


def test_the_runner_materializes_from_the_archives_first(tmp_path, capsys):
    with pytest.raises(ValueError, match="no materialize.py in"):
        reproduce.materialize(tmp_path, ["cifar10"])
    assert reproduce.main(["--profile", "smoke", "--archives", str(tmp_path), "--only", "cifar10/cnn"]) == 1
    assert f"no materialize.py in {tmp_path}" in capsys.readouterr().err


def test_auto_profile_is_paper_with_cuda_and_quick_without(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    profile, why = reproduce.choose_profile("auto")
    assert profile == "quick" and "no CUDA" in why and "PROFILE=paper" in why
    assert reproduce.choose_profile("smoke") == ("smoke", "as requested")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    assert reproduce.choose_profile("auto") == ("paper", "CUDA is available (NVIDIA H200): the exact protocol")
    assert reproduce.choose_profile("auto", "cpu")[0] == "quick"
    # The runner says which profile it chose, and why, before it starts.
    assert reproduce.main(["--tables-only", "--figures-dir", str(tmp_path)]) == 0
    assert (tmp_path / "README.md").read_text().startswith("# Results of the `paper` profile")
    assert capsys.readouterr().out.startswith("profile auto → paper: CUDA is available (NVIDIA H200)")
    assert "PROFILE ?= auto" in (paths.REPO_ROOT / "Makefile").read_text()


def test_run_record_names_the_device_and_versions(monkeypatch):
    monkeypatch.delenv("SIGNED_SALIENCY_COMMIT", raising=False)
    record = workflow.run_record({"01_train": 12.34}, "cpu")
    assert record["wall_seconds"] == 12.3 and record["device"].startswith("cpu: ") and "cores" in record["device"]
    assert record["torch"] == torch.__version__ and record["signed_saliency"] == signed_saliency.__version__
    assert record["commit"] == "unknown" or len(record["commit"].split("+")[0]) == 12
    monkeypatch.setenv("SIGNED_SALIENCY_COMMIT", "0123456789ab")  # a copied tree's .git may be stale
    assert workflow.run_record({"01_train": 1.0}, "cpu")["commit"] == "0123456789ab"
    # Rerunning some notebooks keeps the others' times, and names every device involved.
    earlier = {**record, "notebooks": {"01_train": {"seconds": 10.0, "device": "NVIDIA H100"},
                                       "06_sanity_checks": {"seconds": 5.0, "device": "NVIDIA H100"}}}  # fmt: skip
    merged = workflow.run_record({"06_sanity_checks": 2.0}, "cpu", earlier)
    assert merged["wall_seconds"] == 12.0 and merged["device"] == f"NVIDIA H100 and {record['device']}"
    assert merged["notebooks"]["01_train"] == {"seconds": 10.0, "device": "NVIDIA H100"}
