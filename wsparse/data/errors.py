"""The data errors a user can cause; every one is a ``DataError`` (and a ``ValueError``)."""


class DataError(ValueError):
    """Data cannot be prepared or used as asked: no corpus, a tokenizer that cannot satisfy the config, shards that
    are missing or corrupt, or data made for another tokenizer."""


class CorpusError(DataError):
    """The configured sources yield no usable Python (or too little for a validation split)."""


class TokenizerError(DataError):
    """A tokenizer cannot satisfy the configuration (e.g. a required string cannot be one token)."""


class ShardError(DataError):
    """A token shard is truncated or corrupt."""


class IncompatibleDataError(DataError):
    """Prepared data were made with another tokenizer or config than expected."""
