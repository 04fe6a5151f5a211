"""The JupyterLab route, for real: a JupyterLab server on 127.0.0.1 (with jupytext's contents manager, as
the set-up installs it), the quick start and the teaching demo opened through its REST API as a user's
browser opens them, every cell executed in a kernel the server started (websocket channels), with the
README's relative data setting; then saved through the server. They must finish without error, write
their reports into the shared store and leave the tracked notebook sources unchanged."""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import need_shared

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("jupyterlab")
pytest.importorskip("jupytext")
tornado = pytest.importorskip("tornado")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server serving a copy of notebooks/ (sources and pairing config), its kernels
    started with DDCMI_DATA relative as in the README and the store in tmp_path."""
    need_shared("mnist")
    books = tmp_path / "notebooks"
    books.mkdir()
    for p in list((ROOT / "notebooks").glob("*.py")) + [ROOT / "notebooks" / "jupytext.toml"]:
        shutil.copy(p, books)
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "DDCMI_DATA": "../shared/data", "DDCMI_STORE": str(tmp_path / "store"),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    env.pop("DDCMI_RUNS", None)
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={books}", "--ServerApp.open_browser=False"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                _request(base, token, "GET", "/api/status")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield {"base": base, "token": token, "books": books, "store": tmp_path / "store", "port": port}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _request(base: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    import urllib.request
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read().decode()
    return json.loads(text) if text else {}


async def _execute_all(lab, kernel_id: str, cells: list, timeout: float) -> list[str]:
    """Run every code cell in the kernel over the server's websocket; return the errors (empty: none)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect
    url = f"ws://127.0.0.1:{lab['port']}/api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {lab['token']}"}))
    session, errors = uuid.uuid4().hex, []
    for cell in cells:
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request",
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": cell["source"], "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        outputs = []
        while True:
            raw = await asyncio.wait_for(ws.read_message(), timeout)
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "error":
                errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
            elif kind in ("stream", "execute_result", "display_data"):
                outputs.append({"output_type": "stream", "name": "stdout",
                                "text": msg["content"].get("text") or json.dumps(msg["content"].get("data", {}))[:200]})
            if kind == "execute_reply":
                break
        cell["outputs"] = outputs
        if errors:
            break
    ws.close()
    return errors


@pytest.mark.parametrize("name", ["quickstart", "teaching_demo"])
def test_a_notebook_runs_through_a_real_jupyterlab_server_and_writes_into_the_shared_store(lab, name):
    source = (lab["books"] / f"{name}.py").read_bytes()
    model = _request(lab["base"], lab["token"], "GET", f"/api/contents/{name}.py?type=notebook&content=1")
    assert model["type"] == "notebook"  # jupytext's contents manager serves the .py as a notebook
    nb = model["content"]
    session = _request(lab["base"], lab["token"], "POST", "/api/sessions",
                       {"path": f"{name}.py", "type": "notebook", "name": f"{name}.py", "kernel": {"name": "python3"}})
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for c in code:
        c["source"] = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    try:
        errors = asyncio.run(_execute_all(lab, session["kernel"]["id"], code, timeout=600))
    finally:
        _request(lab["base"], lab["token"], "DELETE", f"/api/sessions/{session['id']}")
    assert errors == [], errors
    metrics = json.loads((lab["store"] / "reports" / "smoke" / name / "metrics.json").read_text())
    assert metrics["profile"] == "smoke" and metrics["figure_problems"] == {}
    # the user saves the executed notebook: outputs go to the paired .ipynb, the source is unchanged
    for i, c in enumerate(code):
        c["execution_count"] = i + 1
    _request(lab["base"], lab["token"], "PUT", f"/api/contents/{name}.py",
             {"type": "notebook", "format": "json", "content": nb})
    assert (lab["books"] / f"{name}.py").read_bytes() == source
    paired = json.loads((lab["books"] / f"{name}.ipynb").read_text())
    assert any(c.get("outputs") for c in paired["cells"])
