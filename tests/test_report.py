"""The report layer: no import circle in the library, each record read once, the README written once with
its wall time, and the committed tables and READMEs regenerated to the byte."""

import ast
import json
import pathlib
import shutil
import time

import pytest

from signed_saliency import paths, records, report, workflow
from signed_saliency.profiles import get_profile

LIBRARY = paths.REPO_ROOT / "lib" / "signed_saliency"


def library_imports() -> dict[str, set[str]]:
    """Each library module's imports of other library modules, at module level or inside functions."""
    graph = {}
    for source in LIBRARY.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("signed_saliency"):
                found.add(node.module.removeprefix("signed_saliency").lstrip(".") or None)
                if node.module == "signed_saliency":
                    found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name.removeprefix("signed_saliency.") for a in node.names
                             if a.name.startswith("signed_saliency."))  # fmt: skip
        graph[source.stem] = {name for name in found if name and name != source.stem and name != "__init__"}
    return graph


def test_the_library_has_no_import_circle():
    graph = library_imports()
    assert {"records", "tables", "verdicts", "report", "workflow"} <= graph.keys()
    modules = {m for m in graph if (LIBRARY / f"{m}.py").exists()}
    state, path = {}, []

    def visit(module):  # depth-first: reaching a module still on the path closes a circle
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph.get(module, set()) & modules):
            if state.get(imported) == "open":
                pytest.fail("import circle: " + " → ".join(path[path.index(imported) :] + [imported]))
            if imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(modules):
        if module not in state:
            visit(module)
    assert "workflow" not in graph["tables"] | graph["report"] | graph["records"]  # the circle this split removed


def test_the_circle_detector_sees_a_circle(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("from signed_saliency.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from signed_saliency import a\n")
    monkeypatch.setattr(pathlib.Path, "glob", lambda self, pattern: iter([tmp_path / "a.py", tmp_path / "b.py"]))
    assert library_imports() == {"a": {"b"}, "b": {"a"}}


def test_no_library_file_exceeds_450_lines():
    lengths = {f.name: len(f.read_text().splitlines()) for f in LIBRARY.glob("*.py")}
    assert max(lengths.values()) <= 450, {k: v for k, v in lengths.items() if v > 450}


def copy_of(profile, tmp_path):
    source = paths.FIGURES_DIR / profile
    copied = tmp_path / profile
    shutil.copytree(source, copied)  # figures included: the README lists them and names the missing ones
    return source, copied


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_the_tables_job_regenerates_the_committed_readme_and_tables_to_the_byte(profile, tmp_path, monkeypatch):
    monkeypatch.delenv(workflow.INVOCATION_ENV, raising=False)
    source, copied = copy_of(profile, tmp_path)
    before = {p.relative_to(copied): p.read_bytes() for p in copied.rglob("*") if p.is_file()}
    written = workflow.tables_job(profile, copied)
    assert copied / "README.md" in written and len(written) > 3
    after = {p.relative_to(copied): p.read_bytes() for p in copied.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()  # nothing new, nothing lost
    changed = sorted(str(k) for k in after if after[k] != before[k])
    assert changed == [], f"regenerated files differ from the committed ones in {source}: {changed}"


def test_each_record_is_read_once_and_the_readme_written_once_with_the_wall_time(tmp_path, monkeypatch):
    _, copied = copy_of("quick", tmp_path)
    reads, writes = {}, []
    real_read = pathlib.Path.read_text

    def counting_read(self, *args, **kwargs):
        if self.suffix == ".json" and copied in self.parents:
            reads[self] = reads.get(self, 0) + 1
        return real_read(self, *args, **kwargs)

    real_write = report.atomic_write_text
    monkeypatch.setattr(pathlib.Path, "read_text", counting_read)
    monkeypatch.setattr(report, "atomic_write_text", lambda path, text: (writes.append(path), real_write(path, text)))
    chosen = workflow.plan("quick", figures_dir=copied, build_dir=tmp_path / "build")
    started = {**workflow.invocation(chosen, 2), "started": time.time() - 65.0}
    monkeypatch.setenv(workflow.INVOCATION_ENV, json.dumps(started))
    for run in chosen.runs[:2]:  # these two ran in this invocation: their run records are newer than its start
        run.record("run").touch()
    workflow.tables_job("quick", copied)
    assert max(reads.values()) == 1  # no record read twice
    own = sorted((copied / "results").glob("*.json"))  # every record of the profile's own seed, the wall time's too
    seeded = sorted(p for p in copied.glob("seed*/results/*.json") if p.name.startswith(records.SEEDED_KINDS))
    assert len(own) > 20 and len(seeded) >= 12 and set(reads) == {*own, *seeded}
    assert writes == [copied / "README.md"]
    record = records.read_wall_time(copied)
    assert 65.0 <= record["wall_seconds"] < 600 and record["jobs_at_once"] == 2
    assert record["runs"] == [r.label for r in chosen.runs[:2]]
    minutes = f"{record['wall_seconds'] / 60:.1f}"
    assert f"The last `reproduce` run took **{minutes} minutes** of wall time" in (copied / "README.md").read_text()


def test_a_column_without_records_gets_none_not_an_error(tmp_path):
    profile = get_profile("smoke")
    found = records.load(profile.columns, tmp_path)
    assert found.wall_time is None
    assert all(v is None for kinds in found.own.values() for v in kinds.values())
    assert found.of("train", profile.columns) == [None] * len(profile.columns)


def test_the_readme_names_the_numerics_and_warns_where_they_differ(tmp_path):
    from signed_saliency.report import write_summary

    profile = get_profile("quick")
    machine = {"mode": "reproducible", "cpu": "AMD EPYC", "avx2": True, "avx512f": True, "amx": False,
               "capability": "AVX2", "threads": 2, "torch": "2.14.1", "onednn": "3.12.0"}  # fmt: skip
    first, second = profile.columns[0], profile.columns[1]
    records.write_record(tmp_path, "train", first.id, {"numerics": machine})
    records.write_record(tmp_path, "run", first.id, {"wall_seconds": 1.0, "notebooks": {
        "01_train": {"seconds": 1.0, "device": "cpu", "numerics": "reproducible"}}})  # fmt: skip
    text = write_summary(profile, tmp_path).read_text()
    assert "Every model here was trained under the same numerics: reproducible, AVX2 kernels, 2 threads, " \
           "AMD EPYC (AVX-512)." in text and "Every notebook ran under the `reproducible` mode." in text  # fmt: skip
    records.write_record(
        tmp_path, "train", second.id, {"numerics": {**machine, "mode": "fast", "capability": "AVX512"}}
    )
    text = write_summary(profile, tmp_path).read_text()
    assert "**The models here were trained under different numerics**" in text
    assert f"- fast, AVX512 kernels, 2 threads, AMD EPYC (AVX-512): {second.label}" in text
    records.write_record(tmp_path, "train", second.id, {})  # trained before numerics were recorded
    text = write_summary(profile, tmp_path).read_text()
    assert f"- not recorded: {second.label}" in text
    assert "## Numerics" not in write_summary(profile, tmp_path / "empty").read_text()


def test_the_readme_findings_are_what_the_committed_records_say(tmp_path):
    from signed_saliency import readme

    text = (paths.REPO_ROOT / "README.md").read_text()
    assert readme.with_block(text) == text, "the README's findings block is stale: python -m signed_saliency.readme"
    block = readme.findings_block()
    assert block[2].startswith("| cifar10/cnn (0.600) | -0.145 [-0.161, -0.130], n = 500: **resolved**; carried by "
                               "fill |")  # fmt: skip
    # A claim that is not resolved names no carrier, even where its effects are resolved.
    assert "| 0.022 [-0.014, 0.059], n = 200: not resolved |" in block[4] and block[4].startswith("| imagenette/cnn")
    assert ("- cifar10/cnn, black deletion: the original (sign-blind) map is no better than a random map, AUC 0.233 "
            "[0.213, 0.253] against 0.236 ± 0.002") in "\n".join(block)  # fmt: skip
    with pytest.raises(ValueError, match="no <!-- findings:quick --> … <!-- /findings --> block"):
        readme.with_block("# a README without the markers")
    # The run-time line: the last invocation's wall time and runs, read here straight from its record.
    wall = json.loads((paths.FIGURES_DIR / "quick" / "results" / "workflow.json").read_text())
    (line,) = readme.runtime_block()
    full = wall.get("last_complete", wall)  # after an ONLY=... rerun, the last full run's time leads
    minutes, jobs = full["wall_seconds"] / 60, full["jobs_at_once"]
    last_run = "last run in full" if full is not wall else "last run"
    assert f"took **{minutes:.1f} min** of wall time when {last_run}, {jobs} jobs" in line
    assert ", ".join(full["runs"]) in line and full["finished"][:10] in line
    if full is not wall:
        assert f"since then {', '.join(wall['runs'])} alone ran in {wall['wall_seconds'] / 60:.1f} min" in line
    with pytest.raises(ValueError, match="no <!-- runtime:quick --> … <!-- /runtime --> block"):
        readme.with_block(text.replace("<!-- runtime:quick -->", ""))
