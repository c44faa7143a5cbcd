"""The documentation is tested: runnable snippets run, every page builds and is reachable,
and a real browser renders the site."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# A fenced block right after this marker is executed by the tests, in page order, in one
# scratch directory per page (so a later block can use an earlier block's run).
MARKER = "<!-- runnable -->"
BLOCK = re.compile(re.escape(MARKER) + r"\s*```(\w+)[^\n]*\n(.*?)```", re.S)


def runnable_blocks() -> list[tuple[str, list[tuple[str, str]]]]:
    pages = []
    for page in sorted(DOCS.rglob("*.md")):
        blocks = BLOCK.findall(page.read_text())
        if blocks:
            pages.append((str(page.relative_to(DOCS)), blocks))
    return pages


PAGES = runnable_blocks()


def test_the_docs_mark_runnable_snippets() -> None:
    kinds = {lang for _, blocks in PAGES for lang, _ in blocks}
    assert {"bash", "python"} <= kinds


@pytest.mark.parametrize(("page", "blocks"), PAGES, ids=[p for p, _ in PAGES])
def test_runnable_snippets_run(page: str, blocks: list[tuple[str, str]], tmp_path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    for lang, code in blocks:
        if lang == "python":
            result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=600)
        else:
            lines = [line for line in code.splitlines() if line.strip()]
            script = "set -e\n" + "\n".join(line.split(" #")[0] for line in lines)
            result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{page}:\n{code}\n{result.stderr[-2000:]}"


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    import yaml

    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run([str(mkdocs), "build", "--strict", "-q", "-d", str(out)],
                            cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    return out, _nav_pages(config["nav"])


def test_every_page_in_the_navigation_is_built_and_linked(site) -> None:
    out, pages = site
    home = (out / "index.html").read_text()
    for page in pages:
        html = out / (page[:-3] + "/index.html" if page != "index.md" else "index.html")
        assert html.is_file(), page
        link = "." if page == "index.md" else page[:-3] + "/"
        assert f'href="{link}"' in home, f"{page} is not linked from the navigation"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.mark.skipif(_chromium() is None,
                    reason="needs Debian's chromium (.ci/run installs it: apt-get install chromium)")
def test_a_real_browser_renders_the_site(site, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    out, _ = site
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    failed: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=_chromium(),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--no-first-run", "--disable-sync"])
            page = browser.new_page()
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
            for path, expected in (("/", "zoo of generative models"),
                                   ("/models/vae/", "reparameterisation trick")):
                page.goto(base + path, wait_until="networkidle")
                assert expected in page.inner_text("body"), path
                page.screenshot(path=str(tmp_path / (path.strip("/").replace("/", "-") or "home")
                                         ) + ".png", full_page=True)
            browser.close()
    finally:
        server.shutdown()
    assert failed == [], failed


def test_the_configuration_reference_lists_every_field_and_preset() -> None:
    import dataclasses
    import importlib.util

    from genzoo.config import TrainConfig
    from genzoo.registry import get_registry

    path = Path(__file__).resolve().parents[1] / "scripts" / "docs_hooks.py"
    spec = importlib.util.spec_from_file_location("docs_hooks", path)
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = hooks.on_page_markdown(f"intro\n{hooks.MARKER}\n", None, None, None)
    assert hooks.MARKER not in page
    for f in dataclasses.fields(TrainConfig):
        assert f"| `{f.name}` |" in page
    for model in get_registry().models.values():
        assert f"## {model.name}" in page
        for f in dataclasses.fields(model.config):
            assert f"| `{f.name}` |" in page, (model.name, f.name)
        for preset in model.presets:
            assert f"| `{preset}`" in page
    assert "| `epochs` | `int or None` | `none` | passes over the training split" in page
    from genzoo.config import LIMITS, MAX_NEW_TOKENS

    for name, most in LIMITS.items():  # the bounds TrainConfig.validate checks
        assert f"`{name}` {most:,}" in page
    assert f"at most {MAX_NEW_TOKENS:,} characters" in page
    assert "Every whole number in a model's config (below) is at most 1,000,000,000" in page
    # Every row has its four cells: a pipe in a comment is escaped, and a comment
    # continued on the next line is read whole.
    for row in (line for line in page.splitlines() if line.startswith("| `")):
        cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
        assert len(cells) in (2, 4), row  # presets: 2 cells; fields: 4
    assert "| auto \\| cpu \\| cuda \\| cuda:N \\| mps |" in page
    assert "(mirrored in the decoder); conv: one dense layer of hidden[0] units |" in page
