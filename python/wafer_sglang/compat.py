"""What differs on Python 3.10, which the 0.5.14 LTS's ROCm images run (the tools support it there)."""

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

__all__ = ["tomllib"]
