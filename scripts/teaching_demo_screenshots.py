"""Screenshots of the teaching demo in a real JupyterLab, its sliders before and after a move.

    python scripts/teaching_demo_screenshots.py --out reports/screenshots

Starts JupyterLab on 127.0.0.1 (a copy of notebooks/, the store in a temporary folder), opens the demo
in headless Chromium (Debian's ``chromium`` and ``chromium-driver``; ``pip install selenium``), runs all
cells from the command palette, waits for the sliders, saves ``teaching_demo_sliders_before.png``, moves
the lambda slider with the keyboard as a user would, waits for the figure to redraw and saves
``teaching_demo_sliders_after.png``. The profile is the notebook's default (``smoke``); the sliders
drive the 2-D toy, which is the same at every profile.
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
    subprocess.run([sys.executable, "-m", "jupytext", "--quiet", "--sync", str(books / "teaching_demo.py")], check=True)
    port, token = free_port(), uuid.uuid4().hex
    lab = start_lab(books, tmp / "store", port, token)
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
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
        print("written", out / "teaching_demo_sliders_before.png", "and", out / "teaching_demo_sliders_after.png")
    finally:
        driver.quit()
        lab.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
