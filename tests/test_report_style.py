"""report.style(): the book's tables (issue 15, "Reproduction tables")."""
import numpy as np
import pandas as pd

from cvtutor import report


def _html(df, **kw):
    return report.style(df, **kw).to_html()


def test_numbers_per_column_and_missing_values():
    df = pd.DataFrame({"model": ["a", "b"], "count": [1.0, 3.0], "mean": np.array([30.3, 2.5], np.float32),
                       "std": [np.nan, 0.12345], "n": [1, 3]})
    html = _html(df)
    assert "30.299999" not in html and "30.30" in html  # float32 artefact gone, 2 decimals at >= 10
    assert ">1<" in html and ">3<" in html and "1.000" not in html  # whole numbers as integers
    assert "–" in html and "nan" not in html.lower()  # the std of one seed
    assert "0.123" in html


def test_borders_padding_and_the_css_class():
    html = _html(pd.DataFrame({"x": [1.5]}))
    assert "padding" in html and "border" in html and 'class="cvtutor-table"' in html


def test_failed_rows_are_marked_and_kinds_explained():
    f = report.claims_table({"a": ("paper claim", True), "b": ("sanity check", False), "c": ("construction", None)})
    html = _html(f)
    css = html.split("</style>")[0]
    rule = " ".join(block for block in css.split("}") if "#fde8e8" in block)
    assert all(f"row1_col{j}" in rule for j in range(3))  # row b, every cell
    assert "row0_col" not in rule and "row2_col" not in rule  # holds (✓) and not judged (–) unmarked
    assert "✓" in html and "✗" in html and "–" in html
    assert "a sanity check tests our own tool" in html


def test_transpose_for_wide_tables():
    wide = pd.DataFrame({"model": ["a", "b"], **{f"col{i}": [0.5, 1.5] for i in range(12)}})
    st = report.style(wide, transpose=True)
    assert st.data.shape == (12, 3) and list(st.data.columns) == ["model", "a", "b"]
    assert "0.500" in st.to_html()


def test_text_columns_are_left_aligned():
    css = _html(pd.DataFrame({"finding": ["a"], "x": [1.5]})).split("</style>")[0]
    rule = next(block for block in css.split("}") if "text-align: left" in block and "row0" in block)
    assert "row0_col0" in rule and "row0_col1" not in rule
