__version__ = "0.1.0"

def __getattr__(name):
    "mim4dd.load_distilled, imported on first use so that `import mim4dd` stays light"
    if name == 'load_distilled':
        from .distill import load_distilled
        return load_distilled
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
