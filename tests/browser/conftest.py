"""Fixtures for the browser suite: a headless Chromium, a tiny real atlas, a live server.

Chromium is Debian's package (/usr/bin/chromium), driven through the ``playwright`` Python package;
``playwright install`` is never run (it downloads browsers). Without the browser the suite fails under
CI (env var CI set) and under ``make test`` (which installs chromium first and sets
LATENTATLAS_REQUIRE_BROWSER); a bare ``pytest`` elsewhere skips it with the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
RUN = "r"
N_EVAL = 200
LATENT_DIM = 3


def _missing(reason: str):
    # `make test` sets LATENTATLAS_REQUIRE_BROWSER (it installs chromium first); CI sets CI
    if os.environ.get("CI") or os.environ.get("LATENTATLAS_REQUIRE_BROWSER"):
        pytest.fail(f"chromium not installed (required under CI and by make test): {reason}", pytrace=False)
    pytest.skip(f"chromium not installed: {reason}")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole suite.

    Playwright's ``launch`` refuses a ``--user-data-dir`` argument (playwright 1.65: "Pass user_data_dir
    parameter to 'browser_type.launch_persistent_context(user_data_dir, **kwargs)' instead of specifying
    '--user-data-dir' argument"). It already gives every launch a fresh temporary profile of its own,
    deleted on close, so plain ``launch`` is used, and each test gets its own context (no shared state).
    (Debian's /usr/bin/chromium wrapper may print "[: ...: unexpected operator" from
    /etc/chromium.d/dev-shm; harmless: --disable-dev-shm-usage is passed anyway.)
    """
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} does not exist (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _missing(f"the playwright package is missing ({exc}); pip install -e '.[test]'")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run",
                  "--disable-dev-shm-usage"],
        )
    except Exception:
        pw.stop()
        raise
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser, request):
    """A fresh context and page per test; every request URL the page makes is kept in ``page.requests``."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    p = context.new_page()
    p.set_default_timeout(10_000)
    p.requests = []
    p.console_errors = []
    p.on("request", lambda req: p.requests.append(req.url))
    p.on("console", lambda msg: p.console_errors.append(msg.text) if msg.type == "error" else None)
    p.on("pageerror", lambda exc: p.console_errors.append(str(exc)))
    yield p
    context.close()


@pytest.fixture(scope="session")
def atlas_root(tmp_path_factory, bars):
    """A real atlas with one tiny trained and evaluated VAE run, ``r`` (latent_dim 3, 200 eval rows)."""
    from latentatlas.labs.vae.jobs import evaluate_run
    from latentatlas.labs.vae.jobs import train_run

    tmp = tmp_path_factory.mktemp("browser-atlas")
    x, factors = bars.make(512, positions=12, widths=4, size=16)
    npz = bars.save(tmp / "bars16.npz", x, factors)
    root = tmp / "atlas"
    run, _ = train_run("vae", str(npz), latent_dim=LATENT_DIM, steps=150, batch_size=16, name=RUN,
                       atlas=str(root), progress=False)
    evaluate_run(run, n=N_EVAL, projections=["pca"], progress=False)
    return root


@pytest.fixture(scope="session")
def server(atlas_root):
    """The explorer served by uvicorn in a daemon thread; yields its base URL (no trailing slash)."""
    yield from _serve(atlas_root)


SAE_RUN = "s"
SAE_GPT2_RUN = "gs"


@pytest.fixture(scope="session")
def sae_atlas_root(tmp_path_factory, tiny_tf):
    """An atlas with a tiny BERT's activation store and an evaluated TopK SAE ``s`` (128 features), a
    sweep ``sw``, and a tiny GPT-2's store with an evaluated SAE ``gs``."""
    from latentatlas.labs.sae.jobs import capture_store, evaluate_sae, sweep_sae, train_sae

    root = tmp_path_factory.mktemp("sae-browser-atlas")
    capture_store(tiny_tf["bert"], 1, tiny_tf["corpus"], tokens=1200, name="acts", atlas=root, shard_tokens=200, batch_size=4, progress=False)
    run, _ = train_sae("acts", "topk", expansion=4, k=4, steps=80, batch_size=64, lr=3e-3, name=SAE_RUN, atlas=root, progress=False)
    evaluate_sae(run, progress=False)
    sweep_sae("acts", "topk", [2, 8], name="sw", atlas=root, progress=False, expansion=2, steps=30, batch_size=64, lr=3e-3)
    # a causal LM's SAE too, whose feature pages add the logit effect
    capture_store(tiny_tf["gpt2"], 1, tiny_tf["corpus"], tokens=800, name="gacts", atlas=root, shard_tokens=200, batch_size=4, progress=False)
    gpt, _ = train_sae("gacts", "topk", expansion=2, k=4, steps=40, batch_size=64, name=SAE_GPT2_RUN, atlas=root, progress=False)
    evaluate_sae(gpt, progress=False, downstream=False)
    return root


@pytest.fixture(scope="session")
def sae_server(sae_atlas_root):
    yield from _serve(sae_atlas_root)


def _serve(root):
    from latentatlas.server.app import create_app
    from latentatlas.server.background import run_in_thread

    base, srv, thread = run_in_thread(create_app(root))
    yield base
    srv.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def shot(page, request):
    """``shot(label="", on=None)`` saves a screenshot to test-artifacts/screenshots/<test>[-label].png.

    ``on`` is another page (full-page shot) or a locator (that element only); default: the test's page.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def take(label: str = "", on=None) -> Path:
        path = SCREENSHOTS / (f"{stem}-{label}.png" if label else f"{stem}.png")
        target = on if on is not None else page
        is_page = hasattr(target, "goto")
        target.screenshot(path=str(path), **({"full_page": True} if is_page else {}))
        return path

    return take


@pytest.fixture(scope="session")
def frontend():
    """The front-end tests need the static app: skipped locally without it, a failure under CI."""
    index = REPO / "src" / "latentatlas" / "server" / "static" / "index.html"
    if not index.is_file():
        reason = f"front end not written yet ({index.relative_to(REPO)} is missing)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return index
