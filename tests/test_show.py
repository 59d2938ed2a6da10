import pytest

import cvtutor
from cvtutor.show import Source, source
from cvtutor.train import minibatches


def test_source_is_the_code_that_runs():
    src = source(minibatches)
    assert src.code.startswith("def minibatches(")
    assert "cvtutor/train.py, lines" in src.origin
    md = src._repr_markdown_()
    assert md.count("```python") == 1 and "def minibatches(" in md


def test_methods_are_dedented():
    src = source(Source.__str__)
    assert src.code.startswith("def __str__")


def test_plain_text_outside_notebooks(capsys):
    cvtutor.show(minibatches)
    out = capsys.readouterr().out
    assert out.startswith("# cvtutor/train.py, lines") and "def minibatches(" in out


def test_bad_input():
    with pytest.raises(TypeError, match="cannot show the source"):
        source(42)
    with pytest.raises(TypeError, match="at least one"):
        cvtutor.show()
