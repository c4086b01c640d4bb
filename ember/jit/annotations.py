"""``torch.jit.annotations``: the typing names TorchScript-era code imports from it.

Libraries written for TorchScript (timm's ``densenet``, torchvision's older ops) still spell
``from torch.jit.annotations import List, Tuple``; ember compiles no TorchScript, so these are
``typing``'s own names, plus ``BroadcastingList1``..``6``, which PyTorch subscripts to None.
"""
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__all__ = ["Any", "BroadcastingList1", "BroadcastingList2", "BroadcastingList3",
           "BroadcastingList4", "BroadcastingList5", "BroadcastingList6", "Callable", "Dict",
           "List", "Optional", "Tuple", "Union"]


class BroadcastingListCls:
    """``BroadcastingList2[int]`` in an annotation: PyTorch's marker, subscripting to None."""

    def __getitem__(self, types):
        return None


BroadcastingList1 = BroadcastingListCls()
# PyTorch binds every arity to the same marker object
BroadcastingList2 = BroadcastingList3 = BroadcastingList4 = BroadcastingList1
BroadcastingList5 = BroadcastingList6 = BroadcastingList1
