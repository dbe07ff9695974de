"""bertviz's head view against the attention lab's: page bytes and time to first render in headless Chromium.

    python bench/bertviz_vs_attention.py [--sizes 128,512,2048] [--bertviz-sizes 128,256,512,2048]
                                         [--ours-only 4096] [--repeats 5] [--workdir bench/out/bertviz-bench]

bertviz is never a dependency of latentatlas. This script makes its own environment once, under
bench/out (git-ignored), and runs bertviz only from there:

- ``bench/out/venv-bertviz``: ``python -m venv``, then ``pip install torch==2.13.0`` (the CPU wheel from
  /opt/wheels when it is there, so pip does not fetch a CUDA build), then ``pip install bertviz==1.4.1``
  with its dependencies (transformers, IPython, …);
- ``bench/out/bertviz-js``: ``npm install requirejs@2.3.6 d3@5.7.0 jquery@2.1.0``, the scripts bertviz's
  page loads from a CDN (require.js 2.3.6; d3 5.7.0 and jQuery 2.0.0 through its require config; jQuery
  2.0.0 was never published to npm, so the nearest 2.x, 2.1.0, stands in). They are served from the same
  local server as the page, and the page's three CDN URLs are rewritten to them.

The model: a random-weight BERT shaped like BERT-base (12 layers × 12 heads) with a small hidden size (96,
so d_head 8: the forward is cheap, while the payload, layers × heads × T², is BERT-base's), 4,096 positions
and MiniLM's tokenizer, saved with save_pretrained; both sides load that folder. 4,096 tokens at 12 × 12
would be 4.8 GB of float16 attention, over the 4 GiB ``attention show`` writes for one text, so 4,096 is
measured (for ours only) on the same model with 6 layers (MiniLM's 6 × 12). The input: the built-in
corpus (standard-library docstrings) cut so that it is exactly T tokens with [CLS] and [SEP].

Per size:
- ours: ``latentatlas attention show MODEL --text-file F --no-serve --atlas A`` (timed), then one
  ``latentatlas serve A --port P`` for all sizes, the page opened at ``/?run=RUN&view=head&sample=ID``;
  rendered = ``body[data-ready=head]`` and ``#head-canvas[data-lines]`` (its lines drawn);
- bertviz: in its venv, the model run with ``output_attentions=True`` (eager) and
  ``head_view(attention, tokens, html_action='return')``, the HTML written to a file as bertviz writes it
  and once more with the CDN URLs rewritten, served by a static server on 127.0.0.1; rendered = its SVG's
  ``#attention`` group exists (``renderVis`` draws every line in one synchronous call, so the first
  animation frame that sees the group sees all H × T² lines). Generation runs under an address-space limit
  and a timeout, and is not attempted when an estimate of its peak memory (≈ 231 bytes per attention
  weight, measured: see ``estimate_bytes``) exceeds ``--bertviz-mem-gb``. bertviz's page holds every weight's JSON
  twice (~44 bytes a weight): head_view.js names its PYTHON_PARAMS marker in the code and again in a
  comment, and both are replaced.

Time to first render is read inside the page: ``performance.now()`` (milliseconds since navigation start)
two animation frames after the render condition first holds (a rAF poller installed before any page
script runs), so the frame is on screen. Page bytes: the sum of ``encodedBodySize`` over the navigation
and every resource the page loaded (Resource Timing). Every run gets a fresh Chromium with a fresh
profile (/usr/bin/chromium, headless, --no-sandbox --disable-gpu --disable-background-networking
--disable-component-update --no-first-run), every request that is not to 127.0.0.1 is aborted (and
counted), each attempt is bounded by ``--timeout`` seconds and ``--browser-mem-gb`` of resident memory
summed over the browser's processes (found by their profile folder and killed by pid when over). A size
where bertviz fails once is not retried. The page as bertviz writes it (CDN URLs intact) is opened once
per size too: offline it never renders (bertviz issue #53).

Results are printed as markdown rows and written to WORKDIR/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
VENV = OUT / "venv-bertviz"
JS = OUT / "bertviz-js"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-dev-shm-usage"]
CDN = {  # bertviz 1.4.1's CDN URLs → the local copies
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js": "/js/requirejs/require.js",
    "https://cdnjs.cloudflare.com/ajax/libs/d3/5.7.0/d3.min": "/js/d3/dist/d3.min",
    "https://cdnjs.cloudflare.com/ajax/libs/jquery/2.0.0/jquery.min": "/js/jquery/dist/jquery.min",
}
LAYERS, HEADS, HIDDEN, POSITIONS = 12, 12, 96, 4096


# -- the peer's environment ----------------------------------------------------------------------------------

def setup() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        wheels = sorted(Path("/opt/wheels").glob("torch-2.13.0+cpu-*.whl")) if Path("/opt/wheels").is_dir() else []
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", str(wheels[0]) if wheels else "torch==2.13.0"], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "bertviz==1.4.1"], check=True)
    if not (JS / "node_modules" / "d3" / "dist" / "d3.min.js").exists():
        JS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(JS), "--no-audit", "--no-fund", "--silent",
                        "requirejs@2.3.6", "d3@5.7.0", "jquery@2.1.0"], check=True)
    return py


# -- the model and the texts (in this project's venv: plain transformers) ------------------------------------

def write_model(folder: Path, layers: int) -> Path:
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import BertConfig, BertModel

    from latentatlas.models.hf import builtin_path

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=HEADS,
                     intermediate_size=4 * HIDDEN, max_position_embeddings=POSITIONS)
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    src = builtin_path("minilm")
    for f in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / f, folder / f)
    tc = json.loads((src / "tokenizer_config.json").read_text())
    tc["model_max_length"] = POSITIONS
    (folder / "tokenizer_config.json").write_text(json.dumps(tc))
    return folder


def write_text(path: Path, model: Path, n: int) -> Path:
    """The built-in corpus cut so that the tokenizer gives exactly ``n`` tokens, [CLS] and [SEP] included."""
    from transformers import AutoTokenizer

    from latentatlas.data.text import load_corpus

    tok = AutoTokenizer.from_pretrained(str(model))
    text, docs = "", iter(load_corpus("builtin"))
    while len(tok(text)["input_ids"]) < n + 8:
        text += (" " if text else "") + next(docs).text
    enc = tok(text, return_offsets_mapping=True)
    cut = enc["offset_mapping"][n - 2][1]  # the end of the (n − 2)th word piece
    for _ in range(50):
        got = len(tok(text[:cut])["input_ids"])
        if got == n:
            break
        cut += -1 if got > n else 1
    else:
        raise SystemExit(f"could not cut the corpus to {n} tokens")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[:cut], encoding="utf-8")
    return path


# -- bertviz's page, generated in its own venv --------------------------------------------------------------

BERTVIZ = r"""
import json, sys, time, resource
import torch
from transformers import AutoTokenizer, BertModel
from bertviz import head_view
model_dir, text_file, out = sys.argv[1:4]
t0 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(model_dir)
model = BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
enc = tok(open(text_file, encoding="utf-8").read(), return_tensors="pt")
with torch.inference_mode():
    attention = model(**enc, output_attentions=True).attentions
tokens = tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
t1 = time.perf_counter()
html = head_view(attention, tokens, html_action="return").data
t2 = time.perf_counter()
with open(out, "w", encoding="utf-8") as f:
    f.write(html)
print(json.dumps({"tokens": len(tokens), "forward_s": t1 - t0, "head_view_s": t2 - t1, "write_s": time.perf_counter() - t2,
                  "bytes": len(html.encode("utf-8")), "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bertviz_page(py: Path, model: Path, text: Path, out: Path, mem_gb: float, timeout: float) -> dict:
    def limit():
        lim = int(mem_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    t0 = time.perf_counter()
    try:
        p = subprocess.run([str(py), "-c", BERTVIZ, str(model), str(text), str(out)], capture_output=True, text=True,
                           timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        return {"ok": False, "why": f"generation took over {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"ok": False, "why": f"generation failed (exit {p.returncode}): {tail[:200]}", "wall_s": wall}
    got = json.loads(p.stdout.strip().splitlines()[-1])
    html = out.read_text(encoding="utf-8")
    local = html
    for url, path in CDN.items():
        local = local.replace(url, path)
    out.with_name(out.stem + "-local.html").write_text(local, encoding="utf-8")
    return {"ok": True, "wall_s": wall, **got}


def estimate_bytes(n_weights: int) -> int:
    """Peak memory of bertviz's head_view for ``n_weights`` attention weights, beyond the model. Where it goes:
    tolist()'s Python floats and list slots (32 bytes each), json.dumps' text (~22 bytes each), then three
    strings that each hold that text twice (~44 bytes: head_view.js names PYTHON_PARAMS twice, in the code
    and in a comment, and ``str.replace`` fills both), made one after the other (the replace, the script
    tag, the page): ~186 bytes a weight. Measured (2026-12-03): peak RSS 0.87 GiB at 128 tokens, 2.37 GiB at
    256 and 8.47 GiB at 512 (12 × 12 heads), 231 bytes a weight between 256 and 512; that slope is used."""
    return n_weights * 231


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def static_server(root: Path) -> tuple[ThreadingHTTPServer, int]:
    (root / "js").mkdir(exist_ok=True)
    for name in ("requirejs", "d3", "jquery"):
        link = root / "js" / name
        if not link.exists():
            link.symlink_to(JS / "node_modules" / name)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


# -- ours ---------------------------------------------------------------------------------------------------

def cli(*args: str) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "latentatlas"), *args]


def ours_sample(atlas: Path, model: Path, text: Path, n: int) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run(cli("attention", "show", str(model), "--text-file", str(text), "--no-serve", "--atlas", str(atlas)),
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"ok": False, "why": " ".join((p.stderr or p.stdout).split())[:300], "wall_s": wall}
    m = re.search(r"into run (\S+) \(sample ([0-9a-f]{12})", " ".join(p.stdout.split()))
    if not m:
        raise SystemExit(f"could not read the run and sample from: {p.stdout}")
    run, sid = m.group(1), m.group(2)
    meta = json.loads((atlas / "runs" / run / "attention" / "samples" / sid / "sample.json").read_text())
    assert meta["n_tokens"] == n, (meta["n_tokens"], n)
    size = (atlas / "runs" / run / "attention" / "samples" / sid / "probs.safetensors").stat().st_size
    return {"ok": True, "run": run, "sample": sid, "wall_s": wall, "capture_s": meta["seconds"], "file_bytes": size}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(atlas: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    with open(log, "wb") as f:  # a file, not a pipe nobody reads (a full pipe would stall the server)
        proc = subprocess.Popen(cli("serve", str(atlas), "--port", str(port)), stdout=f, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=2):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"latentatlas serve exited: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
    raise SystemExit("latentatlas serve did not answer")


# -- the browser --------------------------------------------------------------------------------------------

POLLER = """(() => { const done = () => { %s };
  const loop = () => { let ok = false; try { ok = done(); } catch (e) {}
    if (ok) requestAnimationFrame(() => requestAnimationFrame(() => { window.__rendered = performance.now(); }));
    else requestAnimationFrame(loop); };
  requestAnimationFrame(loop); })();"""
OURS_DONE = "return document.body && document.body.dataset.ready === 'head' && document.querySelector('#head-canvas') && document.querySelector('#head-canvas').dataset.lines !== undefined;"
BERTVIZ_DONE = "return !!document.querySelector('#vis svg #attention');"
# did bertviz's big inline script run? (its first statement sets require's d3 path)
BERTVIZ_PROBE = ("{readyState: document.readyState, requirejs: typeof requirejs, script_ran: typeof requirejs !== 'undefined' && "
                 "!!requirejs.s.contexts._.config.paths.d3, svg: !!document.querySelector('#vis svg')}")
BYTES = """() => { const e = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
  return [e.reduce((s, x) => s + x.encodedBodySize, 0), e.length]; }"""


def browser_tree(profile: str) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if profile.encode() in f.read():
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total


def measure(pw, url: str, done: str, timeout: float, mem_gb: float, count: str, probe: str | None = None) -> dict:
    """One fresh Chromium: navigation → rendered; bytes; what was blocked or went wrong; peak resident memory.
    After a timeout, ``probe`` (a JS expression) says what state the page was left in."""
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    state = {"peak": 0, "killed": False, "stop": False}

    def watch():
        while not state["stop"]:
            pids = browser_tree(profile)
            used = rss_bytes(pids)
            state["peak"] = max(state["peak"], used)
            if used > mem_gb * (1 << 30):
                state["killed"] = True
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return
            time.sleep(0.25)

    ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                viewport={"width": 1280, "height": 860})
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    blocked, errors, crashed = [], [], []
    out: dict = {}
    try:
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1:")
                   else (blocked.append(route.request.url), route.abort())[1])
        page.on("console", lambda m: errors.append(m.text[:200]) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)[:200]))
        page.on("crash", lambda *_: crashed.append(True))
        page.add_init_script(POLLER % done)
        page.goto(url, wait_until="commit", timeout=timeout * 1000)
        page.wait_for_function("() => window.__rendered !== undefined", timeout=timeout * 1000, polling=250)
        out["ms"] = page.evaluate("() => window.__rendered")
        out["bytes"], out["entries"] = page.evaluate(BYTES)
        out["drawn"] = page.evaluate(count)
        out["ok"] = True
    except Exception as exc:  # a timeout, a crashed tab, a killed browser
        out["ok"] = False
        why = "killed: resident memory over the bound" if state["killed"] else ("tab crashed" if crashed else type(exc).__name__)
        out["why"] = f"{why} ({' '.join(str(exc).split())[:160]})"
        if probe and not state["killed"] and not crashed:
            try:  # a page whose main thread is still busy does not answer within 10 s
                out["state"] = page.wait_for_function(f"() => JSON.stringify({probe})", timeout=10_000).json_value()
            except Exception as e2:
                out["state"] = f"no answer in 10 s ({type(e2).__name__})"
    finally:
        state["stop"] = True
        try:
            ctx.close()
        except Exception:
            pass
        for pid in browser_tree(profile):  # anything left of this browser
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(profile, ignore_errors=True)
    out.update(peak_rss_mb=state["peak"] / 2**20, blocked=sorted(set(blocked)), errors=errors[:5])
    return out


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def runs(ok: list[dict]) -> str:
    return ", ".join(f"{x['ms'] / 1e3:.2f}" for x in ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="128,512,2048", help="token counts for both sides")
    ap.add_argument("--bertviz-sizes", default="128,256,512,2048", help="the sizes bertviz is tried at")
    ap.add_argument("--ours-only", default="4096", help="sizes for ours alone (the 6-layer model)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300, help="seconds for one page to render")
    ap.add_argument("--gen-timeout", type=float, default=900, help="seconds for bertviz to write one page")
    ap.add_argument("--bertviz-mem-gb", type=float, default=12, help="address-space bound for bertviz's generation")
    ap.add_argument("--browser-mem-gb", type=float, default=8, help="resident-memory bound for one browser")
    ap.add_argument("--workdir", default=str(OUT / "bertviz-bench"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    bv_sizes = [int(s) for s in args.bertviz_sizes.split(",") if s]
    only = [int(s) for s in args.ours_only.split(",") if s]
    all_sizes = sorted(set(sizes) | set(bv_sizes) | set(only))
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    py = setup()
    m12 = write_model(work / "models" / "bert-12x12", LAYERS)
    m6 = write_model(work / "models" / "bert-6x12", 6)
    texts = {n: write_text(work / "texts" / f"{n}.txt", m12, n) for n in all_sizes}
    results: dict = {"machine": f"{os.cpu_count()} cores", "sizes": {}}

    # generation, both sides
    atlas = work / "atlas"
    pages = work / "pages"
    pages.mkdir(exist_ok=True)
    ours, bv = {}, {}
    for n in all_sizes:
        got = ours_sample(atlas, m12, texts[n], n)
        if not got["ok"] and n in only:
            print(f"ours, 12 × 12, {n:,} tokens: {got['why']}")
            results.setdefault("refused", {})[n] = got["why"]
            got = ours_sample(atlas, m6, texts[n], n)
            got["model"] = "6 × 12"
        ours[n] = got
        print(f"ours: attention show, {n:,} tokens: {got}", flush=True)
        if n in bv_sizes:
            weights = LAYERS * HEADS * n * n
            est = estimate_bytes(weights)
            if est > args.bertviz_mem_gb * (1 << 30):
                bv[n] = {"ok": False, "why": f"not attempted: {weights:,} weights, estimated peak {est / 1e9:.0f} GB "
                                              f"(JSON alone ≈ {weights * 22 / 1e9:.1f} GB) > the {args.bertviz_mem_gb:g} GiB bound"}
            else:
                bv[n] = bertviz_page(py, m12, texts[n], pages / f"bertviz-{n}.html", args.bertviz_mem_gb, args.gen_timeout)
            print(f"bertviz: head_view, {n:,} tokens: {bv[n]}", flush=True)

    srv, sport = static_server(pages)
    proc, port = serve(atlas, work / "serve.log")
    from playwright.sync_api import sync_playwright

    count_ours = "() => Number(document.querySelector('#head-canvas').dataset.lines)"
    count_bv = "() => document.querySelectorAll('#vis svg #attention line').length"
    try:
        with sync_playwright() as pw:
            for n in all_sizes:
                row: dict = {"ours_gen": ours.get(n), "bertviz_gen": bv.get(n), "ours": [], "bertviz": []}
                o = ours.get(n)
                url_o = f"http://127.0.0.1:{port}/?run={o['run']}&view=head&sample={o['sample']}" if o and o["ok"] else None
                b = bv.get(n)
                url_b = f"http://127.0.0.1:{sport}/bertviz-{n}-local.html" if b and b["ok"] else None
                if b and b["ok"]:  # the page as bertviz writes it, once: offline it cannot load require.js
                    row["bertviz_as_written"] = measure(pw, f"http://127.0.0.1:{sport}/bertviz-{n}.html", BERTVIZ_DONE,
                                                        min(args.timeout, 30), args.browser_mem_gb, count_bv, BERTVIZ_PROBE)
                    print(f"  bertviz as written, {n:,}: {row['bertviz_as_written']}", flush=True)
                for r in range(args.repeats):
                    if url_o:
                        row["ours"].append(measure(pw, url_o, OURS_DONE, args.timeout, args.browser_mem_gb, count_ours))
                        print(f"  ours {n:,} run {r + 1}: {row['ours'][-1]}", flush=True)
                    if url_b and all(x["ok"] for x in row["bertviz"]):
                        row["bertviz"].append(measure(pw, url_b, BERTVIZ_DONE, args.timeout, args.browser_mem_gb, count_bv, BERTVIZ_PROBE))
                        print(f"  bertviz {n:,} run {r + 1}: {row['bertviz'][-1]}", flush=True)
                results["sizes"][n] = row
                (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        srv.shutdown()

    print("\n| tokens | ours: first render (median, runs) | ours: page bytes | bertviz: first render | bertviz: page bytes | ratio bertviz/ours (time; bytes) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, row in results["sizes"].items():
        ok_o = [x for x in row["ours"] if x["ok"]]
        ok_b = [x for x in row["bertviz"] if x["ok"]]
        so = f"{med(ok_o, 'ms') / 1e3:.2f} s ({runs(ok_o)})" if ok_o else "–"
        bo = f"{med(ok_o, 'bytes') / 1e6:.3f} MB" if ok_o else "–"
        if ok_b and len(ok_b) == len(row["bertviz"]):
            sb = f"{med(ok_b, 'ms') / 1e3:.2f} s ({runs(ok_b)})"
            bb = f"{med(ok_b, 'bytes') / 1e6:.1f} MB"
            ratio = f"{med(ok_b, 'ms') / med(ok_o, 'ms'):.1f}; {med(ok_b, 'bytes') / med(ok_o, 'bytes'):,.0f}" if ok_o else "–"
        else:
            why = (row["bertviz"][-1]["why"] if row["bertviz"] else (row["bertviz_gen"] or {}).get("why", "not tried"))
            sb, bb, ratio = f"stops: {why}", "–", "–"
        print(f"| {n:,} | {so} | {bo} | {sb} | {bb} | {ratio} |")
    print(f"\nresults: {work / 'results.json'}")


if __name__ == "__main__":
    main()
