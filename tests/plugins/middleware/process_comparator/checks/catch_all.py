"""A named check and a catch-all, for helpers_test.py's dispatch tests."""
from doppel_compare import comparator, run


@comparator("named")
def named(ex):
    return "named check"


@comparator()
def everything_else(ex):
    return "catch-all for " + ex.comparator


if __name__ == "__main__":
    run()
