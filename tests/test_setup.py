"""The set-up promises: pins agree, the README's two commands, CI calls the test command."""

import re
import tomllib

import yaml

from signed_saliency import __version__, paths

ROOT = paths.REPO_ROOT


def pip_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return project, dict(r.split("==") for r in requirements)


def test_every_dependency_is_pinned_and_environment_yml_agrees():
    project, pins = pip_pins()
    assert project["version"] == __version__
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip_section,) = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    conda_pins = dict(r.split("==") for r in pip_section if "==" in r)
    assert conda_pins == pins
    assert "-e ." in pip_section


def test_every_imported_package_is_pinned():
    # A package the code or the tests import must be installed by `make`, or a fresh clone fails.
    import ast
    import sys
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    pinned = {name.lower().replace("_", "-") for name in pip_pins()[1]}
    imported = set()
    for folder in ("lib", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    ours = {"signed_saliency", "benchmarks", "conftest"}
    third_party = {m for m in imported - ours - set(sys.stdlib_module_names)}
    unpinned = {}
    for module in sorted(third_party):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & pinned:
            unpinned[module] = sorted(names)
    assert not unpinned, f"imported but pinned nowhere (add to pyproject.toml and environment.yml): {unpinned}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make reproduce", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: venv data browser", makefile, re.M) and re.search(
        r"^reproduce: venv data", makefile, re.M
    )
    assert re.search(r"^demo: venv ", makefile, re.M)


def test_every_module_has_a_docstring():
    import importlib
    import pkgutil

    import signed_saliency

    for module in pkgutil.iter_modules(signed_saliency.__path__):
        imported = importlib.import_module(f"signed_saliency.{module.name}")
        assert imported.__doc__ and len(imported.__doc__.split()) > 20, module.name


def test_readme_quotes_the_committed_paper_accuracies():
    import json

    readme = (ROOT / "README.md").read_text()
    for column in ("cifar10_cnn", "cifar10_resnet18", "imagenette_cnn", "imagenette_resnet18"):
        record = json.loads((ROOT / "figures" / "paper" / "results" / f"train_{column}.json").read_text())
        assert f"{record['test_accuracy']:.4f}" in readme, column


FIGURES_BUDGET_BYTES = 25_000_000  # everything committed under figures/: it travels with every clone
FIGURE_FILE_LIMIT_BYTES = 2_000_000
MAP_GRID_STEMS = ("fig_maps_", "appendixA_maps_", "fig_sanity_examples_")


def committed_figures():
    import subprocess

    listed = subprocess.run(["git", "ls-files", "figures"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout.strip():
        return [ROOT / line for line in listed.stdout.splitlines() if (ROOT / line).exists()]
    return [p for p in (ROOT / "figures").rglob("*") if p.is_file() and "smoke" not in p.parts]


def test_committed_figures_fit_the_budget():
    files = committed_figures()
    assert files, "no committed figures found"
    sizes = {p.relative_to(ROOT).as_posix(): p.stat().st_size for p in files}
    total = sum(sizes.values())
    assert total <= FIGURES_BUDGET_BYTES, f"figures/ holds {total / 1e6:.1f} MB, over the 25 MB budget"
    too_big = {name: size for name, size in sizes.items() if size > FIGURE_FILE_LIMIT_BYTES}
    assert not too_big, f"figure files over 2 MB: {too_big}"
    # PDFs only for vector plots: a map grid (hundreds of embedded images) is a JPEG or a PNG.
    raster_pdfs = [
        name for name in sizes if name.endswith(".pdf") and name.rsplit("/", 1)[-1].startswith(MAP_GRID_STEMS)
    ]
    assert not raster_pdfs, f"map grids committed as PDF: {raster_pdfs}"
