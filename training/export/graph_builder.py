"""A small helper around onnx.helper: nodes by call, large tables as external data.

Every large initializer of model.onnx points into one of the bundle's npy files (ONNX external
data at the offset past the npy header), so a table is stored once and its sha256 in the
manifest covers what onnxruntime reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bundle import format as fmt

ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
              np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int8): TensorProto.INT8,
              np.dtype(np.uint8): TensorProto.UINT8}


class GraphBuilder:
    def __init__(self, bundle_dir: Path):
        self.bundle_dir = bundle_dir
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._names: set[str] = set()
        self._tables: dict[str, str] = {}

    def _fresh(self, hint: str) -> str:
        name, n = hint, 0
        while name in self._names:
            n += 1
            name = f"{hint}_{n}"
        self._names.add(name)
        return name

    def table(self, relative: str) -> str:
        """An initializer reading the npy file `relative` of the bundle in place (once)."""
        if relative in self._tables:
            return self._tables[relative]
        path = self.bundle_dir / relative
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
        if fortran or dtype.newbyteorder("=") != dtype or dtype not in ONNX_TYPES:
            raise ValueError(f"{relative}: {dtype} / fortran={fortran} cannot be external data")
        tensor = TensorProto()
        tensor.name = self._fresh(Path(relative).stem)
        tensor.data_type = ONNX_TYPES[dtype]
        tensor.dims.extend(shape)
        tensor.data_location = TensorProto.EXTERNAL
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        for key, value in (("location", relative), ("offset", str(offset)),
                           ("length", str(size))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.initializers.append(tensor)
        self._tables[relative] = tensor.name
        return tensor.name

    def const(self, value: np.ndarray | float | int | list, hint: str = "const",
              dtype: type = np.float32) -> str:
        """A small constant embedded in the graph."""
        array = np.asarray(value, dtype)
        tensor = numpy_helper.from_array(array, self._fresh(hint))
        self.initializers.append(tensor)
        return tensor.name

    def ints(self, *values: int) -> str:
        return self.const(list(values), "ints", np.int64)

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None,
           **attrs) -> str | list[str]:
        """Append a node; returns its output name (or names when outputs > 1)."""
        names = [name] if name and outputs == 1 else [
            self._fresh(f"{op_type.lower()}") for _ in range(outputs)]
        if name:
            self._names.add(name)
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    # ---- shorthands for the ops the graphs use repeatedly ----------------------------------
    def slice(self, x: str, start: int, stop: int, axis: int) -> str:
        return self.op("Slice", x, self.ints(start), self.ints(stop), self.ints(axis))

    def reshape(self, x: str, *shape: int) -> str:
        return self.op("Reshape", x, self.ints(*shape))

    def sum(self, x: str, *axes: int, keepdims: int = 0) -> str:
        return self.op("ReduceSum", x, self.ints(*axes), keepdims=keepdims)

    def unsqueeze(self, x: str, *axes: int) -> str:
        return self.op("Unsqueeze", x, self.ints(*axes))

    def model(self, inputs: list[onnx.ValueInfoProto],
              outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "gmlrec", inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", fmt.OPSET)],
                                  producer_name="gmlrec")
        model.ir_version = fmt.IR_VERSION
        return model


def tensor_input(name: str, elem: int, *shape: str | int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))
