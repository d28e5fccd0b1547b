"""w2vdist: distributed word2vec (skip-gram, negative sampling) on Spark and Ray."""

__version__ = "0.1.0"
__all__ = ["Vectors", "__version__"]


def __getattr__(name: str):
    # `w2vdist.Vectors` without importing torch for every command that does not need it.
    if name == "Vectors":
        from w2vdist.vectors import Vectors

        return Vectors
    raise AttributeError(f"module 'w2vdist' has no attribute '{name}'")


def __dir__() -> list[str]:  # what tab completion offers: Vectors too, before it is first imported
    return sorted(set(globals()) | set(__all__))
