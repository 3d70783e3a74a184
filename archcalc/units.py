"""Byte counts as text, with no other imports (used by error messages on the start-up path)."""


def human_bytes(n: int) -> str:
    """1536 -> '1.50 KiB'.

    >>> human_bytes(12 * 2**30)
    '12.00 GiB'
    """
    for name, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {name}"
    return f"{n} B"
