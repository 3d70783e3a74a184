"""archcalc's version and the version of its JSON documents (a core module: anything may import it)."""

__version__ = "0.1.0"
JSON_SCHEMA = 1
