"""Python corpus -> BPE tokenizer -> uint16 token shards -> grain batches (docs/interfaces.md, Data)."""

from wsparse.data.corpus import CorpusError
from wsparse.data.store import (DataError, IncompatibleDataError, Prepared, ShardError, check_compatible, load,
                                prepare)
from wsparse.data.tokenizer import TokenizerError

__all__ = ["prepare", "Prepared", "load", "check_compatible", "DataError", "CorpusError", "ShardError",
           "IncompatibleDataError", "TokenizerError"]
