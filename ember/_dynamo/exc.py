"""Errors of ``ember.compile`` (PyTorch's ``torch._dynamo.exc``)."""


class TorchDynamoException(RuntimeError):
    pass


class Unsupported(TorchDynamoException):
    """A construct the capture cannot put in a graph, raised under ``fullgraph=True``."""


class InvalidBackend(TorchDynamoException):
    def __init__(self, name):
        super().__init__(f"Invalid backend: {name!r}, see `torch._dynamo.list_backends()` for "
                         "available backends.")
