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

# --------------------------------------------------------------------------- ONNX files (archcalc/importer/onnx_graph.py)
# An ONNX file and its external data files are untrusted input like a spec. The file must be a
# regular file (fstat after a non-blocking open: never a FIFO or a device); its size is checked
# with fstat before a byte is read and at most ONNX_MAX_BYTES + 1 bytes are ever read. The
# protobuf is then walked once on the wire (a bounded loop, no parse) to count what parsing it
# would build, so the counts below are refused before protobuf allocates anything for them: an
# empty message costs 2 bytes in the file but ~150 bytes parsed, a one-byte varint 8 bytes.

ONNX_MAX_BYTES = 2**30  # an ONNX file (inline weights: parsed ~1x; larger models: external data)
ONNX_MAX_FIELDS = 4_000_000  # protobuf fields of any kind in the file (the wire walk's work)
ONNX_MAX_MESSAGES = 1_000_000  # protobuf messages (nodes, attributes, value infos, dims, ...)
ONNX_MAX_ELEMENTS = 16_000_000  # varint numbers and strings in repeated fields (8-16 bytes each parsed)
ONNX_MAX_NODES = 50_000  # nodes in all graphs, subgraphs and functions together
ONNX_MAX_INITIALIZERS = 20_000  # initializers (dense and sparse) in all graphs; also tensors with external data
ONNX_MAX_GRAPH_DEPTH = 8  # graphs nested in node attributes (If / Loop bodies); the main graph is 1
ONNX_MAX_PROTO_DEPTH = 64  # protobuf messages nested in messages (protobuf's own limit is 100)
ONNX_MAX_ATTR_ELEMENTS = 10_000  # values in one node attribute (ints, floats, strings, tensors, graphs)
ONNX_MAX_METADATA_CHARS = 10_000  # one metadata value archcalc parses (pkg.torch.onnx.name_scopes)
ONNX_VALUE_ELEMENTS = 64  # archcalc reads the values only of tensors this small (shapes, axes, scalars);
# a larger tensor's data is dropped after the checks, before shape inference: only its dims are used
ONNX_MAX_EXTERNAL_FILE_BYTES = 2**31  # one external data file (fstat, before anything is read from it)
ONNX_MAX_EXTERNAL_BYTES = 2**32  # external data of all tensors together, by their shapes x dtypes
