"""The benchmarks' own machinery (the scripts themselves are run by hand, not by the suite)."""

import importlib

import wsparse


def test_package_from_rev_imports_a_separate_copy_wired_to_itself():
    from benchmarks.prune_tasks import package_from_rev

    old = package_from_rev("HEAD", "wsparse_rev_under_test")
    prune_old = importlib.import_module("wsparse_rev_under_test.circuits.prune")
    assert old.__name__ == "wsparse_rev_under_test" and old.__file__ != wsparse.__file__
    assert prune_old.M.__name__ == "wsparse_rev_under_test.model"  # its imports point into the copy
    assert prune_old.M is not wsparse.model
    assert importlib.import_module("wsparse.circuits.prune").M is wsparse.model
