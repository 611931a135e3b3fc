"""Benchmark 3: import cost as a kernel sees it (IPython already imported).

``import make_notebook_auth`` + ``load_ipython_extension`` vs ``import requests_oauthlib``,
each in a fresh process after IPython and an InteractiveShell exist; bytecode cached in a
temporary PYTHONPYCACHEPREFIX (PYTHONDONTWRITEBYTECODE is dropped for the children).
Paired rounds, median of the pairwise ratios. Target: <= 1.5. Also lists which heavy
modules the package pulled in (pandas and ipywidgets should not be among them).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

ROUNDS = 15
HEAVY = ("pandas", "numpy", "ipywidgets", "tqdm", "jwt", "cryptography", "platformdirs",
         "make_notebook_auth.cache", "make_notebook_auth.frames", "make_notebook_auth.widget")

SETUP = """
import sys, time
import IPython
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = set(sys.modules)
t = time.perf_counter()
"""
PACKAGE = SETUP + """
import make_notebook_auth
make_notebook_auth.load_ipython_extension(shell)
dt = time.perf_counter() - t
heavy = [m for m in HEAVY if m in sys.modules and m not in before]
print(dt, ",".join(heavy) or "-")
"""
BASELINE = SETUP + """
import requests_oauthlib
dt = time.perf_counter() - t
print(dt, "-")
"""


def run(code: str, env: dict[str, str]) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + code], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), out[1]


def main() -> float:
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for _ in range(2):  # fill the bytecode cache
            run(PACKAGE, env)
            run(BASELINE, env)
        pairs = []
        heavy = "-"
        for i in range(ROUNDS):
            if i % 2 == 0:
                a, heavy = run(PACKAGE, env)
                b, _ = run(BASELINE, env)
            else:
                b, _ = run(BASELINE, env)
                a, heavy = run(PACKAGE, env)
            pairs.append((a, b))
    ratios = [a / b for a, b in pairs]
    median = statistics.median(ratios)
    verdict = "OK" if median <= 1.5 else "OVER TARGET"
    print(f"3. import cost: median ratio {median:.3f} (target <= 1.5) {verdict}; "
          f"{len(pairs)} pairs; median package {statistics.median(a for a, _ in pairs) * 1000:.1f}"
          f" ms vs requests_oauthlib {statistics.median(b for _, b in pairs) * 1000:.1f} ms; "
          f"heavy modules imported by the package: {heavy}")
    return median


if __name__ == "__main__":
    main()
