"""Screenshots of the teaching demo in a real JupyterLab, its sliders before and after a move.

    python scripts/teaching_demo_screenshots.py --out reports/screenshots

Starts JupyterLab on 127.0.0.1 (a copy of notebooks/, the store in a temporary folder), opens the demo
in headless Chromium (Debian's ``chromium`` and ``chromium-driver``; ``pip install selenium``), runs all
cells from the command palette, waits for the sliders, saves ``teaching_demo_sliders_before.png``, moves
the lambda slider with the keyboard as a user would, waits for the figure to redraw and saves
``teaching_demo_sliders_after.png``; then the same for the real-image part's lambda slider (each position
a finished run of the demo's sweep): ``teaching_demo_real_before.png`` and ``..._after.png``.

    python scripts/teaching_demo_screenshots.py --profile cpu --store /path/to/store

``--profile`` sets the notebook's profile (default ``smoke``, whose real images are chance-level
proxies' and barely move; ``cpu`` is the one to show); ``--store`` reuses a run store where the demo's
sweep is already built (else a temporary store, and the sweep is built first: about 3 minutes at cpu).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(books: Path, store: Path, port: int, token: str) -> subprocess.Popen:
    env = {**os.environ, "DDCMI_DATA": os.environ.get("DDCMI_DATA", "../shared/data"), "DDCMI_STORE": str(store)}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={books}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("JupyterLab did not start within 90 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "reports" / "screenshots"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--profile", default="smoke", choices=["smoke", "cpu", "paper"])
    ap.add_argument("--store", default=None, help="run store to use (default: a temporary one)")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ddcmi-shots-"))
    books = tmp / "notebooks"
    books.mkdir()
    for p in list((ROOT / "notebooks").glob("*.py")) + [ROOT / "notebooks" / "jupytext.toml"]:
        shutil.copy(p, books)
    source = books / "teaching_demo.py"
    text = source.read_text()
    assert '\nprofile = "smoke"\n' in text, "the demo's parameters cell changed: update this script"
    source.write_text(text.replace('\nprofile = "smoke"\n', f'\nprofile = "{args.profile}"\n', 1))
    subprocess.run([sys.executable, "-m", "jupytext", "--quiet", "--sync", str(source)], check=True)
    port, token = free_port(), uuid.uuid4().hex
    lab = start_lab(books, Path(args.store) if args.store else tmp / "store", port, token)
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1200"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=args.chromedriver), options=opts)
    try:
        driver.get(f"http://127.0.0.1:{port}/lab/tree/teaching_demo.ipynb?token={token}&reset")
        wait = WebDriverWait(driver, 120)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator, .jp-KernelStatus")))
        time.sleep(5)  # the kernel starts
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.ESCAPE)
        body.send_keys(Keys.CONTROL, Keys.SHIFT, "c")  # the command palette
        palette = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, ".lm-CommandPalette-input")))
        palette.send_keys("Run All Cells")
        time.sleep(1)
        palette.send_keys(Keys.ENTER)
        slider = WebDriverWait(driver, 900).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, ".widget-slider .noUi-handle, .widget-hslider .noUi-handle")))
        time.sleep(8)  # the interactive figure draws
        for button in driver.find_elements(By.XPATH, "//button[normalize-space()='No']"):  # JupyterLab's news prompt
            button.click()
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", slider)
        time.sleep(2)
        driver.save_screenshot(str(out / "teaching_demo_sliders_before.png"))
        slider.click()
        for _ in range(12):  # lambda from 1 towards 10 on its log scale, as arrow keys move it
            slider.send_keys(Keys.ARROW_RIGHT)
            time.sleep(0.15)
        time.sleep(10)  # the figure is recomputed (60 descent steps) and redrawn
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", slider)
        time.sleep(2)
        driver.save_screenshot(str(out / "teaching_demo_sliders_after.png"))
        sliders = driver.find_elements(By.CSS_SELECTOR, ".widget-slider, .widget-hslider")
        real = [e for e in sliders if e.text.strip().startswith("lambda")][-1]  # the real part's lambda (a selection slider)
        top = [e for e in sliders if e.text.strip().startswith("IPC")][-1]  # its IPC slider, just above
        handle = real.find_element(By.CSS_SELECTOR, ".noUi-handle")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", top)
        time.sleep(2)
        driver.save_screenshot(str(out / "teaching_demo_real_before.png"))
        handle.click()
        for _ in range(2):  # lambda x10 -> x0.1: two positions of the sweep to the left
            handle.send_keys(Keys.ARROW_LEFT)
            time.sleep(0.5)
        time.sleep(8)  # continuous_update=False: the figure redraws once the handle settles
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", top)
        time.sleep(2)
        driver.save_screenshot(str(out / "teaching_demo_real_after.png"))
        print("written", *(out / f"teaching_demo_{n}.png" for n in ("sliders_before", "sliders_after", "real_before", "real_after")))
    finally:
        driver.quit()
        lab.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
