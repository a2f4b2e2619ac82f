#!/usr/bin/env python3
"""The seed's two robot-API checks, written as checks of doppel's `process` comparator.

The seed compared each replayed response with the original one:
  check_hint_input (/v2/robot/input_hint)  a differing body is only a warning when the replay's
                                           results.hint_list is non-empty, an error when it is
                                           empty or missing;
  check_intention  (/v1/robot/intention)   a differing body is fine when the replay's
                                           results.intention_list is non-empty, an error otherwise.
In doppel the "bodies differ" half is the json comparator `body`, ranked by the compare rules
(warn = ["body"] and info = ["body"] in robot-python-checks.toml). Each check below is the
other half, listed under `escalate`: doppel runs it only when the body differs, and any
difference it reports fails the exchange.

Both judge as the stock `nonempty` comparator does (the quickstart pipeline uses it), with the
same difference paths and kinds, so this pipeline's verdicts are the quickstart's.
"""
import json

from doppel_compare import Difference, comparator, run


def _lookup(document, keys):
    """(True, value) at the dotted path, or (False, None) when a step is missing or not an object."""
    for key in keys:
        if not isinstance(document, dict) or key not in document:
            return False, None
        document = document[key]
    return True, document


def _is_empty(value):
    # As `nonempty` counts it: null, "", [] and {} are empty; 0 and false are values.
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def _shown(found, value):
    # As `nonempty` shows a value: minified JSON, so that "664" and 664 read differently.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if found else "(absent)"


def nonempty(ex, field):
    """The differences `nonempty` with fields = [field] reports, for a dotted path of plain keys:
    same paths, kinds and values shown (the original's value at the path, and the replay's)."""
    replay = ex.replay
    if replay.body_error or replay.json_error:
        why = "undecodable body: " + replay.body_error if replay.body_error else replay.json_error
        return Difference("$", "invalid_json", replay="(invalid JSON: %s) %s" % (why, replay.text[:200]))
    keys = field.split(".")
    found, value = _lookup(replay.json, keys)
    original = None  # `nonempty` shows nothing of an original that is not JSON
    if ex.original.json_error is None:
        original = _shown(*_lookup(ex.original.json, keys))
    if not found:
        return Difference(field, "missing", original=original)
    if _is_empty(value):
        return Difference(field, "empty", original=original, replay=_shown(True, value))
    return True


@comparator("hints_py")
def check_hint_input(ex):
    """The seed's check_hint_input: the replay must still offer hints."""
    return nonempty(ex, "results.hint_list")


@comparator("intentions_py")
def check_intention(ex):
    """The seed's check_intention: the replay must still recognise intentions."""
    return nonempty(ex, "results.intention_list")


if __name__ == "__main__":
    run()
