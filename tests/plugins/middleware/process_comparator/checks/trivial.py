"""One trivial check: the throughput benchmark's, and the single check that serves every name."""
from doppel_compare import comparator, run


@comparator("trivial")
def agree(ex):
    return True


if __name__ == "__main__":
    run()
