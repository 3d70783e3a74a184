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
MEMORY_FRACTION = 0.5  # default --max-memory: this share of the memory available now (or of what the
# process's own limits leave it, when less: process_memory_limit)


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


class MemoryLimit(int):
    """A number of bytes that knows where it came from: ``source`` names the process's own limit
    (RLIMIT_AS, RLIMIT_DATA, the cgroup's) when that is what binds, else None."""

    source: str | None = None
    name: str | None = None  # the limit itself: 'RLIMIT_AS (ulimit -v)', 'the cgroup memory limit'

    def __new__(cls, value: int, source: str | None = None, name: str | None = None):
        obj = super().__new__(cls, value)
        obj.source, obj.name = source, name
        return obj


UNLIMITED = 2**60  # a cgroup v1 "no limit" is 2**63 rounded down to a page; anything this large is none


def _small_text(path: str) -> str | None:
    """A short pseudo-file (/proc, /sys): at most 64 KiB of it, or None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(65536).decode("ascii", "replace")
    except (OSError, ValueError):
        return None


def _status_kib(field: str, proc: str) -> int:
    """VmSize / VmData of this process in bytes from /proc/self/status (0 when unreadable)."""
    for line in (_small_text(f"{proc}/status") or "").splitlines():
        if line.startswith(field + ":"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return 0
    return 0


def _cgroup_number(path: str) -> int | None:
    text = (_small_text(path) or "").strip()
    if not text.isdigit() or len(text) > 30:  # "max" (v2), missing or unreadable: no limit here
        return None
    value = int(text)
    return None if value >= UNLIMITED else value


def _cgroup_headroom(proc: str, root: str) -> int | None:
    """Bytes left under the tightest cgroup memory limit above this process (v2 memory.max less
    memory.current, v1 memory.limit_in_bytes less memory.usage_in_bytes, at its own cgroup and
    each parent up to the mount), or None when no limit is set or none can be read."""
    import os

    dirs = []
    for line in (_small_text(f"{proc}/cgroup") or "").splitlines()[:64]:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":  # v2: the unified hierarchy
            dirs.append((os.path.join(root, parts[2].lstrip("/")), root, "memory.max", "memory.current"))
        elif "memory" in parts[1].split(","):  # v1: the memory controller's hierarchy
            base = os.path.join(root, "memory")
            dirs.append((os.path.join(base, parts[2].lstrip("/")), base, "memory.limit_in_bytes", "memory.usage_in_bytes"))
    if not dirs:  # no /proc/self/cgroup: the mount's own files
        dirs = [(root, root, "memory.max", "memory.current"),
                (os.path.join(root, "memory"), os.path.join(root, "memory"), "memory.limit_in_bytes", "memory.usage_in_bytes")]
    best = None
    for start, top, limit_file, usage_file in dirs:
        here = os.path.normpath(start)
        top = os.path.normpath(top)
        if os.path.commonpath([here, top]) != top:  # a path from /proc that leaves the mount
            here = top
        for _ in range(64):  # a cgroup and its parents, to the mount
            limit = _cgroup_number(os.path.join(here, limit_file))
            if limit is not None:
                used = _cgroup_number(os.path.join(here, usage_file)) or 0
                left = max(limit - used, 0)
                best = left if best is None else min(best, left)
            if here == top:
                break
            here = os.path.dirname(here)
    return best


def process_memory_limit(proc: str = "/proc/self", cgroup_root: str = "/sys/fs/cgroup") -> MemoryLimit | None:
    """Bytes this process may still allocate under its own limits, or None where none is set:
    the least of RLIMIT_AS less the address space it maps already, RLIMIT_DATA less its data
    segment, and the cgroup memory limit less the cgroup's usage (see _cgroup_headroom). The
    result's ``source`` names the limit that binds. ``proc`` and ``cgroup_root`` are for tests."""
    found = []
    try:
        import resource

        for name, field, label, short in (
                ("RLIMIT_AS", "VmSize", "address-space limit, RLIMIT_AS (ulimit -v),", "RLIMIT_AS (ulimit -v)"),
                ("RLIMIT_DATA", "VmData", "data-segment limit, RLIMIT_DATA (ulimit -d),", "RLIMIT_DATA (ulimit -d)")):
            which = getattr(resource, name, None)
            if which is None:
                continue
            soft = resource.getrlimit(which)[0]
            if soft != resource.RLIM_INFINITY and 0 <= soft < UNLIMITED:
                found.append((max(soft - _status_kib(field, proc), 0), f"what this process's {label} leaves it", short))
    except (ImportError, OSError, ValueError):
        pass
    cgroup = _cgroup_headroom(proc, cgroup_root)
    if cgroup is not None:
        found.append((cgroup, "what the memory limit of this process's cgroup leaves it", "its cgroup's memory limit"))
    if not found:
        return None
    value, source, name = min(found, key=lambda f: f[0])
    return MemoryLimit(value, source, name)


def default_memory_limit() -> int | None:
    """The default --max-memory: MEMORY_FRACTION of the least of the memory available now and
    what the process's own limits leave it (process_memory_limit)."""
    avail = available_memory()
    own = process_memory_limit()
    if own is not None and (avail is None or own < avail):
        return MemoryLimit(int(own * MEMORY_FRACTION), f"half of {own.source}", own.name)
    return None if avail is None else MemoryLimit(int(avail * MEMORY_FRACTION))


def cap_memory_limit(limit: int | None) -> int | None:
    """An explicit --max-memory, capped by what the process's own limits leave it: beyond them
    an allocation fails whatever the option says."""
    own = process_memory_limit()
    if own is not None and (limit is None or own < limit):
        return own
    return limit


def check_torch_sizes(report, where=None) -> None:
    """Refuse a network torch cannot represent (a tensor or a count beyond int64) or that has more
    layers than a torch run handles in reasonable time."""
    from .errors import UsageError

    if len(report.rows) > MAX_TORCH_LAYERS:
        raise UsageError(
            f"the network has {len(report.rows):,} layers, above the limit of {MAX_TORCH_LAYERS:,} for a torch model",
            hint="archcalc's engine handles it: use summary or check", where=where,
        )

    batch = report.batch if isinstance(getattr(report, "batch", 1), int) else 1
    for r in report.rows:
        numel = 1
        for d in r.shape:
            numel *= d
        # torch sizes a tensor's storage in bytes as an int64: the batch's output in float64 (the
        # widest dtype verify uses) must stay below it too
        nbytes = numel * 8 * batch if isinstance(numel, int) else None
        if nbytes is not None and nbytes > TORCH_MAX_NUMEL:
            raise UsageError(
                f"layer '{r.name}' outputs {numel:.3e} elements per image ({nbytes:.3e} bytes at batch {batch} in "
                f"float64), beyond what torch can allocate (2**62 bytes)",
                hint="archcalc's engine still computes it: use summary", where=where,
            )
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

    if limit is not None and nbytes > limit:
        source = getattr(limit, "source", None)
        if source:  # the process's own limit binds: --max-memory cannot raise it
            raise UsageError(
                f"{what} would allocate about {human_bytes(nbytes)} ({nbytes:,} bytes), above the limit of "
                f"{human_bytes(limit)} ({source})",
                hint=(hint or "use a smaller input") + ", or run it where the process may use more memory",
                where=where,
            )
        raise UsageError(
            f"{what} would allocate about {human_bytes(nbytes)} ({nbytes:,} bytes), above the limit of {human_bytes(limit)}",
            hint="raise it with --max-memory SIZE (e.g. --max-memory 64GiB) if this machine has the memory"
            + (f", or {hint}" if hint else ""),
            where=where,
        )

# --------------------------------------------------------------------------- misc bounds (issue 19): counts, JSON read back

MAX_MULTIPLIER = 1_000_000  # --ensemble K and --crops N (the totals are multiplied by them)
MAX_BASELINE_DEPTH = 16  # nesting of a --baseline JSON file (archcalc writes 5 levels), checked before parsing
MAX_CACHE_DEPTH = 16  # nesting of the zoo cache's JSON (archcalc writes 5 levels), checked before parsing
MAX_FOLDER_DEPTH = 100  # folders below a folder given to check (refused beyond, before they are entered)

# --------------------------------------------------------------------------- engine work (issue 19: hangs)

# Receptive fields through resampling layers (upsample, transposed conv, adaptive pools that do not
# divide, and what follows them) are exact per output position: each position of each axis is one
# step (about 1-2 us, 16 bytes kept). Counted in the engine before each layer's steps, summed over
# the network (the zoo's largest, unet, takes 17,744). An adaptive pool over an affine field is
# closed form and takes none.
MAX_RF_POSITIONS = 1_000_000

# The field of a slice of the channels is worked out back through the layers that keep channels
# apart (activations, norms, pools, depthwise convs, concats) to the nearest that mixes them all:
# at most this many layers back (one Python frame each), beyond which the field is unknown, never
# guessed. Each (layer, channel range) is worked out once per network.
MAX_CHANNEL_DEPTH = 256

# Symbolic closed forms (sympy), checked before the work: expanding a product of sums can make
# exponentially many terms ((H + W + K + 1)**40: 12,341; 62 s for (H + W + 1)**60 before this bound)
# and multivariate factoring is exponential in the symbols (20 free widths: 37 s). The estimate
# (archcalc.expr.expansion_terms) is an upper bound computed without expanding. Beyond these the
# display shows the value unexpanded or unfactored (docs/symbolic.md); exact comparisons refuse.
MAX_EXPAND_TERMS = 300  # terms an expansion may build (the zoo's largest estimate is 130: inception_resnet_v2)
MAX_FACTOR_TERMS = 64  # terms of a polynomial handed to sympy.factor (the zoo's most: 5)
MAX_FACTOR_SYMBOLS = 4  # free symbols of a polynomial handed to sympy.factor (the zoo's most: 3)
MAX_FREE_SYMBOLS = 32  # free symbols in one analysis (checked before the engine's walk)
MAX_SYMBOLIC_LAYERS = 10_000  # layers of one closed-form analysis (free symbols): sympy takes about 1.5 ms a
# layer on a plain chain, more on branches (the zoo's most: preact-resnet1001, 3,339); checked before the walk

# Work that repeats an analysis or an evaluation: refused before it starts (or, for a scan whose
# length is not known, as soon as it would pass the limit), with the numbers and the limit.
MAX_SCAN_WORK = 2_000_000  # --min-input's scan and --tiling: analyses x layers (about 2-5 us each)
MAX_SWEEP_WORK = 5_000_000  # sweep: points x the nodes of the compiled closed forms evaluated at each
MAX_GRAPH_WORK = 2_000_000  # graph: layers x Mermaid renders tried while folding to fit (each linear)

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


def human_bytes(n: int) -> str:
    """Byte counts as text in limit messages (no imports: the start-up path). 1536 -> '1.50 KiB'.

    >>> human_bytes(12 * 2**30)
    '12.00 GiB'
    """
    for name, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {name}"
    return f"{n} B"
