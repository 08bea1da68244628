"""The explorer: driven through its controls in Python, and in a real browser through Voila."""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from signed_saliency import paths
from signed_saliency.deletion import deletion_masks
from signed_saliency.explorer import Explorer, finished_checkpoints
from signed_saliency.saliency import saliency_maps
from signed_saliency.training import TrainConfig, fit

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def checkpoints(data_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    if os.environ.get("SIGNED_SALIENCY_SCREENSHOT_CHECKPOINT"):  # the README's screenshot shows a profile's model
        (folder / Path(os.environ["SIGNED_SALIENCY_SCREENSHOT_CHECKPOINT"]).name).symlink_to(
            os.environ["SIGNED_SALIENCY_SCREENSHOT_CHECKPOINT"])  # fmt: skip
        return folder
    fit(TrainConfig(epochs=1, batch_size=32, train_size=3000, test_size=200), data_root=data_root,
        checkpoint_dir=folder, progress=False)  # fmt: skip
    return folder


@pytest.fixture
def explorer(checkpoints, data_root):
    return Explorer(checkpoints, data_root)


def expected_maps(explorer, target):
    image = explorer.images.batch(slice(explorer.view.index, explorer.view.index + 1))
    return saliency_maps(explorer.model, image, target=target)


def test_opens_on_the_first_test_image_with_its_maps(explorer):
    assert explorer.message.value == ""
    assert len(finished_checkpoints(explorer.model_select.value.parent)) == 1
    assert explorer.view.index == 0 and explorer.images.split == "test"
    assert explorer.view.target == explorer.view.predicted
    for name, value in expected_maps(explorer, explorer.view.predicted).items():
        torch.testing.assert_close(explorer.view.maps[name], value[0])
    assert "image #0" in explorer.prediction.value and all(p.value for p in explorer.panels.values())


def test_each_control_changes_what_it_should(explorer):
    panels = {k: p.value for k, p in explorer.panels.items()}
    explorer.index_input.value = 12
    assert explorer.view.index == 12 and "image #12" in explorer.prediction.value
    assert explorer.panels["image"].value != panels["image"]

    other = (explorer.view.predicted + 1) % 10
    explorer.target_select.value = other
    assert explorer.view.target == other and f"maps for <b>{explorer.images.class_names[other]}</b>" in (
        explorer.prediction.value
    )
    for name, value in expected_maps(explorer, other).items():
        torch.testing.assert_close(explorer.view.maps[name], value[0])
    explorer.target_select.value = "label"
    assert explorer.view.target == explorer.view.label

    maps_before, active_png = dict(explorer.view.maps), explorer.panels["active"].value
    explorer.overlay_check.value = True
    assert explorer.panels["active"].value != active_png and explorer.view.maps == maps_before


def test_deletion_preview_matches_the_library(explorer):
    explorer.map_select.value = "active"
    explorer.fill_select.value = "white"
    text = explorer.deletion_text.value
    explorer.fraction_slider.value = 0.5
    assert explorer.deletion_text.value != text and "white deletion of 50% by the active map" in (
        explorer.deletion_text.value
    )
    mask = deletion_masks(explorer.view.maps["active"][None], [0.5])[0, 0]
    assert explorer.view.deleted_pixels == int(mask.sum()) <= 512
    image = explorer.images.batch(slice(explorer.view.index, explorer.view.index + 1))
    with torch.no_grad():
        expected = explorer.model(torch.where(mask, 1.0, image)).argmax(1).item()
    assert explorer.view.altered_predicted == expected
    assert "top-5" in explorer.top5.value and explorer.top5.value.count("<tr>") == 5


def test_picking_images(explorer):
    explorer.wrong_button.click()
    assert explorer.view.predicted != explorer.view.label and explorer.message.value == ""
    explorer.correct_button.click()
    assert explorer.view.predicted == explorer.view.label
    explorer.class_select.value = 3
    explorer.by_class_button.click()
    first = explorer.view.index
    explorer.by_class_button.click()
    assert explorer.view.label == 3 and explorer.view.index > first
    explorer.split_select.value = "train"
    assert explorer.images.split == "train" and explorer.view.index <= len(explorer.images) - 1


def test_clear_messages_instead_of_tracebacks(tmp_path, checkpoints):
    empty = Explorer(tmp_path)
    assert "No trained model yet" in empty.message.value and "make reproduce" in empty.message.value
    missing = Explorer(checkpoints, data_root=tmp_path)
    assert "data for this model is missing" in missing.message.value and "materialize.py" in missing.message.value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(checkpoints, data_root, tmp_path, *options):
    """The explorer served by Voila on a free loopback port: (url, server process)."""
    port = free_port()
    env = {
        **os.environ,
        paths.CHECKPOINTS_ENV: str(checkpoints),
        paths.DATA_ENV: str(data_root),
        "JUPYTER_PATH": str(paths.REPO_ROOT / "share" / "jupyter"),
    }  # as `make explore` serves it
    voila_bin = os.path.join(os.path.dirname(sys.executable), "voila")
    notebook = str(paths.NOTEBOOKS_DIR / "05_explore.ipynb")
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "jupyter"), "trust", notebook], check=True,
                   capture_output=True)  # fmt: skip
    server = subprocess.Popen(
        [voila_bin, notebook, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", "--template=signed-saliency",
         "--KernelManager.transport=ipc", *options],
        env=env, stdout=open(tmp_path / "voila.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=60).close()  # noqa: S310 - our own server on loopback
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "voila.log").read_text()
                time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture
def voila(checkpoints, data_root, tmp_path):
    with served(checkpoints, data_root, tmp_path) as (url, _):
        yield url


def browser_context(playwright, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for this test: apt-get install chromium (make test does it)"
    return playwright.chromium.launch_persistent_context(
        tempfile.mkdtemp(dir=tmp_path), executable_path=chromium, headless=True,
        args=["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"],
        viewport={"width": 1400, "height": 1000},
    )  # fmt: skip


def kernels_of(server) -> list[int]:
    """The kernel processes a Voila server started (its children running ipykernel)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            command = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields.get("PPid", "0")) == server.pid and b"ipykernel" in command:
            found.append(int(status.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts kernel processes through /proc (Linux)")
def test_a_closed_tab_kernel_is_culled_with_the_make_explore_settings(checkpoints, data_root, tmp_path):
    from playwright.sync_api import sync_playwright

    makefile = (paths.REPO_ROOT / "Makefile").read_text()
    options = re.findall(r"--MappingKernelManager\.(\w+)=", makefile)
    assert set(options) == {"cull_idle_timeout", "cull_interval", "cull_connected"}  # what `make explore` passes
    quick = [
        "--MappingKernelManager.cull_idle_timeout=3",
        "--MappingKernelManager.cull_interval=1",
        "--MappingKernelManager.cull_connected=False",
    ]  # the same settings, in seconds instead of minutes
    with served(checkpoints, data_root, tmp_path, *quick) as (url, server), sync_playwright() as playwright:
        browser = browser_context(playwright, tmp_path)
        page = browser.new_page()
        page.goto(url, timeout=120_000)
        page.wait_for_selector(".ss-prediction:has-text('image #0')", timeout=120_000)
        assert len(kernels_of(server)) >= 1
        browser.close()  # the tab is gone; its kernel must not stay alive
        deadline = time.monotonic() + 60
        while kernels_of(server) and time.monotonic() < deadline:
            time.sleep(1)
        assert not kernels_of(server), (tmp_path / "voila.log").read_text()[-2000:]


def test_explorer_in_a_real_browser(voila, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = browser_context(playwright, tmp_path)
        page = browser.new_page()
        outside = []
        page.on("request", lambda request: outside.append(request.url) if "127.0.0.1" not in request.url
                and not request.url.startswith("data:") else None)  # fmt: skip
        page.goto(voila, timeout=120_000)
        page.wait_for_selector(".ss-prediction:has-text('image #0')", timeout=120_000)
        first_text = page.inner_text(".ss-prediction")
        first_image = page.locator(".widget-image").first.get_attribute("src")

        page.fill(".ss-index input", "5")
        page.press(".ss-index input", "Enter")
        page.wait_for_selector(".ss-prediction:has-text('image #5')", timeout=30_000)
        assert page.inner_text(".ss-prediction") != first_text
        assert page.locator(".widget-image").first.get_attribute("src") != first_image

        deletion = page.inner_text(".ss-deletion")
        assert "of 10%" in deletion
        page.locator(".ss-fraction .noUi-handle").focus()
        for _ in range(20):  # the slider's step is 0.01
            page.keyboard.press("ArrowRight")
        page.wait_for_selector(".ss-deletion:has-text('of 30%')", timeout=30_000)
        assert page.inner_text(".ss-deletion") != deletion
        assert not outside, f"the page asked for files from outside the machine: {outside}"
        page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        # How the README's screenshot is made: SIGNED_SALIENCY_SCREENSHOT=docs/explorer.png with
        # SIGNED_SALIENCY_SCREENSHOT_CHECKPOINT naming the quick profile's CIFAR-10 CNN checkpoint.
        if os.environ.get("SIGNED_SALIENCY_SCREENSHOT"):
            page.screenshot(path=os.environ["SIGNED_SALIENCY_SCREENSHOT"], full_page=True)
        browser.close()
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    log = (tmp_path / "voila.log").read_text()
    assert "Kernel started" in log and "without encryption" not in log and "not trusted" not in log
    makefile = (paths.REPO_ROOT / "Makefile").read_text()
    assert "--KernelManager.transport=ipc" in makefile and "jupyter trust notebooks/05_explore.ipynb" in makefile


def test_the_gradient_cache_evicts_the_least_recently_used_within_its_size():
    from signed_saliency.explorer_state import GRADIENT_CACHE_BYTES, GradientCache

    entry = lambda: (torch.zeros(10), torch.zeros(1000))  # 4,040 bytes  # noqa: E731
    cache = GradientCache(max_bytes=3 * 4040)
    for key in "abc":
        cache.put((key,), entry())
    assert len(cache) == 3 and cache.bytes == 3 * 4040
    assert cache.get(("a",)) is not None  # "a" is now the most recently used
    cache.put(("d",), entry())
    assert cache.get(("b",)) is None and all(cache.get((k,)) is not None for k in "acd")
    assert cache.bytes <= cache.max_bytes
    cache.put(("huge",), (torch.zeros(10_000),))  # larger than the whole cache: kept alone, the rest evicted
    assert len(cache) == 1 and cache.get(("huge",)) is not None
    imagenette = 10 * 3 * 224 * 224 * 4  # one image's all-class gradients at 224×224
    assert 35 <= GRADIENT_CACHE_BYTES // imagenette <= 45  # "about 40 Imagenette images", as documented


def test_the_deletion_preview_updates_before_the_caption(checkpoints):
    # The caption names the image: if it changed first, the page would briefly show the new image's caption
    # over the old image's deletion preview.
    explorer = Explorer(checkpoints)
    order = []
    explorer.deletion_text.observe(lambda change: order.append("preview"), "value")
    explorer.altered_image.observe(lambda change: order.append("preview"), "value")
    explorer.prediction.observe(lambda change: order.append("caption"), "value")
    explorer.index_input.value = 3
    assert "caption" in order and "preview" in order
    assert order.index("preview") < order.index("caption"), order


def test_the_state_is_driven_and_checked_without_a_widget(checkpoints, data_root):
    # A fresh interpreter: the state module must not pull ipywidgets in.
    probe = "import sys, signed_saliency.explorer_state; print('ipywidgets' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == (
        "False\n"
    )
    from signed_saliency.explorer_state import ExplorerState, finished_checkpoints

    state = ExplorerState(data_root)
    with pytest.raises(ValueError, match="no model loaded"):
        state.load_split("test")
    state.load_model(finished_checkpoints(checkpoints)[0][1])
    images = state.load_split("test")
    with pytest.raises(ValueError, match="split must be one of"):
        state.load_split("validation")
    with pytest.raises(ValueError, match="outside this split"):
        state.show_image(len(images))
    state.show_image(5)
    assert state.view.label == int(images.labels[5])
    other = (state.view.predicted + 1) % 10
    state.show_maps(other)
    expected = saliency_maps(state.model, images.batch(slice(5, 6)), target=other)
    for name, value in expected.items():
        torch.testing.assert_close(state.view.maps[name], value[0])
    with pytest.raises(ValueError, match="target must be"):
        state.show_maps(10)
    altered, mask = state.preview_deletion("negative", "black", 0.25)
    assert torch.equal(mask, deletion_masks(state.view.maps["negative"][None], [0.25])[0, 0])
    assert torch.equal(altered[0][:, mask], torch.zeros(3, int(mask.sum())))
    with torch.inference_mode():
        assert state.view.altered_predicted == state.model(altered).argmax(1).item()
    with pytest.raises(ValueError, match="fraction must be in"):
        state.preview_deletion("negative", "black", 1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        state.preview_deletion("signed", "black", 0.1)
    labels = images.labels
    after = state.next_of_class(3, 5)
    assert labels[after] == 3 and after > 5 and not (labels[6:after] == 3).any()
    wrong = state.random_index(correct=False)
    with torch.inference_mode():
        assert state.model(images.batch(slice(wrong, wrong + 1))).argmax(1).item() != labels[wrong]
    assert len(state.gradients) == 1  # one image visited: its gradients computed once, reused by every call
