"""The CPU thread count, through threadpoolctl (BLAS) when it is installed."""


def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def set_threads(n: int):
    ctl = _controller()
    if ctl is not None:
        ctl.limit(limits=int(n))


def blas_info() -> str:
    ctl = _controller()
    if ctl is None:
        return "BLAS threads: unknown (threadpoolctl not installed)"
    libs = [f"{i['internal_api']} {i.get('version') or ''} ({i['num_threads']} threads)".replace("  ", " ")
            for i in ctl.info()]
    return ", ".join(libs) or "no BLAS found"
