"""Renders a report in headless Chromium and saves a full-page PNG, to check the page as a person would see it.

    python scripts/screenshot_report.py runs/demo/report/index.html [--out shot.png] [--width 1400] [--hover NODE]

Chromium (Debian: ``apt-get install -y chromium``) is a tool for the person checking, not a wsparse dependency. The
page height is measured first (a short Chromium run that dumps the DOM after a script records it), so the screenshot
covers the whole page rather than the first screenful. ``--hover`` shows a node's tooltip as a mouse would (the first
node of the first diagram with ``--hover first``), to check the hover text too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

_HOVER = ("<script>window.addEventListener('load',()=>{{const q={sel};const g=document.querySelector(q);"
          "if(!g)return;const r=g.getBoundingClientRect();const o={{bubbles:true,clientX:r.x+r.width/2,"
          "clientY:r.y+r.height/2}};g.dispatchEvent(new MouseEvent('mouseenter',o));"
          "g.dispatchEvent(new MouseEvent('mousemove',o));}});</script>")
_PROBE = ("<script>window.addEventListener('load',()=>{const h=document.documentElement.scrollHeight;"
          "document.body.setAttribute('data-page-height',h);});</script>")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium found: install it (Debian: apt-get install -y chromium)")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--force-device-scale-factor=1", "--virtual-time-budget=3000"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120)


def _with_script(html_path: str, script: str) -> str:
    """A temporary copy of the page (same folder, so relative paths still resolve) with ``script`` appended."""
    with open(html_path, encoding="utf-8") as f:
        page = f.read()
    with tempfile.NamedTemporaryFile("w", suffix=".html", dir=os.path.dirname(html_path), delete=False,
                                     encoding="utf-8") as tmp:
        tmp.write(page.replace("</body>", script + "</body>", 1))
    return tmp.name


def page_height(html_path: str, width: int) -> int:
    """The rendered document height at ``width``, measured by Chromium itself."""
    probe = _with_script(html_path, _PROBE)
    try:
        dom = _run([f"--window-size={width},1000", "--dump-dom", "file://" + probe]).stdout
    finally:
        os.unlink(probe)
    m = re.search(r'data-page-height="(\d+)"', dom)
    return int(m.group(1)) if m else 4000


def screenshot(html_path: str, out: str, width: int = 1400, hover: str | None = None) -> str:
    """Full-page PNG of ``html_path``; with ``hover`` (a node name or "first"), that node's tooltip is shown."""
    html_path, out = os.path.abspath(html_path), os.path.abspath(out)
    height = page_height(html_path, width)
    page = html_path
    if hover:
        sel = "svg.circuit .node" if hover == "first" else f'svg.circuit .node[data-node="{hover}"]'
        page = _with_script(html_path, _HOVER.format(sel=json.dumps(sel)))
    try:
        proc = _run([f"--window-size={width},{height}", f"--screenshot={out}", "file://" + page])
    finally:
        if page != html_path:
            os.unlink(page)
    if not os.path.exists(out):
        sys.exit(f"chromium wrote no screenshot:\n{proc.stderr[-2000:]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="path to index.html (or a run directory)")
    ap.add_argument("--out", default=None, help="PNG path (default: beside the report, screenshot.png)")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--hover", default=None, help='a node to hover, e.g. "3.mlp.post_act:17", or "first"')
    a = ap.parse_args()
    path = os.path.join(a.report, "report", "index.html") if os.path.isdir(a.report) else a.report
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(path)), "screenshot.png")
    print(screenshot(path, out, a.width, a.hover))


if __name__ == "__main__":
    main()
