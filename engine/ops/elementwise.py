"""Shape rules of elementwise ops: unary (same shape), binary/ternary (broadcast)."""
import numpy as np

from . import TensorInfo, broadcast_shapes, schema, same

UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf", "Reciprocal",
         "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh",
         "Cosh", "Asinh", "Acosh", "Atanh", "Softplus", "Softsign", "Elu", "Selu", "Celu",
         "LeakyRelu", "ThresholdedRelu", "HardSigmoid", "HardSwish", "Mish", "Gelu", "SiLU",
         "Clip", "Identity", "Dropout", "Shrink", "Not", "BitwiseNot", "PRelu_unused",
         "LpNormalization", "MeanVarianceNormalization", "Hardmax", "Softmax", "LogSoftmax"]
BINARY_ARITH = ["Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean",
                "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu"]
COMPARE = ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"]


@schema(*[u for u in UNARY if u not in ("Dropout", "PRelu_unused")])
def _unary(node, ins):
    return [same(ins[0])]


@schema("Dropout")
def _dropout(node, ins):
    outs = [same(ins[0])]
    if len(node.outputs) > 1:
        outs.append(same(ins[0], dtype=np.bool_))
    return outs


@schema(*BINARY_ARITH)
def _binary(node, ins):
    present = [i for i in ins if i is not None]
    shape = broadcast_shapes(node, ins, *[i.shape for i in present])
    return [TensorInfo(shape, present[0].dtype)]


@schema(*COMPARE)
def _compare(node, ins):
    return [TensorInfo(broadcast_shapes(node, ins, ins[0].shape, ins[1].shape), np.dtype(np.bool_))]


@schema("Where")
def _where(node, ins):
    return [TensorInfo(broadcast_shapes(node, ins, *[i.shape for i in ins]), ins[1].dtype)]


@schema("IsNaN", "IsInf")
def _isx(node, ins):
    return [same(ins[0], dtype=np.bool_)]


@schema("Cast")
def _cast(node, ins):
    from ..onnx_types import onnx_dtype
    return [same(ins[0], dtype=onnx_dtype(node.attrs["to"]))]


@schema("CastLike")
def _cast_like(node, ins):
    return [same(ins[0], dtype=ins[1].dtype)]
