"""The docs' screenshots: ``python tests/screenshots.py`` (or ``nox -s screenshots``).

Starts a real ``pixalert serve`` with real channels (tests/dashboard_stage.py),
sends it a small history, and photographs each dashboard page in headless
Chromium (light on a laptop, dark on a phone); then runs ``pixalert demo``
and photographs its output as a terminal shows it. The images go to
docs/images/ (``--out`` elsewhere). Needs Chromium (``apt-get install
chromium``) and the dev requirements (Playwright).
"""

from __future__ import annotations

import argparse
import html
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from dashboard_stage import Stage, find_chromium, launch_browser, sample_data  # noqa: E402

_TERMINAL = """<!doctype html><meta charset="utf-8">
<style>
body {{ margin: 0; background: #0f1216; }}
.window {{ margin: 16px; border-radius: 10px; background: #171b21; box-shadow: 0 8px 30px #0008;
  overflow: hidden; display: inline-block; }}
.title {{ background: #262b33; color: #aab2bd; font: 13px system-ui, sans-serif;
  padding: 8px 14px; }}
.title b {{ display: inline-block; width: 11px; height: 11px; border-radius: 50%; margin-right: 6px;
  vertical-align: -1px; }}
pre {{ margin: 0; padding: 14px 18px 18px; color: #e6e9ed;
  font: 13px/1.35 "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace; }}
.prompt {{ color: #7ee787; }}
</style>
<div class="window"><div class="title"><b style="background:#ff5f57"></b>
<b style="background:#febc2e"></b><b style="background:#28c840"></b>&nbsp; pixalert demo</div>
<pre><span class="prompt">$</span> pixalert demo
{output}</pre></div>"""


def _demo_output() -> str:
    """What ``pixalert demo`` prints, run with a clean environment."""
    home = Path(tempfile.mkdtemp(prefix="pixalert-demo-"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "LANG": "C.UTF-8",
        "COLUMNS": "112",
        "PYTHONIOENCODING": "utf-8",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pixalert", "demo"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"pixalert demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("error: no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pixalert-screenshots-"))
    written: list[Path] = []
    with Stage(work / "serve") as stage, launch_browser(chromium, work / "profile") as browser:
        ids = sample_data(stage)
        stage.wait_settled()
        stage.send(
            {"title": "Queue drained", "priority": "low", "source": "worker", "status": "resolved"}
        )
        httpx_silence(stage)

        def shoot(name: str, path: str, *, width: int = 1200, dark: bool = False) -> None:
            page = browser.new_page()
            page.set_viewport_size({"width": width, "height": 800})
            page.emulate_media(color_scheme="dark" if dark else "light")
            page.goto(f"{stage.base_url}{path}")
            # The first poll has answered: the relative times are filled in.
            page.locator("#updated", has_text="checked").wait_for()
            if path.startswith("/channels"):
                page.locator("#chart-list figure.chart canvas").first.wait_for()
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=True)
            page.close()
            written.append(target)

        shoot("dashboard-now", "/")
        shoot("dashboard-now-phone-dark", "/", width=390, dark=True)
        shoot("dashboard-alerts", "/alerts")
        shoot("dashboard-alert", f"/alerts/{ids['cert']}")
        shoot("dashboard-channels", "/channels")
        shoot("dashboard-silences", "/silences")

        page = browser.new_page()
        page.set_viewport_size({"width": 1000, "height": 600})
        page.set_content(_TERMINAL.format(output=html.escape(_demo_output())))
        target = out / "pixalert-demo.png"
        page.locator(".window").screenshot(path=str(target))
        page.close()
        written.append(target)
    for path in written:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


def httpx_silence(stage: Stage) -> None:
    """A silence, so that the Silences page has one to show."""
    import httpx

    response = httpx.post(
        f"{stage.base_url}/api/silences",
        json={
            "matchers": {"source": "backup"},
            "duration": "4h",
            "comment": "backup window moved, see OPS-412",
            "created_by": "ada",
        },
        headers=stage.headers(),
        timeout=30,
    )
    response.raise_for_status()


if __name__ == "__main__":
    raise SystemExit(main())
