"""`archlab serve`: every route and bad input through FastAPI's TestClient, Ctrl-C on a real
server (exit 130), and the page in headless Chromium: upload an image, see the prediction."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="pip install -e '.[serve]'")
pytestmark = pytest.mark.xdist_group("serve-runs")  # one worker builds the module's runs

from fastapi.testclient import TestClient  # noqa: E402

from archlab.serve import Limits, create_app  # noqa: E402
from tests.helpers import tiny_runs  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tiny_runs(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def client(runs: dict[str, Path]) -> TestClient:
    return TestClient(create_app(list(runs.values())))


def names(client: TestClient) -> dict[str, str]:
    return {r["task"] if r["task"] != "sales" or r["horizon"] == 1 else "horizon": r["name"]
            for r in client.get("/health").json()["runs"]}  # fmt: skip


def png(size: tuple[int, int] = (12, 10), seed: int = 0, noise: bool = True) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    arr = arr if noise else arr * 0  # one colour: a few hundred bytes at any size
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def image_file(runs: dict[str, Path]) -> Path:
    return sorted((runs["images"].parent.parent / "imgs" / "dog").iterdir())[0]


def one_line_error(r: Any, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    assert "Traceback" not in r.text
    for w in words:
        assert w in body["error"], body["error"]


def test_health_page_and_openapi(client: TestClient) -> None:
    h = client.get("/health").json()
    assert h["status"] == "ok" and len(h["runs"]) == 4
    img = next(r for r in h["runs"] if r["task"] == "images")
    assert img["classes"] == ["cat", "dog", "eel"] and img["predict"] == f"/{img['name']}/predict"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<form" in page.text and "http" not in page.text.replace('href="/', "")
    docs = client.get("/docs")  # the OpenAPI page, without external assets
    assert docs.status_code == 200 and "/openapi.json" in docs.text and "//" not in docs.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/{name}/predict", "/{name}/explain"} <= set(paths)
    assert not any(p.endswith("/") and p != "/" for p in paths)  # the slash forms are unlisted
    # Uptime checkers send HEAD; curl -F does not follow a 307, so a trailing slash answers.
    assert client.head("/").status_code == client.head("/health").status_code == 200
    n = names(client)
    slash = client.post(f"/{n['text']}/predict/", json={"texts": ["great crew"]},
                        follow_redirects=False)  # fmt: skip
    assert slash.status_code == 200 and slash.json()["predictions"][0]["label"]


def test_predict_and_explain_every_kind(client: TestClient, runs: dict[str, Path]) -> None:
    from archlab import runner

    n = names(client)
    path = image_file(runs)
    r = client.post(f"/{n['images']}/predict", files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"][0]
    _, task, model = runner.restore_task(runs["images"])
    want = task.predict(model, [str(path)])[0]
    assert got["label"] == want["label"] and got["input"] == path.name
    assert got["probabilities"]["dog"] == pytest.approx(want["dog"], abs=1e-5)
    r = client.post(f"/{n['images']}/explain", files={"file": (path.name, path.read_bytes())})
    e = r.json()["predictions"][0]["explanation"]
    overlay = Image.open(io.BytesIO(base64.b64decode(e["overlay_png"])))
    assert overlay.size == (512, 256) and "Grad-CAM" in e["method"]

    r = client.post(f"/{n['text']}/explain", json={"texts": ["great flight thanks"]})
    p = r.json()["predictions"][0]
    assert p["explanation"]["words"] == ["great", "flight", "thanks"]
    assert len(p["explanation"]["attributions"]) == 3
    assert sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    form = client.post(f"/{n['text']}/predict", data={"text": "great flight thanks"})
    assert form.json()["predictions"][0]["label"] == p["label"]
    # predict's answer: the network blended with the run's TF-IDF model where it chose so.
    _, ttask, tmodel = runner.restore_task(runs["text"])
    want = ttask.predict(tmodel, ["great flight thanks"])[0]["probabilities"]
    got = form.json()["predictions"][0]["probabilities"]
    assert got == pytest.approx(want, abs=1e-5)

    hist = runs["sales"].parent.parent / "walmart" / "train.csv"
    _, task, model = runner.restore_task(runs["sales"])
    want = [x["forecast"] for x in task.predict(model, [str(hist)])]
    r = client.post(f"/{n['sales']}/predict", files={"file": ("h.csv", hist.read_bytes())})
    assert [x["forecast"] for x in r.json()["forecasts"]] == pytest.approx(want)
    import pandas as pd

    rows = json.loads(pd.read_csv(hist).to_json(orient="records"))
    r = client.post(f"/{n['sales']}/predict", json={"history": rows})
    assert [x["forecast"] for x in r.json()["forecasts"]] == pytest.approx(want)
    # What predict says on stderr reaches the client: a stray row a year late, dropped.
    stray = {**rows[-1], "Date": "2030-01-04"}
    r = client.post(f"/{n['sales']}/predict", json={"history": [*rows, stray]})
    assert [x["forecast"] for x in r.json()["forecasts"]] == pytest.approx(want)
    assert any(note.startswith("the history: dropped 1 row(s) on 1 later date(s) (2030-01-04")
               for note in r.json()["notes"]), r.json()["notes"]  # fmt: skip
    r = client.post(f"/{n['horizon']}/predict", json={})  # the H steps after the run's data
    assert len(r.json()["forecasts"]) == 6 * 8
    # Rows to forecast (where a known covariate's future values would go), JSON or a CSV file.
    some = r.json()["forecasts"][:3]
    rows = [{k: f[k] for k in ("Store", "Dept", "Date")} for f in some]
    for kw in (
        {"json": {"rows": rows}},
        {"files": {"rows": ("r.csv", pd.DataFrame(rows).to_csv(index=False).encode())}},
    ):
        got = client.post(f"/{n['horizon']}/predict", **kw).json()["forecasts"]
        assert [(g["Date"], g["forecast"]) for g in got] == pytest.approx(
            [(f["Date"], f["forecast"]) for f in some])  # fmt: skip
    assert client.post(f"/{n['horizon']}/predict").json() == r.json()  # no body: the same
    # A next-step run (horizon 1) too: the step after its data, as `archlab predict RUN`.
    r = client.post(f"/{n['sales']}/predict", json={})
    assert [x["forecast"] for x in r.json()["forecasts"]] == pytest.approx(
        [x["forecast"] for x in task.predict(model, [])]
    )
    about = {x["name"]: x for x in client.get("/health").json()["runs"]}
    assert about[n["sales"]]["needs_history"] is False
    one_line_error(client.post(f"/{n['sales']}/explain", json={}), 400, "archlab explain")


def test_bad_requests_get_one_line_json_errors(client: TestClient, runs: dict[str, Path]) -> None:
    n = names(client)
    img, txt = n["images"], n["text"]
    one_line_error(client.post(f"/{img}/predict", files={"file": ("a.txt", b"hello")}), 400,
                   "a.txt", "not a readable image")  # fmt: skip
    truncated = png()[:60]
    one_line_error(client.post(f"/{img}/predict", files={"file": ("t.png", truncated)}), 400,
                   "t.png")  # fmt: skip
    one_line_error(client.post(f"/{img}/predict", json={"texts": ["x"]}), 400, "multipart")
    one_line_error(client.post(f"/{txt}/predict", json={"texts": []}), 400, "texts")
    one_line_error(client.post(f"/{txt}/predict", json={"texts": ["fine", " "]}), 400,
                   "text 2 is empty")  # fmt: skip
    one_line_error(client.post(f"/{txt}/predict", json={"texts": [1]}), 400, "list of strings")
    one_line_error(client.post(f"/{txt}/predict", json=["a"]), 400, "JSON object")
    as_json, as_text = {"content-type": "application/json"}, {"content-type": "text/plain"}
    one_line_error(client.post(f"/{txt}/predict", content=b"{bad", headers=as_json), 400, "JSON")
    one_line_error(client.post(f"/{txt}/predict", content=b"x", headers=as_text), 415, "text/plain")
    one_line_error(client.post(f"/{txt}/explain", json={"texts": ["a"] * 9}), 400, "at most 8")
    one_line_error(client.post("/nope/predict", json={}), 404, "no run 'nope'")
    one_line_error(client.post("/predict", json={}), 404, "several runs")
    one_line_error(client.get("/nothing/here"), 404)
    one_line_error(client.post(f"/{n['sales']}/predict", files={"file": ("h.csv", b"a,b\n1,2\n")}),
                   400, "Weekly_Sales")  # fmt: skip


def test_limits_on_size_pixels_and_time(runs: dict[str, Path]) -> None:
    small = TestClient(create_app([runs["images"]], Limits(max_upload_bytes=2000,
                                                            max_pixels=400)))  # fmt: skip
    one_line_error(small.post("/predict", files={"file": ("big.png", png((300, 300)))}), 413,
                   "over the limit")  # fmt: skip
    # A small file whose header promises many pixels is refused before it is decoded.
    one_line_error(small.post("/predict", files={"file": ("wide.png", png((40, 30), noise=False))}),
                   413, "40x30 pixels")  # fmt: skip
    assert small.post("/predict", files={"file": ("ok.png", png((16, 16)))}).status_code == 200
    slow = TestClient(create_app([runs["images"]], Limits(timeout_s=1e-4)))
    one_line_error(slow.post("/explain", files={"file": ("ok.png", png())}), 503, "took over")


def test_batcher_groups_waiting_requests_and_routes_results() -> None:
    import threading

    from archlab.serve import Batcher

    sizes: list[int] = []
    gate = threading.Event()

    def run(items: list[int]) -> list[int]:
        gate.wait(5)  # the first batch holds the model while the others queue up
        sizes.append(len(items))
        return [10 * i for i in items]

    b = Batcher(run, threading.Lock(), max_rows=4)
    got: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, b.submit(i, 1)))
               for i in range(9)]  # fmt: skip
    for t in threads:
        t.start()
        time.sleep(0.02)
    gate.set()
    for t in threads:
        t.join(10)
    assert got == {i: 10 * i for i in range(9)}
    assert sum(sizes) == 9 and max(sizes) == 4 and sizes[0] == 1


def test_concurrent_requests_equal_one_at_a_time(runs: dict[str, Path]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    batched = TestClient(create_app([runs["images"], runs["text"]]))
    single = TestClient(create_app([runs["images"], runs["text"]], Limits(max_batch=1)))
    n = names(batched)
    images = sorted((runs["images"].parent.parent / "imgs").rglob("*.png"))[::5]
    texts = ["great flight", "delayed again", "ok", "thanks for nothing", "lost my bag"]

    def ask(client: TestClient, i: int) -> tuple[dict, dict]:
        img = images[i % len(images)]
        a = client.post(f"/{n['images']}/predict", files={"file": (img.name, img.read_bytes())})
        b = client.post(f"/{n['text']}/predict", json={"texts": texts[: 1 + i % 5]})
        return a.json()["predictions"], b.json()["predictions"]

    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda i: ask(batched, i), range(16)))
    for i, pair in enumerate(together):
        for got, want in zip(pair, ask(single, i), strict=True):
            assert [g["label"] for g in got] == [w["label"] for w in want]
            for g, w in zip(got, want, strict=True):
                for k, v in w["probabilities"].items():
                    assert g["probabilities"][k] == pytest.approx(v, abs=1e-5)


def test_serve_refuses_bad_arguments(tmp_path: Path, runs: dict[str, Path], capsys) -> None:
    from archlab.cli import main

    for args, words in (([str(tmp_path)], ["not a run directory (no config.yaml)"]),
                        ([str(tmp_path / "gone")], ["gone: no such run directory"]),
                        ([str(runs["text"]), "--port", "70000"], ["--port 70000"]),
                        ([str(runs["text"]), "--max-batch", "0"], ["--max-batch"])):  # fmt: skip
        assert main(["serve", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and all(w in err[0] for w in words), err
    # nan and inf as 0 is: one line, exit 2 (not a traceback, nor a server whose every
    # request "took over nan s").
    from archlab.errors import ArchlabError

    for bad in (float("nan"), float("inf")):  # before any CLI call could start a server
        with pytest.raises(ArchlabError, match="serve limits must be"):
            Limits(timeout_s=bad)
    for flag in ("--max-upload-mb", "--timeout"):
        for value in ("0", "nan", "inf", "-inf"):
            assert main(["serve", str(runs["text"]), flag, value]) == 2, (flag, value)
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("archlab: error: serve limits must be")
            assert flag in err[0], (flag, value, err)
    # A port in use: one line, before any "serving" line (uvicorn said its own and exit 3).
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", str(runs["text"]), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"archlab: error: --host 127.0.0.1 --port {port}: the address is in use "
                   "(another server?): stop it or choose another --port"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: list[Path], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "archlab", "serve", *map(str, runs), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"archlab serve exited: {proc.stderr.read()[-2000:]}")
            time.sleep(0.3)
    proc.kill()
    pytest.fail("archlab serve did not answer /health within 90 s")


def test_ctrl_c_stops_the_server_with_exit_130(runs: dict[str, Path]) -> None:
    port = free_port()
    proc = start_server([runs["text"]], port)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert f"127.0.0.1:{port}" in err and "archlab: interrupted" in err
    # the start line names the folder each route serves, and the routes (/NAME/ is no page)
    assert f"{runs['text']} as /" in err and "/predict and /" in err
    assert "Traceback" not in err


def test_a_run_folder_with_accents_gets_an_ascii_route(
    tmp_path: Path, runs: dict[str, Path]
) -> None:
    import shutil

    odd = tmp_path / "my run ünï 日本"
    shutil.copytree(runs["text"], odd)
    app = create_app([odd])
    assert list(app.state.runs) == ["my-run-uni"]


# --- the page in headless Chromium, driven over the DevTools protocol on a pipe ---
class Chromium:
    """Headless Chromium with --remote-debugging-pipe: DevTools commands as NUL-terminated JSON
    on fd 3, replies on fd 4 (no driver package, no port)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_r, self._to = os.pipe()
        self._from, from_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-dev-shm-usage", "--remote-debugging-pipe",
                 f"--user-data-dir={profile}", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_r} 4>&{from_w}', binary, *flags],
            pass_fds=(to_r, from_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.session = b"", 0, None

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._from, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str, width: int, height: int) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)  # fmt: skip
        self.call("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, seconds: float = 60) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")

    def upload(self, selector: str, path: Path) -> None:
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", files=[str(path)], nodeId=node)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._to)
        os.close(self._from)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (CI installs it: apt-get install chromium)")
    return found


def use_page(browser: Chromium, url: str, run: str, image: Path, width: int) -> str:
    """Open the page, choose ``run``, upload ``image``, submit; the label the page shows."""
    browser.open(url, width, 900)
    browser.wait_for("document.getElementById('run') && "
                     "document.getElementById('run').options.length > 0")  # fmt: skip
    browser.js(f"(() => {{ const s = document.getElementById('run'); s.value = {json.dumps(run)};"
               " s.dispatchEvent(new Event('change')); return true; })()")  # fmt: skip
    browser.upload("#file", image)
    browser.js("document.getElementById('go').click()")
    browser.wait_for("(document.getElementById('label') || {}).textContent || "
                     "document.getElementById('error').textContent")  # fmt: skip
    assert browser.js("document.getElementById('error').textContent") == ""
    assert browser.wait_for("(document.getElementById('overlay') || {}).naturalWidth") == 512
    return browser.js("document.getElementById('label').textContent")


def test_page_in_headless_chromium_shows_the_prediction(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    binary = chromium()
    port = free_port()
    proc = start_server([runs["images"], runs["text"], runs["sales"]], port)
    browser = Chromium(binary, tmp_path / "profile")
    try:
        url = f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"{url}health") as r:
            run = next(x["name"] for x in json.load(r)["runs"] if x["task"] == "images")
        image = image_file(runs)
        req = urllib.request.Request(f"{url}{run}/predict", data=_multipart(image),
                                     headers={"content-type": f"multipart/form-data; "
                                              f"boundary={BOUNDARY}"})  # fmt: skip
        with urllib.request.urlopen(req) as r:
            want = json.load(r)["predictions"][0]["label"]
        for width in (1280, 390):  # desktop, and a phone's width
            assert use_page(browser, url, run, image, width) == want
            shot = tmp_path / f"page-{width}.png"
            browser.screenshot(shot)
            pixels = np.asarray(Image.open(shot).convert("RGB"))
            assert pixels.shape[1] <= width and pixels.std() > 10  # drawn, not blank
            # Nothing wider than the viewport: no sideways scrolling.
            assert browser.js("document.documentElement.scrollWidth") <= width
        assert browser.js("document.getElementById('notes')") is None  # none in this answer
        page_shows_the_notes(browser, url, runs, tmp_path)
    finally:
        browser.close()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def page_shows_the_notes(browser: Chromium, url: str, runs: dict[str, Path], tmp_path: Path
                        ) -> None:  # fmt: skip
    """The answer's notes are shown under the result, as text, for every kind of answer."""
    import pandas as pd

    with urllib.request.urlopen(f"{url}health") as r:
        sales = next(x["name"] for x in json.load(r)["runs"] if x["task"] == "sales")
    # A sales history with a stray row a year late: predict drops it and says so.
    hist = pd.read_csv(runs["sales"].parent.parent / "walmart" / "train.csv")
    stray = hist.tail(1).assign(Date="2030-01-04")
    path = tmp_path / "history.csv"
    pd.concat([hist, stray]).to_csv(path, index=False)
    browser.js(f"(() => {{ const s = document.getElementById('run'); s.value = {json.dumps(sales)};"
               " s.dispatchEvent(new Event('change')); return true; })()")  # fmt: skip
    browser.upload("#csv", path)
    browser.js("document.getElementById('go').click()")
    shown = browser.wait_for("(document.getElementById('notes') || {}).textContent || "
                             "document.getElementById('error').textContent")  # fmt: skip
    assert shown.startswith("the history: dropped 1 row(s) on 1 later date(s) (2030-01-04"), shown
    assert browser.js("document.querySelectorAll('#result tbody tr').length") > 0
    # A text explanation toward another class than the blended label, and an image answer:
    # the same list, escaped (a note is text, never markup).
    note = "the explanations are of the network alone <b>x</b> & <img src=x>"
    for task, doc in (
        ("text", {"predictions": [{"label": "a", "probabilities": {"a": 0.6, "b": 0.4},
                                   "explanation": {"method": "ig", "class": "b", "words": ["hi"],
                                                   "tokens": ["hi"], "attributions": [0.5]}}],
                  "notes": [note, "second"]}),
        ("images", {"predictions": [{"label": "a", "probabilities": {"a": 1.0}}],
                    "notes": [note, "second"]}),
        ("sales", {"forecasts": [{"Store": 1, "forecast": 2.5}], "notes": [note, "second"]}),
    ):  # fmt: skip
        items = browser.js(f"(() => {{ render({{task: {json.dumps(task)}}}, {json.dumps(doc)}); "
                           "return [...document.querySelectorAll('#result #notes li')]"
                           ".map((li) => li.textContent); })()")  # fmt: skip
        assert items == [note, "second"], (task, items)
        assert browser.js("document.querySelector('#result b, #result img')") is None, task
        assert browser.js("document.getElementById('result').hidden") is False


BOUNDARY = "archlab-test-boundary"


def _multipart(path: Path) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


# --- bad input of one request, and runs that cannot be served ---
SURROGATE = b'{"texts": ["great \\ud83d"]}'  # a JavaScript client cut an emoji in half
AS_JSON = {"content-type": "application/json"}


def test_bad_json_texts_and_keys_get_one_line_400s(client: TestClient) -> None:
    n = names(client)
    img, txt, sales = n["images"], n["text"], n["horizon"]
    for action in ("predict", "explain"):
        body = b'{"texts": ["ok", "great \\ud83d"]}'
        one_line_error(client.post(f"/{txt}/{action}", content=body, headers=AS_JSON), 400,
                       "text 2 is not valid Unicode (a lone surrogate at character 7)")  # fmt: skip
    deep = b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    one_line_error(client.post(f"/{txt}/predict", content=deep, headers=AS_JSON), 400,
                   "nested too deeply")  # fmt: skip
    one_line_error(client.post(f"/{txt}/predict", json={"texts": ["a"], "foo": 1}), 400,
                   "unknown key 'foo'", "'texts'")  # fmt: skip
    one_line_error(client.post(f"/{sales}/predict", json={"texts": ["a"]}), 400,
                   "unknown key 'texts'", "'history', 'rows'")  # fmt: skip
    one_line_error(client.post(f"/{img}/predict", json={"texts": ["a"]}), 400,
                   "unknown key 'texts'", "multipart")  # fmt: skip
    one_line_error(client.post(f"/{sales}/predict", content=b'{"\\ud83d": 1}', headers=AS_JSON),
                   400, "unknown key '\\ud83d'")  # fmt: skip
    one_line_error(client.post(f"/{sales}/predict", content=b'{"rows": [{"Store": "\\ud83d"}]}',
                               headers=AS_JSON), 400, '"rows" is not valid Unicode')  # fmt: skip


def test_several_files_are_each_predicted_and_a_float_tiff_is_named(client: TestClient) -> None:
    img = names(client)["images"]
    r = client.post(f"/{img}/predict", files=[("file", ("a.png", png(seed=1))),
                                               ("file", ("b.png", png(seed=2)))])  # fmt: skip
    assert [p["input"] for p in r.json()["predictions"]] == ["a.png", "b.png"], r.text
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), dtype=np.float32), mode="F").save(buf, format="TIFF")
    one_line_error(client.post(f"/{img}/predict", files={"file": ("f.tif", buf.getvalue())}), 400,
                   "f.tif: 32-bit float pixels", "save it as 8- or 16-bit")  # fmt: skip


def test_unseen_series_rows_get_predicts_note(client: TestClient, runs: dict[str, Path],
                                              capsys) -> None:  # fmt: skip
    from archlab.cli import main

    h = names(client)["horizon"]
    some = client.post(f"/{h}/predict", json={}).json()["forecasts"][:2]
    rows = [{k: f[k] for k in ("Store", "Dept", "Date")} for f in some]
    rows += [{**r, "Store": 99} for r in rows]  # a store the run never saw
    got = client.post(f"/{h}/predict", json={"rows": rows}).json()
    assert [f["source"] for f in got["forecasts"]][2:] == ["baseline"] * 2
    note = "2 row(s) of 1 series without training history (e.g. 99, "
    assert any(x.startswith(note) for x in got["notes"]), got["notes"]
    import pandas as pd

    path = runs["horizon"].parent.parent / "rows_unseen.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert main(["predict", str(runs["horizon"]), "--file", str(path)]) == 0
    assert f"archlab: note: {note}" in capsys.readouterr().err


def _form(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart body of (field, filename or None for a text field, content) parts, written
    by hand: httpx leaves out an empty filename, which a browser sends for no file chosen."""
    body = b""
    for name, filename, content in parts:
        file = "" if filename is None else f'; filename="{filename}"'
        body += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{file}\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
        body += content + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def test_an_empty_upload_is_refused_not_answered_from_the_runs_own_data(
    client: TestClient, runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    from archlab.cli import main

    n = names(client)
    sales, img = n["sales"], n["images"]
    default = client.post(f"/{sales}/predict", json={}).json()
    # A named 0-byte file is an upload: refused as predict refuses the same file.
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert main(["predict", str(runs["sales"]), str(empty)]) == 2
    said = "the file is empty (expected a header line and rows)"
    assert capsys.readouterr().err.strip() == f"archlab: error: {empty}: {said}"
    for field, name in (("file", "the history"), ("history", "the history"), ("rows", "the rows")):
        body, headers = _form((field, "empty.csv", b""))
        one_line_error(client.post(f"/{sales}/predict", content=body, headers=headers), 400,
                       f"{name}: {said}")  # fmt: skip
    one_line_error(client.post(f"/{sales}/predict", content=b"", headers={"content-type":
                                                                          "text/csv"}),
                   400, f"the history: {said}")  # fmt: skip
    body, headers = _form(("file", "x.png", b""))
    one_line_error(client.post(f"/{img}/predict", content=body, headers=headers), 400,
                   "x.png: the file is empty")  # fmt: skip
    # A browser form with no file chosen sends an empty part with an empty filename: nothing
    # was sent, so a forecaster forecasts after its own data (as the page, which sends none).
    body, headers = _form(("file", "", b""), ("rows", "", b""))
    assert client.post(f"/{sales}/predict", content=body, headers=headers).json() == default
    body, headers = _form(("file", "", b""))
    one_line_error(client.post(f"/{img}/predict", content=body, headers=headers), 400,
                   "send the image")  # fmt: skip
    # A field that must be a file, sent as text (-F rows=... for -F rows=@rows.csv): named.
    for field in ("rows", "history", "file"):
        body, headers = _form((field, None, b"Store,Dept,Date\n1,1,2012-11-02\n"))
        one_line_error(client.post(f"/{sales}/predict", content=body, headers=headers), 400,
                       f"form field '{field}' is text, not a file")  # fmt: skip
    one_line_error(client.post(f"/{sales}/predict", data={"rows": "Store,Dept,Date"}), 400,
                   "form field 'rows' is text, not a file")  # fmt: skip


def test_one_bad_request_never_fails_the_others_batched_with_it(runs: dict[str, Path]) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from archlab.serve import Batcher

    # Whatever fails a shared forward pass: the batch runs again one request at a time.
    gate, sizes = threading.Event(), []

    def run(items: list[str]) -> list[str]:
        gate.wait(5)  # the first batch holds the model while the others queue up
        sizes.append(len(items))
        if "bad" in items:
            raise ValueError("bad item")
        return [i.upper() for i in items]

    b = Batcher(run, threading.Lock(), max_rows=8)
    got: dict[str, Any] = {}

    def ask(item: str) -> None:
        try:
            got[item] = b.submit(item, 1)
        except ValueError as e:
            got[item] = e

    threads = [threading.Thread(target=ask, args=(i,)) for i in ("first", "a", "bad", "c")]
    for t in threads:
        t.start()
        time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(10)
    assert {k: v for k, v in got.items() if k != "bad"} == {"first": "FIRST", "a": "A", "c": "C"}
    assert isinstance(got["bad"], ValueError) and 3 in sizes  # a, bad, c were one batch

    # Through HTTP: a text the tokenizer cannot take is refused before the batcher.
    client = TestClient(create_app([runs["text"]]))
    alone = client.post("/predict", json={"texts": ["great flight"]}).json()["predictions"]

    def good(i: int) -> tuple[int, Any]:
        r = client.post("/predict", json={"texts": ["great flight"]})
        return r.status_code, r.json()

    def bad(i: int) -> tuple[int, Any]:
        r = client.post("/predict", content=SURROGATE, headers=AS_JSON)
        return r.status_code, r.json()

    for _ in range(3):
        with ThreadPoolExecutor(11) as pool:
            futs = [pool.submit(good, i) for i in range(10)] + [pool.submit(bad, 0)]
            answers = [f.result() for f in futs]
        assert all(a == (200, {"run": answers[0][1]["run"], "predictions": alone})
                   for a in answers[:10]), answers  # fmt: skip
        assert answers[10] == (400, {"error": "text 1 is not valid Unicode (a lone surrogate at "
                                              "character 7)"})  # fmt: skip


def test_predict_refuses_an_argument_that_is_not_utf8(runs: dict[str, Path], capsys) -> None:
    from archlab.cli import main

    # A Latin-1 terminal's "café" reaches Python as a surrogate escape.
    assert main(["predict", str(runs["text"]), "ok", "caf\udce9 great"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["archlab: error: input 2 is not valid Unicode (byte 0xe9 at character 4 is "
                   "not UTF-8: the terminal or script sends another encoding; pass UTF-8 "
                   "text)"]  # fmt: skip


@pytest.fixture(scope="module")
def parity_and_blend(runs: dict[str, Path]) -> dict[str, Path]:
    from tests.helpers import train_cli

    root = runs["text"].parent.parent
    return {
        "parity": train_cli(root / "runs2", "--preset", "sales-rnn-parity-smoke", "--data",
                            str(root / "walmart"), "--set", "data.val_steps=4", "--set",
                            "data.test_steps=8"),
        **{name: train_cli(root / "runs2", "--preset", "text-bilstm-smoke", "--data",
                           str(root / "tweets.csv"), "--set", f"data.tfidf_blend={w}")
           for name, w in (("blend", 0.5), ("alone", 1.0))},
    }  # fmt: skip


def test_parity_runs_are_not_served_and_predict_says_why_first(
    runs: dict[str, Path], parity_and_blend: dict[str, Path], capsys
) -> None:
    from archlab.cli import main

    parity = parity_and_blend["parity"]
    why = "sales run of the parity framing, which has no predict"
    assert main(["serve", str(parity)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0], err
    app = create_app([runs["text"], parity])
    assert [r["task"] for r in TestClient(app).get("/health").json()["runs"]] == ["text"]
    assert f"archlab: note: {parity} is a {why}" in capsys.readouterr().err
    assert main(["predict", str(parity)]) == 2  # the framing first, not "give an input"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "forecast-framing run" in err[0], err


def test_served_explain_of_a_blended_run_says_it_is_the_network_alone(
    parity_and_blend: dict[str, Path],
) -> None:
    blended = TestClient(create_app([parity_and_blend["blend"]]))
    r = blended.post("/explain", json={"texts": ["great flight thanks"]}).json()
    assert any("explanations are of the network alone" in x for x in r["notes"]), r
    # toward the network's own top class, as archlab explain (not the blend's label), named
    from archlab.explain import explain

    out = explain(parity_and_blend["blend"], ["great flight thanks"], out=None, steps=8)
    cli = json.loads((out / "explain.json").read_text())["texts"][0]["pred"]
    assert r["predictions"][0]["explanation"]["class"] == cli
    alone = TestClient(create_app([parity_and_blend["alone"]]))
    assert alone.post("/explain", json={"texts": ["great"]}).json()["notes"] == []


def test_a_run_given_twice_is_served_once(runs: dict[str, Path], capsys) -> None:
    from archlab.serve import load_runs

    d = runs["text"]
    served = load_runs([d, d.parent / ".." / d.parent.name / d.name])
    assert list(served) == [d.name]  # not NAME and NAME-2 for one run
    assert f"{d.parent / '..' / d.parent.name / d.name} is given twice: served once" in (
        capsys.readouterr().err
    )
