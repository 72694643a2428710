"""Exact graph folds that halve the CPU time of the PP-OCR det/rec ONNX models.

    from mmrag.ingest.onnx_fold import fold_model
    session = onnxruntime.InferenceSession(fold_model(Path(path).read_bytes()), options)

PaddlePaddle's exporter writes PP-LCNetV3's "learnable affine blocks" and hard-swish as
separate element-wise nodes: every convolution is followed by ``Mul(s) Add(b)`` (affine),
``Add(3) Clip(0, 6) Mul Div(6)`` (hard-swish) and ``Mul(s2) Add(b2)`` (affine again).
onnxruntime fuses none of them, so these memory-bound passes cost as much as the
convolutions. Here the affines move into the convolution weights and hard-swish becomes
``x * HardSigmoid(x)``, which onnxruntime runs fused:

- ``Conv → Mul(s) → Add(b)`` becomes ``Conv`` with weights ``s·W`` and bias ``s·B + b``;
- ``Mul(s2) → Add(b2) → Conv`` scales the next convolution's weights by ``s2``; its bias
  becomes ``B + b2·ΣW`` when it is 1×1 without padding, else ``Add(b2/s2)`` stays
  (zero padding would see the shifted border otherwise), so outputs stay equal up to
  float rounding (~1e-6).

The ``onnx`` package is not a dependency, so the few ONNX messages touched are declared
here (field numbers from onnx.proto); everything else in the file rides along as unknown
protobuf fields and is written back unchanged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["fold_model"]

log = logging.getLogger(__name__)

_FLOAT = 1  # TensorProto.DataType.FLOAT
_ATTR_FLOAT, _ATTR_TENSOR = 1, 4  # AttributeProto.AttributeType

# name, number, type, label (1 optional, 3 repeated), message type name
_FIELDS: dict[str, list[tuple[str, int, str, int, str]]] = {
    "TensorProto": [("dims", 1, "int64", 3, ""), ("data_type", 2, "int32", 1, ""),
                    ("float_data", 4, "float", 3, ""), ("name", 8, "string", 1, ""),
                    ("raw_data", 9, "bytes", 1, "")],
    "AttributeProto": [("name", 1, "string", 1, ""), ("f", 2, "float", 1, ""),
                       ("i", 3, "int64", 1, ""), ("t", 5, "message", 1, "TensorProto"),
                       ("ints", 8, "int64", 3, ""), ("type", 20, "int32", 1, "")],
    "NodeProto": [("input", 1, "string", 3, ""), ("output", 2, "string", 3, ""),
                  ("name", 3, "string", 1, ""), ("op_type", 4, "string", 1, ""),
                  ("attribute", 5, "message", 3, "AttributeProto"),
                  ("domain", 7, "string", 1, "")],
    "ValueInfoProto": [("name", 1, "string", 1, "")],
    "GraphProto": [("node", 1, "message", 3, "NodeProto"),
                   ("initializer", 5, "message", 3, "TensorProto"),
                   ("output", 12, "message", 3, "ValueInfoProto")],
    "ModelProto": [("graph", 7, "message", 1, "GraphProto")],
}


@functools.cache
def _classes() -> dict[str, Any]:
    """Message classes knowing only the fields above; unknown fields survive a round trip."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    kinds = {"int64": 3, "int32": 5, "float": 2, "string": 9, "bytes": 12, "message": 11}
    proto = descriptor_pb2.FileDescriptorProto(name="mmrag_onnx_subset.proto",
                                               package="mmrag_onnx", syntax="proto2")
    for message, fields in _FIELDS.items():
        desc = proto.message_type.add(name=message)
        for name, number, kind, label, type_name in fields:
            f = desc.field.add(name=name, number=number, type=kinds[kind], label=label)
            if type_name:
                f.type_name = f".mmrag_onnx.{type_name}"
            if kind == "float" and label == 3:
                f.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"mmrag_onnx.{name}"))
            for name in _FIELDS}


def _to_array(tensor: Any) -> np.ndarray | None:
    if tensor.data_type != _FLOAT:
        return None
    dims = tuple(int(d) for d in tensor.dims)
    if tensor.raw_data:
        return np.frombuffer(tensor.raw_data, dtype="<f4").reshape(dims).copy()
    return np.asarray(tensor.float_data, dtype=np.float32).reshape(dims)


@dataclass
class _Graph:
    """The node list with the lookups the folds need; edits are collected, then applied."""

    graph: Any
    nodes: list[Any] = field(default_factory=list)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    consumers: dict[str, list[Any]] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    dropped: set[int] = field(default_factory=set)
    before: dict[int, list[Any]] = field(default_factory=dict)  # new nodes ahead of a node
    fresh: list[Any] = field(default_factory=list)  # new Constant nodes, first in the graph

    @classmethod
    def of(cls, graph: Any) -> _Graph:
        g = cls(graph, list(graph.node))
        for t in graph.initializer:
            if (arr := _to_array(t)) is not None:
                g.consts[t.name] = arr
        for n in g.nodes:
            if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
                if (arr := _to_array(n.attribute[0].t)) is not None:
                    g.consts[n.output[0]] = arr
            for name in n.input:
                g.consumers.setdefault(name, []).append(n)
        g.outputs = {o.name for o in graph.output}
        return g

    def scalar(self, name: str) -> float | None:
        arr = self.consts.get(name)
        return float(arr.reshape(-1)[0]) if arr is not None and arr.size == 1 else None

    def only_consumer(self, name: str, op: str) -> Any | None:
        users = self.consumers.get(name, [])
        if name in self.outputs or len(users) != 1 or users[0].op_type != op:
            return None
        return users[0] if id(users[0]) not in self.dropped else None

    def other_scalar(self, node: Any, name: str) -> float | None:
        """The scalar constant ``node`` combines with ``name`` (a binary Mul/Add/Div)."""
        others = [i for i in node.input if i != name]
        return self.scalar(others[0]) if len(node.input) == 2 and len(others) == 1 else None

    def const(self, name: str, arr: np.ndarray) -> str:
        node = _classes()["NodeProto"]()
        node.op_type, node.name = "Constant", name
        node.output.append(name)
        attr = node.attribute.add()
        attr.name, attr.type = "value", _ATTR_TENSOR
        data = np.ascontiguousarray(arr, dtype="<f4")
        attr.t.name, attr.t.data_type, attr.t.raw_data = name, _FLOAT, data.tobytes()
        attr.t.dims.extend(data.shape)
        self.consts[name] = data
        self.fresh.append(node)
        return name

    def node(self, op: str, inputs: Iterable[str], output: str, name: str,
             **floats: float) -> Any:
        node = _classes()["NodeProto"]()
        node.op_type, node.name = op, name
        node.input.extend(inputs)
        node.output.append(output)
        for key, value in floats.items():
            attr = node.attribute.add()
            attr.name, attr.type, attr.f = key, _ATTR_FLOAT, value
        return node

    def write(self) -> None:
        """Replace the node list: new constants first, inserted nodes ahead of their
        anchor, dropped nodes and constants nobody reads any more left out."""
        order: list[Any] = list(self.fresh)
        for n in self.nodes:
            order.extend(self.before.get(id(n), []))
            if id(n) not in self.dropped:
                order.append(n)
        used = {i for n in order for i in n.input} | self.outputs
        order = [n for n in order if n.op_type != "Constant" or n.output[0] in used]
        del self.graph.node[:]
        self.graph.node.extend(order)


def _conv_weights(g: _Graph, conv: Any) -> tuple[np.ndarray, np.ndarray] | None:
    weight = g.consts.get(conv.input[1]) if len(conv.input) > 1 else None
    if weight is None or weight.ndim != 4:
        return None
    bias = g.consts.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
    if len(conv.input) > 2 and conv.input[2] and bias is None:
        return None
    return weight, bias if bias is not None else np.zeros(weight.shape[0], np.float32)


def _set_conv(g: _Graph, conv: Any, weight: np.ndarray, bias: np.ndarray) -> None:
    conv.input[1] = g.const(f"{conv.name or conv.output[0]}.folded_w{len(g.fresh)}", weight)
    name = g.const(f"{conv.name or conv.output[0]}.folded_b{len(g.fresh)}", bias)
    if len(conv.input) > 2:
        conv.input[2] = name
    else:
        conv.input.append(name)


def _affine_after(g: _Graph, name: str) -> tuple[Any, Any, float, float] | None:
    """``name → Mul(s) → Add(b)`` with scalar s and b, each the only reader of its input."""
    mul = g.only_consumer(name, "Mul")
    s = g.other_scalar(mul, name) if mul is not None else None
    if mul is None or s is None:
        return None
    add = g.only_consumer(mul.output[0], "Add")
    b = g.other_scalar(add, mul.output[0]) if add is not None else None
    if b is None:
        return None
    return mul, add, s, b


def _fold_conv_affine(g: _Graph) -> int:
    done = 0
    for conv in g.nodes:
        if conv.op_type != "Conv" or id(conv) in g.dropped:
            continue
        found = _affine_after(g, conv.output[0])
        wb = _conv_weights(g, conv) if found else None
        if found is None or wb is None:
            continue
        mul, add, s, b = found
        _set_conv(g, conv, wb[0] * s, wb[1] * s + b)
        conv.output[0] = add.output[0]
        g.dropped.update((id(mul), id(add)))
        done += 1
    return done


def _fold_hardswish(g: _Graph) -> int:
    """``x → Add(3) → Clip(0, 6) → Mul(x, ·) → Div(6)`` becomes ``Mul(x, HardSigmoid(x))``."""
    done = 0
    for add in g.nodes:
        if add.op_type != "Add" or id(add) in g.dropped or len(add.input) != 2:
            continue
        x = add.input[0]
        if g.scalar(add.input[1]) != 3.0:
            continue
        clip = g.only_consumer(add.output[0], "Clip")
        if clip is None or len(clip.input) != 3 or g.scalar(clip.input[1]) != 0.0 \
                or g.scalar(clip.input[2]) != 6.0:
            continue
        mul = g.only_consumer(clip.output[0], "Mul")
        if mul is None or x not in mul.input:
            continue
        div = g.only_consumer(mul.output[0], "Div")
        if div is None or div.input[0] != mul.output[0] or g.scalar(div.input[1]) != 6.0:
            continue
        gate = f"{div.output[0]}.hardsigmoid"
        g.before[id(add)] = [
            g.node("HardSigmoid", [x], gate, gate, alpha=1.0 / 6.0, beta=0.5),
            g.node("Mul", [x, gate], div.output[0], f"{div.output[0]}.hardswish")]
        g.dropped.update((id(add), id(clip), id(mul), id(div)))
        done += 1
    return done


def _in_channels(conv: Any, weight: np.ndarray) -> int:
    group = next((a.i for a in conv.attribute if a.name == "group"), 1) or 1
    return int(weight.shape[1] * group)


def _shift(g: _Graph, x: str, value: float, channels: int, out: str) -> Any:
    """``x + value`` as a BatchNormalization: onnxruntime keeps that in its blocked
    (NCHWc) layout, where a scalar Add costs a layout round trip on either side."""
    eps = 1e-5
    names = [g.const(f"{out}.bn_{k}{len(g.fresh)}", v) for k, v in (
        ("scale", np.full(channels, np.sqrt(1.0 + eps))), ("bias", np.full(channels, value)),
        ("mean", np.zeros(channels)), ("var", np.ones(channels)))]
    return g.node("BatchNormalization", [x, *names], out, f"{out}.shift", epsilon=eps)


def _pointwise(conv: Any) -> bool:
    attrs = {a.name: list(a.ints) for a in conv.attribute}
    return attrs.get("kernel_shape") == [1, 1] and not any(attrs.get("pads", []))


def _fold_affine_conv(g: _Graph) -> int:
    done = 0
    for mul in g.nodes:
        if mul.op_type != "Mul" or id(mul) in g.dropped or len(mul.input) != 2:
            continue
        scalars = [i for i in mul.input if g.scalar(i) is not None]
        if len(scalars) != 1:
            continue
        x = next(i for i in mul.input if i != scalars[0])
        s = g.scalar(scalars[0])
        add = g.only_consumer(mul.output[0], "Add")
        b = g.other_scalar(add, mul.output[0]) if add is not None else None
        if add is None or b is None:
            continue
        conv = g.only_consumer(add.output[0], "Conv")
        wb = _conv_weights(g, conv) if conv is not None else None
        if not s or conv is None or wb is None or conv.input[0] != add.output[0]:
            continue
        weight, bias = wb
        if _pointwise(conv):
            _set_conv(g, conv, weight * s, bias + b * weight.sum(axis=(1, 2, 3)))
            conv.input[0] = x
        else:
            _set_conv(g, conv, weight * s, bias)
            g.before[id(add)] = [_shift(g, x, b / s, _in_channels(conv, weight),
                                        add.output[0])]
        g.dropped.update((id(mul), id(add)))
        done += 1
    return done


def fold_model(data: bytes) -> bytes:
    """``data`` (a serialized ONNX model) with the folds above applied; the input bytes
    when nothing matched."""
    model = _classes()["ModelProto"]()
    model.ParseFromString(data)
    if not model.graph.node:
        return data
    g = _Graph.of(model.graph)
    counts = (_fold_conv_affine(g), _fold_hardswish(g), _fold_affine_conv(g))
    if not any(counts):
        return data
    g.write()
    log.debug("folded %d conv+affine, %d hard-swish, %d affine+conv", *counts)
    return model.SerializeToString()
