"""Time `archcalc verify resnet152` on the meta device (goal: under 3 s, issue 14). Not a test.

Uses specs/resnet152.yaml when present, else the largest spec by layer count. Prints the wall
time of the whole command in a fresh interpreter (imports included) and of verify() alone.
"""

from __future__ import annotations

import subprocess
import sys
import time


def main():
    import archcalc
    from archcalc.spec import zoo

    names = zoo.names()
    if "resnet152" in names:
        name = "resnet152"
    else:
        sizes = {}
        for n in names:
            net = archcalc.load(n)
            if not net.symbolic:
                sizes[n] = len(net.nodes)
        name = max(sizes, key=sizes.get)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "archcalc", "verify", name], capture_output=True, text=True)
    cli_s = time.perf_counter() - t
    from archcalc.torchside.verify import verify

    net = archcalc.load(name)
    verify(net)  # warm-up: the first FlopCounterMode pulls in torch's dispatch machinery
    t = time.perf_counter()
    result = verify(net)
    call_s = time.perf_counter() - t
    print(f"archcalc verify {name} (meta): {cli_s:.2f} s for the command (exit {proc.returncode}), "
          f"{call_s:.2f} s for verify() warm; {len(net.nodes)} layers, ok={result['ok']}")
    return 0 if cli_s < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
