"""Kept only for `tests/test_eval_with_data.py`, which imports `colour_class_tree` from here:
the helper lives in conftest.py now (the training tests use real in-memory sources, see
`conftest.register_separable`). Delete this file once that import points at conftest."""

from conftest import colour_class_tree

__all__ = ["colour_class_tree"]
