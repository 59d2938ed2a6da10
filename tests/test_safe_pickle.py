"""The restricted unpickler (cvtutor.data.safe_pickle) and the RHD reader that uses it."""
import os
import pickle

import numpy as np
import pytest

from cvtutor.data import rhd, safe_pickle


class _RunsCode:
    """Unpickling this calls os.system: what a hostile data file does."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_and_builtins_round_trip(tmp_path, protocol):
    obj = {0: {"xyz": np.arange(6, dtype=np.float32).reshape(2, 3), "k": np.int64(7), "name": "a",
               "t": (1, 2.5, None, True), "s": {1, 2}, "b": b"xy"}}
    path = tmp_path / "x.pickle"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = safe_pickle.load(path)
    assert np.array_equal(back[0]["xyz"], obj[0]["xyz"]) and back[0]["xyz"].dtype == np.float32
    assert back[0]["k"] == 7 and back[0]["t"] == (1, 2.5, None, True) and back[0]["s"] == {1, 2}


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({0: _RunsCode()}, protocol=2))
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"refusing to load the global (posix|os|nt)\.system"):
        safe_pickle.load(path)


def test_other_classes_are_refused():
    import collections

    with pytest.raises(safe_pickle.UnsafePickleError, match="collections.OrderedDict"):
        safe_pickle.loads(pickle.dumps(collections.OrderedDict(a=1)))


def test_rhd_reader_refuses_a_hostile_annotation_file(tmp_path):
    folder = tmp_path / "evaluation"
    folder.mkdir()
    (folder / "anno_evaluation.pickle").write_bytes(pickle.dumps({0: _RunsCode()}, protocol=2))
    with pytest.raises(safe_pickle.UnsafePickleError, match="anno_evaluation.pickle"):
        rhd._load_annotations(folder / "anno_evaluation.pickle")


def test_python2_style_pickle_is_read(tmp_path):
    # protocol 2 with a latin-1 byte string, as Python 2's cPickle wrote RHD's annotations
    data = b"\x80\x02}q\x00U\x03k\xe9yq\x01K\x01s."
    path = tmp_path / "py2.pickle"
    path.write_bytes(data)
    assert safe_pickle.load(path) == {"k\xe9y": 1}  # decoded as latin-1, as RHD needs
