"""Python corpus -> BPE tokenizer -> uint16 token shards -> grain batches (docs/architecture.md, Data)."""

from wsparse.data.errors import CorpusError, DataError, IncompatibleDataError, ShardError, TokenizerError
from wsparse.data.store import Prepared, check_compatible, load, prepare

__all__ = ["prepare", "Prepared", "load", "check_compatible", "DataError", "CorpusError", "ShardError",
           "IncompatibleDataError", "TokenizerError"]
