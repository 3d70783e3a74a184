"""Print the saved-for-backward table of docs/verify.md: for every concrete zoo spec, the engine's
train_saved_bytes beside what autograd keeps in one training forward on PyTorch's meta device
(archcalc.torchside.verify.memory). Needs torch. Run: python tools/memory_table.py
"""

import warnings

from archcalc import analyze, load
from archcalc.spec import zoo
from archcalc.torchside.verify import memory


def main():
    warnings.filterwarnings("ignore")
    print("| spec | engine estimate (bytes) | torch saved (bytes) | torch / engine |")
    print("|---|---:|---:|---:|")
    for name in zoo.names():
        net = load(name)
        if net.symbolic:
            continue
        s = memory(net, analyze(net), device="meta", batch=1)["saved_bytes"]
        print(f"| `{name}` | {s['engine']:,} | {s['torch']:,} | {s['torch'] / s['engine']:.3f} |")


if __name__ == "__main__":
    main()
