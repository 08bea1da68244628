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


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    assert [line for line in first_block.splitlines() if line.strip()] == ["make reproduce", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: venv data browser", makefile, re.M) and re.search(
        r"^reproduce: venv data", makefile, re.M
    )


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
