"""``archcalc plot``: a metric per layer (or block) as a PNG or SVG, with matplotlib.

matplotlib is the optional ``plot`` extra (``pip install 'archcalc[plot]'``) and is imported only
here, with the non-interactive Agg backend. Output is reproducible: no timestamps in the file's
metadata, a fixed SVG hash salt.

Metrics, per image (batch 1):
  params  learnable parameters of each layer;
  macs    multiply-accumulates (aux heads left out, as in the inference total);
  memory  bytes of each new tensor at the report's dtype (the activations of `summary`);
  rf      receptive-field size (height axis) at each layer, in input pixels.
With several networks (``--compare``) each is a line of the metric summed from the input up
(cumulative; rf is not summed) against the layer's position.
"""

from __future__ import annotations

from ..errors import UsageError
from .report import fold, human
from .textout import plain

METRICS = ("params", "macs", "memory", "rf")
LABEL = {"params": "parameters", "macs": "MACs", "memory": "activation memory (MiB)", "rf": "receptive field (pixels)"}


def _mpl():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plot needs matplotlib, which is not installed",
                         hint="pip install matplotlib, or pip install 'archcalc[plot]'") from None
    matplotlib.use("Agg", force=True)
    import warnings

    import matplotlib.pyplot as plt

    # a name in a script the font lacks is drawn as boxes; matplotlib's warning would be stray stderr lines
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)

    plt.rcParams.update({"svg.hashsalt": "archcalc", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "figure.dpi": 100})
    return plt


def text(value) -> str:
    """Spec text (a name, a title) as matplotlib draws it literally: control characters escaped
    (textout.plain) and every '$' escaped, so no name is ever parsed as mathtext ('$\\frac{}{}$'
    would raise inside matplotlib). Without an unescaped '$' matplotlib draws text as it is.

    >>> print(text("a$b$"))
    a\\$b\\$
    """
    return plain(value).replace("$", r"\$")


def values(report, metric: str, by: str = "layer"):
    """(labels, values) for a metric; rows without any of it are left out (rf keeps every row
    that has a receptive field). Raises UsageError on symbolic sizes (nothing to plot)."""
    from ..analysis.engine import DTYPES

    if report.symbolic and metric != "rf":
        raise UsageError(f"{report.name}: the sizes are symbolic; give them values with --set to plot")
    rows = fold(report.rows, 1) if by == "block" else report.rows
    nbytes = DTYPES[report.dtype]
    out_l, out_v = [], []
    for r in rows:
        if metric == "params":
            v = r.params
        elif metric == "macs":
            v = 0 if r.aux else r.macs
        elif metric == "memory":
            v = 0 if r.aux else r.values * nbytes
        else:
            if r.rf is None or r.aux:
                continue
            v = r.rf[0].size
            if not isinstance(v, int):
                raise UsageError(f"{report.name}: the receptive field is symbolic; give the sizes values with --set")
        if metric != "rf" and not v:
            continue
        out_l.append(text(r.name))
        out_v.append(int(v))
    if not out_v:
        raise UsageError(f"{report.name}: no layer has any {LABEL[metric]} to plot")
    return out_l, out_v


def _fmt(metric):
    def f(v, _pos=None):
        if metric == "rf":
            return f"{int(v):,}"
        if metric == "memory":  # plotted in MiB
            return f"{v:g}"
        return human(int(v)) if v else "0"

    return f


def _scale(metric, vals):
    return [v / 2**20 for v in vals] if metric == "memory" else vals


def _total(report, metric):
    t = report.totals
    return {"params": t["params"], "macs": t["macs"], "memory": t["activation_bytes"]}.get(metric)


def plot(reports, metric: str, by: str, path: str, compare: bool = False, force: bool = False) -> str:
    """Write the figure to ``path`` (.png or .svg); returns the path. An existing file is replaced
    only with ``force``; a link, folder, FIFO or device never (archcalc/safeio.py)."""
    if metric not in METRICS:
        raise UsageError(f"--metric {plain(metric)[:40]}: expected one of {', '.join(METRICS)}")
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in ("png", "svg"):
        raise UsageError(f"-o {plain(path)[:80]}: the file name must end in .png or .svg")
    from ..safeio import check_target, write_file

    check_target(path, replace=force)  # before matplotlib is even imported
    plt = _mpl()
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(10, 4.8))
    try:
        if compare:
            styles = ("-", "--", "-.", ":")
            for k, r in enumerate(reports):
                labels, vals = values(r, metric, by)
                vals = _scale(metric, vals)
                ys, acc = [], 0
                for v in vals:
                    acc = v if metric == "rf" else acc + v
                    ys.append(acc)
                total = _total(r, metric)
                name = text(r.name) + (f" ({human(total, 'B' if metric == 'memory' else '')})" if total is not None else "")
                ax.plot(range(1, len(ys) + 1), ys, drawstyle="steps-post", label=name, linewidth=1.8,
                        linestyle=styles[k % len(styles)], zorder=len(reports) - k + 2)
            ax.set_xlabel(f"{'block' if by == 'block' else 'layer'} (counting those with any {LABEL[metric]})")
            what = LABEL[metric] if metric == "rf" else f"{LABEL[metric]}, summed from the input"
            ax.set_ylabel(what)
            ax.set_title(" vs ".join(text(r.name) for r in reports) + f": {what}")
            ax.legend(frameon=False)
        else:
            r = reports[0]
            labels, vals = values(r, metric, by)
            vals = _scale(metric, vals)
            x = range(len(vals))
            if metric == "rf":
                ax.plot(x, vals, drawstyle="steps-mid", color="#2a6fb0", linewidth=1.6)
                size = r.input[1] if len(r.input) == 3 and isinstance(r.input[1], int) else None
                if size:
                    ax.axhline(size, color="#999999", linestyle="--", linewidth=1)
                    ax.text(0, size, f" input {size} px", va="bottom", fontsize=8, color="#555555")
            else:
                ax.bar(x, vals, color="#2a6fb0", width=0.8)
            if len(labels) <= 60:
                ax.set_xticks(list(x))
                ax.set_xticklabels(labels, rotation=90, fontsize=7)
            else:
                ax.set_xlabel(f"{len(labels)} {'blocks' if by == 'block' else 'layers'} (names left out: too many)")
            total = _total(r, metric)
            per = f", {r.dtype}, per image" if metric == "memory" else ""
            title = f"{text(r.name)}: {LABEL[metric]} per {'block' if by == 'block' else 'layer'}{per}"
            if total is not None:
                title += f" (total {human(total, 'B' if metric == 'memory' else '')}"
                title += ", input included)" if metric == "memory" else ")"
            ax.set_title(title)
            ax.set_ylabel(LABEL[metric])
        ax.yaxis.set_major_formatter(FuncFormatter(_fmt(metric)))
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        fig.tight_layout()
        meta = {"Date": None} if suffix == "svg" else {"Software": None}
        import io

        image = io.BytesIO()  # rendered in memory, then written by the one safe writer
        fig.savefig(image, format=suffix, metadata=meta)
    finally:
        plt.close(fig)
    write_file(path, image.getvalue(), replace=force)
    return path
