"""The limits that bound what a spec (untrusted input) can make archcalc do.

Each limit is checked before the work it bounds; docs/security.md lists them with how each is
enforced. Nothing here imports torch or sympy.
"""

from __future__ import annotations

MAX_BYTES = 2_000_000  # a spec file; at most MAX_BYTES + 1 bytes are ever read
MAX_ALIASES = 100  # YAML aliases (*ref) in one document
MAX_YAML_DEPTH = 100  # nesting of YAML mappings and sequences
MAX_NODES = 200_000  # layers after blocks and repeats expand
MAX_WORK = 1_000_000  # expansion steps (list items visited, repeat rounds, branches; empty bodies included)
MAX_BLOCK_DEPTH = 100  # blocks calling blocks
MAX_DEPTH = 120  # items nested in items (repeats, branches, block calls together)
MAX_EXPR_CHARS = 1_000  # one size expression
MAX_EXPR_NODES = 200  # operators and operands in one expression
MAX_SIZE = 2**40  # any single size (channels, H, W, a symbol's value, a batch): ~1.1e12
MAX_POWER = 64  # exponent of ** in an expression
MAX_NAME = 200  # a layer or block name, characters

# --------------------------------------------------------------------------- what a torch run would allocate

MAX_TORCH_LAYERS = 20_000  # verify and export build one torch module per layer (about 2 ms each)
TORCH_MAX_NUMEL = 2**62  # torch indexes tensors with int64; refuse well before that
MEMORY_FRACTION = 0.5  # default --max-memory: this share of the memory available now


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux /proc/meminfo), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_limit() -> int | None:
    avail = available_memory()
    return None if avail is None else int(avail * MEMORY_FRACTION)


def check_torch_sizes(report, where=None) -> None:
    """Refuse a network torch cannot represent (a tensor or a count beyond int64) or that has more
    layers than a torch run handles in reasonable time."""
    from .errors import UsageError

    if len(report.rows) > MAX_TORCH_LAYERS:
        raise UsageError(
            f"the network has {len(report.rows):,} layers, above the limit of {MAX_TORCH_LAYERS:,} for a torch model",
            hint="archcalc's engine handles it: use summary or check", where=where,
        )

    for r in report.rows:
        numel = 1
        for d in r.shape:
            numel *= d
        for what, value in (("output elements", numel), ("parameters", r.params), ("MACs", r.macs)):
            if isinstance(value, int) and value > TORCH_MAX_NUMEL:
                raise UsageError(
                    f"layer '{r.name}' has {value:.3e} {what}, beyond what torch can index (2**62)",
                    hint="archcalc's engine still computes it: use summary",
                    where=where,
                )


def check_allocation(nbytes: int, limit: int | None, what: str, hint: str | None = None, where=None) -> None:
    """Refuse work that would allocate more than ``limit`` bytes (checked before any allocation)."""
    from .errors import UsageError
    from .report_units import human_bytes

    if limit is not None and nbytes > limit:
        raise UsageError(
            f"{what} would allocate about {human_bytes(nbytes)} ({nbytes:,} bytes), above the limit of {human_bytes(limit)}",
            hint="raise it with --max-memory SIZE (e.g. --max-memory 64GiB) if this machine has the memory"
            + (f", or {hint}" if hint else ""),
            where=where,
        )

# --------------------------------------------------------------------------- engine work (issue 19: hangs)

# Receptive fields through resampling layers (upsample, transposed conv, adaptive pools that do not
# divide, and what follows them) are exact per output position: each position of each axis is one
# step (about 1-2 us, 16 bytes kept). Counted in the engine before each layer's steps, summed over
# the network (the zoo's largest, unet, takes 6,744). An adaptive pool over an affine field is
# closed form and takes none.
MAX_RF_POSITIONS = 1_000_000

# Symbolic closed forms (sympy), checked before the work: expanding a product of sums can make
# exponentially many terms ((H + W + K + 1)**40: 12,341; 62 s for (H + W + 1)**60 before this bound)
# and multivariate factoring is exponential in the symbols (20 free widths: 37 s). The estimate
# (archcalc.expr.expansion_terms) is an upper bound computed without expanding. Beyond these the
# display shows the value unexpanded or unfactored (docs/symbolic.md); exact comparisons refuse.
MAX_EXPAND_TERMS = 300  # terms an expansion may build (the zoo's largest estimate is 130: inception_resnet_v2)
MAX_FACTOR_TERMS = 64  # terms of a polynomial handed to sympy.factor (the zoo's most: 5)
MAX_FACTOR_SYMBOLS = 4  # free symbols of a polynomial handed to sympy.factor (the zoo's most: 3)
MAX_FREE_SYMBOLS = 32  # free symbols in one analysis (checked before the engine's walk)

# Work that repeats an analysis or an evaluation: refused before it starts (or, for a scan whose
# length is not known, as soon as it would pass the limit), with the numbers and the limit.
MAX_SCAN_WORK = 2_000_000  # --min-input's scan and --tiling: analyses x layers (about 2-5 us each)
MAX_SWEEP_WORK = 5_000_000  # sweep: points x the nodes of the compiled closed forms evaluated at each
MAX_GRAPH_WORK = 2_000_000  # graph: layers x Mermaid renders tried while folding to fit (each linear)
