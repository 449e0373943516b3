"""Every config file starts from the full default tree, so any key can be overridden on the command line."""

import ml_collections

from wsparse import config as C


def defaults() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(C.to_dict(C.Config()))
